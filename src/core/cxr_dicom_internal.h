/* Between the DICOM reader's files only (dicom.c parses, dicom_pixels.c gives pixels meaning):
 * not part of the core's API. */
#ifndef CXR_DICOM_INTERNAL_H
#define CXR_DICOM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_dicom.h"

/* A deflated dataset may inflate to at most this many times its compressed size (plus 1 MiB, so
 * that small files are never refused): zeros compress about 1000:1, real images far less, and
 * the bound keeps a small bomb from reaching CXR_DICOM_MAX_INFLATED. */
#define CXR_DICOM_MAX_INFLATE_RATIO 256u

/* Checks the Image Pixel module and the transforms' parameters in info (the rules of
 * docs/decisions.md, "DICOM pixels"): CXR_IMG_CORRUPT or CXR_IMG_UNSUPPORTED with a message. */
cxr_img_status cxr_dicom_check_pixels(const cxr_dicom_info *info, char *err, size_t errlen);

/* Bytes that frame 1 of native Pixel Data needs (0 when the sizes overflow size_t). */
size_t cxr_dicom_native_frame_bytes(const cxr_dicom_info *info);

/* Unpacks frame 1 of native Pixel Data (info->pixel_data) into rows*columns*samples_per_pixel
 * interleaved stored samples (planar data is interleaved, YBR_FULL_422 upsampled).
 * words_swapped: 8-bit samples in an OW value of a big endian file, whose byte pairs are
 * swapped. The caller has run cxr_dicom_check_pixels. */
cxr_img_status cxr_dicom_unpack_native(const cxr_dicom_info *info, int words_swapped,
                                       int32_t *samples, char *err, size_t errlen);

/* Native 8- or 16-bit grayscale frames go straight from the file's bytes to gray through a
 * table of every stored code (no intermediate samples: at X-ray sizes, touching 25 MB of fresh
 * memory costs more than the arithmetic). The predicate says when the direct path applies; it
 * gives the values cxr_dicom_unpack_native + cxr_dicom_samples_to_gray give. */
int cxr_dicom_native_mono_direct(const cxr_dicom_info *info, int words_swapped);
cxr_img_status cxr_dicom_native_mono_gray(const cxr_dicom_info *info, float *out, char *err,
                                          size_t errlen);

#endif

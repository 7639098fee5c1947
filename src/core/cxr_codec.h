/* Compressed pixel codecs behind DICOM and JPEG files: baseline/extended/progressive JPEG
 * (libjpeg-turbo, 8-bit), JPEG Lossless process 14 (our own decoder), JPEG 2000 (OpenJPEG) and
 * DICOM RLE Lossless (our own). Each decodes one frame into interleaved int32 samples
 * (pixel by pixel: s0 s1 s2 s0 s1 s2 ...), so that the DICOM reader applies the same pixel
 * semantics whatever the codec. Every size is checked against max_samples before anything is
 * allocated; libraries' errors never longjmp out of the codec's own frame; long loops poll
 * cxr_interrupt_poll. Nothing here calls PostgreSQL. */
#ifndef CXR_CODEC_H
#define CXR_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_image.h"

typedef struct {
    int width, height;
    int components;        /* samples per pixel: 1 or 3 (others are CXR_IMG_UNSUPPORTED) */
    int precision;         /* bits per sample as coded, 1..16 */
    int is_signed;         /* samples are two's complement (JPEG 2000 can say so) */
    int color_transformed; /* the codec turned YCbCr into RGB (libjpeg per JFIF/Adobe markers,
                            * OpenJPEG's multiple-component transform is not counted) */
    int process;           /* JPEG only: the SOF marker's low nibble (0 baseline, 1 extended,
                            * 2 progressive, 3 lossless); -1 for other codecs */
} cxr_frame_info;

/* JPEG: reads the markers up to the first SOF (no library involved) and fills info. Fails with
 * CXR_IMG_CORRUPT on a truncated or malformed stream before the SOF, CXR_IMG_UNSUPPORTED for
 * arithmetic coding, hierarchical processes and more than 3 components. */
cxr_img_status cxr_jpeg_read_header(const uint8_t *buf, size_t len, cxr_frame_info *info,
                                    char *err, size_t errlen);
/* JPEG: decodes the whole stream. Processes 0, 1 (8-bit) and 2 go to libjpeg-turbo, which
 * turns YCbCr into RGB as the stream's markers say (color_transformed tells); process 3
 * (lossless, any predictor 1..7, 2..16 bits) to cxr_jpeg_lossless_decode. 12-bit lossy is
 * CXR_IMG_UNSUPPORTED. out holds width*height*components samples; max_samples is checked
 * first (CXR_IMG_TOO_LARGE). */
cxr_img_status cxr_jpeg_decode(const uint8_t *buf, size_t len, size_t max_samples, int32_t *out,
                               size_t out_capacity, cxr_frame_info *info, char *err,
                               size_t errlen);
/* How a 3-component lossy JPEG's colour is read: as its JFIF/Adobe markers say (a JPEG file),
 * or as a DICOM Photometric Interpretation says (PS3.5 8.2.1: RGB is not transformed, YBR_* is
 * YCbCr), whatever the markers. */
typedef enum { CXR_JPEG_COLOR_MARKERS = 0, CXR_JPEG_COLOR_RGB, CXR_JPEG_COLOR_YCBCR } cxr_jpeg_color;
/* cxr_jpeg_decode with the colour space given (cxr_jpeg_decode is CXR_JPEG_COLOR_MARKERS). */
cxr_img_status cxr_jpeg_decode_as(const uint8_t *buf, size_t len, cxr_jpeg_color color,
                                  size_t max_samples, int32_t *out, size_t out_capacity,
                                  cxr_frame_info *info, char *err, size_t errlen);
/* JPEG Lossless (ITU T.81 process 14: SOF3, Huffman, predictors 1..7, point transform). */
cxr_img_status cxr_jpeg_lossless_decode(const uint8_t *buf, size_t len, size_t max_samples,
                                        int32_t *out, size_t out_capacity, cxr_frame_info *info,
                                        char *err, size_t errlen);
/* JPEG 2000 (a J2K codestream or a JP2 file), through OpenJPEG. */
cxr_img_status cxr_j2k_decode(const uint8_t *buf, size_t len, size_t max_samples, int32_t *out,
                              size_t out_capacity, cxr_frame_info *info, char *err,
                              size_t errlen);
/* DICOM RLE Lossless (PS3.5 Annex G): one frame of width x height pixels of components samples
 * of bits_allocated (8, 16 or 32) bits. Samples come out unsigned as stored (the DICOM reader
 * sign-extends). */
cxr_img_status cxr_rle_decode(const uint8_t *buf, size_t len, int width, int height,
                              int components, int bits_allocated, int32_t *out,
                              size_t out_capacity, char *err, size_t errlen);

#endif

/* DICOM Part 10 files (and datasets without the preamble, where that can be told safely):
 * a bounded reader of our own. It parses the file meta group, the transfer syntax, and the
 * top-level dataset (sequences are walked, never recursed into without a depth bound:
 * CXR_DICOM_MAX_DEPTH), inflates deflated datasets up to a byte limit, and turns the first
 * frame of Pixel Data into gray values in [0, 1] with the pixel semantics of PS3.3 C.7.6.3
 * (Image Pixel), C.11.1 (Modality LUT) and C.11.2 (VOI LUT). The rules are in
 * docs/decisions.md, "DICOM pixels". Memory is malloc'd and freed by cxr_dicom_close; nothing
 * here calls PostgreSQL or longjmps. */
#ifndef CXR_DICOM_H
#define CXR_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_image.h"

#define CXR_DICOM_MAX_DEPTH 16           /* nested sequences; deeper is CXR_IMG_CORRUPT */
#define CXR_DICOM_MAX_INFLATED (1u << 30) /* a deflated dataset inflates to at most this */

#define CXR_DICOM_TAG(group, element) (((uint32_t)(group) << 16) | (uint32_t)(element))

typedef enum {
    CXR_VOI_NONE = 0,   /* no VOI: the range BitsStored allows, through the modality rescale */
    CXR_VOI_WINDOW,     /* WindowCenter/Width with voi_function */
    CXR_VOI_LUT,        /* the first item of VOILUTSequence */
} cxr_voi_kind;

typedef enum { CXR_VOI_LINEAR = 0, CXR_VOI_LINEAR_EXACT, CXR_VOI_SIGMOID } cxr_voi_function;

typedef struct {
    char transfer_syntax[65]; /* UID, trailing padding removed */
    int ts_explicit, ts_big_endian, ts_deflated, ts_encapsulated;
    int has_preamble;         /* 'DICM' at 128; 0 for a dataset without one */
    uint32_t rows, columns;
    int samples_per_pixel, bits_allocated, bits_stored, high_bit, pixel_representation;
    int planar_configuration;
    int number_of_frames;                  /* 1 when absent */
    char photometric[17];                  /* MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, ... */
    int has_rescale;
    double rescale_slope, rescale_intercept; /* 1 and 0 when absent */
    cxr_voi_kind voi;
    double window_center, window_width;    /* first values */
    cxr_voi_function voi_function;
    /* VOI LUT (first item): descriptor and data as stored (entries of lut_bits bits) */
    int lut_entries, lut_first_mapped, lut_bits;
    const uint8_t *lut_data;
    uint32_t lut_data_len;
    /* Pixel Data: native bytes, or the encapsulated item sequence (after the tag and length) */
    const uint8_t *pixel_data;
    size_t pixel_data_len;     /* native: the value length; encapsulated: up to the end */
} cxr_dicom_info;

typedef struct cxr_dicom cxr_dicom;

/* Is this DICOM? 'DICM' at offset 128, or a dataset without a preamble whose first elements
 * parse as group 0x0002 or 0x0008 elements with plausible VRs and lengths (never a guess on
 * fewer bytes). */
int cxr_dicom_detect(const uint8_t *buf, size_t len);

/* Parses buf (which must outlive the handle). CXR_IMG_UNSUPPORTED names an unsupported transfer
 * syntax; truncated elements, lengths past the end, undefined lengths without delimiters and
 * nesting past CXR_DICOM_MAX_DEPTH are CXR_IMG_CORRUPT. */
cxr_img_status cxr_dicom_open(const uint8_t *buf, size_t len, cxr_dicom **out, char *err,
                              size_t errlen);
const cxr_dicom_info *cxr_dicom_info_of(const cxr_dicom *d);
/* A top-level element's value (file meta or dataset): 1 when present. vr is two letters (from
 * the file when explicit, from a small dictionary when implicit, "UN" when unknown). */
int cxr_dicom_element(const cxr_dicom *d, uint32_t tag, const uint8_t **value, uint32_t *len,
                      char vr[3]);
/* Calls fn for every top-level element in file order; stops when fn returns nonzero. */
void cxr_dicom_each(const cxr_dicom *d,
                    int (*fn)(uint32_t tag, const char *vr, const uint8_t *value, uint32_t len,
                              void *arg),
                    void *arg);
/* The first frame as gray in [0, 1] (width = columns, height = rows). *frames tells how many
 * frames the file has (the caller says a NOTICE when more than 1). max_pixels is checked
 * before any allocation. */
cxr_img_status cxr_dicom_decode_gray(cxr_dicom *d, size_t max_pixels, float *out,
                                     size_t out_capacity, int *frames, char *err, size_t errlen);
void cxr_dicom_close(cxr_dicom *d);

/* Pixel semantics on decoded samples (also used by tests): samples of one frame, interleaved,
 * as a codec or the native unpacker produced them; writes rows*columns gray values. */
cxr_img_status cxr_dicom_samples_to_gray(const cxr_dicom_info *info, const int32_t *samples,
                                         int color_transformed, float *out, char *err,
                                         size_t errlen);

#endif

/* X-ray images: PNG decoding to gray (libpng's simplified API, which reports errors by return
 * value: nothing longjmps through callers), resizing, normalisation, and PNG encoding (the
 * pictures drawn by cxr_draw.h). */
#ifndef CXR_IMAGE_H
#define CXR_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CXR_IMG_OK = 0,
    CXR_IMG_NOT_PNG,   /* wrong signature, or too short to hold one */
    CXR_IMG_CORRUPT,   /* truncated, bad CRC, bad IHDR, undecodable */
    CXR_IMG_TOO_LARGE, /* pixel count above the caller's limit */
    CXR_IMG_NO_MEMORY,
    CXR_IMG_INTERRUPTED, /* cxr_interrupt_poll said stop (cxr_interrupt.h) */
    CXR_IMG_UNSUPPORTED, /* a valid file using a feature not implemented (a DICOM transfer
                          * syntax, a 12-bit JPEG): the message names it */
    CXR_IMG_UNKNOWN_FORMAT, /* none of PNG, JPEG, DICOM (cxr_image_detect) */
} cxr_img_status;

typedef struct {
    uint32_t width, height;
    int bit_depth, color_type, channels, interlaced;
} cxr_png_info;

#define CXR_PNG_SIGNATURE_LEN 8

/* Signature check only: cheap enough for a domain CHECK. */
int cxr_png_has_signature(const uint8_t *buf, size_t len);
/* Reads and validates the IHDR chunk (signature, length, CRC, field values). */
cxr_img_status cxr_png_read_info(const uint8_t *buf, size_t len, cxr_png_info *info, char *err,
                                 size_t errlen);
/* Decodes to gray in [0, 1] into out (width*height floats, sized by the caller after
 * cxr_png_read_info). Colour becomes luma 0.299 R + 0.587 G + 0.114 B; alpha is ignored;
 * 16-bit samples keep their precision (v / 65535). max_pixels is checked before any
 * allocation. Polls cxr_interrupt_poll every 64k pixels of the conversion. */
cxr_img_status cxr_png_decode_gray(const uint8_t *buf, size_t len, size_t max_pixels, float *out,
                                   size_t out_capacity, char *err, size_t errlen);

/* Bilinear resize with antialiasing when shrinking (the triangle filter widened by the scale
 * factor, as PyTorch's interpolate(antialias=True) and PIL do). tmp holds
 * cxr_resize_scratch_floats(sw, sh, dw, dh) floats. Besides tmp it allocates the filter
 * taps, fewer than 2*(sw + sh) + 3*(dw + dh) floats and 2*(dw + dh) ints. Polls
 * cxr_interrupt_poll every ~64k multiply-adds (returns CXR_IMG_INTERRUPTED, dst incomplete).
 * Sides below 1 give CXR_IMG_CORRUPT, sides above CXR_RESIZE_MAX_SIDE CXR_IMG_TOO_LARGE. */
#define CXR_RESIZE_MAX_SIDE (1 << 28)
cxr_img_status cxr_resize_bilinear(const float *src, int sw, int sh, float *dst, int dw, int dh,
                                   float *tmp);
/* Scratch floats for cxr_resize_bilinear: never more than max(sw*sh, dw*dh), nor more than
 * dw*sh (what earlier versions required, so such buffers remain large enough). */
size_t cxr_resize_scratch_floats(int sw, int sh, int dw, int dh);

/* ---- every input format: PNG, JPEG, DICOM (image_formats.c) ---- */
typedef enum {
    CXR_FMT_UNKNOWN = 0,
    CXR_FMT_PNG,
    CXR_FMT_JPEG,
    CXR_FMT_DICOM,
} cxr_image_format;

/* Told by content only: the PNG signature, JPEG's SOI (FF D8 FF), 'DICM' at offset 128 or a
 * DICOM dataset without a preamble that cxr_dicom_detect recognises. */
cxr_image_format cxr_image_detect(const uint8_t *buf, size_t len);
const char *cxr_image_format_name(cxr_image_format f); /* "png", "jpeg", "dicom", "unknown" */

/* What cxr_image_info reports, for any format. DICOM fields are zero/empty otherwise. */
typedef struct {
    cxr_image_format format;
    uint32_t width, height;
    int bit_depth;          /* PNG bit depth, JPEG precision, DICOM BitsStored */
    const char *color;      /* "gray", "rgb", "palette", "gray_alpha", "rgba", "ycbcr" */
    int channels;
    int interlaced;         /* PNG Adam7, or a progressive JPEG */
    int frames;             /* 1 except for multi-frame DICOM */
    char transfer_syntax[65];
    char photometric[17];
    int bits_allocated, pixel_signed;
    double rescale_slope, rescale_intercept;
    int has_window;
    double window_center, window_width;
    const char *voi;        /* DICOM: "none", "window LINEAR", ..., "lut"; NULL otherwise */
} cxr_image_header;

/* Reads the header of any supported format (a DICOM file is parsed whole, without decoding
 * its pixels). */
cxr_img_status cxr_image_read_info(const uint8_t *buf, size_t len, cxr_image_header *info,
                                   char *err, size_t errlen);

/* The caller's allocator for the decoded image (PostgreSQL's palloc without ereport in the
 * glue); returns NULL when it cannot. */
typedef void *(*cxr_alloc_fn)(size_t bytes, void *ctx);

typedef struct {
    cxr_image_format format;
    float *gray;  /* width*height values in [0, 1], from alloc */
    int width, height;
    int frames;   /* a multi-frame DICOM's count; its frame 1 is what gray holds */
} cxr_decoded_image;

/* Decodes any supported format to gray in [0, 1]: PNG as cxr_png_decode_gray, JPEG through
 * cxr_jpeg_decode (8-bit: v / 255; colour to luma as PNG), DICOM through cxr_dicom_decode_gray
 * (docs/decisions.md, "DICOM pixels"). The pixel count is checked against max_pixels before
 * anything is allocated; internal buffers are malloc'd and freed before return. Even on
 * failure out->gray is what alloc returned (NULL if it was not called): the caller frees it,
 * or its memory context does. */
cxr_img_status cxr_image_decode(const uint8_t *buf, size_t len, size_t max_pixels,
                                cxr_alloc_fn alloc, void *alloc_ctx, cxr_decoded_image *out,
                                char *err, size_t errlen);

/* PNG encoding of 8-bit RGB; *out is malloc'd. */
cxr_img_status cxr_png_encode_rgb(const uint8_t *rgb, int w, int h, uint8_t **out,
                                  size_t *out_len);

#endif

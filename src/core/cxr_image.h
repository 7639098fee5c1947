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

/* PNG encoding of 8-bit RGB; *out is malloc'd. */
cxr_img_status cxr_png_encode_rgb(const uint8_t *rgb, int w, int h, uint8_t **out,
                                  size_t *out_len);

#endif

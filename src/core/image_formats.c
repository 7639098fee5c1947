/* One entry for every input format: which one a buffer holds (by content), its header, and
 * its pixels as gray in [0, 1]. The format decoders stay in their own files (image.c, jpeg.c,
 * dicom.c); this file only dispatches and turns JPEG samples into gray. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_codec.h"
#include "cxr_dicom.h"
#include "cxr_image.h"
#include "cxr_interrupt.h"
#include "cxr_large_buffer.h"

cxr_image_format
cxr_image_detect(const uint8_t *buf, size_t len)
{
    if (cxr_png_has_signature(buf, len))
        return CXR_FMT_PNG;
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return CXR_FMT_JPEG;
    if (cxr_dicom_detect(buf, len))
        return CXR_FMT_DICOM;
    return CXR_FMT_UNKNOWN;
}

const char *
cxr_image_format_name(cxr_image_format f)
{
    switch (f) {
    case CXR_FMT_PNG:
        return "png";
    case CXR_FMT_JPEG:
        return "jpeg";
    case CXR_FMT_DICOM:
        return "dicom";
    default:
        return "unknown";
    }
}

static cxr_img_status
unknown_format(size_t len, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "not an image of a supported format (%zu bytes that are neither PNG, JPEG nor DICOM)",
             len);
    return CXR_IMG_UNKNOWN_FORMAT;
}

static const char *
voi_name(const cxr_dicom_info *d)
{
    static const char *const functions[3] = {"window LINEAR", "window LINEAR_EXACT",
                                             "window SIGMOID"};
    switch (d->voi) {
    case CXR_VOI_WINDOW:
        return functions[d->voi_function];
    case CXR_VOI_LUT:
        return "lut";
    default:
        return "none";
    }
}

static void
dicom_fill_info(const cxr_dicom_info *d, cxr_image_header *info)
{
    info->width = d->columns;
    info->height = d->rows;
    info->bit_depth = d->bits_stored;
    info->channels = d->samples_per_pixel;
    info->color = d->samples_per_pixel == 3 ? "rgb" : "gray";
    info->frames = d->number_of_frames;
    snprintf(info->transfer_syntax, sizeof info->transfer_syntax, "%s", d->transfer_syntax);
    snprintf(info->photometric, sizeof info->photometric, "%s", d->photometric);
    info->bits_allocated = d->bits_allocated;
    info->pixel_signed = d->pixel_representation == 1;
    info->rescale_slope = d->rescale_slope;
    info->rescale_intercept = d->rescale_intercept;
    info->has_window = d->voi == CXR_VOI_WINDOW;
    info->window_center = d->window_center;
    info->window_width = d->window_width;
    info->voi = voi_name(d);
}

cxr_img_status
cxr_image_read_info(const uint8_t *buf, size_t len, cxr_image_header *info, char *err,
                    size_t errlen)
{
    static const char *const png_colors[7] = {"gray", NULL, "rgb", "palette", "gray_alpha", NULL,
                                              "rgba"};
    memset(info, 0, sizeof *info);
    info->format = cxr_image_detect(buf, len);
    info->frames = 1;
    cxr_img_status st;
    switch (info->format) {
    case CXR_FMT_PNG: {
        cxr_png_info p;
        if ((st = cxr_png_read_info(buf, len, &p, err, errlen)) != CXR_IMG_OK)
            return st;
        info->width = p.width;
        info->height = p.height;
        info->bit_depth = p.bit_depth;
        info->color = png_colors[p.color_type];
        info->channels = p.channels;
        info->interlaced = p.interlaced;
        return CXR_IMG_OK;
    }
    case CXR_FMT_JPEG: {
        cxr_frame_info f;
        if ((st = cxr_jpeg_read_header(buf, len, &f, err, errlen)) != CXR_IMG_OK)
            return st;
        info->width = (uint32_t)f.width;
        info->height = (uint32_t)f.height;
        info->bit_depth = f.precision;
        info->color = f.components == 3 ? "ycbcr" : "gray";
        info->channels = f.components;
        info->interlaced = f.process == 2;
        return CXR_IMG_OK;
    }
    case CXR_FMT_DICOM: {
        cxr_dicom *d;
        if ((st = cxr_dicom_open(buf, len, &d, err, errlen)) != CXR_IMG_OK)
            return st;
        dicom_fill_info(cxr_dicom_info_of(d), info);
        cxr_dicom_close(d);
        return CXR_IMG_OK;
    }
    default:
        return unknown_format(len, err, errlen);
    }
}

static cxr_img_status
too_large(const char *what, uint64_t w, uint64_t h, size_t max_pixels, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s image of %llux%llu pixels exceeds the limit of %zu pixels", what,
             (unsigned long long)w, (unsigned long long)h, max_pixels);
    return CXR_IMG_TOO_LARGE;
}

/* JPEG samples to gray: v / (2^precision - 1), colour through the luma of the PNG path. */
static cxr_img_status
jpeg_to_gray(const uint8_t *buf, size_t len, size_t pixels, float *gray, char *err,
             size_t errlen)
{
    cxr_frame_info f;
    cxr_img_status st = cxr_jpeg_read_header(buf, len, &f, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    size_t samples = pixels * (size_t)f.components;
    int32_t *s = cxr_large_buffer(samples * sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory decoding a %dx%d JPEG image", f.width, f.height);
        return CXR_IMG_NO_MEMORY;
    }
    st = cxr_jpeg_decode(buf, len, samples, s, samples, &f, err, errlen);
    if (st == CXR_IMG_OK && (size_t)f.width * f.height != pixels) {
        snprintf(err, errlen, "corrupt JPEG image: its frame changed size while decoding");
        st = CXR_IMG_CORRUPT;
    }
    if (st == CXR_IMG_OK) {
        float scale = 1.0f / (float)((1u << f.precision) - 1u);
        for (size_t i = 0; i < pixels; i++) {
            if (i % 65536 == 0 && cxr_interrupt_poll()) {
                snprintf(err, errlen, "interrupted");
                st = CXR_IMG_INTERRUPTED;
                break;
            }
            if (f.components == 3) {
                const int32_t *p = s + 3 * i;
                gray[i] = 0.299f * (p[0] * scale) + 0.587f * (p[1] * scale) +
                          0.114f * (p[2] * scale);
            } else {
                gray[i] = s[i] * scale;
            }
        }
    }
    free(s);
    return st;
}

cxr_img_status
cxr_image_decode(const uint8_t *buf, size_t len, size_t max_pixels, cxr_alloc_fn alloc,
                 void *alloc_ctx, cxr_decoded_image *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->format = cxr_image_detect(buf, len);
    out->frames = 1;
    cxr_img_status st;
    cxr_dicom *d = NULL;
    uint64_t w, h;
    switch (out->format) {
    case CXR_FMT_PNG: {
        cxr_png_info p;
        if ((st = cxr_png_read_info(buf, len, &p, err, errlen)) != CXR_IMG_OK)
            return st;
        w = p.width, h = p.height;
        break;
    }
    case CXR_FMT_JPEG: {
        cxr_frame_info f;
        if ((st = cxr_jpeg_read_header(buf, len, &f, err, errlen)) != CXR_IMG_OK)
            return st;
        w = (uint64_t)f.width, h = (uint64_t)f.height;
        break;
    }
    case CXR_FMT_DICOM: {
        if ((st = cxr_dicom_open(buf, len, &d, err, errlen)) != CXR_IMG_OK)
            return st;
        const cxr_dicom_info *di = cxr_dicom_info_of(d);
        w = di->columns, h = di->rows;
        break;
    }
    default:
        return unknown_format(len, err, errlen);
    }
    /* the size check comes before any allocation, whatever the format */
    if (w == 0 || h == 0 || w * h > max_pixels) {
        st = w == 0 || h == 0 ? CXR_IMG_CORRUPT : CXR_IMG_TOO_LARGE;
        if (st == CXR_IMG_CORRUPT)
            snprintf(err, errlen, "%s image without pixels (%llux%llu)",
                     cxr_image_format_name(out->format), (unsigned long long)w,
                     (unsigned long long)h);
        else
            too_large(out->format == CXR_FMT_DICOM ? "DICOM"
                      : out->format == CXR_FMT_JPEG ? "JPEG"
                                                     : "PNG",
                      w, h, max_pixels, err, errlen);
        if (d)
            cxr_dicom_close(d);
        return st;
    }
    size_t pixels = (size_t)(w * h);
    float *gray = alloc(pixels * sizeof(float), alloc_ctx);
    if (!gray) {
        snprintf(err, errlen, "out of memory for a %llux%llu image", (unsigned long long)w,
                 (unsigned long long)h);
        if (d)
            cxr_dicom_close(d);
        return CXR_IMG_NO_MEMORY;
    }
    switch (out->format) {
    case CXR_FMT_PNG:
        st = cxr_png_decode_gray(buf, len, max_pixels, gray, pixels, err, errlen);
        break;
    case CXR_FMT_JPEG:
        st = jpeg_to_gray(buf, len, pixels, gray, err, errlen);
        break;
    default:
        st = cxr_dicom_decode_gray(d, max_pixels, gray, pixels, &out->frames, err, errlen);
        cxr_dicom_close(d);
        break;
    }
    /* the buffer belongs to the caller, even on failure (freed by them or their context) */
    out->gray = gray;
    if (st != CXR_IMG_OK)
        return st;
    out->width = (int)w;
    out->height = (int)h;
    return CXR_IMG_OK;
}

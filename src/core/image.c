#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cxr_image.h"
#include "cxr_interrupt.h"
#include "cxr_large_buffer.h"

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int
cxr_png_has_signature(const uint8_t *buf, size_t len)
{
    return len >= 8 && memcmp(buf, png_signature, 8) == 0;
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

cxr_img_status
cxr_png_read_info(const uint8_t *buf, size_t len, cxr_png_info *info, char *err, size_t errlen)
{
    if (!cxr_png_has_signature(buf, len)) {
        snprintf(err, errlen, "not a PNG image (%zu bytes without the PNG signature)", len);
        return CXR_IMG_NOT_PNG;
    }
    /* signature, then IHDR: length 13, type, 13 bytes of fields, CRC */
    if (len < 8 + 8 + 13 + 4) {
        snprintf(err, errlen, "truncated PNG image: %zu bytes, too short for its header", len);
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *c = buf + 8;
    if (be32(c) != 13 || memcmp(c + 4, "IHDR", 4) != 0) {
        snprintf(err, errlen, "corrupt PNG image: the first chunk is not a valid IHDR");
        return CXR_IMG_CORRUPT;
    }
    if ((uint32_t)crc32(0, c + 4, 17) != be32(c + 21)) {
        snprintf(err, errlen, "corrupt PNG image: IHDR checksum mismatch");
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *f = c + 8;
    info->width = be32(f);
    info->height = be32(f + 4);
    info->bit_depth = f[8];
    info->color_type = f[9];
    info->interlaced = f[12];
    static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
    int ct = info->color_type, bd = info->bit_depth;
    /* each field gets its own message: the user needs to know which one is wrong */
    if (ct > 6 || !channels[ct]) {
        snprintf(err, errlen, "corrupt PNG image: invalid color type %d", ct);
        return CXR_IMG_CORRUPT;
    }
    int bd_ok;
    if (ct == 0)
        bd_ok = bd == 1 || bd == 2 || bd == 4 || bd == 8 || bd == 16;
    else if (ct == 3)
        bd_ok = bd == 1 || bd == 2 || bd == 4 || bd == 8;
    else
        bd_ok = bd == 8 || bd == 16;
    if (!bd_ok) {
        snprintf(err, errlen, "corrupt PNG image: invalid bit depth %d for color type %d", bd,
                 ct);
        return CXR_IMG_CORRUPT;
    }
    if (f[10] != 0) {
        snprintf(err, errlen, "corrupt PNG image: invalid compression method %d", f[10]);
        return CXR_IMG_CORRUPT;
    }
    if (f[11] != 0) {
        snprintf(err, errlen, "corrupt PNG image: invalid filter method %d", f[11]);
        return CXR_IMG_CORRUPT;
    }
    if (f[12] > 1) {
        snprintf(err, errlen, "corrupt PNG image: invalid interlace method %d", f[12]);
        return CXR_IMG_CORRUPT;
    }
    info->channels = channels[ct];
    if (info->width == 0 || info->height == 0 || info->width > 0x7fffffffu ||
        info->height > 0x7fffffffu) {
        snprintf(err, errlen, "invalid PNG image dimensions %ux%u", info->width, info->height);
        return CXR_IMG_CORRUPT;
    }
    return CXR_IMG_OK;
}

cxr_img_status
cxr_png_decode_gray(const uint8_t *buf, size_t len, size_t max_pixels, float *out,
                    size_t out_capacity, char *err, size_t errlen)
{
    cxr_png_info info;
    cxr_img_status st = cxr_png_read_info(buf, len, &info, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    size_t pixels = (size_t)info.width * info.height;
    if (pixels > max_pixels || info.width > max_pixels || info.height > max_pixels) {
        snprintf(err, errlen, "PNG image of %ux%u pixels exceeds the limit of %zu pixels",
                 info.width, info.height, max_pixels);
        return CXR_IMG_TOO_LARGE;
    }
    if (pixels > out_capacity) {
        snprintf(err, errlen, "output buffer too small");
        return CXR_IMG_NO_MEMORY;
    }

    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, buf, len)) {
        snprintf(err, errlen, "corrupt PNG image: %s", image.message);
        png_image_free(&image);
        return CXR_IMG_CORRUPT;
    }
    if ((size_t)image.width * image.height != pixels) {
        png_image_free(&image);
        snprintf(err, errlen, "corrupt PNG image: inconsistent header");
        return CXR_IMG_CORRUPT;
    }
    /* Keep the file's channels (gray or colour, with or without alpha) and its precision:
     * 8-bit samples stay as stored; 16-bit ones are read linear, exactly v / 65535. */
    int linear = (image.format & PNG_FORMAT_FLAG_LINEAR) != 0;
    int color = (image.format & PNG_FORMAT_FLAG_COLOR) != 0;
    int alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    image.format = (linear ? PNG_FORMAT_FLAG_LINEAR : 0) | (color ? PNG_FORMAT_FLAG_COLOR : 0) |
                   (alpha ? PNG_FORMAT_FLAG_ALPHA : 0);
    size_t nch = PNG_IMAGE_SAMPLE_CHANNELS(image.format);
    size_t bytes = pixels * nch * (linear ? 2 : 1);
    void *raw = cxr_large_buffer(bytes);
    if (!raw) {
        png_image_free(&image);
        snprintf(err, errlen, "out of memory decoding a %ux%u PNG image", info.width,
                 info.height);
        return CXR_IMG_NO_MEMORY;
    }
    if (!png_image_finish_read(&image, NULL, raw, 0, NULL)) {
        snprintf(err, errlen, "corrupt PNG image: %s", image.message);
        png_image_free(&image);
        free(raw);
        return CXR_IMG_CORRUPT;
    }
    for (size_t i = 0; i < pixels; i++) {
        /* a 100-megapixel image takes about a second here: poll every 64k pixels */
        if (i % 65536 == 0 && cxr_interrupt_poll()) {
            free(raw);
            snprintf(err, errlen, "interrupted");
            return CXR_IMG_INTERRUPTED;
        }
        float s[4], a = 1.0f;
        for (size_t c = 0; c < nch; c++)
            s[c] = linear ? ((uint16_t *)raw)[i * nch + c] / 65535.0f
                          : ((uint8_t *)raw)[i * nch + c] / 255.0f;
        if (alpha) {
            a = s[nch - 1];
            /* linear output comes premultiplied by alpha: undo it, so alpha is ignored */
            if (linear)
                for (size_t c = 0; c + 1 < nch; c++)
                    s[c] = a > 0.0f ? fminf(s[c] / a, 1.0f) : 0.0f;
        }
        out[i] = color ? 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2] : s[0];
    }
    free(raw);
    return CXR_IMG_OK;
}

/* Filter taps for one output axis: for output i, taps[i*span .. +span) over input from start[i]. */
static int
resize_coefficients(int in, int out, int **start, int **count, float **weights, int *span)
{
    double scale = (double)in / out;
    double support = scale > 1.0 ? scale : 1.0;
    *span = (int)ceil(support) * 2 + 1;
    *start = malloc(sizeof(int) * out);
    *count = malloc(sizeof(int) * out);
    *weights = calloc((size_t)out * *span, sizeof(float));
    if (!*start || !*count || !*weights)
        return -1;
    double inv = scale > 1.0 ? 1.0 / scale : 1.0;
    for (int i = 0; i < out; i++) {
        double center = scale * (i + 0.5);
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0)
            lo = 0;
        if (hi > in)
            hi = in;
        int n = hi - lo;
        if (n > *span)
            n = *span;
        double total = 0.0, w[64 + 1];
        double *wp = n <= 64 ? w : malloc(sizeof(double) * n);
        if (!wp)
            return -1;
        for (int j = 0; j < n; j++) {
            double x = fabs((j + lo - center + 0.5) * inv);
            wp[j] = x < 1.0 ? 1.0 - x : 0.0;
            total += wp[j];
        }
        for (int j = 0; j < n; j++)
            (*weights)[(size_t)i * *span + j] = total > 0 ? (float)(wp[j] / total) : 0.0f;
        if (wp != w)
            free(wp);
        (*start)[i] = lo;
        (*count)[i] = n;
    }
    return 0;
}

/* Horizontal-first needs dw*sh floats between the passes, which for a tall thin image far
 * exceeds both images (40x1000000 -> 299x299: 1.2 GB). Then the vertical pass goes first
 * (sw*dh floats); it is chosen only then, so ordinary images keep the horizontal-first
 * arithmetic bit for bit. Vertical-first implies dw > sw and sh > dh, so sw*dh < dw*dh. */
static int
vertical_first(int sw, int sh, int dw, int dh)
{
    size_t src = (size_t)sw * sh, dst = (size_t)dw * dh, h_first = (size_t)dw * sh;
    return h_first > (src > dst ? src : dst);
}

size_t
cxr_resize_scratch_floats(int sw, int sh, int dw, int dh)
{
    return vertical_first(sw, sh, dw, dh) ? (size_t)sw * dh : (size_t)dw * sh;
}

/* Polls the interrupt hook once about POLL_WORK multiply-adds have run since the last poll,
 * so that neither a poll per tiny row nor a long gap between polls costs anything. */
#define POLL_WORK ((size_t)1 << 16)

static int
interrupted_after(size_t *work, size_t done)
{
    *work += done;
    if (*work < POLL_WORK)
        return 0;
    *work = 0;
    return cxr_interrupt_poll();
}

cxr_img_status
cxr_resize_bilinear(const float *src, int sw, int sh, float *dst, int dw, int dh, float *tmp)
{
    if (sw < 1 || sh < 1 || dw < 1 || dh < 1)
        return CXR_IMG_CORRUPT;
    /* the taps' int arithmetic (centre + support, 2 * support + 1) stays in range */
    if (sw > CXR_RESIZE_MAX_SIDE || sh > CXR_RESIZE_MAX_SIDE || dw > CXR_RESIZE_MAX_SIDE ||
        dh > CXR_RESIZE_MAX_SIDE)
        return CXR_IMG_TOO_LARGE;
    if (sw == dw && sh == dh) {
        memcpy(dst, src, sizeof(float) * (size_t)sw * sh);
        return CXR_IMG_OK;
    }
    int *xs = NULL, *xn = NULL, *ys = NULL, *yn = NULL, xspan, yspan;
    float *xw = NULL, *yw = NULL;
    cxr_img_status st = CXR_IMG_NO_MEMORY;
    size_t work = POLL_WORK; /* poll before the first row */
    if (resize_coefficients(sw, dw, &xs, &xn, &xw, &xspan) ||
        resize_coefficients(sh, dh, &ys, &yn, &yw, &yspan))
        goto done;
    st = CXR_IMG_INTERRUPTED;
    if (vertical_first(sw, sh, dw, dh)) {
        /* vertical pass: dh rows of sw */
        for (int y = 0; y < dh; y++) {
            if (interrupted_after(&work, (size_t)yn[y] * sw))
                goto done;
            const float *w = yw + (size_t)y * yspan;
            float *o = tmp + (size_t)y * sw;
            for (int x = 0; x < sw; x++)
                o[x] = 0.0f;
            for (int j = 0; j < yn[y]; j++) {
                const float *row = src + (size_t)(ys[y] + j) * sw;
                for (int x = 0; x < sw; x++)
                    o[x] += w[j] * row[x];
            }
        }
        /* horizontal pass: dh rows of dw */
        for (int y = 0; y < dh; y++) {
            if (interrupted_after(&work, (size_t)dw * xspan))
                goto done;
            const float *row = tmp + (size_t)y * sw;
            for (int x = 0; x < dw; x++) {
                const float *w = xw + (size_t)x * xspan;
                float acc = 0.0f;
                for (int j = 0; j < xn[x]; j++)
                    acc += w[j] * row[xs[x] + j];
                dst[(size_t)y * dw + x] = acc;
            }
        }
        st = CXR_IMG_OK;
        goto done;
    }
    /* horizontal pass: sh rows of dw */
    for (int y = 0; y < sh; y++) {
        if (interrupted_after(&work, (size_t)dw * xspan))
            goto done;
        const float *row = src + (size_t)y * sw;
        for (int x = 0; x < dw; x++) {
            const float *w = xw + (size_t)x * xspan;
            float acc = 0.0f;
            for (int j = 0; j < xn[x]; j++)
                acc += w[j] * row[xs[x] + j];
            tmp[(size_t)y * dw + x] = acc;
        }
    }
    /* vertical pass */
    for (int y = 0; y < dh; y++) {
        if (interrupted_after(&work, (size_t)yn[y] * dw))
            goto done;
        const float *w = yw + (size_t)y * yspan;
        float *o = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++)
            o[x] = 0.0f;
        for (int j = 0; j < yn[y]; j++) {
            const float *row = tmp + (size_t)(ys[y] + j) * dw;
            for (int x = 0; x < dw; x++)
                o[x] += w[j] * row[x];
        }
    }
    st = CXR_IMG_OK;
done:
    free(xs);
    free(xn);
    free(xw);
    free(ys);
    free(yn);
    free(yw);
    return st;
}

cxr_img_status
cxr_png_encode_rgb(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *out_len)
{
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)w;
    image.height = (png_uint_32)h;
    image.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, rgb, 0, NULL))
        return CXR_IMG_CORRUPT;
    *out = malloc(size);
    if (!*out)
        return CXR_IMG_NO_MEMORY;
    if (!png_image_write_to_memory(&image, *out, &size, 0, rgb, 0, NULL)) {
        free(*out);
        *out = NULL;
        return CXR_IMG_CORRUPT;
    }
    *out_len = size;
    return CXR_IMG_OK;
}

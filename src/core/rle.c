/* DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header (segment count, up to 15 segment
 * offsets, little endian), then one PackBits segment per byte plane: for each sample of a
 * pixel, its most significant byte first. Every offset and run is checked against the
 * buffer and the frame. */
#include <stdio.h>
#include <string.h>

#include "cxr_codec.h"
#include "cxr_interrupt.h"

#define RLE_HEADER 64
#define RLE_MAX_SEGMENTS 15
#define POLL_BYTES 65536

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decodes one segment [seg, seg + len) into the byte plane `shift` of sample `comp`: n bytes,
 * one per pixel. A segment that ends early is corrupt; bytes past n (encoders pad segments to
 * an even length) are ignored. */
static cxr_img_status
decode_segment(const uint8_t *seg, size_t len, size_t n, int comp, int components, int shift,
               uint32_t *out, int index, char *err, size_t errlen)
{
    size_t i = 0, o = 0, stride = (size_t)components, next_poll = 0;
    uint32_t *dst = out + comp;
    while (o < n) {
        if (o >= next_poll) {
            if (cxr_interrupt_poll()) {
                snprintf(err, errlen, "interrupted");
                return CXR_IMG_INTERRUPTED;
            }
            next_poll = o + POLL_BYTES;
        }
        if (i >= len)
            break;
        int h = (int8_t)seg[i++];
        if (h >= 0) {
            size_t run = (size_t)h + 1;
            if (run > len - i)
                break;
            if (run > n - o)
                run = n - o;
            for (size_t k = 0; k < run; k++, o++)
                dst[o * stride] |= (uint32_t)seg[i + k] << shift;
            i += (size_t)h + 1;
        } else if (h != -128) {
            size_t run = (size_t)(1 - h);
            if (i >= len)
                break;
            uint32_t v = (uint32_t)seg[i++] << shift;
            if (run > n - o)
                run = n - o;
            for (size_t k = 0; k < run; k++, o++)
                dst[o * stride] |= v;
        }
        /* -128 is a no-op */
    }
    if (o < n) {
        snprintf(err, errlen, "corrupt RLE frame: segment %d of %zu bytes decodes to %zu of its "
                 "%zu bytes", index + 1, len, o, n);
        return CXR_IMG_CORRUPT;
    }
    return CXR_IMG_OK;
}

cxr_img_status
cxr_rle_decode(const uint8_t *buf, size_t len, int width, int height, int components,
               int bits_allocated, int32_t *out, size_t out_capacity, char *err, size_t errlen)
{
    if (width < 1 || height < 1 || (components != 1 && components != 3) ||
        (bits_allocated != 8 && bits_allocated != 16 && bits_allocated != 32)) {
        snprintf(err, errlen, "unsupported RLE frame: %dx%d, %d samples of %d bits", width,
                 height, components, bits_allocated);
        return CXR_IMG_UNSUPPORTED;
    }
    size_t n = (size_t)width * (size_t)height; /* ints below 2^31: no overflow in size_t */
    if (n > out_capacity / (size_t)components) {
        snprintf(err, errlen, "RLE frame of %dx%dx%d samples exceeds the buffer of %zu", width,
                 height, components, out_capacity);
        return CXR_IMG_TOO_LARGE;
    }
    if (len < RLE_HEADER) {
        snprintf(err, errlen, "corrupt RLE frame: %zu bytes, too short for its 64-byte header",
                 len);
        return CXR_IMG_CORRUPT;
    }
    uint32_t nseg = le32(buf);
    int bytes = bits_allocated / 8;
    uint32_t want = (uint32_t)(components * bytes);
    if (nseg != want || nseg > RLE_MAX_SEGMENTS) {
        snprintf(err, errlen, "corrupt RLE frame: %u segments, %u expected for %d samples of %d "
                 "bits", nseg, want, components, bits_allocated);
        return CXR_IMG_CORRUPT;
    }
    size_t off[RLE_MAX_SEGMENTS + 1];
    for (uint32_t s = 0; s < nseg; s++) {
        off[s] = le32(buf + 4 + 4 * s);
        if (off[s] < RLE_HEADER || off[s] > len || (s > 0 && off[s] < off[s - 1])) {
            snprintf(err, errlen, "corrupt RLE frame: segment %u starts at %zu, outside the "
                     "%zu-byte frame or before the previous one", s + 1, off[s], len);
            return CXR_IMG_CORRUPT;
        }
    }
    off[nseg] = len;
    uint32_t *u = (uint32_t *)out; /* same size and alignment; the planes are OR'd in */
    memset(u, 0, n * (size_t)components * sizeof *u);
    for (uint32_t s = 0; s < nseg; s++) {
        int comp = (int)(s / (uint32_t)bytes), plane = (int)(s % (uint32_t)bytes);
        int shift = 8 * (bytes - 1 - plane); /* most significant byte first */
        cxr_img_status st = decode_segment(buf + off[s], off[s + 1] - off[s], n, comp,
                                           components, shift, u, (int)s, err, errlen);
        if (st != CXR_IMG_OK)
            return st;
    }
    return CXR_IMG_OK;
}

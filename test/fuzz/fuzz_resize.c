/* libFuzzer target: resizing any source size to any destination size (each side 1..512) with
 * exactly cxr_resize_scratch_floats of scratch stays inside its buffers (ASan) and gives finite
 * values within the input's range: every output is a convex combination of inputs, since the
 * filter taps are non-negative and normalised. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SIDE 512

static int
side(const uint8_t *p)
{
    return 1 + (int)(((unsigned)p[0] << 8 | p[1]) % MAX_SIDE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 8 bytes of sizes, 1 of value scale, then pixel bytes (cycled to fill the image) */
    if (size < 10)
        return 0;
    int sw = side(data), sh = side(data + 2), dw = side(data + 4), dh = side(data + 6);
    /* scale 10^(-8..+8): rounding must stay relative to the values' magnitude */
    float scale = powf(10.0f, (float)(data[8] % 17) - 8.0f);
    const uint8_t *px = data + 9;
    size_t npx = size - 9, src_n = (size_t)sw * sh, dst_n = (size_t)dw * dh;
    size_t scratch = cxr_resize_scratch_floats(sw, sh, dw, dh);
    if (scratch > (src_n > dst_n ? src_n : dst_n))
        abort(); /* the documented bound */
    float *src = malloc(sizeof(float) * src_n), *dst = malloc(sizeof(float) * dst_n);
    float *tmp = malloc(sizeof(float) * (scratch ? scratch : 1));
    if (!src || !dst || !tmp)
        abort();
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < src_n; i++) {
        src[i] = ((float)px[i % npx] - 128.0f) * scale;
        lo = src[i] < lo ? src[i] : lo;
        hi = src[i] > hi ? src[i] : hi;
    }
    for (size_t i = 0; i < dst_n; i++)
        dst[i] = NAN; /* an output never written shows as non-finite */
    if (cxr_resize_bilinear(src, sw, sh, dst, dw, dh, tmp) != CXR_IMG_OK)
        abort();
    float tol = 1e-5f * fmaxf(fabsf(lo), fabsf(hi));
    for (size_t i = 0; i < dst_n; i++)
        if (!isfinite(dst[i]) || dst[i] < lo - tol || dst[i] > hi + tol)
            abort();
    free(src);
    free(dst);
    free(tmp);
    return 0;
}

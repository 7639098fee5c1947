/* Inference's convolution of a one-channel image (the first layer, folded over the gray
 * channel): y[o][oy][ox] = bias[o] + sum over ky, kx of w[o][ky][kx] x[oy*S + ky - pad][ox*S + kx - pad].
 *
 * Why not im2col + sgemm: with one input channel, im2col copies each pixel k*k / S^2 times
 * (alexnet's conv1: 121 / 16, a 2.6 MB matrix for a 299x299 image) and sgemm packs it again.
 * Here the padded image is split once into S phase planes, plane p holding the columns S*q + p,
 * so that for any kx = S*a + p the inputs of consecutive outputs ox are consecutive floats of
 * plane p, shifted by a: every output row is a sum of k*k vector loads times broadcast weights,
 * in registers (a tile of R output channels x NV vectors of outputs along the row).
 *
 * Each output is summed over ky, then kx, in that order, whatever the path; paths (AVX-512,
 * AVX2 with FMA, portable C) are chosen from the CPU's features and a self-test against a
 * double-precision convolution (kernel_paths.c); CXR_CONV_GRAY_PATH forces one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_layers.h"

#define MAX_CHUNK 80 /* the widest path's outputs per row tile: 5 vectors of 16 */

typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));

#define SPLAT4(x) {x, x, x, x}
#define SPLAT8(x) {x, x, x, x, x, x, x, x}
#define SPLAT16(x) {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}
#define UNROLL _Pragma("GCC unroll 16")

/* floats per row of a phase plane: every output lane a path computes (up to a whole tile past
 * the row's end) plus the shift a <= (k - 1) / S */
static int
plane_row(const cxr_conv_shape *s, int w)
{
    int ow = cxr_conv_out_size(w, s->k, s->stride, s->pad);
    return ow + MAX_CHUNK + (s->k - 1) / s->stride;
}

int
cxr_conv_gray_applies(const cxr_conv_shape *s, int h, int w)
{
    return s->cin == 1 && s->k >= 2 && s->stride >= 1 && s->stride <= s->k &&
           cxr_conv_out_size(h, s->k, s->stride, s->pad) > 0 &&
           cxr_conv_out_size(w, s->k, s->stride, s->pad) > 0;
}

size_t
cxr_conv_gray_scratch_floats(const cxr_conv_shape *s, int h, int w)
{
    return (size_t)s->stride * (h + 2 * s->pad) * plane_row(s, w);
}

/* planes[p][r][q] = x[r - pad][S*q + p - pad], 0 outside the image */
static void
split_phases(const cxr_conv_shape *s, const float *x, int h, int w, float *planes)
{
    int S = s->stride, rows = h + 2 * s->pad, Q = plane_row(s, w);
    for (int p = 0; p < S; p++)
        for (int r = 0; r < rows; r++) {
            float *dst = planes + ((size_t)p * rows + r) * Q;
            int iy = r - s->pad;
            for (int q = 0; q < Q; q++) {
                int ix = S * q + p - s->pad;
                dst[q] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(size_t)iy * w + ix] : 0.0f;
            }
        }
}

typedef void (*rows_fn)(const cxr_conv_shape *s, const float *planes, int rows, int Q, int oh,
                        int ow, const float *weight, const float *bias, float *y);

/* One body per instruction set: VT of VW floats, NV of them per row tile, R output channels.
 * A tile's last channels, past cout, repeat the first and are dropped. */
#define ROWS_BODY(VT, SPLAT, VW, NV, R)                                                            \
    int k = s->k, S = s->stride, kk = k * k;                                                       \
    for (int o0 = 0; o0 < s->cout; o0 += R) {                                                      \
        const float *wr[R];                                                                        \
        for (int r = 0; r < R; r++)                                                                \
            wr[r] = weight + (size_t)(o0 + r < s->cout ? o0 + r : o0) * kk;                        \
        for (int oy = 0; oy < oh; oy++)                                                            \
            for (int ox0 = 0; ox0 < ow; ox0 += VW * NV) {                                          \
                VT acc[R][NV];                                                                     \
                UNROLL for (int r = 0; r < R; r++)                                                 \
                    UNROLL for (int v = 0; v < NV; v++)                                            \
                        acc[r][v] = (VT){0};                                                       \
                for (int ky = 0; ky < k; ky++)                                                     \
                    for (int kx = 0; kx < k; kx++) {                                               \
                        const float *src = planes + ((size_t)(kx % S) * rows + oy * S + ky) * Q +  \
                                           kx / S + ox0;                                           \
                        VT xv[NV];                                                                 \
                        UNROLL for (int v = 0; v < NV; v++)                                        \
                            __builtin_memcpy(&xv[v], src + v * VW, sizeof(VT));                    \
                        UNROLL for (int r = 0; r < R; r++) {                                       \
                            float w1 = wr[r][ky * k + kx];                                         \
                            VT wv = SPLAT(w1);                                                     \
                            UNROLL for (int v = 0; v < NV; v++)                                    \
                                acc[r][v] += wv * xv[v];                                           \
                        }                                                                          \
                    }                                                                              \
                int n = ow - ox0 < VW * NV ? ow - ox0 : VW * NV;                                   \
                for (int r = 0; r < R && o0 + r < s->cout; r++) {                                  \
                    float lanes[VW * NV], b = bias ? bias[o0 + r] : 0.0f;                          \
                    __builtin_memcpy(lanes, acc[r], sizeof lanes);                                 \
                    float *out = y + ((size_t)(o0 + r) * oh + oy) * ow + ox0;                      \
                    for (int i = 0; i < n; i++)                                                    \
                        out[i] = b + lanes[i];                                                     \
                }                                                                                  \
            }                                                                                      \
    }

#ifndef __clang__
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
static void
rows_portable(const cxr_conv_shape *s, const float *planes, int rows, int Q, int oh, int ow,
              const float *weight, const float *bias, float *y)
{
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    ROWS_BODY(v4, SPLAT4, 4, 4, 2)
}
#ifndef __clang__
#pragma GCC pop_options
#endif

#ifdef CXR_KERNEL_X86
/* 3 channels x 32 outputs: 12 accumulators of 16 registers */
__attribute__((target("avx2,fma"), CXR_FUSED)) static void
rows_avx2(const cxr_conv_shape *s, const float *planes, int rows, int Q, int oh, int ow,
          const float *weight, const float *bias, float *y)
{
    ROWS_BODY(v8, SPLAT8, 8, 4, 3)
}

/* 4 channels x 80 outputs (alexnet's conv1 row: 74): 20 accumulators of 32 registers */
__attribute__((target("avx512f,fma"), CXR_FUSED)) static void
rows_avx512(const cxr_conv_shape *s, const float *planes, int rows, int Q, int oh, int ow,
            const float *weight, const float *bias, float *y)
{
    ROWS_BODY(v16, SPLAT16, 16, 5, 4)
}
#endif

/* in the order of kernel_paths.c */
static const rows_fn path_fn[CXR_KERNEL_PATHS] = {
#ifdef CXR_KERNEL_X86
    rows_avx512,
    rows_avx2,
#endif
    rows_portable,
};

static void
forward_on(int path, const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
           const float *bias, float *y, float *scratch)
{
    split_phases(s, x, h, w, scratch);
    path_fn[path](s, scratch, h + 2 * s->pad, plane_row(s, w),
                  cxr_conv_out_size(h, s->k, s->stride, s->pad),
                  cxr_conv_out_size(w, s->k, s->stride, s->pad), weight, bias, y);
}

/* Against a double-precision convolution: alexnet's conv1 geometry on a small image, and a
 * stride-1 layer with more padding than the kernel's half, output channels not a multiple of
 * any path's tile. */
static int
self_test(int path)
{
    static const int cases[][6] = {{7, 11, 4, 2, 41, 37}, {5, 3, 1, 2, 9, 23}}; /* cout k S pad h w */
    int ok = 1;
    for (int n = 0; n < 2 && ok; n++) {
        const int *c = cases[n];
        cxr_conv_shape s = {1, c[0], c[1], c[2], c[3]};
        int h = c[4], w = c[5], k = s.k, oh = cxr_conv_out_size(h, k, s.stride, s.pad),
            ow = cxr_conv_out_size(w, k, s.stride, s.pad);
        float *x = malloc(sizeof(float) * h * w), *wt = malloc(sizeof(float) * s.cout * k * k),
              *b = malloc(sizeof(float) * s.cout), *y = malloc(sizeof(float) * s.cout * oh * ow),
              *scr = malloc(sizeof(float) * cxr_conv_gray_scratch_floats(&s, h, w));
        if (!x || !wt || !b || !y || !scr) {
            ok = 0;
        } else {
            for (int i = 0; i < h * w; i++)
                x[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
            for (int i = 0; i < s.cout * k * k; i++)
                wt[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
            for (int o = 0; o < s.cout; o++)
                b[o] = (float)o / 3.0f - 1.0f;
            forward_on(path, &s, x, h, w, wt, b, y, scr);
            for (int o = 0; o < s.cout && ok; o++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) {
                        double acc = b[o], mag = fabs(b[o]);
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s.stride + ky - s.pad, ix = ox * s.stride + kx - s.pad;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    continue;
                                double p = (double)x[iy * w + ix] * wt[(o * k + ky) * k + kx];
                                acc += p;
                                mag += fabs(p);
                            }
                        if (!(fabs(y[(o * oh + oy) * ow + ox] - acc) <= 1e-6 * mag))
                            ok = 0;
                    }
        }
        free(x), free(wt), free(b), free(y), free(scr);
    }
    return ok;
}

static cxr_kernel_choice choice =
    CXR_KERNEL_CHOICE("CXR_CONV_GRAY_PATH", "one-channel convolution", self_test);

const char *
cxr_conv_gray_describe(void)
{
    return cxr_kernel_choice_describe(&choice);
}

void
cxr_conv_gray_forward_path(int path, const cxr_conv_shape *s, const float *x, int h, int w,
                           const float *weight, const float *bias, float *y, float *scratch)
{
    forward_on(path, s, x, h, w, weight, bias, y, scratch);
}

void
cxr_conv_gray_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                      const float *bias, float *y, float *scratch)
{
    forward_on(cxr_kernel_chosen(&choice), s, x, h, w, weight, bias, y, scratch);
}

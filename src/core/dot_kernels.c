/* Inference's fully connected layers: y[b][o] = bias[o] + x[b] . w[o] over a batch.
 *
 * Why not sgemm: a batch is scored in one call so that the weights stream from memory once per
 * batch instead of once per image, but a score must not depend on its batch (a row scored
 * alone and the same row scored among 31 others give the same bits). sgemm's blocking, and its
 * kernels for small shapes, may sum a row in another order when the batch changes. Here every
 * output is summed the same way whatever n is: 16 lane sums over k (lane = k mod 16), the tail
 * added to the first lanes, then a fixed pairwise tree, then the bias.
 *
 * Paths, chosen once from the CPU's features and checked against a double-precision product
 * before first use: AVX-512 and AVX2 (with FMA), and portable C. They may differ from each other in
 * the last bits (fused multiply-add), never from run to run or batch to batch. */
#include "cxr_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define B_BLOCK 8 /* images whose inputs stay in cache while every output's weights pass */

typedef float v16 __attribute__((vector_size(LANES * sizeof(float))));

/* One output's 16 lane sums (lanes[], the full blocks of k) completed: the tail (in % 16
 * elements) added into lanes 0.., a fixed pairwise tree, then the bias. */
static inline float
finish(float *lanes, const float *x, const float *w, int k0, int in, const float *bias, int o)
{
    for (int k = k0; k < in; k++)
        lanes[k - k0] += x[k] * w[k];
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int i = 0; i < width; i++)
            lanes[i] += lanes[i + width];
    return (bias ? bias[o] : 0.0f) + lanes[0];
}

#define UNROLL _Pragma("GCC unroll 8")

/* One body per instruction set: VT, a vector of the set's width, NV of them per output (16
 * lanes), and a tile of ROWS images x OUTS outputs (accumulators in registers; tiles at the
 * edges reuse valid rows and drop the extra results). The tiling never changes the order in
 * which an output is summed. */
#define DOT_BODY(VT, NV, ROWS, OUTS)                                                               \
    int full = in - in % LANES;                                                                    \
    for (int b_lo = 0; b_lo < n; b_lo += B_BLOCK) {                                                \
        int b_hi = b_lo + B_BLOCK < n ? b_lo + B_BLOCK : n;                                        \
        for (int o = o_lo; o < o_hi; o += OUTS) {                                                  \
            int outs = o_hi - o < OUTS ? o_hi - o : OUTS;                                          \
            const float *wr[OUTS];                                                                 \
            for (int j = 0; j < OUTS; j++)                                                         \
                wr[j] = w + (size_t)(o + (j < outs ? j : 0)) * in;                                 \
            for (int b0 = b_lo; b0 < b_hi; b0 += ROWS) {                                           \
                int rows = b_hi - b0 < ROWS ? b_hi - b0 : ROWS;                                    \
                const float *xr[ROWS];                                                             \
                for (int r = 0; r < ROWS; r++)                                                     \
                    xr[r] = x + (size_t)(b0 + (r < rows ? r : 0)) * in;                            \
                VT acc[ROWS][OUTS][NV];                                                            \
                UNROLL for (int r = 0; r < ROWS; r++)                                              \
                    UNROLL for (int j = 0; j < OUTS; j++)                                          \
                        UNROLL for (int h = 0; h < NV; h++)                                        \
                            acc[r][j][h] = (VT){0};                                                \
                for (int k = 0; k < full; k += LANES)                                              \
                    UNROLL for (int h = 0; h < NV; h++) {                                          \
                        int kh = k + h * (LANES / NV);                                             \
                        VT wv[OUTS];                                                               \
                        UNROLL for (int j = 0; j < OUTS; j++)                                      \
                            __builtin_memcpy(&wv[j], wr[j] + kh, sizeof(VT));                      \
                        UNROLL for (int r = 0; r < ROWS; r++) { /* one input row live at a time */ \
                            VT xv;                                                                 \
                            __builtin_memcpy(&xv, xr[r] + kh, sizeof(VT));                         \
                            UNROLL for (int j = 0; j < OUTS; j++)                                  \
                                acc[r][j][h] += xv * wv[j];                                        \
                        }                                                                          \
                    }                                                                              \
                float lanes[ROWS][OUTS][LANES];                                                    \
                __builtin_memcpy(lanes, acc, sizeof lanes);                                        \
                for (int r = 0; r < rows; r++)                                                     \
                    for (int j = 0; j < outs; j++)                                                 \
                        y[(size_t)(b0 + r) * out + o + j] =                                        \
                            finish(lanes[r][j], xr[r], wr[j], full, in, bias, o + j);              \
            }                                                                                      \
        }                                                                                          \
    }

typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));

typedef void (*dot_fn)(const float *x, int n, int in, int out, const float *w, const float *bias,
                       float *y, int o_lo, int o_hi);

/* Portable C: no fused multiply-add, whatever the compiler's default contraction. */
#ifndef __clang__
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
static void
dot_portable(const float *x, int n, int in, int out, const float *w, const float *bias, float *y,
             int o_lo, int o_hi)
{
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    DOT_BODY(v4, 4, 1, 2)
}
#ifndef __clang__
#pragma GCC pop_options
#endif

#ifdef CXR_KERNEL_X86
__attribute__((target("avx2,fma"), CXR_FUSED)) static void
dot_avx2(const float *x, int n, int in, int out, const float *w, const float *bias, float *y,
         int o_lo, int o_hi)
{
    DOT_BODY(v8, 2, 2, 3)
}

__attribute__((target("avx512f,fma"), CXR_FUSED)) static void
dot_avx512(const float *x, int n, int in, int out, const float *w, const float *bias, float *y,
           int o_lo, int o_hi)
{
    DOT_BODY(v16, 1, 4, 4)
}
#endif

/* in the order of kernel_paths.c */
static const dot_fn path_fn[CXR_KERNEL_PATHS] = {
#ifdef CXR_KERNEL_X86
    dot_avx512,
    dot_avx2,
#endif
    dot_portable,
};

/* Against a double-precision product, on shapes that exercise every tile edge and the tail. */
static int
self_test(int path)
{
    dot_fn fn = path_fn[path];
    enum { N = 5, IN = 77, OUT = 11 };
    static float x[N * IN], w[OUT * IN], bias[OUT], y[N * OUT], y1[OUT];
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
    for (int i = 0; i < OUT * IN; i++)
        w[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
    for (int o = 0; o < OUT; o++)
        bias[o] = (float)o / 7.0f - 0.5f;
    fn(x, N, IN, OUT, w, bias, y, 0, OUT);
    for (int b = 0; b < N; b++) {
        fn(x + b * IN, 1, IN, OUT, w, bias, y1, 0, OUT);
        if (memcmp(y1, y + b * OUT, sizeof y1) != 0)
            return 0; /* a row alone must equal the same row in a batch */
        for (int o = 0; o < OUT; o++) {
            double s = bias[o], mag = fabs(bias[o]);
            for (int k = 0; k < IN; k++) {
                s += (double)x[b * IN + k] * w[o * IN + k];
                mag += fabs((double)x[b * IN + k] * w[o * IN + k]);
            }
            if (!(fabs(y[b * OUT + o] - s) <= 1e-5 * mag))
                return 0;
        }
    }
    return 1;
}

static cxr_kernel_choice choice =
    CXR_KERNEL_CHOICE("CXR_DOT_PATH", "fully connected inference", self_test);

const char *
cxr_dot_describe(void)
{
    return cxr_kernel_choice_describe(&choice);
}

void
cxr_dot_batch_path(int path, const float *x, int n, int in, int out, const float *w,
                   const float *bias, float *y)
{
    path_fn[path](x, n, in, out, w, bias, y, 0, out);
}

void
cxr_dot_batch(const float *x, int n, int in, int out, const float *w, const float *bias, float *y)
{
    if (n > 0 && out > 0)
        path_fn[cxr_kernel_chosen(&choice)](x, n, in, out, w, bias, y, 0, out);
}

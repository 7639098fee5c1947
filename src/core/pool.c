#include <stddef.h>
#include <string.h>

#include "cxr_layers.h"

int
cxr_maxpool_out_size(int in, int k, int stride, int pad)
{
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

/* Output index i's window [lo, hi) clipped to the input: padding never wins, as in PyTorch. */
static void
clipped_window(int i, int k, int stride, int pad, int in, int *lo, int *hi)
{
    *lo = i * stride - pad;
    *hi = *lo + k;
    *lo = *lo < 0 ? 0 : *lo;
    *hi = *hi > in ? in : *hi;
}

/* Inference (no argmax): the window's maximum is the maximum over its columns of each column's
 * maximum, so one pass takes the rows' elementwise maximum and a second the maximum of the k
 * columns from every start column; an output then picks its window's start. Both passes go 16
 * columns at a time (constant trip counts, so the compiler's cheap vectoriser takes them). The
 * same '>' in the same order keeps the same value as the direct loop. */
#define SEPARABLE_MAX_WIDTH 4096
#define V 16

static inline float
larger(float a, float b)
{
    return a > b ? a : b;
}

/* clones for the vector widths the CPU may have: same comparisons, wider registers */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
maxpool_separable(const float *x, int c, int h, int w, int k, int stride, int pad, float *y)
{
    int oh = cxr_maxpool_out_size(h, k, stride, pad), ow = cxr_maxpool_out_size(w, k, stride, pad);
    float rowmax[SEPARABLE_MAX_WIDTH], winmax[SEPARABLE_MAX_WIDTH];
    int starts = w - k + 1; /* windows wholly inside the row */
    for (int ci = 0; ci < c; ci++) {
        const float *plane = x + (size_t)ci * h * w;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            clipped_window(oy, k, stride, pad, h, &y0, &y1);
            memcpy(rowmax, plane + (size_t)y0 * w, sizeof(float) * w);
            for (int yy = y0 + 1; yy < y1; yy++) {
                const float *row = plane + (size_t)yy * w;
                /* unsigned indices: under PostgreSQL's -fwrapv, int ones keep the loop scalar */
                size_t xx = 0;
                for (; xx + V <= (size_t)w; xx += V)
                    for (size_t l = 0; l < V; l++)
                        rowmax[xx + l] = larger(row[xx + l], rowmax[xx + l]);
                for (; xx < (size_t)w; xx++)
                    rowmax[xx] = larger(row[xx], rowmax[xx]);
            }
            size_t xs = 0;
            for (; (ptrdiff_t)(xs + V) <= starts; xs += V) {
                float bv[V];
                for (size_t l = 0; l < V; l++)
                    bv[l] = rowmax[xs + l];
                for (size_t j = 1; j < (size_t)k; j++)
                    for (size_t l = 0; l < V; l++)
                        bv[l] = larger(rowmax[xs + j + l], bv[l]);
                for (size_t l = 0; l < V; l++)
                    winmax[xs + l] = bv[l];
            }
            for (; (ptrdiff_t)xs < starts; xs++) {
                float bv = rowmax[xs];
                for (size_t j = 1; j < (size_t)k; j++)
                    bv = larger(rowmax[xs + j], bv);
                winmax[xs] = bv;
            }
            float *out = y + ((size_t)ci * oh + oy) * ow;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * stride - pad;
                if (x0 >= 0 && x0 + k <= w) {
                    out[ox] = winmax[x0];
                    continue;
                }
                int x1; /* a window over the padding */
                clipped_window(ox, k, stride, pad, w, &x0, &x1);
                float bv = rowmax[x0];
                for (int xx = x0 + 1; xx < x1; xx++)
                    bv = larger(rowmax[xx], bv);
                out[ox] = bv;
            }
        }
    }
}

void
cxr_maxpool_forward(const float *x, int c, int h, int w, int k, int stride, int pad, float *y,
                    int32_t *argmax)
{
    if (!argmax && w <= SEPARABLE_MAX_WIDTH) {
        maxpool_separable(x, c, h, w, k, stride, pad, y);
        return;
    }
    int oh = cxr_maxpool_out_size(h, k, stride, pad), ow = cxr_maxpool_out_size(w, k, stride, pad);
    for (int ci = 0; ci < c; ci++) {
        const float *plane = x + (size_t)ci * h * w;
        for (int oy = 0; oy < oh; oy++) {
            int y0, y1;
            clipped_window(oy, k, stride, pad, h, &y0, &y1);
            for (int ox = 0; ox < ow; ox++) {
                int x0, x1;
                clipped_window(ox, k, stride, pad, w, &x0, &x1);
                int best = y0 * w + x0;
                float bv = plane[best];
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) {
                        int idx = yy * w + xx;
                        /* strict '>' keeps the first maximum, as PyTorch does */
                        if (plane[idx] > bv) {
                            bv = plane[idx];
                            best = idx;
                        }
                    }
                size_t o = ((size_t)ci * oh + oy) * ow + ox;
                y[o] = bv;
                if (argmax)
                    argmax[o] = best;
            }
        }
    }
}

void
cxr_maxpool_backward(const float *dy, const int32_t *argmax, int c, int h, int w, int oh, int ow,
                     float *dx)
{
    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < oh * ow; i++) {
            size_t o = (size_t)ci * oh * ow + i;
            dx[(size_t)ci * h * w + argmax[o]] += dy[o];
        }
}

/* PyTorch's adaptive window for output index i: [floor(i*in/out), ceil((i+1)*in/out)). */
static void
adaptive_window(int i, int in, int out, int *start, int *end)
{
    *start = (i * in) / out;
    *end = ((i + 1) * in + out - 1) / out;
}

void
cxr_avgpool_adaptive_forward(const float *x, int c, int h, int w, int oh, int ow, float *y)
{
    for (int ci = 0; ci < c; ci++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                adaptive_window(oy, h, oh, &y0, &y1);
                adaptive_window(ox, w, ow, &x0, &x1);
                float acc = 0.0f;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        acc += x[((size_t)ci * h + yy) * w + xx];
                y[((size_t)ci * oh + oy) * ow + ox] = acc / (float)((y1 - y0) * (x1 - x0));
            }
}

void
cxr_avgpool_adaptive_backward(const float *dy, int c, int h, int w, int oh, int ow, float *dx)
{
    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
    for (int ci = 0; ci < c; ci++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                adaptive_window(oy, h, oh, &y0, &y1);
                adaptive_window(ox, w, ow, &x0, &x1);
                float g = dy[((size_t)ci * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        dx[((size_t)ci * h + yy) * w + xx] += g;
            }
}

#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "cxr_threads.h"

int
cxr_conv_out_size(int in, int k, int stride, int pad)
{
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

static int
is_pointwise(const cxr_conv_shape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

size_t
cxr_conv_col_floats(const cxr_conv_shape *s, int h, int w)
{
    if (is_pointwise(s))
        return 0; /* a 1x1 convolution multiplies the input directly */
    size_t oh = cxr_conv_out_size(h, s->k, s->stride, s->pad);
    size_t ow = cxr_conv_out_size(w, s->k, s->stride, s->pad);
    return (size_t)s->cin * s->k * s->k * oh * ow;
}

/* The columns of output rows [oy_lo, oy_hi) only: a thread's share (cxr_conv_forward). */
static void
im2col_rows(const float *x, int c, int h, int w, int k, int stride, int pad, float *col,
            int oy_lo, int oy_hi)
{
    int oh = cxr_conv_out_size(h, k, stride, pad), ow = cxr_conv_out_size(w, k, stride, pad);
    for (int ci = 0; ci < c; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(ci * k + ky) * k + kx) * oh * ow;
                const float *plane = x + (size_t)ci * h * w;
                /* Output columns whose input column lies inside the image: [lo, hi). */
                int lo = 0, hi = ow;
                while (lo < ow && lo * stride - pad + kx < 0)
                    lo++;
                while (hi > lo && (hi - 1) * stride - pad + kx >= w)
                    hi--;
                for (int oy = oy_lo; oy < oy_hi; oy++) {
                    float *out = row + (size_t)oy * ow;
                    int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h) {
                        memset(out, 0, sizeof(float) * ow);
                        continue;
                    }
                    const float *in = plane + (size_t)iy * w - pad + kx;
                    for (int ox = 0; ox < lo; ox++)
                        out[ox] = 0.0f;
                    if (stride == 1)
                        memcpy(out + lo, in + lo, sizeof(float) * (hi - lo));
                    else
                        for (int ox = lo; ox < hi; ox++)
                            out[ox] = in[ox * stride];
                    for (int ox = hi; ox < ow; ox++)
                        out[ox] = 0.0f;
                }
            }
}

void
cxr_im2col(const float *x, int c, int h, int w, int k, int stride, int pad, float *col)
{
    im2col_rows(x, c, h, w, k, stride, pad, col, 0, cxr_conv_out_size(h, k, stride, pad));
}

void
cxr_col2im(const float *col, int c, int h, int w, int k, int stride, int pad, float *dx)
{
    int oh = cxr_conv_out_size(h, k, stride, pad), ow = cxr_conv_out_size(w, k, stride, pad);
    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
    for (int ci = 0; ci < c; ci++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(ci * k + ky) * k + kx) * oh * ow;
                float *plane = dx + (size_t)ci * h * w;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * stride - pad + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * stride - pad + kx;
                        if (ix >= 0 && ix < w)
                            plane[(size_t)iy * w + ix] += row[(size_t)oy * ow + ox];
                    }
                }
            }
}

/* One share of a convolution: output rows [oy_lo, oy_hi) (their im2col columns, bias and
 * product), or output channels [o_lo, o_hi) of a product whose columns are ready. */
typedef struct {
    const cxr_conv_shape *s;
    const float *x, *weight, *bias;
    float *y, *col;
    int h, w, oh, ow, parts, by_channels;
} conv_share_job;

static void
conv_share(const conv_share_job *j, int oy_lo, int oy_hi, int o_lo, int o_hi)
{
    const cxr_conv_shape *s = j->s;
    int hw = j->oh * j->ow, kk = s->cin * s->k * s->k;
    int lo = oy_lo * j->ow, n = (oy_hi - oy_lo) * j->ow;
    if (n <= 0 || o_hi <= o_lo)
        return;
    const float *cols = j->x;
    if (!is_pointwise(s)) {
        if (!j->by_channels)
            im2col_rows(j->x, s->cin, j->h, j->w, s->k, s->stride, s->pad, j->col, oy_lo, oy_hi);
        cols = j->col;
    }
    if (j->bias)
        for (int o = o_lo; o < o_hi; o++)
            for (int i = lo; i < lo + n; i++)
                j->y[(size_t)o * hw + i] = j->bias[o];
    cxr_sgemm(0, 0, o_hi - o_lo, n, kk, 1.0f, j->weight + (size_t)o_lo * kk, kk, cols + lo, hw,
              j->bias ? 1.0f : 0.0f, j->y + (size_t)o_lo * hw + lo, hw);
}

static void
conv_share_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    const conv_share_job *j = ctx;
    int lo, hi;
    if (j->by_channels) { /* in whole blocks of 16 rows of the product */
        int blocks = (j->s->cout + 15) / 16;
        cxr_share(blocks, part, j->parts, &lo, &hi);
        lo *= 16;
        hi = hi * 16 < j->s->cout ? hi * 16 : j->s->cout;
        conv_share(j, 0, j->oh, lo, hi);
    } else {
        cxr_share(j->oh, part, j->parts, &lo, &hi);
        conv_share(j, lo, hi, 0, j->s->cout);
    }
}

/* Below this many multiply-adds a layer runs on one thread: a share would cost more to hand
 * out than to compute. */
#define SPLIT_MIN_MACS (1L << 22)
/* Fewer output positions than this per thread, and the threads share output channels instead:
 * a product a few dozen columns wide runs at a fraction of the rate of a wide one. */
#define SPLIT_MIN_COLUMNS 256

/* With more than one BLAS thread, a layer is shared out over the core's own threads
 * (cxr_threads.h), each running OpenBLAS on one thread: by output rows where the map is wide
 * (each thread then builds its own im2col columns), else by output channels. The core's pool
 * wakes in microseconds where OpenBLAS's threads, switched on between layers, spun against
 * it. An output is the sum of the same products on any thread count, though OpenBLAS may pick
 * another micro-kernel, and so another rounding, for a narrower product. */
void
cxr_conv_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                 const float *bias, float *y, float *col)
{
    int oh = cxr_conv_out_size(h, s->k, s->stride, s->pad);
    int ow = cxr_conv_out_size(w, s->k, s->stride, s->pad);
    conv_share_job j = {s, x, weight, bias, y, col, h, w, oh, ow, 1, 0};
    int threads = cxr_blas_get_threads();
    long macs = (long)s->cout * s->cin * s->k * s->k * oh * ow;
    if (threads > 1 && macs >= SPLIT_MIN_MACS) {
        j.by_channels = (long)oh * ow < (long)threads * SPLIT_MIN_COLUMNS;
        int most = j.by_channels ? (s->cout + 15) / 16 : oh;
        j.parts = threads < most ? threads : most;
        if (j.parts > 1) {
            if (j.by_channels && !is_pointwise(s))
                cxr_im2col(x, s->cin, h, w, s->k, s->stride, s->pad, col);
            cxr_blas_single_begin();
            cxr_parallel_parts(j.parts, j.parts, conv_share_part, &j);
            cxr_blas_single_end();
            return;
        }
    }
    conv_share(&j, 0, oh, 0, s->cout);
}

void
cxr_conv_backward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                  const float *dy, float *dweight, float *dbias, float *dx, float *col)
{
    int oh = cxr_conv_out_size(h, s->k, s->stride, s->pad);
    int ow = cxr_conv_out_size(w, s->k, s->stride, s->pad);
    int hw = oh * ow, kk = s->cin * s->k * s->k;
    int pointwise = is_pointwise(s);
    if (dweight) { /* a frozen layer passes NULL: its input gradient only */
        const float *cols = x;
        if (!pointwise) {
            cxr_im2col(x, s->cin, h, w, s->k, s->stride, s->pad, col);
            cols = col;
        }
        cxr_sgemm(0, 1, s->cout, kk, hw, 1.0f, dy, hw, cols, hw, 1.0f, dweight, kk);
    }
    if (dbias)
        for (int o = 0; o < s->cout; o++) {
            float acc = 0.0f;
            for (int i = 0; i < hw; i++)
                acc += dy[(size_t)o * hw + i];
            dbias[o] += acc;
        }
    if (!dx)
        return;
    if (pointwise) {
        cxr_sgemm(1, 0, kk, hw, s->cout, 1.0f, weight, kk, dy, hw, 0.0f, dx, hw);
        return;
    }
    cxr_sgemm(1, 0, kk, hw, s->cout, 1.0f, weight, kk, dy, hw, 0.0f, col, hw);
    cxr_col2im(col, s->cin, h, w, s->k, s->stride, s->pad, dx);
}

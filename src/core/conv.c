#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"

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

void
cxr_im2col(const float *x, int c, int h, int w, int k, int stride, int pad, float *col)
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
                for (int oy = 0; oy < oh; oy++) {
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

void
cxr_conv_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                 const float *bias, float *y, float *col)
{
    int oh = cxr_conv_out_size(h, s->k, s->stride, s->pad);
    int ow = cxr_conv_out_size(w, s->k, s->stride, s->pad);
    int hw = oh * ow, kk = s->cin * s->k * s->k;
    const float *cols = x;
    if (!is_pointwise(s)) {
        cxr_im2col(x, s->cin, h, w, s->k, s->stride, s->pad, col);
        cols = col;
    }
    if (bias)
        for (int o = 0; o < s->cout; o++)
            for (int i = 0; i < hw; i++)
                y[(size_t)o * hw + i] = bias[o];
    cxr_sgemm(0, 0, s->cout, hw, kk, 1.0f, weight, kk, cols, hw, bias ? 1.0f : 0.0f, y, hw);
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

/* A convolution shared out over threads (cxr_conv_forward with more than one BLAS thread): by
 * output rows where the map is wide, by output channels where it is narrow, with im2col and
 * for 1x1 layers, with channel counts that are no multiple of a share and maps with fewer rows
 * than threads. Every output is written, and each agrees with a direct convolution computed
 * here in double precision, on 1, 2 and 3 threads; the thread count is the caller's after. */
#include <math.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "harness.h"

static double
check(const cxr_conv_shape *s, int h, int w, int threads, uint32_t seed)
{
    int k = s->k, oh = cxr_conv_out_size(h, k, s->stride, s->pad);
    int ow = cxr_conv_out_size(w, k, s->stride, s->pad);
    size_t nx = (size_t)s->cin * h * w, nw = (size_t)s->cout * s->cin * k * k;
    size_t ny = (size_t)s->cout * oh * ow, ncol = cxr_conv_col_floats(s, h, w);
    float *x = malloc(sizeof(float) * nx), *wt = malloc(sizeof(float) * nw);
    float *b = malloc(sizeof(float) * s->cout), *y = malloc(sizeof(float) * ny);
    float *col = malloc(sizeof(float) * (ncol ? ncol : 1));
    harness_fill(x, nx, seed);
    harness_fill(wt, nw, seed + 1);
    harness_fill(b, s->cout, seed + 2);
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN; /* every output must be written */
    cxr_blas_set_threads(threads);
    cxr_conv_forward(s, x, h, w, wt, b, y, col);
    CHECK(cxr_blas_get_threads() == threads, "the thread count stays %d", threads);
    double worst = 0;
    for (int o = 0; o < s->cout; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int c = 0; c < s->cin; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s->stride + ky - s->pad, ix = ox * s->stride + kx - s->pad;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            double p = (double)x[((size_t)c * h + iy) * w + ix] *
                                       wt[(((size_t)o * s->cin + c) * k + ky) * k + kx];
                            acc += p;
                            mag += fabs(p);
                        }
                double e = fabs(y[((size_t)o * oh + oy) * ow + ox] - acc) / (mag > 0 ? mag : 1);
                worst = isnan(e) ? INFINITY : e > worst ? e : worst;
            }
    free(x), free(wt), free(b), free(y), free(col);
    return worst;
}

int
main(void)
{
    static const int cases[][7] = {
        /* cin, cout, k, stride, pad, h, w: at least 2^22 multiply-adds, so that they share */
        {64, 64, 3, 2, 1, 64, 64},  /* 32x32 outputs: by rows, each thread its im2col columns */
        {64, 48, 1, 1, 0, 40, 40},  /* 1x1 by rows */
        {96, 83, 3, 1, 1, 13, 13},  /* 13x13: by channels, 83 in shares of 16 */
        {256, 208, 1, 1, 0, 9, 9},  /* 1x1 by channels */
        {512, 260, 3, 2, 1, 3, 3},  /* 2x2 outputs, 260 channels */
        {8, 5, 3, 1, 1, 9, 11},     /* too small to share: one thread */
    };
    for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
        const int *c = cases[n];
        cxr_conv_shape s = {c[0], c[1], c[2], c[3], c[4]};
        for (int threads = 1; threads <= 3; threads++) {
            double e = check(&s, c[5], c[6], threads, 70 + (uint32_t)n);
            /* float32 sums of up to 4608 products: a few units of rounding of their magnitude */
            CHECK(e <= 1e-5, "%d->%d k%d s%d on %dx%d, %d threads: error %.3g of the magnitude",
                  c[0], c[1], c[2], c[3], c[5], c[6], threads, e);
        }
    }
    cxr_blas_set_threads(1);
    return harness_finish("test_conv_shares");
}

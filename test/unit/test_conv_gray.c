/* Inference's one-channel convolution (conv_gray.c) on every path this CPU runs, against a
 * direct convolution computed here in double precision: alexnet's conv1 at full size, strides
 * 1 to 4, padding from 0 to more than half the kernel, rows wider than a register tile, output
 * channel counts that are no path's multiple; and against the im2col + sgemm path of training. */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "harness.h"

static double
check(int path, int cout, int k, int stride, int pad, int h, int w, uint32_t seed, double *vs_sgemm)
{
    cxr_conv_shape s = {1, cout, k, stride, pad};
    int oh = cxr_conv_out_size(h, k, stride, pad), ow = cxr_conv_out_size(w, k, stride, pad);
    size_t ny = (size_t)cout * oh * ow;
    float *x = malloc(sizeof(float) * h * w), *wt = malloc(sizeof(float) * cout * k * k);
    float *b = malloc(sizeof(float) * cout), *y = malloc(sizeof(float) * ny), *y2 = malloc(sizeof(float) * ny);
    size_t scr_n = cxr_conv_gray_scratch_floats(&s, h, w), col_n = cxr_conv_col_floats(&s, h, w);
    float *scr = malloc(sizeof(float) * scr_n), *col = malloc(sizeof(float) * col_n);
    harness_fill(x, (size_t)h * w, seed);
    harness_fill(wt, (size_t)cout * k * k, seed + 1);
    harness_fill(b, cout, seed + 2);
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN; /* every output must be written */
    cxr_conv_gray_forward_path(path, &s, x, h, w, wt, b, y, scr);
    cxr_conv_forward(&s, x, h, w, wt, b, y2, col);
    double worst = 0, worst2 = 0;
    for (int o = 0; o < cout; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                            continue;
                        double p = (double)x[iy * w + ix] * wt[(o * k + ky) * k + kx];
                        acc += p;
                        mag += fabs(p);
                    }
                size_t i = ((size_t)o * oh + oy) * ow + ox;
                double e = fabs(y[i] - acc) / (mag > 0 ? mag : 1);
                worst = isnan(e) ? INFINITY : e > worst ? e : worst;
                double e2 = fabs(y[i] - y2[i]) / (mag > 0 ? mag : 1);
                worst2 = e2 > worst2 ? e2 : worst2;
            }
    free(x), free(wt), free(b), free(y), free(y2), free(scr), free(col);
    *vs_sgemm = worst2;
    return worst;
}

int
main(void)
{
    cxr_blas_set_threads(1);
    printf("  %s\n", cxr_conv_gray_describe());
    static const int cases[][6] = {
        /* cout, k, stride, pad, h, w */
        {64, 11, 4, 2, 299, 299}, /* alexnet's conv1 */
        {5, 11, 4, 2, 61, 47},   {7, 7, 2, 3, 37, 200}, {3, 3, 1, 1, 9, 170}, {9, 5, 1, 4, 6, 7},
        {2, 4, 3, 0, 20, 21},    {1, 2, 2, 1, 5, 5},
    };
    for (int p = 0; p < CXR_KERNEL_PATHS; p++) {
        if (!cxr_kernel_path_runs_here(p))
            continue;
        double worst = 0, worst2 = 0;
        for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
            const int *c = cases[n];
            double vs;
            double e = check(p, c[0], c[1], c[2], c[3], c[4], c[5], 40 + (uint32_t)n, &vs);
            /* float32 sums of up to 121 products: a few units of rounding of their magnitude */
            CHECK(e <= 1e-6, "path %s, %d channels k%d s%d p%d on %dx%d: error %.3g of the magnitude",
                  cxr_kernel_path_name(p), c[0], c[1], c[2], c[3], c[4], c[5], e);
            worst = e > worst ? e : worst;
            worst2 = vs > worst2 ? vs : worst2;
        }
        CHECK(worst2 <= 2e-6, "path %s agrees with im2col + sgemm (%.3g)", cxr_kernel_path_name(p), worst2);
        printf("  path %s: worst error %.3g of the magnitude (double), %.3g from im2col + sgemm\n",
               cxr_kernel_path_name(p), worst, worst2);
    }
    cxr_conv_shape two = {2, 8, 3, 1, 1}, one = {1, 8, 3, 1, 1};
    CHECK(!cxr_conv_gray_applies(&two, 16, 16), "two input channels stay on im2col + sgemm");
    CHECK(cxr_conv_gray_applies(&one, 16, 16), "one input channel is this kernel's");
    return harness_finish("test_conv_gray");
}

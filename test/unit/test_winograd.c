/* Winograd convolution (F(4x4,5x5), F(4x4,3x3)) against a direct convolution computed here in
 * double precision, on shapes that leave partial tiles at the right and bottom edges, every
 * padding a layer can have, and channel counts that are not multiples of anything; and the
 * gating: stride 2, 1x1, 11x11 and maps of fewer than 16 tiles stay on im2col + sgemm. */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_winograd.h"
#include "harness.h"

static double
check(int k, int pad, int cin, int cout, int h, int w, uint32_t seed)
{
    cxr_conv_shape s = {cin, cout, k, 1, pad};
    int oh = cxr_conv_out_size(h, k, 1, pad), ow = cxr_conv_out_size(w, k, 1, pad);
    float *x = malloc(sizeof(float) * cin * h * w), *wt = malloc(sizeof(float) * cout * cin * k * k);
    float *b = malloc(sizeof(float) * cout), *y = malloc(sizeof(float) * cout * oh * ow);
    float *u = malloc(sizeof(float) * cxr_winograd_weight_floats(&s));
    float *scr = malloc(sizeof(float) * cxr_winograd_scratch_floats(&s, h, w));
    harness_fill(x, (size_t)cin * h * w, seed);
    harness_fill(wt, (size_t)cout * cin * k * k, seed + 1);
    harness_fill(b, cout, seed + 2);
    cxr_winograd_weights(&s, wt, u);
    cxr_winograd_forward(&s, x, h, w, u, b, y, scr);
    double worst = 0;
    for (int o = 0; o < cout; o++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double acc = b[o], mag = fabs(b[o]);
                for (int c = 0; c < cin; c++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int iy = oy - pad + i, ix = ox - pad + j;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            double p = (double)x[(c * h + iy) * w + ix] * wt[((o * cin + c) * k + i) * k + j];
                            acc += p;
                            mag += fabs(p);
                        }
                double e = fabs(y[(o * oh + oy) * ow + ox] - acc) / (mag > 0 ? mag : 1);
                worst = e > worst ? e : worst;
            }
    free(x), free(wt), free(b), free(y), free(u), free(scr);
    return worst;
}

/* The input gradient of a stride-1 layer (k, pad, cin -> cout on h x w) from its output gradient
 * dy, the Winograd way (cxr_winograd_data_gradient_*), against its definition in double
 * precision: dx[c][iy][ix] = sum over o, i, j of dy[o][iy + pad - i][ix + pad - j] w[o][c][i][j]. */
static double
check_data_gradient(int k, int pad, int cin, int cout, int h, int w, uint32_t seed)
{
    cxr_conv_shape s = {cin, cout, k, 1, pad}, d = cxr_winograd_data_gradient_shape(&s);
    int oh = cxr_conv_out_size(h, k, 1, pad), ow = cxr_conv_out_size(w, k, 1, pad);
    float *dy = malloc(sizeof(float) * cout * oh * ow), *wt = malloc(sizeof(float) * cout * cin * k * k);
    float *dx = malloc(sizeof(float) * cin * h * w);
    float *u = malloc(sizeof(float) * cxr_winograd_weight_floats(&d));
    float *scr = malloc(sizeof(float) * cxr_winograd_scratch_floats(&d, oh, ow));
    harness_fill(dy, (size_t)cout * oh * ow, seed);
    harness_fill(wt, (size_t)cout * cin * k * k, seed + 1);
    CHECK(d.cin == cout && d.cout == cin && d.k == k && d.stride == 1 && d.pad == k - 1 - pad,
          "the input gradient's shape");
    CHECK(cxr_conv_out_size(oh, k, 1, d.pad) == h && cxr_conv_out_size(ow, k, 1, d.pad) == w,
          "the input gradient has the input's size");
    cxr_winograd_data_gradient_weights(&s, wt, u);
    cxr_winograd_forward(&d, dy, oh, ow, u, NULL, dx, scr);
    double worst = 0;
    for (int c = 0; c < cin; c++)
        for (int iy = 0; iy < h; iy++)
            for (int ix = 0; ix < w; ix++) {
                double acc = 0, mag = 0;
                for (int o = 0; o < cout; o++)
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int oy = iy + pad - i, ox = ix + pad - j;
                            if (oy < 0 || oy >= oh || ox < 0 || ox >= ow)
                                continue;
                            double p = (double)dy[(o * oh + oy) * ow + ox] * wt[((o * cin + c) * k + i) * k + j];
                            acc += p;
                            mag += fabs(p);
                        }
                double e = fabs(dx[(c * h + iy) * w + ix] - acc) / (mag > 0 ? mag : 1);
                worst = e > worst ? e : worst;
            }
    free(dy), free(wt), free(dx), free(u), free(scr);
    return worst;
}

/* One product path against a double-precision product of the same packed operands: 3 points,
 * 67 channels, 3 rows of 8 outputs and 5 blocks of 16 tiles (an odd count: the AVX-512 tile's
 * edge). Returns the worst error as a share of the sum of |products|. */
static double
check_products(int path)
{
    enum { XI = 3, CIN = 67, COUTP = 3 * CXR_WINO_ROWS, TB = 5, T = CXR_WINO_TILES };
    size_t nu = (size_t)XI * COUTP * CIN, nv = (size_t)XI * TB * CIN * T, nm = (size_t)TB * COUTP * XI * T;
    float *U = malloc(sizeof(float) * nu), *V = malloc(sizeof(float) * nv), *M = malloc(sizeof(float) * nm);
    harness_fill(U, nu, 31);
    harness_fill(V, nv, 32);
    for (size_t i = 0; i < nm; i++)
        M[i] = NAN; /* every output must be written */
    /* two calls over parts of the points, as two threads would make them */
    cxr_winograd_products_path(path, 0, 1, U, V, M, CIN, COUTP, TB, XI);
    cxr_winograd_products_path(path, 1, XI, U, V, M, CIN, COUTP, TB, XI);
    double worst = 0;
    for (int xi = 0; xi < XI; xi++)
        for (int tb = 0; tb < TB; tb++)
            for (int o = 0; o < COUTP; o++)
                for (int l = 0; l < T; l++) {
                    double s = 0, mag = 0;
                    for (int c = 0; c < CIN; c++) {
                        double p = (double)U[((size_t)(xi * (COUTP / CXR_WINO_ROWS) + o / CXR_WINO_ROWS) * CIN + c) *
                                                 CXR_WINO_ROWS + o % CXR_WINO_ROWS] *
                                   V[((size_t)(xi * TB + tb) * CIN + c) * T + l];
                        s += p;
                        mag += fabs(p);
                    }
                    double e = fabs(M[(((size_t)tb * COUTP + o) * XI + xi) * T + l] - s) / (mag > 0 ? mag : 1);
                    worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
                }
    free(U), free(V), free(M);
    return worst;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "paths")) { /* for make check-core: the paths to run */
        for (int p = 0; p < CXR_KERNEL_PATHS; p++)
            if (cxr_kernel_path_runs_here(p))
                printf("%s\n", cxr_kernel_path_name(p));
        return 0;
    }
    printf("  %s\n", cxr_winograd_describe());
    for (int p = 0; p < CXR_KERNEL_PATHS; p++)
        if (cxr_kernel_path_runs_here(p)) {
            /* float32 sums of 67 terms in channel order: within a few units of rounding */
            double e = check_products(p);
            CHECK(e <= 1e-6, "products on path %s: error %.3g of the magnitude", cxr_kernel_path_name(p), e);
            printf("  products path %s: worst error %.3g of the magnitude\n", cxr_kernel_path_name(p), e);
        }
    CHECK(cxr_winograd_enabled(), "Winograd passes its self-test on this machine");
    static const int cases[][6] = {
        /* k, pad, cin, cout, h, w */
        {5, 2, 8, 3, 9, 9},    {5, 2, 13, 7, 36, 36}, {5, 2, 19, 5, 17, 17}, {5, 0, 8, 4, 12, 15},
        {5, 1, 9, 2, 10, 23},  {5, 4, 8, 3, 5, 6},    {3, 1, 8, 5, 8, 8},    {3, 1, 17, 3, 14, 14},
        {3, 0, 8, 4, 11, 9},   {3, 2, 10, 2, 7, 13},  {3, 1, 33, 6, 56, 29},
        /* rows of tiles wider than one and two vectors of 16 */
        {5, 2, 8, 3, 70, 67},  {3, 1, 8, 3, 9, 130},  {5, 3, 8, 2, 13, 99},
    };
    double worst = 0;
    for (size_t n = 0; n < sizeof cases / sizeof cases[0]; n++) {
        const int *c = cases[n];
        double e = check(c[0], c[1], c[2], c[3], c[4], c[5], 11 + (uint32_t)n);
        /* float32 Winograd: the transforms' constants (A^T holds 8s and 1/8s, B^T 21/4) cost a
         * few digits; direct float32 is near 1e-7 */
        CHECK(e <= 5e-6, "k%d pad %d %dx%d, %d -> %d channels: error %.3g of the magnitude", c[0],
              c[1], c[4], c[5], c[2], c[3], e);
        worst = e > worst ? e : worst;
    }
    printf("  worst error against direct convolution in double precision: %.3g of the magnitude\n",
           worst);
    /* training's input gradients: alexnet's conv2 and conv3 shapes (scaled down) and edges */
    static const int grads[][6] = {
        {5, 2, 9, 16, 36, 36}, {5, 2, 7, 8, 17, 13}, {3, 1, 12, 10, 17, 17}, {3, 0, 8, 9, 12, 11},
        {5, 4, 3, 8, 6, 7},
    };
    worst = 0;
    for (size_t n = 0; n < sizeof grads / sizeof grads[0]; n++) {
        const int *c = grads[n];
        double e = check_data_gradient(c[0], c[1], c[2], c[3], c[4], c[5], 41 + (uint32_t)n);
        CHECK(e <= 5e-6, "input gradient k%d pad %d %dx%d, %d -> %d channels: error %.3g", c[0],
              c[1], c[4], c[5], c[2], c[3], e);
        worst = e > worst ? e : worst;
    }
    printf("  input gradients: worst error against double precision %.3g of the magnitude\n", worst);

    /* more BLAS threads split the layer over threads of its own: the same bits */
    {
        cxr_conv_shape s = {24, 7, 5, 1, 2};
        int h = 21, w = 19, n = 7 * 21 * 19;
        float *x = malloc(sizeof(float) * 24 * h * w), *wt = malloc(sizeof(float) * 7 * 24 * 25);
        float *u = malloc(sizeof(float) * cxr_winograd_weight_floats(&s));
        float *scr = malloc(sizeof(float) * cxr_winograd_scratch_floats(&s, h, w));
        float *y1 = malloc(sizeof(float) * n), *y3 = malloc(sizeof(float) * n);
        harness_fill(x, (size_t)24 * h * w, 5);
        harness_fill(wt, (size_t)7 * 24 * 25, 6);
        cxr_winograd_weights(&s, wt, u);
        cxr_blas_set_threads(1);
        cxr_winograd_forward(&s, x, h, w, u, NULL, y1, scr);
        cxr_blas_set_threads(3);
        cxr_winograd_forward(&s, x, h, w, u, NULL, y3, scr);
        CHECK(memcmp(y1, y3, sizeof(float) * n) == 0, "3 threads give the bits of 1");
        CHECK(cxr_blas_get_threads() == 3, "the caller's BLAS thread count is restored");
        cxr_blas_set_threads(1);
        free(x), free(wt), free(u), free(scr), free(y1), free(y3);
    }
    cxr_conv_shape strided = {64, 8, 5, 2, 2}, pointwise = {64, 8, 1, 1, 0}, big = {3, 64, 11, 1, 2},
                   narrow = {4, 8, 3, 1, 1}, fine = {64, 8, 3, 1, 1};
    CHECK(!cxr_winograd_applies(&strided, 36, 36), "stride 2 stays direct");
    CHECK(!cxr_winograd_applies(&pointwise, 36, 36), "1x1 stays direct");
    CHECK(!cxr_winograd_applies(&big, 36, 36), "11x11 stays direct");
    CHECK(!cxr_winograd_applies(&narrow, 36, 36), "fewer than 8 input channels stays direct");
    CHECK(!cxr_winograd_applies(&fine, 8, 8), "an 8x8 map of a 3x3 layer (4 tiles) stays direct");
    CHECK(cxr_winograd_applies(&fine, 16, 16), "a 16x16 map of a 3x3 layer (16 tiles) is Winograd");
    return harness_finish("test_winograd");
}

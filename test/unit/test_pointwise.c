/* 1x1 convolutions from laid-out weights (pointwise.c) against the product computed here in
 * double precision: maps of every block shape the layer splits into (one block, an odd count
 * read in place, a tail copied alone or with the last whole block), with and without a bias,
 * nothing written past the output or the scratch the layer asks for, the same bits on any
 * thread count; and the gating. Run on each products path by make check-core (CXR_WINO_PATH). */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_pointwise.h"
#include "cxr_winograd.h"
#include "harness.h"

#define CANARY 64 /* floats past each buffer that must stay untouched */

static int
canary_intact(const float *p)
{
    for (int i = 0; i < CANARY; i++)
        if (p[i] != 12345.0f)
            return 0;
    return 1;
}

/* Worst error of y = W x + b as a share of the sum of |terms|; *intact says whether the canaries
 * past y and the scratch survived. */
static double
check(int cin, int cout, int h, int w, int with_bias, uint32_t seed, int *intact)
{
    cxr_conv_shape s = {cin, cout, 1, 1, 0};
    size_t n = (size_t)h * w, ns = cxr_pointwise_scratch_floats(&s, h, w);
    float *x = malloc(sizeof(float) * cin * n), *wt = malloc(sizeof(float) * cout * cin);
    float *b = malloc(sizeof(float) * cout), *y = malloc(sizeof(float) * (cout * n + CANARY));
    float *u = malloc(sizeof(float) * cxr_pointwise_weight_floats(&s));
    float *scr = malloc(sizeof(float) * (ns + CANARY));
    harness_fill(x, (size_t)cin * n, seed);
    harness_fill(wt, (size_t)cout * cin, seed + 1);
    harness_fill(b, cout, seed + 2);
    for (int i = 0; i < CANARY; i++)
        y[cout * n + i] = scr[ns + i] = 12345.0f;
    for (size_t i = 0; i < cout * n; i++)
        y[i] = NAN; /* every output must be written */
    cxr_pointwise_weights(&s, wt, u);
    cxr_pointwise_forward(&s, x, h, w, u, with_bias ? b : NULL, y, scr);
    *intact = canary_intact(y + cout * n) && canary_intact(scr + ns);
    double worst = 0;
    for (int o = 0; o < cout; o++)
        for (size_t i = 0; i < n; i++) {
            double acc = with_bias ? b[o] : 0, mag = fabs(acc);
            for (int c = 0; c < cin; c++) {
                double p = (double)wt[(size_t)o * cin + c] * x[(size_t)c * n + i];
                acc += p;
                mag += fabs(p);
            }
            double e = fabs(y[(size_t)o * n + i] - acc) / (mag > 0 ? mag : 1);
            worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
        }
    free(x), free(wt), free(b), free(y), free(u), free(scr);
    return worst;
}

int
main(void)
{
    printf("  %s; %s\n", cxr_winograd_products_describe(), cxr_pointwise_describe());
    static const int cases[][5] = {
        /* cin, cout, h, w, bias */
        {8, 8, 4, 4, 0},      /* one block of 16, read in place */
        {13, 16, 4, 5, 1},    /* one block and a tail of 4: both copied */
        {64, 24, 4, 8, 0},    /* a pair of blocks */
        {67, 8, 6, 8, 1},     /* 3 blocks, no tail: the odd one read in place alone */
        {256, 64, 7, 7, 0},   /* resnet50's last stage at 224: 3 blocks and 1 position */
        {40, 32, 14, 14, 1},  /* 12 blocks and a tail of 4, copied alone */
        {512, 128, 10, 10, 0}, /* the last stage at 299: 6 blocks and 4 */
        {9, 16, 3, 11, 1},    /* 2 blocks and a tail of 1 */
    };
    double worst = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int *c = cases[k];
        int intact = 0;
        double e = check(c[0], c[1], c[2], c[3], c[4], 7 + (uint32_t)k, &intact);
        /* float32 sums in channel order: within a few units of rounding of the terms' sum */
        CHECK(e <= 1e-6, "%d -> %d channels on %dx%d%s: error %.3g of the magnitude", c[0], c[1],
              c[2], c[3], c[4] ? " with a bias" : "", e);
        CHECK(intact, "%d -> %d channels on %dx%d: nothing written past the output or the scratch",
              c[0], c[1], c[2], c[3]);
        worst = e > worst ? e : worst;
    }
    printf("  worst error against the product in double precision: %.3g of the magnitude\n", worst);

    /* more BLAS threads share the blocks out: the same bits */
    {
        cxr_conv_shape s = {48, 32, 1, 1, 0};
        int h = 13, w = 11, n = 32 * 13 * 11;
        float *x = malloc(sizeof(float) * 48 * h * w), *wt = malloc(sizeof(float) * 32 * 48);
        float *b = malloc(sizeof(float) * 32), *u = malloc(sizeof(float) * cxr_pointwise_weight_floats(&s));
        float *scr = malloc(sizeof(float) * cxr_pointwise_scratch_floats(&s, h, w));
        float *y1 = malloc(sizeof(float) * n), *y3 = malloc(sizeof(float) * n);
        harness_fill(x, (size_t)48 * h * w, 5);
        harness_fill(wt, (size_t)32 * 48, 6);
        harness_fill(b, 32, 7);
        cxr_pointwise_weights(&s, wt, u);
        cxr_blas_set_threads(1);
        cxr_pointwise_forward(&s, x, h, w, u, b, y1, scr);
        cxr_blas_set_threads(3);
        cxr_pointwise_forward(&s, x, h, w, u, b, y3, scr);
        CHECK(memcmp(y1, y3, sizeof(float) * n) == 0, "3 threads give the bits of 1");
        cxr_blas_set_threads(1);
        free(x), free(wt), free(b), free(u), free(scr), free(y1), free(y3);
    }

    cxr_conv_shape ok = {64, 64, 1, 1, 0}, strided = {64, 64, 1, 2, 0}, padded = {64, 64, 1, 1, 1},
                   three = {64, 64, 3, 1, 1}, narrow = {4, 64, 1, 1, 0}, odd_out = {64, 12, 1, 1, 0};
    CHECK(cxr_pointwise_applies(&ok, 4, 4), "a 4x4 map of a 1x1 layer is pointwise");
    CHECK(!cxr_pointwise_applies(&ok, 3, 5), "a map of fewer than 16 positions stays on sgemm");
    CHECK(!cxr_pointwise_applies(&strided, 36, 36), "stride 2 stays on im2col + sgemm");
    CHECK(!cxr_pointwise_applies(&padded, 36, 36), "a padded 1x1 layer stays on im2col + sgemm");
    CHECK(!cxr_pointwise_applies(&three, 36, 36), "3x3 is not pointwise");
    CHECK(!cxr_pointwise_applies(&narrow, 36, 36), "fewer than 8 input channels stays on sgemm");
    CHECK(!cxr_pointwise_applies(&odd_out, 36, 36),
          "output channels that are not whole rows of 8 stay on sgemm");
    return harness_finish("test_pointwise");
}

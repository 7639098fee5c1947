/* 1x1 stride-1 convolutions at inference: y[cout][n] = W[cout][cin] x[cin][n] as one product on
 * the Winograd products' register tiles (winograd_products.c), with one point.
 *
 * Why: resnet50's single image is mostly 1x1 layers, and through sgemm OpenBLAS packs both
 * operands on every call, the weights included. Here the weights are laid out once per model
 * (U[cout/8][cin][8], cxr_model_prepare_inference) and the product reads the input map and
 * writes the output map in place, 16 positions to a column block. Only the map's last
 * positions, short of a pair of whole blocks (the AVX-512 tile is two blocks wide), are copied
 * into a scratch block pair and back. Every output is one sum over cin in channel order on any
 * thread count. */
#include "cxr_pointwise.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_threads.h"
#include "cxr_winograd.h"

#define ROWS CXR_WINO_ROWS
#define TILES CXR_WINO_TILES
#define MAX_PARTS 16 /* a layer's most threads */

static int works = -1; /* the self-test's verdict */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void self_test(void);

int
cxr_pointwise_applies(const cxr_conv_shape *s, int h, int w)
{
    pthread_once(&once, self_test);
    /* the products write whole rows of 8 output channels into the map; below a block of 16
     * positions the product is too thin to pay */
    return works && s->k == 1 && s->stride == 1 && s->pad == 0 && s->cin >= ROWS && s->cout % ROWS == 0 &&
           s->cout > 0 && (long)h * w >= TILES;
}

size_t
cxr_pointwise_weight_floats(const cxr_conv_shape *s)
{
    return (size_t)s->cout * s->cin;
}

void
cxr_pointwise_weights(const cxr_conv_shape *s, const float *weight, float *u)
{
    for (int o = 0; o < s->cout; o++)
        for (int c = 0; c < s->cin; c++)
            u[((size_t)(o / ROWS) * s->cin + c) * ROWS + o % ROWS] = weight[(size_t)o * s->cin + c];
}

/* the copied blocks: at most a pair */
size_t
cxr_pointwise_scratch_floats(const cxr_conv_shape *s, int h, int w)
{
    (void)h, (void)w;
    return 2 * TILES * ((size_t)s->cin + s->cout);
}

typedef struct {
    const cxr_conv_shape *s;
    const float *x, *u, *bias;
    float *y, *V, *M;
    size_t n;
    int direct, copied, units, parts, phase; /* blocks read in place, blocks copied */
} pointwise_job;

static void
run_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    const pointwise_job *j = ctx;
    const cxr_conv_shape *s = j->s;
    size_t n = j->n, at = (size_t)j->direct * TILES, rest = n - at;
    int lo, hi;
    if (j->phase == 0) { /* V[b][c][16] = x[c][at + 16 b ...], zeros past the map */
        cxr_share(s->cin, part, j->parts, &lo, &hi);
        for (int c = lo; c < hi; c++)
            for (int b = 0; b < j->copied; b++) {
                float *v = j->V + ((size_t)b * s->cin + c) * TILES;
                size_t from = (size_t)b * TILES, k = rest - from < TILES ? rest - from : TILES;
                memcpy(v, j->x + (size_t)c * n + at + from, sizeof(float) * k);
                memset(v + k, 0, sizeof(float) * (TILES - k));
            }
    } else if (j->phase == 1) { /* y = U x: pairs of blocks in place, then the copied ones */
        cxr_share(j->units, part, j->parts, &lo, &hi);
        cxr_products_layout in_place = {0, TILES, n, 0, TILES, n};
        cxr_products_layout copied = {0, (size_t)s->cin * TILES, TILES, 0,
                                      (size_t)s->cout * TILES, TILES};
        for (int unit = lo; unit < hi; unit++) {
            int tb = 2 * unit;
            if (tb < j->direct)
                cxr_products_strided(j->u, j->x + (size_t)tb * TILES, j->y + (size_t)tb * TILES,
                                     s->cin, s->cout, j->direct - tb < 2 ? 1 : 2, &in_place);
            else
                cxr_products_strided(j->u, j->V, j->M, s->cin, s->cout, j->copied, &copied);
        }
    } else { /* the copied blocks' outputs back into the map, and the bias */
        cxr_share(s->cout, part, j->parts, &lo, &hi);
        for (int o = lo; o < hi; o++) {
            float *out = j->y + (size_t)o * n;
            for (size_t i = 0; i < rest; i++)
                out[at + i] = j->M[((i / TILES) * s->cout + o) * TILES + i % TILES];
            if (j->bias)
                for (size_t i = 0; i < n; i++)
                    out[i] += j->bias[o];
        }
    }
}

void
cxr_pointwise_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                      const float *bias, float *y, float *scratch)
{
    size_t n = (size_t)h * w;
    int full = (int)(n / TILES), tail = n % TILES != 0;
    /* an odd last whole block goes with the tail into the copied pair */
    int direct = tail && full % 2 ? full - 1 : full;
    int copied = (int)((n - (size_t)direct * TILES + TILES - 1) / TILES);
    pointwise_job j = {s, x, u, bias, y, scratch, scratch + 2 * TILES * (size_t)s->cin, n,
                       direct, copied, (direct + 1) / 2 + (copied > 0), 1, 0};
    int threads = cxr_blas_get_threads();
    j.parts = threads > MAX_PARTS ? MAX_PARTS : threads;
    for (j.phase = 0; j.phase < 3; j.phase++) { /* on the core's own threads: cxr_threads.h */
        if (j.phase != 1 && !copied && !bias)
            continue;
        int parts = j.phase == 1 && j.units < j.parts ? j.units : j.parts;
        cxr_parallel_parts(parts, parts, run_part, &j);
    }
}

/* Checked once before first use against a double-precision product, as the kernels are: a 7x7
 * map (a block pair read in place, a pair copied), with a bias. */
static void
self_test(void)
{
    enum { CIN = 13, COUT = 16, N = 49 };
    cxr_conv_shape s = {CIN, COUT, 1, 1, 0};
    static float x[CIN * N], w[COUT * CIN], u[COUT * CIN], b[COUT], y[COUT * N];
    static float scratch[2 * TILES * (CIN + COUT)];
    for (int i = 0; i < CIN * N; i++)
        x[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
    for (int i = 0; i < COUT * CIN; i++)
        w[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
    for (int o = 0; o < COUT; o++)
        b[o] = (float)(o - 7) / 8.0f;
    cxr_pointwise_weights(&s, w, u);
    cxr_pointwise_forward(&s, x, 7, 7, u, b, y, scratch);
    int ok = 1;
    for (int o = 0; o < COUT; o++)
        for (int i = 0; i < N; i++) {
            double acc = b[o], mag = fabs(b[o]);
            for (int c = 0; c < CIN; c++) {
                double p = (double)w[o * CIN + c] * x[c * N + i];
                acc += p;
                mag += fabs(p);
            }
            if (!(fabs(y[o * N + i] - acc) <= 1e-6 * mag + 1e-30))
                ok = 0;
        }
    works = ok;
}

const char *
cxr_pointwise_describe(void)
{
    pthread_once(&once, self_test);
    return works ? "1x1 stride-1 layers on the same products (self-test passed)"
                 : "1x1 layers on im2col + sgemm (their self-test failed)";
}

/* Winograd convolution for inference: F(2x2, 5x5) and F(4x4, 3x3), stride 1, any padding.
 *
 * Why: alexnet's conv2 and conv3 are 5x5 and hold 90% of a forward pass's multiplications. On
 * a 6x6 input tile, F(2x2, 5x5) makes 4 outputs with 36 multiplications instead of 100, and
 * F(4x4, 3x3) makes 16 with 36 instead of 144. Both use the interpolation points 0, 1, -1, 2,
 * -2 and infinity, so they share one input transform B^T (6x6). The matrices were derived by
 * the Cook-Toom construction (A^T: powers of the points; G: the Lagrange weights; B^T solved
 * from A^T and G) and are checked here against a direct convolution before first use.
 *
 * Layout, per image: V[36][tiles/16][cin][16] = B^T d B for each 6x6 input tile, M[36] = U[36]
 * V[36] as 36 products (cout x cin times cin x tiles, winograd_products.c), then y = A^T M A
 * for each tile. U[36][cout/8][cin][8] = G g G^T is computed once per model
 * (cxr_model_prepare_inference). Tiles are numbered row by row across the map, so a block of 16
 * may span two tile rows. */
#include "cxr_winograd.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "cxr_threads.h"

#define A 6 /* tile side */

/* B^T = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
 * {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}} (bt_rows) */
/* F(2, 5); A^T = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}} (at_rows) */
static const float G5[A][5] = {
    {1.0f / 4, 0, 0, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6, 1.0f / 3, 2.0f / 3},
    {1.0f / 24, -1.0f / 12, 1.0f / 6, -1.0f / 3, 2.0f / 3},
    {0, 0, 0, 0, 1},
};
/* F(4, 3); A^T = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0},
 * {0, 1, -1, 8, -8, 1}} (at_rows) */
static const float G3[A][3] = {
    {1.0f / 4, 0, 0}, {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1},
};

/* outputs per tile side */
static int
tile_out(int k)
{
    return k == 5 ? 2 : 4;
}

static int enabled = -1; /* -1: not decided yet */
static char description[256] = "not checked";
static pthread_once_t once = PTHREAD_ONCE_INIT;

int
cxr_winograd_applies(const cxr_conv_shape *s, int h, int w)
{
    if (s->stride != 1 || (s->k != 3 && s->k != 5) || s->cin < 8)
        return 0;
    int oh = cxr_conv_out_size(h, s->k, 1, s->pad), ow = cxr_conv_out_size(w, s->k, 1, s->pad);
    /* the 36 products have one column per tile: below 16 tiles they are too thin to pay */
    int m = tile_out(s->k);
    return ((oh + m - 1) / m) * ((ow + m - 1) / m) >= 16;
}

/* output channels rounded up to whole rows of the products' register tile */
static int
padded_cout(const cxr_conv_shape *s)
{
    return (s->cout + CXR_WINO_ROWS - 1) / CXR_WINO_ROWS * CXR_WINO_ROWS;
}

static size_t
tile_blocks(size_t tiles)
{
    return (tiles + CXR_WINO_TILES - 1) / CXR_WINO_TILES;
}

static void
tiles_of(const cxr_conv_shape *s, int h, int w, int *oh, int *ow, int *th, int *tw)
{
    int m = tile_out(s->k);
    *oh = cxr_conv_out_size(h, s->k, 1, s->pad);
    *ow = cxr_conv_out_size(w, s->k, 1, s->pad);
    *th = (*oh + m - 1) / m;
    *tw = (*ow + m - 1) / m;
}

size_t
cxr_winograd_weight_floats(const cxr_conv_shape *s)
{
    return (size_t)A * A * padded_cout(s) * s->cin;
}

size_t
cxr_winograd_scratch_floats(const cxr_conv_shape *s, int h, int w)
{
    int oh, ow, th, tw;
    tiles_of(s, h, w, &oh, &ow, &th, &tw);
    return (size_t)A * A * tile_blocks((size_t)th * tw) * CXR_WINO_TILES *
           ((size_t)s->cin + padded_cout(s));
}

/* U for the shape s from weights g(o, c) = weight[o][c] (or, flipped, from the forward layer's
 * weight[c][o] turned by 180 degrees). */
static void
weights_transform(const cxr_conv_shape *s, const float *weight, int flipped, float *u)
{
    int k = s->k;
    const float *G = k == 5 ? &G5[0][0] : &G3[0][0];
    size_t plane = (size_t)padded_cout(s) * s->cin;
    memset(u, 0, sizeof(float) * A * A * plane); /* the padding rows */
    for (int o = 0; o < s->cout; o++)
        for (int c = 0; c < s->cin; c++) {
            float g[25];
            if (flipped) {
                const float *f = weight + ((size_t)c * s->cout + o) * k * k;
                for (int i = 0; i < k * k; i++)
                    g[i] = f[k * k - 1 - i];
            } else {
                memcpy(g, weight + ((size_t)o * s->cin + c) * k * k, sizeof(float) * k * k);
            }
            float t[A][5]; /* G g */
            for (int i = 0; i < A; i++)
                for (int j = 0; j < k; j++) {
                    float acc = 0;
                    for (int l = 0; l < k; l++)
                        acc += G[i * k + l] * g[l * k + j];
                    t[i][j] = acc;
                }
            for (int i = 0; i < A; i++)
                for (int j = 0; j < A; j++) { /* (G g) G^T */
                    float acc = 0;
                    for (int l = 0; l < k; l++)
                        acc += t[i][l] * G[j * k + l];
                    u[(size_t)(i * A + j) * plane +
                      ((size_t)(o / CXR_WINO_ROWS) * s->cin + c) * CXR_WINO_ROWS +
                      o % CXR_WINO_ROWS] = acc;
                }
        }
}

void
cxr_winograd_weights(const cxr_conv_shape *s, const float *weight, float *u)
{
    weights_transform(s, weight, 0, u);
}

cxr_conv_shape
cxr_winograd_data_gradient_shape(const cxr_conv_shape *s)
{
    cxr_conv_shape d = {s->cout, s->cin, s->k, 1, s->k - 1 - s->pad};
    return d;
}

void
cxr_winograd_data_gradient_weights(const cxr_conv_shape *s, const float *weight, float *u)
{
    cxr_conv_shape d = cxr_winograd_data_gradient_shape(s);
    weights_transform(&d, weight, 1, u);
}

/* The transforms work on L tiles at once, one tile per lane, so the compiler vectorises them
 * (constant trip counts; target clones for AVX-512 and AVX2, same arithmetic, no fusing). */
#define L 16
#define LANES_LOOP for (int l = 0; l < L; l++)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* o = B^T d over 6 rows of L lanes (rows `stride` floats apart) */
static inline __attribute__((always_inline)) void
bt_rows(const float *d, size_t ds, float *o, size_t os)
{
    const float *d0 = d, *d1 = d + ds, *d2 = d + 2 * ds, *d3 = d + 3 * ds, *d4 = d + 4 * ds,
                *d5 = d + 5 * ds;
    LANES_LOOP
    {
        o[l] = 4 * d0[l] - 5 * d2[l] + d4[l];
        o[os + l] = -4 * d1[l] - 4 * d2[l] + d3[l] + d4[l];
        o[2 * os + l] = 4 * d1[l] - 4 * d2[l] - d3[l] + d4[l];
        o[3 * os + l] = -2 * d1[l] - d2[l] + 2 * d3[l] + d4[l];
        o[4 * os + l] = 2 * d1[l] - d2[l] - 2 * d3[l] + d4[l];
        o[5 * os + l] = 4 * d1[l] - 5 * d3[l] + d5[l];
    }
}

/* o = A^T m over 6 rows of L lanes: 2 rows for F(2, 5), 4 for F(4, 3) */
static inline __attribute__((always_inline)) void
at_rows(int k, const float *m, size_t ms, float *o, size_t os)
{
    const float *m0 = m, *m1 = m + ms, *m2 = m + 2 * ms, *m3 = m + 3 * ms, *m4 = m + 4 * ms,
                *m5 = m + 5 * ms;
    if (k == 5)
        LANES_LOOP
        {
            o[l] = m0[l] + m1[l] + m2[l] + m3[l] + m4[l];
            o[os + l] = m1[l] - m2[l] + 2 * m3[l] - 2 * m4[l] + m5[l];
        }
    else
        LANES_LOOP
        {
            o[l] = m0[l] + m1[l] + m2[l] + m3[l] + m4[l];
            o[os + l] = m1[l] - m2[l] + 2 * (m3[l] - m4[l]);
            o[2 * os + l] = m1[l] + m2[l] + 4 * (m3[l] + m4[l]);
            o[3 * os + l] = m1[l] - m2[l] + 8 * (m3[l] - m4[l]) + m5[l];
        }
}

/* A block's tiles in runs along one tile row: lanes [l, l + run) are tiles tx .. tx + run - 1 of
 * tile row ty. The copy out goes run by run: a run's rows of outputs are contiguous. */
static inline __attribute__((always_inline)) int
tile_run(size_t t0, int l, int n, int tw, int *ty, int *tx)
{
    int tile = (int)t0 + l;
    *ty = tile / tw;
    *tx = tile % tw;
    return n - l < tw - *tx ? n - l : tw - *tx;
}

/* V[xi][tb][c][0 .. 16) for the n (<= 16) tiles of block tb, channel c; lanes past n are 0.
 * The copy in goes lane by lane (36 unrolled loads for an inner tile): the tiles overlap, so a
 * lane's elements are m floats apart from the next lane's, which no vector load reads. */
CLONES static void
input_tiles(const cxr_conv_shape *s, const float *plane, int h, int w, int m, int tw, size_t t0,
            int n, float *V, size_t xi_stride)
{
    float d[A][A][L], t[A][A][L], v[A][A][L];
    for (int l = 0; l < L; l++) {
        int tile = (int)t0 + l, iy0 = tile / tw * m - s->pad, ix0 = tile % tw * m - s->pad;
        if (l >= n) {
            for (int i = 0; i < A; i++)
                for (int j = 0; j < A; j++)
                    d[i][j][l] = 0;
        } else if (iy0 >= 0 && iy0 + A <= h && ix0 >= 0 && ix0 + A <= w) {
            const float *p = plane + (size_t)iy0 * w + ix0;
            for (int i = 0; i < A; i++)
                for (int j = 0; j < A; j++)
                    d[i][j][l] = p[(size_t)i * w + j];
        } else { /* a tile over the padding */
            for (int i = 0; i < A; i++)
                for (int j = 0; j < A; j++) {
                    int iy = iy0 + i, ix = ix0 + j;
                    d[i][j][l] = iy >= 0 && iy < h && ix >= 0 && ix < w ? plane[iy * w + ix] : 0;
                }
        }
    }
    for (int j = 0; j < A; j++) /* columns: t[.][j] = B^T d[.][j] */
        bt_rows(&d[0][j][0], A * L, &t[0][j][0], A * L);
    for (int i = 0; i < A; i++) /* rows: v[i][.] = t[i][.] B */
        bt_rows(&t[i][0][0], L, &v[i][0][0], L);
    for (int xi = 0; xi < A * A; xi++)
        memcpy(V + (size_t)xi * xi_stride, v[xi / A][xi % A], sizeof(float) * L);
}

/* out = b + yv for a run of tiles of side m (a constant where inlined); only a row's last tile
 * can stick out of the map */
static inline __attribute__((always_inline)) void
scatter_run(const float yv[4][4][L], int m, int ty, int tx, int l0, int run, float b, float *out,
            int oh, int ow)
{
    int oy0 = ty * m, ox0 = tx * m, whole = ox0 + run * m <= ow ? run : run - 1;
    for (int i = 0; i < m && oy0 + i < oh; i++) {
        float *row = out + (size_t)(oy0 + i) * ow + ox0;
        for (int q = 0; q < whole; q++)
            for (int j = 0; j < m; j++)
                row[q * m + j] = b + yv[i][j][l0 + q];
        for (int j = 0; whole < run && ox0 + whole * m + j < ow; j++)
            row[whole * m + j] = b + yv[i][j][l0 + whole];
    }
}

/* y for the n (<= 16) tiles of block tb, output channel o, from M[tb][o][xi][0 .. 16) */
CLONES static void
output_tiles(const cxr_conv_shape *s, const float *mm, size_t t0, int n, float b, float *out,
             int oh, int ow, int tw, int m)
{
    float t[4][A][L], yv[4][4][L];
    for (int j = 0; j < A; j++) /* columns */
        at_rows(s->k, mm + j * L, A * L, &t[0][j][0], A * L);
    for (int i = 0; i < m; i++) /* rows */
        at_rows(s->k, &t[i][0][0], L, &yv[i][0][0], L);
    for (int l = 0, run, ty, tx; l < n; l += run) {
        run = tile_run(t0, l, n, tw, &ty, &tx);
        if (m == 2)
            scatter_run(yv, 2, ty, tx, l, run, b, out, oh, ow);
        else
            scatter_run(yv, 4, ty, tx, l, run, b, out, oh, ow);
    }
}

/* One layer's work, in three phases, each split in parts: part p of `parts` does its share. */
typedef struct {
    const cxr_conv_shape *s;
    const float *x, *u, *bias;
    float *y, *V, *M;
    int h, w, oh, ow, th, tw, m, parts, coutp, phase;
    size_t T, tb_n;
} layer_job;

#define share cxr_share

static void
run_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    const layer_job *j = ctx;
    int phase = j->phase;
    const cxr_conv_shape *s = j->s;
    int lo, hi;
    size_t T = j->T, tb_n = j->tb_n;
    if (phase == 0) { /* input transform: V[xi][tb][c] = (B^T d B)[xi], 16 tiles at a time */
        share(s->cin, part, j->parts, &lo, &hi);
        size_t xi_stride = tb_n * s->cin * L;
        /* channels inner: the 36 points' rows are written in address order, 36 streams */
        for (size_t tb = 0; tb < tb_n; tb++)
            for (int c = lo; c < hi; c++) {
                size_t t0 = tb * L;
                input_tiles(s, j->x + (size_t)c * j->h * j->w, j->h, j->w, j->m, j->tw, t0,
                            T - t0 < L ? (int)(T - t0) : L, j->V + (tb * s->cin + c) * L,
                            xi_stride);
            }
    } else if (phase == 1) { /* M[xi] (cout x tiles) = U[xi] (cout x cin) V[xi] (cin x tiles) */
        share(A * A, part, j->parts, &lo, &hi);
        cxr_winograd_products(lo, hi, j->u, j->V, j->M, s->cin, j->coutp, (int)tb_n);
    } else { /* y = A^T M A, plus the bias, for the outputs inside the map */
        share(s->cout, part, j->parts, &lo, &hi);
        for (size_t tb = 0; tb < tb_n; tb++) /* outputs inner: M is read in address order */
            for (int o = lo; o < hi; o++) {
                size_t t0 = tb * L;
                output_tiles(s, j->M + (tb * j->coutp + o) * A * A * L, t0,
                             T - t0 < L ? (int)(T - t0) : L, j->bias ? j->bias[o] : 0.0f,
                             j->y + (size_t)o * j->oh * j->ow, j->oh, j->ow, j->tw, j->m);
            }
    }
}

/* With more than one BLAS thread, the layer runs on that many threads of its own, each of the
 * 36 products on one thread: thin products split well that way. Every output gets the same
 * arithmetic on any thread count. */
void
cxr_winograd_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                     const float *bias, float *y, float *scratch)
{
    layer_job j = {s, x, u, bias, y, NULL, NULL, h, w, 0, 0, 0, 0, tile_out(s->k), 1,
                   padded_cout(s), 0, 0, 0};
    tiles_of(s, h, w, &j.oh, &j.ow, &j.th, &j.tw);
    j.T = (size_t)j.th * j.tw;
    j.tb_n = tile_blocks(j.T);
    j.V = scratch;
    j.M = scratch + (size_t)A * A * s->cin * j.tb_n * L;
    int threads = cxr_blas_get_threads();
    j.parts = threads > 16 ? 16 : threads;
    for (j.phase = 0; j.phase < 3; j.phase++) /* on threads of its own: cxr_threads.h */
        cxr_parallel_parts(j.parts, j.parts, run_part, &j);
}

/* Against a direct convolution in double precision, for both kernel sizes and odd sizes. */
static int
self_test(void)
{
    static const int cases[][5] = {{5, 2, 8, 11, 13}, {3, 1, 9, 10, 9}, {5, 0, 8, 14, 12}};
    int ok = 1;
    for (int n = 0; n < 3 && ok; n++) {
        cxr_conv_shape s = {cases[n][2], 5, cases[n][0], 1, cases[n][1]};
        int h = cases[n][3], w = cases[n][4], k = s.k;
        int oh = cxr_conv_out_size(h, k, 1, s.pad), ow = cxr_conv_out_size(w, k, 1, s.pad);
        float *x = malloc(sizeof(float) * s.cin * h * w);
        float *wt = malloc(sizeof(float) * s.cout * s.cin * k * k);
        float *u = malloc(sizeof(float) * cxr_winograd_weight_floats(&s));
        float *scr = malloc(sizeof(float) * cxr_winograd_scratch_floats(&s, h, w));
        float *y = malloc(sizeof(float) * s.cout * oh * ow), bias[5] = {0.5f, -1, 0, 2, 0.25f};
        if (!x || !wt || !u || !scr || !y) {
            ok = 0;
        } else {
            for (int i = 0; i < s.cin * h * w; i++)
                x[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
            for (int i = 0; i < s.cout * s.cin * k * k; i++)
                wt[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
            cxr_winograd_weights(&s, wt, u);
            cxr_winograd_forward(&s, x, h, w, u, bias, y, scr);
            for (int o = 0; o < s.cout && ok; o++)
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) {
                        double acc = bias[o], mag = fabs(bias[o]);
                        for (int c = 0; c < s.cin; c++)
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++) {
                                    int iy = oy - s.pad + i, ix = ox - s.pad + j;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                        continue;
                                    double p = (double)x[(c * h + iy) * w + ix] *
                                               wt[((o * s.cin + c) * k + i) * k + j];
                                    acc += p;
                                    mag += fabs(p);
                                }
                        if (!(fabs(y[(o * oh + oy) * ow + ox] - acc) <= 1e-5 * mag))
                            ok = 0;
                    }
        }
        free(x), free(wt), free(u), free(scr), free(y);
    }
    return ok;
}

static void
decide(void)
{
    const char *want = getenv("CXR_CONV_PATH");
    if (want && !strcmp(want, "direct")) {
        enabled = 0;
        snprintf(description, sizeof description, "convolution: im2col + sgemm (CXR_CONV_PATH)");
        return;
    }
    enabled = self_test();
    snprintf(description, sizeof description,
             enabled ? "convolution: Winograd F(2x2,5x5) and F(4x4,3x3) for stride-1 layers "
                       "(self-test passed; %s), im2col + sgemm for the others"
                     : "convolution: im2col + sgemm (Winograd failed its self-test; %s)",
             cxr_winograd_products_describe());
}

static atomic_int in_training = 1;

int
cxr_winograd_set_training(int on)
{
    return atomic_exchange(&in_training, on);
}

int
cxr_winograd_in_training(void)
{
    return cxr_winograd_enabled() && atomic_load(&in_training);
}

int
cxr_winograd_enabled(void)
{
    pthread_once(&once, decide);
    return enabled;
}

const char *
cxr_winograd_describe(void)
{
    pthread_once(&once, decide);
    return description;
}

/* Winograd convolution for inference: F(4x4, 5x5) and F(4x4, 3x3), stride 1, any padding.
 *
 * Why: alexnet's conv2 and conv3 are 5x5 and hold 90% of a forward pass's multiplications.
 * F(4x4, 5x5) makes 16 outputs of an 8x8 input tile with 64 multiplications instead of 400, and
 * F(4x4, 3x3) makes 16 of a 6x6 tile with 36 instead of 144. F(4x4, 5x5) uses the
 * interpolation points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity, F(4x4, 3x3) the first five and
 * infinity. The matrices were derived by the Cook-Toom construction (A^T: powers of the points;
 * G: the Lagrange weights; B^T solved from A^T and G) and are checked here against a direct
 * convolution before first use. (F(2x2, 5x5), on 6x6 tiles, took 1.8 times the multiplications
 * of F(4x4, 5x5) on alexnet's maps: docs/decisions.md.)
 *
 * Layout, per image, with P = 64 or 36 points: V[P][tiles/16][cin][16] = B^T d B for each input
 * tile, M[P] = U[P] V[P] as P products (cout x cin times cin x tiles, winograd_products.c), then
 * y = A^T M A for each tile. U[P][cout/8][cin][8] = G g G^T is computed once per model
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
#include "cxr_pointwise.h"
#include "cxr_threads.h"

#define MO 4 /* outputs per tile side, for both kernel sizes */
#define MAX_A 8 /* the largest tile side */
#define MAX_PARTS 16 /* a layer's most threads */

/* F(4, 5), tile side 8: B^T = {{1, 0, -21/4, 0, 21/4, 0, -1, 0},
 * {0, 1, 1, -17/4, -17/4, 1, 1, 0}, {0, -1, 1, 17/4, -17/4, -1, 1, 0},
 * {0, 1/2, 1/4, -5/2, -5/4, 2, 1, 0}, {0, -1/2, 1/4, 5/2, -5/4, -2, 1, 0},
 * {0, 2, 4, -5/2, -5, 1/2, 1, 0}, {0, -2, 4, 5/2, -5, -1/2, 1, 0},
 * {0, -1, 0, 21/4, 0, -21/4, 0, 1}} (bt_eight);
 * A^T = {{1, 1, 1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1/2, -1/2, 0},
 * {0, 1, 1, 4, 4, 1/4, 1/4, 0}, {0, 1, -1, 8, -8, 1/8, -1/8, 1}} (at_rows).
 * G in double: U is rounded to float once, from exact sums as near as double gets. */
static const double G5[8][5] = {
    {1, 0, 0, 0, 0},
    {-2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9, -2.0 / 9},
    {-2.0 / 9, 2.0 / 9, -2.0 / 9, 2.0 / 9, -2.0 / 9},
    {1.0 / 90, 2.0 / 90, 4.0 / 90, 8.0 / 90, 16.0 / 90},
    {1.0 / 90, -2.0 / 90, 4.0 / 90, -8.0 / 90, 16.0 / 90},
    {32.0 / 45, 16.0 / 45, 8.0 / 45, 4.0 / 45, 2.0 / 45},
    {32.0 / 45, -16.0 / 45, 8.0 / 45, -4.0 / 45, 2.0 / 45},
    {0, 0, 0, 0, 1},
};
/* F(4, 3), tile side 6: B^T = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
 * {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}} (bt_six);
 * A^T = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}
 * (at_rows) */
static const double G3[6][3] = {
    {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1},
};

/* input tile side: 8 for 5x5 kernels, 6 for 3x3 */
static int
tile_in(int k)
{
    return MO + k - 1;
}

/* the layer's points, one product each */
static int
points(int k)
{
    return tile_in(k) * tile_in(k);
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
    /* the products have one column per tile: below 16 tiles they are too thin to pay */
    return ((oh + MO - 1) / MO) * ((ow + MO - 1) / MO) >= 16;
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
    *oh = cxr_conv_out_size(h, s->k, 1, s->pad);
    *ow = cxr_conv_out_size(w, s->k, 1, s->pad);
    *th = (*oh + MO - 1) / MO;
    *tw = (*ow + MO - 1) / MO;
}

static size_t part_scratch_floats(const cxr_conv_shape *s, int h, int w);

size_t
cxr_winograd_weight_floats(const cxr_conv_shape *s)
{
    return (size_t)points(s->k) * padded_cout(s) * s->cin;
}

size_t
cxr_winograd_scratch_floats(const cxr_conv_shape *s, int h, int w)
{
    int oh, ow, th, tw;
    tiles_of(s, h, w, &oh, &ow, &th, &tw);
    return (size_t)points(s->k) * tile_blocks((size_t)th * tw) * CXR_WINO_TILES *
               ((size_t)s->cin + padded_cout(s)) +
           MAX_PARTS * part_scratch_floats(s, h, w);
}

/* U for the shape s from weights g(o, c) = weight[o][c] (or, flipped, from the forward layer's
 * weight[c][o] turned by 180 degrees). */
static void
weights_transform(const cxr_conv_shape *s, const float *weight, int flipped, float *u)
{
    int k = s->k, a = tile_in(k);
    const double *G = k == 5 ? &G5[0][0] : &G3[0][0];
    size_t plane = (size_t)padded_cout(s) * s->cin;
    memset(u, 0, sizeof(float) * a * a * plane); /* the padding rows */
    for (int o = 0; o < s->cout; o++)
        for (int c = 0; c < s->cin; c++) {
            double g[25];
            const float *f = flipped ? weight + ((size_t)c * s->cout + o) * k * k
                                     : weight + ((size_t)o * s->cin + c) * k * k;
            for (int i = 0; i < k * k; i++)
                g[i] = f[flipped ? k * k - 1 - i : i];
            double t[MAX_A][5]; /* G g */
            for (int i = 0; i < a; i++)
                for (int j = 0; j < k; j++) {
                    double acc = 0;
                    for (int l = 0; l < k; l++)
                        acc += G[i * k + l] * g[l * k + j];
                    t[i][j] = acc;
                }
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) { /* (G g) G^T */
                    double acc = 0;
                    for (int l = 0; l < k; l++)
                        acc += t[i][l] * G[j * k + l];
                    u[(size_t)(i * a + j) * plane +
                      ((size_t)(o / CXR_WINO_ROWS) * s->cin + c) * CXR_WINO_ROWS +
                      o % CXR_WINO_ROWS] = (float)acc;
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

/* L floats as one value: unaligned, and allowed to alias plain floats. The target clones
 * lower it to their own vector width. */
typedef float lanes __attribute__((vector_size(L * sizeof(float)), aligned(4), may_alias));

/* o = B^T d over a rows of L lanes, row r at d[r], results os floats apart. In whole vectors:
 * the compiler cannot prove that rows a run-time stride apart do not overlap, so a loop over
 * lanes stays scalar. */
static inline __attribute__((always_inline)) void
bt_six(const float *const *d, float *o, size_t os)
{
    lanes v0 = *(const lanes *)d[0], v1 = *(const lanes *)d[1], v2 = *(const lanes *)d[2],
          v3 = *(const lanes *)d[3], v4 = *(const lanes *)d[4], v5 = *(const lanes *)d[5];
    *(lanes *)o = 4 * v0 - 5 * v2 + v4;
    *(lanes *)(o + os) = -4 * v1 - 4 * v2 + v3 + v4;
    *(lanes *)(o + 2 * os) = 4 * v1 - 4 * v2 - v3 + v4;
    *(lanes *)(o + 3 * os) = -2 * v1 - v2 + 2 * v3 + v4;
    *(lanes *)(o + 4 * os) = 2 * v1 - v2 - 2 * v3 + v4;
    *(lanes *)(o + 5 * os) = 4 * v1 - 5 * v3 + v5;
}

static inline __attribute__((always_inline)) void
bt_eight(const float *const *d, float *o, size_t os)
{
    lanes v0 = *(const lanes *)d[0], v1 = *(const lanes *)d[1], v2 = *(const lanes *)d[2],
          v3 = *(const lanes *)d[3], v4 = *(const lanes *)d[4], v5 = *(const lanes *)d[5],
          v6 = *(const lanes *)d[6], v7 = *(const lanes *)d[7];
    *(lanes *)o = v0 - 5.25f * v2 + 5.25f * v4 - v6;
    *(lanes *)(o + os) = v1 + v2 - 4.25f * v3 - 4.25f * v4 + v5 + v6;
    *(lanes *)(o + 2 * os) = -v1 + v2 + 4.25f * v3 - 4.25f * v4 - v5 + v6;
    *(lanes *)(o + 3 * os) = 0.5f * v1 + 0.25f * v2 - 2.5f * v3 - 1.25f * v4 + 2 * v5 + v6;
    *(lanes *)(o + 4 * os) = -0.5f * v1 + 0.25f * v2 + 2.5f * v3 - 1.25f * v4 - 2 * v5 + v6;
    *(lanes *)(o + 5 * os) = 2 * v1 + 4 * v2 - 2.5f * v3 - 5 * v4 + 0.5f * v5 + v6;
    *(lanes *)(o + 6 * os) = -2 * v1 + 4 * v2 + 2.5f * v3 - 5 * v4 - 0.5f * v5 + v6;
    *(lanes *)(o + 7 * os) = -v1 + 5.25f * v3 - 5.25f * v5 + v7;
}

static inline __attribute__((always_inline)) void
bt(const int a, const float *const *d, float *o, size_t os)
{
    if (a == 8)
        bt_eight(d, o, os);
    else
        bt_six(d, o, os);
}

/* o = A^T m over a rows of L lanes (rows ms floats apart): 4 output rows, os floats apart */
static inline __attribute__((always_inline)) void
at_rows(const int a, const float *m, size_t ms, float *o, size_t os)
{
    const float *m0 = m, *m1 = m + ms, *m2 = m + 2 * ms, *m3 = m + 3 * ms, *m4 = m + 4 * ms,
                *m5 = m + 5 * ms;
    if (a == 8) {
        const float *m6 = m + 6 * ms, *m7 = m + 7 * ms;
        LANES_LOOP
        {
            o[l] = m0[l] + m1[l] + m2[l] + m3[l] + m4[l] + m5[l] + m6[l];
            o[os + l] = m1[l] - m2[l] + 2 * (m3[l] - m4[l]) + 0.5f * (m5[l] - m6[l]);
            o[2 * os + l] = m1[l] + m2[l] + 4 * (m3[l] + m4[l]) + 0.25f * (m5[l] + m6[l]);
            o[3 * os + l] = m1[l] - m2[l] + 8 * (m3[l] - m4[l]) + 0.125f * (m5[l] - m6[l]) + m7[l];
        }
    } else {
        LANES_LOOP
        {
            o[l] = m0[l] + m1[l] + m2[l] + m3[l] + m4[l];
            o[os + l] = m1[l] - m2[l] + 2 * (m3[l] - m4[l]);
            o[2 * os + l] = m1[l] + m2[l] + 4 * (m3[l] + m4[l]);
            o[3 * os + l] = m1[l] - m2[l] + 8 * (m3[l] - m4[l]) + m5[l];
        }
    }
}

/* The input transform goes a tile row at a time, whole rows in vectors. A tile starts 4
 * columns after the one before it, so each input row is first split into its 4 phases (column
 * 4 k + r goes to phase r, place k), with the padding as zeros. Then column j of tile tx is
 * place tx + j / 4 of phase j % 4: the 16 tiles of a vector read contiguous floats. The
 * vertical pass B^T d runs on whole split rows, the horizontal one (. B) on 16 tiles at a time:
 * the same sums in the same order as a tile at a time. The results go to a band of tiles in
 * tile order, and from there to V in whole blocks of 16 tiles. */
static size_t
round_up16(size_t n)
{
    return (n + L - 1) / L * L;
}

/* places per phase: whole vectors of tiles, and the place (up to 4 columns) past the last one */
static size_t
phase_places(int tw)
{
    return round_up16((size_t)tw) + L;
}

/* a channel's transformed tiles per point: a vector past the last tile, for the last row's
 * spare lanes */
static size_t
channel_tiles(int th, int tw)
{
    return (size_t)th * tw + L;
}

/* transformed tiles kept per point: a block's first 15 and one row's vectors */
static size_t
band_tiles(int tw)
{
    return round_up16((size_t)tw) + 2 * L;
}

/* input rows under the tiles, from the top padding on */
static int
split_rows(int th, int a)
{
    return th * MO + a - MO;
}

/* one part's floats: for the input transform, the padded input row, the split rows, a
 * transformed rows and a x a bands of tiles; for the output transform, 4 x 4 x the tiles and one
 * interleaved row */
static size_t
part_scratch_floats(const cxr_conv_shape *s, int h, int w)
{
    int oh, ow, th, tw, a = tile_in(s->k);
    tiles_of(s, h, w, &oh, &ow, &th, &tw);
    size_t in = (1 + split_rows(th, a) + a) * (size_t)MO * phase_places(tw) +
                (size_t)a * a * band_tiles(tw);
    size_t out = (size_t)MO * MO * channel_tiles(th, tw) + (size_t)MO * round_up16((size_t)tw);
    return in > out ? in : out;
}

/* Lane selections for __builtin_shufflevector (GCC 12 and clang, which builds the bitcode):
 * lanes 0-15 are the first vector's, 16-31 the second's. */
#define FOURTHS_01 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29
#define FOURTHS_23 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31
#define HALVES_LO 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define HALVES_HI 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define ZIP_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ZIP_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#define SHUFFLE __builtin_shufflevector

/* split[r][k] = row[4 k + r] for k < kw (a multiple of 16), in whole vectors: phases 0 and 1,
 * then 2 and 3, of each pair of vectors; then the pairs joined */
static inline __attribute__((always_inline)) void
split_phases(const float *row, size_t kw, float *split)
{
    for (size_t k = 0; k < kw; k += L) {
        const lanes *v = (const lanes *)(row + MO * k);
        lanes a01 = SHUFFLE(v[0], v[1], FOURTHS_01), a23 = SHUFFLE(v[0], v[1], FOURTHS_23),
              b01 = SHUFFLE(v[2], v[3], FOURTHS_01), b23 = SHUFFLE(v[2], v[3], FOURTHS_23);
        *(lanes *)(split + k) = SHUFFLE(a01, b01, HALVES_LO);
        *(lanes *)(split + kw + k) = SHUFFLE(a01, b01, HALVES_HI);
        *(lanes *)(split + 2 * kw + k) = SHUFFLE(a23, b23, HALVES_LO);
        *(lanes *)(split + 3 * kw + k) = SHUFFLE(a23, b23, HALVES_HI);
    }
}

/* V[xi][tb][c][.] for every tile of channel c; lanes past the last tile are 0 */
static inline __attribute__((always_inline)) void
input_channel_a(const cxr_conv_shape *s, const float *plane, int h, int w, const int a, int th,
                int tw, int c, float *V, size_t xi_stride, float *scratch)
{
    size_t kw = phase_places(tw), rl = (size_t)MO * kw, tw16 = round_up16((size_t)tw);
    size_t band = band_tiles(tw), base = 0; /* out[.][0] is tile `base`, a multiple of 16 */
    int rows = split_rows(th, a); /* the rows the tiles cover, padding included */
    float *padded = scratch, *split = padded + rl, *tr = split + rows * rl, *out = tr + a * rl;
    for (int r = 0; r < rows; r++) { /* split every row once */
        int iy = r - s->pad;
        float *sr = split + (size_t)r * rl;
        if (iy < 0 || iy >= h) {
            memset(sr, 0, sizeof(float) * rl);
            continue;
        }
        size_t lo = (size_t)s->pad, n = (size_t)w;
        if (lo + n > rl)
            n = rl - lo;
        memset(padded, 0, sizeof(float) * lo);
        memcpy(padded + lo, plane + (size_t)iy * w, sizeof(float) * n);
        memset(padded + lo + n, 0, sizeof(float) * (rl - lo - n));
        split_phases(padded, kw, sr);
    }
    for (int ty = 0; ty < th; ty++) {
        const float *d = split + (size_t)ty * MO * rl; /* the tile row's a split rows */
        for (size_t x = 0; x < rl; x += L) { /* vertical: tr = B^T d */
            const float *e[MAX_A];
            for (int j = 0; j < a; j++)
                e[j] = d + j * rl + x;
            bt(a, e, tr + x, rl);
        }
        /* horizontal: out[i][.] = tr[i][.] B; the spare lanes past the row's last tile are
         * overwritten by the next row */
        float *o = out + ((size_t)ty * tw - base);
        for (int i = 0; i < a; i++) {
            const float *t = tr + (size_t)i * rl;
            for (size_t tx = 0; tx < tw16; tx += L) {
                const float *e[MAX_A];
                for (int j = 0; j < a; j++)
                    e[j] = t + (size_t)(j % MO) * kw + (size_t)(j / MO) + tx;
                bt(a, e, o + (size_t)i * a * band + tx, band);
            }
        }
        /* the blocks this row completes go to V; a partial block's tiles move to the front */
        size_t done = (size_t)(ty + 1) * tw;
        if (ty == th - 1) { /* the last block's empty lanes */
            for (int xi = 0; xi < a * a; xi++)
                memset(out + xi * band + (done - base), 0,
                       sizeof(float) * (round_up16(done) - done));
            done = round_up16(done);
        }
        size_t whole = done / L * L;
        for (int xi = 0; xi < a * a; xi++) {
            float *ob = out + xi * band;
            for (size_t tb = base / L; tb < whole / L; tb++)
                *(lanes *)(V + xi * xi_stride + (tb * s->cin + c) * L) =
                    *(const lanes *)(ob + (tb * L - base));
            memmove(ob, ob + (whole - base), sizeof(float) * (done - whole));
        }
        base = whole;
    }
}

/* a a constant in each copy */
CLONES static void
input_channel(const cxr_conv_shape *s, const float *plane, int h, int w, int a, int th, int tw,
              int c, float *V, size_t xi_stride, float *scratch)
{
    if (a == 8)
        input_channel_a(s, plane, h, w, 8, th, tw, c, V, xi_stride, scratch);
    else
        input_channel_a(s, plane, h, w, 6, th, tw, c, V, xi_stride, scratch);
}

/* The output transform mirrors the input one: y = A^T M A for 16 tiles at a time into one
 * buffer per output channel, Y[i][j][tile], then each output row is the 4 rows Y[i][j] of its
 * tile row interleaved (column 4 tx + j is Y[i][j][tx]), plus the bias. */
static inline __attribute__((always_inline)) void
interleave(const float *y, size_t ys, size_t n, float *row)
{
    for (size_t q = 0; q < n; q += L) { /* (y0, y2) and (y1, y3) in pairs, then the pairs */
        lanes y0 = *(const lanes *)(y + q), y1 = *(const lanes *)(y + ys + q);
        lanes y2 = *(const lanes *)(y + 2 * ys + q), y3 = *(const lanes *)(y + 3 * ys + q);
        lanes *r = (lanes *)(row + MO * q);
        lanes a_lo = SHUFFLE(y0, y2, ZIP_LO), a_hi = SHUFFLE(y0, y2, ZIP_HI),
              b_lo = SHUFFLE(y1, y3, ZIP_LO), b_hi = SHUFFLE(y1, y3, ZIP_HI);
        r[0] = SHUFFLE(a_lo, b_lo, ZIP_LO);
        r[1] = SHUFFLE(a_lo, b_lo, ZIP_HI);
        r[2] = SHUFFLE(a_hi, b_hi, ZIP_LO);
        r[3] = SHUFFLE(a_hi, b_hi, ZIP_HI);
    }
}

/* y[o] = A^T M A + b for every tile of output channel o, from M[tb][o][xi][0 .. 16) at mm +
 * tb * tb_stride */
static inline __attribute__((always_inline)) void
output_channel_a(const float *mm, size_t tb_stride, const int a, int th, int tw, float b,
                 float *out, int oh, int ow, float *scratch)
{
    size_t T = (size_t)th * tw, ct = channel_tiles(th, tw), tb_n = tile_blocks(T);
    size_t tw16 = round_up16((size_t)tw);
    float *Y = scratch, *row = Y + (size_t)MO * MO * ct;
    for (size_t tb = 0; tb < tb_n; tb++) {
        float t[MO][MAX_A][L], yv[MO][MO][L];
        const float *mb = mm + tb * tb_stride;
        for (int j = 0; j < a; j++) /* columns */
            at_rows(a, mb + j * L, (size_t)a * L, &t[0][j][0], MAX_A * L);
        for (int i = 0; i < MO; i++) /* rows */
            at_rows(a, &t[i][0][0], L, &yv[i][0][0], L);
        for (int i = 0; i < MO; i++)
            for (int j = 0; j < MO; j++)
                *(lanes *)(Y + (size_t)(i * MO + j) * ct + tb * L) = *(const lanes *)yv[i][j];
    }
    for (int ij = 0; ij < MO * MO; ij++) /* the lanes the last row's vectors read past the tiles */
        memset(Y + ij * ct + tb_n * L, 0, sizeof(float) * (ct - tb_n * L));
    for (int ty = 0; ty < th; ty++)
        for (int i = 0; i < MO && ty * MO + i < oh; i++) {
            interleave(Y + (size_t)i * MO * ct + (size_t)ty * tw, ct, tw16, row);
            float *o = out + (size_t)(ty * MO + i) * ow;
            int x = 0;
            for (; x + L <= ow; x += L)
                *(lanes *)(o + x) = b + *(const lanes *)(row + x);
            for (; x < ow; x++)
                o[x] = b + row[x];
        }
}

CLONES static void
output_channel(const float *mm, size_t tb_stride, int a, int th, int tw, float b, float *out,
               int oh, int ow, float *scratch)
{
    if (a == 8)
        output_channel_a(mm, tb_stride, 8, th, tw, b, out, oh, ow, scratch);
    else
        output_channel_a(mm, tb_stride, 6, th, tw, b, out, oh, ow, scratch);
}

/* One layer's work, in three phases, each split in parts: part p of `parts` does its share. */
typedef struct {
    const cxr_conv_shape *s;
    const float *x, *u, *bias;
    float *y, *V, *M, *rows;
    size_t part_floats;
    int h, w, oh, ow, th, tw, a, parts, coutp, phase;
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
    size_t tb_n = j->tb_n;
    if (phase == 0) { /* input transform: V[xi][tb][c] = (B^T d B)[xi] */
        share(s->cin, part, j->parts, &lo, &hi);
        size_t xi_stride = tb_n * s->cin * L;
        float *scratch = j->rows + (size_t)part * j->part_floats;
        for (int c = lo; c < hi; c++)
            input_channel(s, j->x + (size_t)c * j->h * j->w, j->h, j->w, j->a, j->th, j->tw, c,
                          j->V, xi_stride, scratch);
    } else if (phase == 1) { /* M[xi] (cout x tiles) = U[xi] (cout x cin) V[xi] (cin x tiles) */
        share(j->a * j->a, part, j->parts, &lo, &hi);
        cxr_winograd_products(lo, hi, j->u, j->V, j->M, s->cin, j->coutp, (int)tb_n, j->a * j->a);
    } else { /* y = A^T M A, plus the bias, for the outputs inside the map */
        share(s->cout, part, j->parts, &lo, &hi);
        float *scratch = j->rows + (size_t)part * j->part_floats;
        for (int o = lo; o < hi; o++)
            output_channel(j->M + (size_t)o * j->a * j->a * L, (size_t)j->coutp * j->a * j->a * L,
                           j->a, j->th, j->tw, j->bias ? j->bias[o] : 0.0f,
                           j->y + (size_t)o * j->oh * j->ow, j->oh, j->ow, scratch);
    }
}

/* With more than one BLAS thread, the layer runs on that many threads of its own, each of the
 * products on one thread: thin products split well that way. Every output gets the same
 * arithmetic on any thread count. */
void
cxr_winograd_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                     const float *bias, float *y, float *scratch)
{
    layer_job j = {s, x, u, bias, y, NULL, NULL, NULL, 0, h, w, 0, 0, 0, 0, tile_in(s->k), 1,
                   padded_cout(s), 0, 0, 0};
    tiles_of(s, h, w, &j.oh, &j.ow, &j.th, &j.tw);
    j.T = (size_t)j.th * j.tw;
    j.tb_n = tile_blocks(j.T);
    j.V = scratch;
    j.M = scratch + (size_t)j.a * j.a * s->cin * j.tb_n * L;
    j.rows = j.M + (size_t)j.a * j.a * j.coutp * j.tb_n * L;
    j.part_floats = part_scratch_floats(s, h, w);
    int threads = cxr_blas_get_threads();
    j.parts = threads > MAX_PARTS ? MAX_PARTS : threads;
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
             enabled ? "convolution: Winograd F(4x4,5x5) and F(4x4,3x3) for stride-1 layers "
                       "(self-test passed; %s), %s, im2col + sgemm for the others"
                     : "convolution: im2col + sgemm (Winograd failed its self-test; %s)%s",
             cxr_winograd_products_describe(), enabled ? cxr_pointwise_describe() : "");
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

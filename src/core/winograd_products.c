/* Winograd's products: M[xi] = U[xi] V[xi] for each point xi of a layer (36 or 64), from
 * operands already in the layout this kernel reads (no packing, no copies).
 *
 * Why not sgemm: the products of a layer are thin (conv3 of alexnet: 384 x 192 times 192 x 25
 * tiles) and OpenBLAS packs both operands again for each one; packing and the copies into its
 * layout cost as much as a third of the products themselves. Here the transforms write straight
 * into the layout the register tiles read:
 *   U[xi][cout/8][cin][8]   (rows of 8 output channels, written once per model),
 *   V[xi][tiles/16][cin][16] (blocks of 16 tiles, written by the input transform),
 *   M[tiles/16][cout][xi][16]  (the output transform reads a tile block's points at once).
 * Every output is one sum over cin in channel order, whatever the path's register tile, the
 * thread or the batch, so a score never depends on how the work was split.
 *
 * Paths, chosen once from the CPU's features and checked against a double-precision product
 * before first use: AVX-512 and AVX2 (with FMA), and portable C. They may differ from each other
 * in the last bits (fused multiply-add), never from run to run. */
#include "cxr_winograd.h"

#include "cxr_layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS CXR_WINO_ROWS
#define TILES CXR_WINO_TILES

typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v4 __attribute__((vector_size(4 * sizeof(float))));

#define UNROLL _Pragma("GCC unroll 16")
/* U is read once per tile block pair: for conv3 of alexnet under F(4x4, 5x5) (18.9 MB, 2 blocks)
 * a stream from memory, which the products wait on unless it is asked for this many input
 * channels (2 KB) ahead. */
#define U_AHEAD 64

/* A float in every lane (not 0 + x, which the compiler must compute: 0 + -0 is +0). */
#define SPLAT4(x) {x, x, x, x}
#define SPLAT8(x) {x, x, x, x, x, x, x, x}
#define SPLAT16(x) {x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}

/* One body per instruction set: VT, a vector of the set's width, NV of them per block of 16
 * tiles; a register tile of R output channels x NT tile blocks. A tile at the right edge reads
 * its first block again in place of missing ones and drops those results. */
#define PRODUCTS_BODY(VT, SPLAT, NV, R, NT)                                                               \
    const int VW = TILES / NV;                                                                     \
    int ob_n = coutp / ROWS;                                                                       \
    size_t vstride = lay->v_block, vchan = lay->v_chan, mrow = lay->m_row, mstride = lay->m_block; \
    for (int xi = xi_lo; xi < xi_hi; xi++) {                                                       \
        const float *Ux = U + (size_t)xi * coutp * cin;                                            \
        const float *Vx = V + (size_t)xi * lay->v_point;                                           \
        float *Mx = M + (size_t)xi * lay->m_point;                                                 \
        for (int tb = 0; tb < tb_n; tb += NT) {                                                    \
            int nt = tb_n - tb < NT ? tb_n - tb : NT;                                              \
            const float *vb[NT];                                                                   \
            for (int t = 0; t < NT; t++)                                                           \
                vb[t] = Vx + (size_t)(tb + (t < nt ? t : 0)) * vstride;                            \
            for (int ob = 0; ob < ob_n; ob++)                                                      \
                for (int r0 = 0; r0 < ROWS; r0 += R) {                                             \
                    const float *ub = Ux + (size_t)ob * cin * ROWS + r0;                           \
                    VT acc[R][NT][NV];                                                             \
                    UNROLL for (int r = 0; r < R; r++)                                             \
                        UNROLL for (int t = 0; t < NT; t++)                                        \
                            UNROLL for (int h = 0; h < NV; h++)                                    \
                                acc[r][t][h] = (VT){0};                                            \
                    for (int c = 0; c < cin; c++) {                                                \
                        __builtin_prefetch(ub + (size_t)(c + U_AHEAD) * ROWS);                     \
                        VT vv[NT][NV];                                                             \
                        UNROLL for (int t = 0; t < NT; t++)                                        \
                            UNROLL for (int h = 0; h < NV; h++)                                    \
                                __builtin_memcpy(&vv[t][h], vb[t] + (size_t)c * vchan + h * VW,    \
                                                 sizeof(VT));                                      \
                        UNROLL for (int r = 0; r < R; r++) {                                       \
                            float u1 = ub[(size_t)c * ROWS + r];                                   \
                            VT b = SPLAT(u1);                                                      \
                            UNROLL for (int t = 0; t < NT; t++)                                    \
                                UNROLL for (int h = 0; h < NV; h++)                                \
                                    acc[r][t][h] += b * vv[t][h];                                  \
                        }                                                                          \
                    }                                                                              \
                    for (int t = 0; t < nt; t++)                                                   \
                        UNROLL for (int r = 0; r < R; r++)                                         \
                            UNROLL for (int h = 0; h < NV; h++)                                    \
                                __builtin_memcpy(Mx + (size_t)(tb + t) * mstride +                 \
                                                     (size_t)(ob * ROWS + r0 + r) * mrow + h * VW, \
                                                 &acc[r][t][h], sizeof(VT));                       \
                }                                                                                  \
        }                                                                                          \
    }

typedef void (*products_fn)(int xi_lo, int xi_hi, const float *U, const float *V, float *M,
                            int cin, int coutp, int tb_n, const cxr_products_layout *lay);

/* Portable C: no fused multiply-add, whatever the compiler's default contraction. */
#ifndef __clang__
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
static void
products_portable(int xi_lo, int xi_hi, const float *U, const float *V, float *M, int cin,
                  int coutp, int tb_n, const cxr_products_layout *lay)
{
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    PRODUCTS_BODY(v4, SPLAT4, 4, 2, 1)
}
#ifndef __clang__
#pragma GCC pop_options
#endif

#ifdef CXR_KERNEL_X86
/* 4 channels x 16 tiles: 8 accumulators of 16 registers, 2 loads and 4 broadcasts per 8 FMAs */
__attribute__((target("avx2,fma"), CXR_FUSED)) static void
products_avx2(int xi_lo, int xi_hi, const float *U, const float *V, float *M, int cin, int coutp,
              int tb_n, const cxr_products_layout *lay)
{
    PRODUCTS_BODY(v8, SPLAT8, 2, 4, 1)
}

/* 8 channels x 32 tiles: 16 accumulators of 32 registers, 2 loads and 8 broadcasts per 16 FMAs */
__attribute__((target("avx512f,fma"), CXR_FUSED)) static void
products_avx512(int xi_lo, int xi_hi, const float *U, const float *V, float *M, int cin,
                int coutp, int tb_n, const cxr_products_layout *lay)
{
    PRODUCTS_BODY(v16, SPLAT16, 1, 8, 2)
}
#endif

/* in the order of kernel_paths.c */
static const products_fn path_fn[CXR_KERNEL_PATHS] = {
#ifdef CXR_KERNEL_X86
    products_avx512,
    products_avx2,
#endif
    products_portable,
};

/* Against a double-precision product, on 3 tile blocks (an odd count: the AVX-512 tile's edge)
 * and 2 row blocks, for 2 points. */
static int
self_test(int path)
{
    products_fn fn = path_fn[path];
    enum { XI = 2, CIN = 13, COUTP = 2 * ROWS, TB = 3 };
    static float U[XI * COUTP * CIN], V[XI * TB * CIN * TILES], M[TB * COUTP * XI * TILES];
    for (int i = 0; i < XI * COUTP * CIN; i++)
        U[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
    for (int i = 0; i < XI * TB * CIN * TILES; i++)
        V[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
    memset(M, 0xff, sizeof M); /* NaNs: every output must be written */
    cxr_products_layout lay = cxr_winograd_layout(CIN, COUTP, TB, XI);
    fn(0, XI, U, V, M, CIN, COUTP, TB, &lay);
    for (int xi = 0; xi < XI; xi++)
        for (int tb = 0; tb < TB; tb++)
            for (int o = 0; o < COUTP; o++)
                for (int l = 0; l < TILES; l++) {
                    double s = 0, mag = 0;
                    for (int c = 0; c < CIN; c++) {
                        double p = (double)U[((xi * (COUTP / ROWS) + o / ROWS) * CIN + c) * ROWS +
                                             o % ROWS] *
                                   V[((xi * TB + tb) * CIN + c) * TILES + l];
                        s += p;
                        mag += fabs(p);
                    }
                    float got = M[((tb * COUTP + o) * XI + xi) * TILES + l];
                    if (!(fabs(got - s) <= 1e-6 * mag + 1e-30))
                        return 0;
                }
    return 1;
}

static cxr_kernel_choice choice = CXR_KERNEL_CHOICE("CXR_WINO_PATH", "Winograd products", self_test);

const char *
cxr_winograd_products_describe(void)
{
    return cxr_kernel_choice_describe(&choice);
}

cxr_products_layout
cxr_winograd_layout(int cin, int coutp, int tb_n, int pts)
{
    size_t v_block = (size_t)cin * TILES, m_row = (size_t)pts * TILES;
    return (cxr_products_layout){(size_t)tb_n * v_block, v_block, TILES, TILES, coutp * m_row,
                                 m_row};
}

void
cxr_winograd_products_path(int path, int xi_lo, int xi_hi, const float *U, const float *V,
                           float *M, int cin, int coutp, int tb_n, int pts)
{
    cxr_products_layout lay = cxr_winograd_layout(cin, coutp, tb_n, pts);
    path_fn[path](xi_lo, xi_hi, U, V, M, cin, coutp, tb_n, &lay);
}

void
cxr_winograd_products(int xi_lo, int xi_hi, const float *U, const float *V, float *M, int cin,
                      int coutp, int tb_n, int pts)
{
    cxr_products_layout lay = cxr_winograd_layout(cin, coutp, tb_n, pts);
    path_fn[cxr_kernel_chosen(&choice)](xi_lo, xi_hi, U, V, M, cin, coutp, tb_n, &lay);
}

void
cxr_products_strided(const float *U, const float *V, float *M, int cin, int coutp, int tb_n,
                     const cxr_products_layout *lay)
{
    path_fn[cxr_kernel_chosen(&choice)](0, 1, U, V, M, cin, coutp, tb_n, lay);
}

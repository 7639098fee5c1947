/* Winograd convolution (winograd.c): F(4x4, 5x5) and F(4x4, 3x3), stride 1; inference, and in
 * training the forward pass and the input gradient. */
#ifndef CXR_WINOGRAD_H
#define CXR_WINOGRAD_H

#include "cxr_layers.h"

/* Whether a layer of shape s on an h x w input is computed this way (stride 1, 3x3 or 5x5, at
 * least 8 input channels, a map of at least 16 tiles). */
int cxr_winograd_applies(const cxr_conv_shape *s, int h, int w);
/* Operand layouts of a layer's P products (winograd_products.c; P = 64 points for 5x5 kernels,
 * 36 for 3x3): output channels in rows of CXR_WINO_ROWS, tiles in blocks of CXR_WINO_TILES. */
#define CXR_WINO_ROWS 8
#define CXR_WINO_TILES 16
/* Transformed weights U[P][cout/8][cin][8] (cout rounded up to 8, zero rows) of weight
 * [cout][cin][k][k]. */
size_t cxr_winograd_weight_floats(const cxr_conv_shape *s);
void cxr_winograd_weights(const cxr_conv_shape *s, const float *weight, float *u);
/* The input gradient of a stride-1 layer of shape s (pad at most k - 1) is a stride-1
 * convolution of the output gradient too: cin and cout swapped, the kernel turned by 180
 * degrees, pad k - 1 - pad. Its shape, and its U from the layer's weight [cout][cin][k][k]. */
cxr_conv_shape cxr_winograd_data_gradient_shape(const cxr_conv_shape *s);
void cxr_winograd_data_gradient_weights(const cxr_conv_shape *s, const float *weight, float *u);
/* Scratch for one image. */
size_t cxr_winograd_scratch_floats(const cxr_conv_shape *s, int h, int w);
/* y[cout][oh*ow] = conv(x) + bias (may be NULL), from U. */
void cxr_winograd_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                          const float *bias, float *y, float *scratch);
/* Checked against a direct convolution once; CXR_CONV_PATH=direct turns it off. */
int cxr_winograd_enabled(void);
/* Whether trainers created from now on use it too (on by default). Tests turn it off for a
 * second trainer whose float32 summation order differs: the order-sensitivity of a gradient. */
int cxr_winograd_set_training(int on);
int cxr_winograd_in_training(void);
const char *cxr_winograd_describe(void);

/* M[xi] = U[xi] V[xi] for xi in [xi_lo, xi_hi) of the layer's pts points:
 * U[pts][coutp/8][cin][8], V[pts][tb_n][cin][16], M[tb_n][coutp][pts][16]. The path (AVX-512,
 * AVX2+FMA, portable) is chosen from the CPU once;
 * CXR_WINO_PATH may name another that runs here. */
void cxr_winograd_products(int xi_lo, int xi_hi, const float *U, const float *V, float *M, int cin,
                           int coutp, int tb_n, int pts);
const char *cxr_winograd_products_describe(void);
/* The same register tiles over operands laid out otherwise, for one point: V's block of 16
 * columns tb, row c at V + tb v_block + c v_chan; M's block tb, row o at M + tb m_block +
 * o m_row (pointwise.c reads an input map in place and writes the output map). The Winograd
 * layout above, point xi at V + xi v_point and M + xi m_point, is cxr_winograd_layout's. */
typedef struct {
    size_t v_point, v_block, v_chan, m_point, m_block, m_row;
} cxr_products_layout;
cxr_products_layout cxr_winograd_layout(int cin, int coutp, int tb_n, int pts);
void cxr_products_strided(const float *U, const float *V, float *M, int cin, int coutp, int tb_n,
                          const cxr_products_layout *lay);
/* One path (cxr_kernel_path_name), for tests. */
void cxr_winograd_products_path(int path, int xi_lo, int xi_hi, const float *U, const float *V,
                                float *M, int cin, int coutp, int tb_n, int pts);

#endif

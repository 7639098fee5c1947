/* Winograd convolution for inference (winograd.c): F(2x2, 5x5) and F(4x4, 3x3), stride 1. */
#ifndef CXR_WINOGRAD_H
#define CXR_WINOGRAD_H

#include "cxr_layers.h"

/* Whether a layer of shape s on an h x w input is computed this way (stride 1, 3x3 or 5x5, at
 * least 8 input channels, a map of at least 16 tiles). */
int cxr_winograd_applies(const cxr_conv_shape *s, int h, int w);
/* Transformed weights U (36 x cout x cin floats) of weight [cout][cin][k][k]. */
size_t cxr_winograd_weight_floats(const cxr_conv_shape *s);
void cxr_winograd_weights(const cxr_conv_shape *s, const float *weight, float *u);
/* Scratch for one image. */
size_t cxr_winograd_scratch_floats(const cxr_conv_shape *s, int h, int w);
/* y[cout][oh*ow] = conv(x) + bias (may be NULL), from U. */
void cxr_winograd_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                          const float *bias, float *y, float *scratch);
/* Checked against a direct convolution once; CXR_CONV_PATH=direct turns it off. */
int cxr_winograd_enabled(void);
const char *cxr_winograd_describe(void);

#endif

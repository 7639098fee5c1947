/* 1x1 stride-1 convolutions at inference from weights laid out once per model (pointwise.c). */
#ifndef CXR_POINTWISE_H
#define CXR_POINTWISE_H

#include "cxr_layers.h"

/* Whether a layer of shape s on an h x w input is computed this way (1x1, stride 1, no padding,
 * at least 8 input channels, output channels in whole rows of 8, at least 16 positions), once
 * the layer has passed its self-test against a double-precision product. */
int cxr_pointwise_applies(const cxr_conv_shape *s, int h, int w);
/* Laid-out weights U[cout/8][cin][8] of weight [cout][cin]. */
size_t cxr_pointwise_weight_floats(const cxr_conv_shape *s);
void cxr_pointwise_weights(const cxr_conv_shape *s, const float *weight, float *u);
/* Scratch for one image. */
size_t cxr_pointwise_scratch_floats(const cxr_conv_shape *s, int h, int w);
/* y[cout][h*w] = W x + bias (may be NULL), from U. */
void cxr_pointwise_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *u,
                           const float *bias, float *y, float *scratch);
/* What cxr_kernels() reports of it. */
const char *cxr_pointwise_describe(void);

#endif

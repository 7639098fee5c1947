/* Layer kernels: each a forward/backward pair over plain float buffers (NCHW, row-major).
 * Backward functions accumulate (+=) into parameter gradients and, unless noted, overwrite
 * input gradients. */
#ifndef CXR_LAYERS_H
#define CXR_LAYERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- convolution (im2col + GEMM), one image at a time ---- */
typedef struct {
    int cin, cout, k, stride, pad;
} cxr_conv_shape;

int cxr_conv_out_size(int in, int k, int stride, int pad);
/* Floats of im2col scratch needed for an h x w input. */
size_t cxr_conv_col_floats(const cxr_conv_shape *s, int h, int w);
void cxr_im2col(const float *x, int c, int h, int w, int k, int stride, int pad, float *col);
void cxr_col2im(const float *col, int c, int h, int w, int k, int stride, int pad, float *dx);
/* y[cout][oh*ow] = W[cout][cin*k*k] * im2col(x) + b. bias may be NULL. */
void cxr_conv_forward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                      const float *bias, float *y, float *col);
/* dweight, dbias (each may be NULL: a frozen layer) accumulate; dx (may be NULL) is overwritten. */
void cxr_conv_backward(const cxr_conv_shape *s, const float *x, int h, int w, const float *weight,
                       const float *dy, float *dweight, float *dbias, float *dx, float *col);

/* ---- inference's convolution of a one-channel input (conv_gray.c): the folded first layer
 * from phase planes of the padded image, no im2col; any kernel, stride and padding. The path
 * (AVX-512, AVX2+FMA, portable) is chosen from the CPU once; CXR_CONV_GRAY_PATH may name
 * another that runs here. ---- */
int cxr_conv_gray_applies(const cxr_conv_shape *s, int h, int w);
size_t cxr_conv_gray_scratch_floats(const cxr_conv_shape *s, int h, int w);
/* y[cout][oh*ow] = conv(x[h][w]) + bias (may be NULL), weight[cout][k][k]. */
void cxr_conv_gray_forward(const cxr_conv_shape *s, const float *x, int h, int w,
                           const float *weight, const float *bias, float *y, float *scratch);
const char *cxr_conv_gray_describe(void);
/* One path (cxr_kernel_path_name), for tests. */
void cxr_conv_gray_forward_path(int path, const cxr_conv_shape *s, const float *x, int h, int w,
                                const float *weight, const float *bias, float *y,
                                float *scratch);

/* ---- max pooling, window k, stride s, padding that never wins; argmax (may be NULL) kept
 * for backward ---- */
int cxr_maxpool_out_size(int in, int k, int stride, int pad);
void cxr_maxpool_forward(const float *x, int c, int h, int w, int k, int stride, int pad,
                         float *y, int32_t *argmax);
/* dx (c*h*w) is overwritten. */
void cxr_maxpool_backward(const float *dy, const int32_t *argmax, int c, int h, int w, int oh,
                          int ow, float *dx);

/* ---- adaptive average pooling (PyTorch's window rule) ---- */
void cxr_avgpool_adaptive_forward(const float *x, int c, int h, int w, int oh, int ow, float *y);
void cxr_avgpool_adaptive_backward(const float *dy, int c, int h, int w, int oh, int ow,
                                   float *dx);

/* ---- ReLU ---- */
void cxr_relu_forward(const float *x, float *y, size_t n);
/* q = p * k + t, then ReLU when relu (q may be p). */
void cxr_affine(const float *p, float *q, size_t n, float k, float t, int relu);
/* y = x0 + x1, then ReLU when relu (y may be x0 or x1). */
void cxr_add_forward(const float *x0, const float *x1, float *y, size_t n, int relu);
/* Uses the forward output y, as PyTorch does. In place (dx == dy) is allowed. */
void cxr_relu_backward(const float *y, const float *dy, float *dx, size_t n);

/* ---- BatchNorm2d over a batch laid out n x c x hw ---- */
typedef struct {
    float eps, momentum;
} cxr_bn_config;
/* Training: batch statistics; updates running stats; saves mean and inverse std per channel. */
void cxr_batchnorm_forward_train(const cxr_bn_config *cfg, const float *x, int n, int c, int hw,
                                 const float *gamma, const float *beta, float *running_mean,
                                 float *running_var, float *y, float *save_mean,
                                 float *save_invstd);
/* In place over one image's c x hw map: y = y * scale + shift per channel (the arithmetic of
 * cxr_batchnorm_forward_infer; scale NULL: none), then ReLU when relu. */
void cxr_channel_epilogue(float *y, int c, int hw, const float *scale, const float *shift,
                          int relu);
/* scale and shift of an inference BatchNorm, per channel */
void cxr_batchnorm_affine(const cxr_bn_config *cfg, int c, const float *gamma, const float *beta,
                          const float *running_mean, const float *running_var, float *scale,
                          float *shift);
void cxr_batchnorm_forward_infer(const cxr_bn_config *cfg, const float *x, int n, int c, int hw,
                                 const float *gamma, const float *beta, const float *running_mean,
                                 const float *running_var, float *y);
void cxr_batchnorm_backward_train(const float *x, const float *dy, int n, int c, int hw,
                                  const float *gamma, const float *save_mean,
                                  const float *save_invstd, float *dx, float *dgamma,
                                  float *dbeta); /* dx, dgamma, dbeta may each be NULL */
/* The same for channels [c0, c1) only: channels are independent, so threads may share them. */
void cxr_batchnorm_forward_train_channels(const cxr_bn_config *cfg, const float *x, int n, int c,
                                          int hw, int c0, int c1, const float *gamma,
                                          const float *beta, float *running_mean,
                                          float *running_var, float *y, float *save_mean,
                                          float *save_invstd);
void cxr_batchnorm_backward_train_channels(const float *x, const float *dy, int n, int c, int hw,
                                           int c0, int c1, const float *gamma,
                                           const float *save_mean, const float *save_invstd,
                                           float *dx, float *dgamma, float *dbeta);

/* ---- inverted dropout with a counter-based generator ---- */
/* mask[i] = 0 or 1/(1-p); element i's draw depends only on (seed, i), so it can be reproduced
 * anywhere (the PyTorch reference does). */
void cxr_dropout_mask(uint64_t seed, float p, float *mask, size_t n);
void cxr_dropout_forward(const float *x, const float *mask, float *y, size_t n);
void cxr_dropout_backward(const float *dy, const float *mask, float *dx, size_t n);

/* ---- kernels with several paths (kernel_paths.c): AVX-512 and AVX2 (with FMA) on x86, then
 * portable C, numbered 0 .. CXR_KERNEL_PATHS - 1; each kernel has a function per path ---- */
#if defined(__x86_64__) && defined(__GNUC__)
#define CXR_KERNEL_X86 1
#define CXR_KERNEL_PATHS 3
#else
#define CXR_KERNEL_PATHS 1
#endif
/* Vector paths fuse each multiply-add (ISO C mode would not contract them). Clang (the JIT
 * bitcode PostgreSQL keeps beside the library) has no such attribute. */
#ifdef __clang__
#define CXR_FUSED
#else
#define CXR_FUSED optimize("fp-contract=fast")
#endif
const char *cxr_kernel_path_name(int path);
int cxr_kernel_path_runs_here(int path);
/* A kernel's choice, made once: the first path that runs here and passes(path); the variable
 * env may name another that runs here (tests run every path this way). The description reads
 * "what: name (self-test passed)", or what went wrong. */
typedef struct {
    const char *env, *what;
    int (*passes)(int path);
    pthread_mutex_t lock;
    int chosen; /* -1 until chosen */
    char description[160];
} cxr_kernel_choice;
#define CXR_KERNEL_CHOICE(env, what, passes) \
    {(env), (what), (passes), PTHREAD_MUTEX_INITIALIZER, -1, "not chosen"}
int cxr_kernel_chosen(cxr_kernel_choice *choice);
const char *cxr_kernel_choice_describe(cxr_kernel_choice *choice);

/* ---- fully connected inference over a batch (dot_kernels.c): y[b][o] = bias[o] + x[b] . w[o],
 * each output summed in the same order whatever the batch, so a row's result never depends on
 * the rows beside it. The path (AVX-512, AVX2+FMA, portable) is chosen from the CPU once. ---- */
void cxr_dot_batch(const float *x, int n, int in, int out, const float *w, const float *bias,
                   float *y);
const char *cxr_dot_describe(void);
/* One path (cxr_kernel_path_name), for tests. */
void cxr_dot_batch_path(int path, const float *x, int n, int in, int out, const float *w,
                        const float *bias, float *y);

/* ---- linear: y[n][out] = x[n][in] W^T + b ---- */
void cxr_linear_forward(const float *x, int n, int in, int out, const float *weight,
                        const float *bias, float *y);
void cxr_linear_backward(const float *x, const float *dy, int n, int in, int out,
                         const float *weight, float *dweight, float *dbias, float *dx);

/* ---- attention: features F (d x p), global vector g (d) ---- */
/* alpha = softmax(scale * F^T g) over the p positions; out = F alpha. */
void cxr_attention_forward(const float *f, const float *g, int d, int p, float scale,
                           float *alpha, float *out);
/* df is overwritten, dg accumulates. */
void cxr_attention_backward(const float *f, const float *g, const float *alpha, const float *dout,
                            int d, int p, float scale, float *df, float *dg);

/* ---- output, loss ---- */
float cxr_sigmoid(float z);
/* Mean binary cross-entropy with logits; dlogit[i] = (sigmoid(z_i) - y_i) / n. */
double cxr_bce_with_logits(const float *logit, const float *label, int n, float *dlogit);

/* ---- optimiser ---- */
typedef struct {
    float lr, beta1, beta2, eps;
} cxr_adam_config;
/* One Adam step at step number t (1-based), PyTorch's formulation. */
void cxr_adam_step(const cxr_adam_config *cfg, long t, float *param, const float *grad, float *m,
                   float *v, size_t n);

/* ---- random numbers and initialisation ---- */
uint64_t cxr_splitmix64(uint64_t x);
/* Uniform in [0, 1) with 24 bits, a pure function of (seed, index). */
float cxr_uniform(uint64_t seed, uint64_t index);
void cxr_xavier_uniform(float *w, size_t n, int fan_in, int fan_out, uint64_t seed);

#endif

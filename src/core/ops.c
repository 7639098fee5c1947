/* The op table: for each op of a graph, its shape rule, its buffers, its forward and its
 * backward, written once over the layer kernels (cxr_layers.h). Backward adds into an input's
 * gradient when another consumer wrote it first (acc), so a tensor read twice gets both. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_graph.h"
#include "cxr_interrupt.h"
#include "cxr_pointwise.h"
#include "cxr_threads.h"
#include "cxr_winograd.h"

static const cxr_bn_config bn_cfg = {1e-5f, 0.1f};

static const cxr_node *
input_of(const cxr_model *m, const cxr_node *nd, int k)
{
    return &m->graph->nodes[nd->in[k]];
}

static const cxr_node *
in_node(const cxr_graph *g, const cxr_node *nd, int k)
{
    return &g->nodes[nd->in[k]];
}

/* floats of one image's output */
#define FLOATS(nd) cxr_node_floats(nd)

/* dst = src, or dst += src */
static void
put(float *dst, const float *src, size_t n, int acc)
{
    if (acc)
        for (size_t i = 0; i < n; i++)
            dst[i] += src[i];
    else
        memcpy(dst, src, sizeof(float) * n);
}

static int
same_as_input(cxr_graph *g, cxr_node *nd, char *err)
{
    (void)err;
    const cxr_node *x = in_node(g, nd, 0);
    nd->c = x->c;
    nd->h = x->h;
    nd->w = x->w;
    return 0;
}

/* ---- a batch's images in lanes (cxr_graph.h) ---- */

/* the worker threads only read the flag the calling thread's poll sets */
static int
lane_stopped(int on_caller)
{
    return on_caller ? cxr_interrupt_poll() : cxr_interrupt_requested();
}

/* OpenBLAS's bits for a product depend on how its threads split it. Training runs every product
 * on one BLAS thread: convolutions and attention in lanes, linear layers (a small share of a
 * step) alone; so the thread count changes no bit of a step (test_train_lanes). */
static int
one_blas_thread(void)
{
    int t = cxr_blas_get_threads();
    if (t > 1)
        cxr_blas_set_threads(1);
    return t;
}

static void
restore_blas_threads(int t)
{
    if (t > 1)
        cxr_blas_set_threads(t);
}

/* Runs lane(ctx, lane, on_caller) for each of a's lanes on up to the BLAS thread count of
 * threads; the lanes' sgemm calls then run on their own thread alone. 0, or -1 when
 * interrupted. */
static int
run_lanes(cxr_acts *a, void (*lane)(void *, int, int), void *ctx)
{
    int blas = one_blas_thread();
    cxr_parallel_parts(a->lanes, blas < a->lanes ? blas : a->lanes, lane, ctx);
    restore_blas_threads(blas);
    return cxr_interrupt_requested() ? -1 : 0;
}

/* One op's per-image work: image(j, b, lane) for every image b, each lane on its share. */
typedef struct image_job image_job;
struct image_job {
    cxr_model *m;
    const cxr_node *nd;
    cxr_acts *a;
    const int *acc;
    void (*image)(const image_job *j, int b, int lane);
};

static void
image_lane(void *ctx, int lane, int on_caller)
{
    const image_job *j = ctx;
    int lo, hi;
    cxr_share(j->a->n, lane, j->a->lanes, &lo, &hi);
    for (int b = lo; b < hi && !lane_stopped(on_caller); b++)
        j->image(j, b, lane);
}

static int
each_image(cxr_model *m, const cxr_node *nd, cxr_acts *a, const int *acc,
           void (*image)(const image_job *j, int b, int lane))
{
    image_job j = {m, nd, a, acc, image};
    return run_lanes(a, image_lane, &j);
}

/* ---- input: the gray image into the model's channels ---- */

static int
input_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    (void)err;
    nd->c = g->model->in_channels;
    nd->h = nd->w = g->model->input_size;
    return 0;
}

static void
input_image(const image_job *j, int b, int lane)
{
    (void)lane;
    const cxr_node *nd = j->nd;
    size_t img = (size_t)nd->h * nd->w;
    const float *v = j->a->gray + b * img;
    for (int c = 0; c < nd->c; c++) {
        float *y = j->a->out[0] + ((size_t)b * nd->c + c) * img;
        float mean = j->m->mean[c], std = j->m->std[c];
        for (size_t p = 0; p < img; p++)
            y[p] = (v[p] - mean) / std;
    }
}

static int
input_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    return each_image(m, nd, a, NULL, input_image);
}

/* ---- conv2d ---- */

static cxr_conv_shape
conv_shape_of(const cxr_graph *g, const cxr_node *nd)
{
    const cxr_node *x = in_node(g, nd, 0);
    cxr_conv_shape s = {nd->folded ? 1 : x->c, nd->cout, nd->k, nd->stride, nd->pad};
    return s;
}

static int
conv_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    const cxr_node *x = in_node(g, nd, 0);
    nd->c = nd->cout;
    nd->h = cxr_conv_out_size(x->h, nd->k, nd->stride, nd->pad);
    nd->w = cxr_conv_out_size(x->w, nd->k, nd->stride, nd->pad);
    nd->t_weight = cxr_graph_tensor(g, nd->name, "weight", 1, 4, nd->cout, x->c, nd->k, nd->k);
    if (nd->bias)
        nd->t_bias = cxr_graph_tensor(g, nd->name, "bias", 1, 1, nd->cout, 0, 0, 0);
    if (nd->t_weight < 0 || (nd->bias && nd->t_bias < 0)) {
        snprintf(err, CXR_ERR_LEN, "out of memory describing %s", nd->name);
        return -1;
    }
    return 0;
}

/* Training computes a layer's input gradient the Winograd way where inference would use it (the
 * input gradient is a stride-1 convolution of the output gradient). Its forward pass stays on
 * im2col + sgemm: Winograd's rounding there moves BatchNorm statistics and ReLU masks, and 8
 * steps drift past the PyTorch fixtures' bounds (docs/decisions.md). */
static int
conv_trains_winograd(const cxr_graph *g, const cxr_node *nd)
{
    cxr_conv_shape s = conv_shape_of(g, nd);
    const cxr_node *x = in_node(g, nd, 0);
    return !nd->folded && cxr_winograd_enabled() && cxr_winograd_applies(&s, x->h, x->w) &&
           s.pad <= s.k - 1;
}

/* a trainer whose acts have no prep buffer runs every layer on im2col + sgemm */
static size_t
conv_prep(const cxr_graph *g, const cxr_node *nd)
{
    if (!cxr_winograd_in_training() || !conv_trains_winograd(g, nd))
        return 0;
    cxr_conv_shape s = conv_shape_of(g, nd), d = cxr_winograd_data_gradient_shape(&s);
    return cxr_winograd_weight_floats(&d);
}

static size_t
conv_col(const cxr_graph *g, const cxr_node *nd, int training)
{
    cxr_conv_shape s = conv_shape_of(g, nd);
    const cxr_node *x = in_node(g, nd, 0);
    size_t col = cxr_conv_col_floats(&s, x->h, x->w);
    if (training && conv_trains_winograd(g, nd)) {
        cxr_conv_shape d = cxr_winograd_data_gradient_shape(&s);
        size_t b = cxr_winograd_scratch_floats(&d, nd->h, nd->w);
        col = b > col ? b : col;
    }
    /* a prepared model may run this layer the Winograd way (cxr_model_prepare_inference) */
    if (!training && !nd->folded && cxr_winograd_applies(&s, x->h, x->w)) {
        size_t wino = cxr_winograd_scratch_floats(&s, x->h, x->w);
        col = wino > col ? wino : col;
    }
    if (!training && !nd->folded && cxr_pointwise_applies(&s, x->h, x->w)) {
        size_t pw = cxr_pointwise_scratch_floats(&s, x->h, x->w);
        col = pw > col ? pw : col;
    }
    if (!training && cxr_conv_gray_applies(&s, x->h, x->w)) { /* one input channel */
        size_t gray = cxr_conv_gray_scratch_floats(&s, x->h, x->w);
        col = gray > col ? gray : col;
    }
    return col;
}

/* One conv layer's pass over a batch, shared out in lanes (cxr_graph.h): lane l takes its fixed
 * share of the images, with its own col, scratch and weight-gradient buffers. */
typedef struct {
    cxr_model *m;
    const cxr_node *nd, *x;
    cxr_acts *a;
    cxr_conv_shape s;
    const float *w, *bias;
    const float *u; /* Winograd weights (a->prep) of the input gradient */
    float *dw, *db, *dx;
    size_t in_f, out_f, kk;
    int acc0;
} conv_job;

static void
conv_forward_lane(void *ctx, int lane, int on_caller)
{
    const conv_job *j = ctx;
    cxr_acts *a = j->a;
    int lo, hi;
    cxr_share(a->n, lane, a->lanes, &lo, &hi);
    float *col = a->col + lane * a->col_stride;
    for (int b = lo; b < hi && !lane_stopped(on_caller); b++)
        cxr_conv_forward(&j->s, a->out[j->nd->in[0]] + b * j->in_f, j->x->h, j->x->w, j->w,
                         j->bias, a->out[j->nd - j->m->graph->nodes] + b * j->out_f, col);
}

static void
conv_backward_lane(void *ctx, int lane, int on_caller)
{
    const conv_job *j = ctx;
    cxr_acts *a = j->a;
    int lo, hi, self = (int)(j->nd - j->m->graph->nodes);
    cxr_share(a->n, lane, a->lanes, &lo, &hi);
    float *col = a->col + lane * a->col_stride, *scratch = a->scratch + lane * a->scratch_stride;
    float *dw = NULL, *db = NULL;
    if (j->dw) {
        dw = a->partial + lane * a->partial_stride;
        db = j->db ? dw + j->kk : NULL;
        memset(dw, 0, sizeof(float) * (j->kk + (size_t)j->s.cout));
    }
    for (int b = lo; b < hi && !lane_stopped(on_caller); b++) {
        float *target = j->dx ? (j->acc0 ? scratch : j->dx + b * j->in_f) : NULL;
        const float *xin = a->out[j->nd->in[0]] + b * j->in_f, *dy = a->grad[self] + b * j->out_f;
        if (dw || (target && !j->u))
            cxr_conv_backward(&j->s, xin, j->x->h, j->x->w, j->w, dy, dw, db, j->u ? NULL : target,
                              col);
        if (target && j->u) {
            cxr_conv_shape d = cxr_winograd_data_gradient_shape(&j->s);
            cxr_winograd_forward(&d, dy, j->nd->h, j->nd->w, j->u, NULL, target, col);
        }
        if (target && j->acc0)
            put(j->dx + b * j->in_f, scratch, j->in_f, 1);
    }
}

static int
conv_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    const cxr_node *x = input_of(m, nd, 0);
    cxr_conv_shape s = conv_shape_of(m->graph, nd);
    const float *w = nd->folded ? m->folded : cxr_param(m, nd->t_weight);
    size_t in_f = (size_t)s.cin * x->h * x->w, out_f = FLOATS(nd);
    if (a->lanes > 1) {
        conv_job j = {m, nd, x, a, s, w, cxr_param(m, nd->t_bias), NULL, NULL, NULL, NULL, in_f,
                      out_f, 0, 0};
        return run_lanes(a, conv_forward_lane, &j);
    }
    const float *u = !a->training && m->wino && nd->wino >= 0 ? m->wino + nd->wino : NULL;
    /* a prepared model's folded BatchNorm and ReLU: the conv writes the BatchNorm's buffer */
    int fold = !a->training && nd->fold_to >= 0, relu = !a->training && nd->infer_relu;
    const float *scale = fold ? m->bn_fold + nd->fold_st : NULL;
    float *out = a->out[fold ? nd->fold_to : nd - m->graph->nodes];
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        const float *xin = a->out[nd->in[0]] + b * in_f;
        float *y = out + b * out_f;
        if (u && s.k == 1)
            cxr_pointwise_forward(&s, xin, x->h, x->w, u, cxr_param(m, nd->t_bias), y, a->col);
        else if (u)
            cxr_winograd_forward(&s, xin, x->h, x->w, u, cxr_param(m, nd->t_bias), y, a->col);
        else if (!a->training && cxr_conv_gray_applies(&s, x->h, x->w))
            cxr_conv_gray_forward(&s, xin, x->h, x->w, w, cxr_param(m, nd->t_bias), y, a->col);
        else
            cxr_conv_forward(&s, xin, x->h, x->w, w, cxr_param(m, nd->t_bias), y, a->col);
        if (fold || relu)
            cxr_channel_epilogue(y, nd->c, nd->h * nd->w, scale, fold ? scale + nd->c : NULL,
                                 relu);
    }
    return 0;
}

/* Training only: the lanes' weight and bias gradients are added in lane order, so the sum is the
 * same on any thread count. */
static int
conv_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
              const int *acc)
{
    const cxr_node *x = input_of(m, nd, 0);
    cxr_conv_shape s = conv_shape_of(m->graph, nd);
    const float *w = nd->folded ? m->folded : cxr_param(m, nd->t_weight);
    float *dw = nd->trainable ? cxr_param_grad(m, grad, nd->t_weight) : NULL;
    float *db = nd->trainable ? cxr_param_grad(m, grad, nd->t_bias) : NULL;
    size_t kk = (size_t)s.cout * s.cin * s.k * s.k;
    if (nd->folded && dw) {
        dw = folded_grad;
        memset(dw, 0, sizeof(float) * kk);
    }
    float *dx = x->needs_grad ? a->grad[nd->in[0]] : NULL;
    conv_job j = {m, nd, x, a, s, w, NULL, NULL, dw, db, dx, (size_t)s.cin * x->h * x->w,
                  FLOATS(nd), kk, acc[0]};
    if (dx && a->prep && conv_trains_winograd(m->graph, nd)) {
        cxr_winograd_data_gradient_weights(&s, w, a->prep);
        j.u = a->prep;
    }
    if (run_lanes(a, conv_backward_lane, &j))
        return -1;
    if (dw)
        for (int l = 0; l < a->lanes; l++) {
            const float *pw = a->partial + l * a->partial_stride;
            for (size_t i = 0; i < kk; i++)
                dw[i] += pw[i];
            if (db)
                for (int o = 0; o < s.cout; o++)
                    db[o] += pw[kk + o];
        }
    if (nd->folded && dw) {
        /* every input channel saw the same gray image: each gets the folded gradient */
        const cxr_param_info *t = &m->tensors[nd->t_weight];
        int cin = t->shape[1];
        size_t k2 = (size_t)s.k * s.k;
        float *G = grad + t->offset;
        for (int o = 0; o < s.cout; o++)
            for (int c = 0; c < cin; c++)
                for (size_t i = 0; i < k2; i++)
                    G[((size_t)o * cin + c) * k2 + i] += folded_grad[(size_t)o * k2 + i];
    }
    return 0;
}

/* ---- batchnorm2d ---- */

static int
bn_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    same_as_input(g, nd, err);
    nd->t_weight = cxr_graph_tensor(g, nd->name, "weight", 1, 1, nd->c, 0, 0, 0);
    nd->t_bias = cxr_graph_tensor(g, nd->name, "bias", 1, 1, nd->c, 0, 0, 0);
    nd->t_mean = cxr_graph_tensor(g, nd->name, "running_mean", 0, 1, nd->c, 0, 0, 0);
    nd->t_var = cxr_graph_tensor(g, nd->name, "running_var", 0, 1, nd->c, 0, 0, 0);
    if (nd->t_weight < 0 || nd->t_bias < 0 || nd->t_mean < 0 || nd->t_var < 0) {
        snprintf(err, CXR_ERR_LEN, "out of memory describing %s", nd->name);
        return -1;
    }
    return 0;
}

static size_t
bn_aux(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)g;
    return training ? 2 * (size_t)nd->c : 0; /* batch mean and inverse std, per channel */
}

/* Training BatchNorm shares its channels among the lanes: each channel's statistics are its
 * own, so the split changes no bit. */
typedef struct {
    cxr_model *m;
    const cxr_node *nd;
    cxr_acts *a;
    int backward;
    float *dx;
    float *grad;
} bn_job;

static void
bn_lane(void *ctx, int lane, int on_caller)
{
    const bn_job *j = ctx;
    const cxr_node *nd = j->nd;
    cxr_model *m = j->m;
    cxr_acts *a = j->a;
    int self = (int)(nd - m->graph->nodes), hw = nd->h * nd->w, c0, c1;
    const float *x = a->out[nd->in[0]], *gamma = cxr_param(m, nd->t_weight);
    float *mean = a->aux[self], *invstd = a->aux[self] + nd->c;
    if (lane_stopped(on_caller))
        return;
    cxr_share(nd->c, lane, a->lanes, &c0, &c1);
    if (j->backward)
        cxr_batchnorm_backward_train_channels(x, a->grad[self], a->n, nd->c, hw, c0, c1, gamma,
                                              mean, invstd, j->dx,
                                              cxr_param_grad(m, j->grad, nd->t_weight),
                                              cxr_param_grad(m, j->grad, nd->t_bias));
    else
        cxr_batchnorm_forward_train_channels(
            &bn_cfg, x, a->n, nd->c, hw, c0, c1, gamma, cxr_param(m, nd->t_bias),
            m->params + m->tensors[nd->t_mean].offset, m->params + m->tensors[nd->t_var].offset,
            a->out[self], mean, invstd);
}

static int
bn_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes), hw = nd->h * nd->w;
    const float *x = a->out[nd->in[0]];
    if (!a->training && nd->infer_skip)
        return 0; /* folded into the conv before it */
    /* a frozen BatchNorm keeps its running statistics: it computes as in inference */
    if (a->training && nd->trainable) {
        bn_job j = {m, nd, a, 0, NULL, NULL};
        return run_lanes(a, bn_lane, &j);
    }
    cxr_batchnorm_forward_infer(&bn_cfg, x, a->n, nd->c, hw, cxr_param(m, nd->t_weight),
                                cxr_param(m, nd->t_bias), cxr_param(m, nd->t_mean),
                                cxr_param(m, nd->t_var), a->out[self]);
    return 0;
}

static int
bn_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
            const int *acc)
{
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes), hw = nd->h * nd->w;
    const cxr_node *x = input_of(m, nd, 0);
    float *dx = x->needs_grad ? a->grad[nd->in[0]] : NULL;
    if (dx && acc[0])
        return -1; /* builders never let two nodes read a BatchNorm's input */
    if (nd->trainable) {
        bn_job j = {m, nd, a, 1, dx, grad};
        return run_lanes(a, bn_lane, &j);
    }
    if (!dx)
        return 0;
    /* frozen (running statistics): a per-channel scale */
    const float *gamma = cxr_param(m, nd->t_weight), *var = cxr_param(m, nd->t_var);
    for (int b = 0; b < a->n; b++)
        for (int c = 0; c < nd->c; c++) {
            float k = gamma[c] / sqrtf(var[c] + bn_cfg.eps);
            size_t o = ((size_t)b * nd->c + c) * hw;
            for (int i = 0; i < hw; i++)
                dx[o + i] = k * a->grad[self][o + i];
        }
    return 0;
}

/* ---- relu ---- */

static int
relu_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    if (!a->training && nd->infer_skip)
        return 0; /* done in place by the conv or add before it */
    cxr_relu_forward(a->out[nd->in[0]], a->out[self], a->n * FLOATS(nd));
    return 0;
}

static int
relu_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
              const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    if (!input_of(m, nd, 0)->needs_grad)
        return 0;
    const float *y = a->out[self], *dy = a->grad[self];
    float *dx = a->grad[nd->in[0]];
    size_t n = a->n * FLOATS(nd);
    if (acc[0])
        for (size_t i = 0; i < n; i++)
            dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    else
        cxr_relu_backward(y, dy, dx, n); /* in place when aliased */
    return 0;
}

/* ---- max pooling ---- */

static int
maxpool_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    same_as_input(g, nd, err);
    const cxr_node *x = in_node(g, nd, 0);
    nd->h = cxr_maxpool_out_size(x->h, nd->k, nd->stride, nd->pad);
    nd->w = cxr_maxpool_out_size(x->w, nd->k, nd->stride, nd->pad);
    return 0;
}

static size_t
maxpool_aux(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)g;
    return training ? FLOATS(nd) : 0; /* the winners, as int32 */
}

static void
maxpool_image(const image_job *j, int b, int lane)
{
    (void)lane;
    const cxr_node *nd = j->nd, *x = input_of(j->m, nd, 0);
    int self = (int)(nd - j->m->graph->nodes);
    size_t in_f = FLOATS(x), out_f = FLOATS(nd);
    cxr_maxpool_forward(j->a->out[nd->in[0]] + b * in_f, nd->c, x->h, x->w, nd->k, nd->stride,
                        nd->pad, j->a->out[self] + b * out_f,
                        j->a->aux[self] ? (int32_t *)j->a->aux[self] + b * out_f : NULL);
}

static int
maxpool_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    return each_image(m, nd, a, NULL, maxpool_image);
}

static void
maxpool_grad_image(const image_job *j, int b, int lane)
{
    const cxr_node *nd = j->nd, *x = input_of(j->m, nd, 0);
    cxr_acts *a = j->a;
    int self = (int)(nd - j->m->graph->nodes);
    size_t in_f = FLOATS(x), out_f = FLOATS(nd);
    float *dx = a->grad[nd->in[0]] + b * in_f, *scratch = a->scratch + lane * a->scratch_stride;
    cxr_maxpool_backward(a->grad[self] + b * out_f, (int32_t *)a->aux[self] + b * out_f, nd->c,
                         x->h, x->w, nd->h, nd->w, j->acc[0] ? scratch : dx);
    if (j->acc[0])
        put(dx, scratch, in_f, 1);
}

static int
maxpool_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                 const int *acc)
{
    (void)grad;
    (void)folded_grad;
    if (!input_of(m, nd, 0)->needs_grad)
        return 0;
    return each_image(m, nd, a, acc, maxpool_grad_image);
}

/* ---- adaptive average pooling ---- */

static int
avgpool_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    same_as_input(g, nd, err);
    nd->h = nd->oh;
    nd->w = nd->ow;
    return 0;
}

static int
avgpool_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *x = input_of(m, nd, 0);
    size_t in_f = FLOATS(x), out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        cxr_avgpool_adaptive_forward(a->out[nd->in[0]] + b * in_f, nd->c, x->h, x->w, nd->h,
                                     nd->w, a->out[self] + b * out_f);
    }
    return 0;
}

static int
avgpool_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                 const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *x = input_of(m, nd, 0);
    if (!x->needs_grad)
        return 0;
    size_t in_f = FLOATS(x), out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        float *dx = a->grad[nd->in[0]] + b * in_f;
        cxr_avgpool_adaptive_backward(a->grad[self] + b * out_f, nd->c, x->h, x->w, nd->h, nd->w,
                                      acc[0] ? a->scratch : dx);
        if (acc[0])
            put(dx, a->scratch, in_f, 1);
    }
    return 0;
}

/* ---- add (residual) ---- */

static int
add_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    same_as_input(g, nd, err);
    for (int k = 1; k < nd->n_in; k++) {
        const cxr_node *x = in_node(g, nd, k);
        if (x->c != nd->c || x->h != nd->h || x->w != nd->w) {
            snprintf(err, CXR_ERR_LEN, "%s adds %dx%dx%d to %dx%dx%d", nd->name, x->c, x->h, x->w,
                     nd->c, nd->h, nd->w);
            return -1;
        }
    }
    return 0;
}

static int
add_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    size_t n = a->n * FLOATS(nd);
    const float *x0 = a->out[nd->in[0]], *x1 = a->out[nd->in[1]];
    float *y = a->out[self];
    cxr_add_forward(x0, x1, y, n, !a->training && nd->infer_relu);
    return 0;
}

static int
add_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
             const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    size_t n = a->n * FLOATS(nd);
    for (int k = 0; k < nd->n_in; k++)
        if (input_of(m, nd, k)->needs_grad)
            put(a->grad[nd->in[k]], a->grad[self], n, acc[k]);
    return 0;
}

/* ---- concat along channels ---- */

static int
concat_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    same_as_input(g, nd, err);
    nd->c = 0;
    for (int k = 0; k < nd->n_in; k++) {
        const cxr_node *x = in_node(g, nd, k);
        if (x->h != nd->h || x->w != nd->w) {
            snprintf(err, CXR_ERR_LEN, "%s joins maps of different sizes", nd->name);
            return -1;
        }
        nd->c += x->c;
    }
    return 0;
}

static int
concat_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    size_t out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        size_t at = 0;
        for (int k = 0; k < nd->n_in; k++) {
            size_t f = FLOATS(input_of(m, nd, k));
            memcpy(a->out[self] + b * out_f + at, a->out[nd->in[k]] + b * f, sizeof(float) * f);
            at += f;
        }
    }
    return 0;
}

static int
concat_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    size_t out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        size_t at = 0;
        for (int k = 0; k < nd->n_in; k++) {
            const cxr_node *x = input_of(m, nd, k);
            size_t f = FLOATS(x);
            if (x->needs_grad)
                put(a->grad[nd->in[k]] + b * f, a->grad[self] + b * out_f + at, f, acc[k]);
            at += f;
        }
    }
    return 0;
}

/* ---- flatten ---- */

static int
flatten_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    (void)err;
    const cxr_node *x = in_node(g, nd, 0);
    nd->c = x->c * x->h * x->w;
    nd->h = nd->w = 1;
    return 0;
}

static int
flatten_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    if (!nd->alias)
        memcpy(a->out[self], a->out[nd->in[0]], sizeof(float) * a->n * FLOATS(nd));
    return 0;
}

static int
flatten_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                 const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    if (!nd->alias && input_of(m, nd, 0)->needs_grad)
        put(a->grad[nd->in[0]], a->grad[self], a->n * FLOATS(nd), acc[0]);
    return 0;
}

/* ---- linear ---- */

static int
linear_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    const cxr_node *x = in_node(g, nd, 0);
    int in = x->c * x->h * x->w;
    nd->c = nd->cout;
    nd->h = nd->w = 1;
    nd->t_weight = cxr_graph_tensor(g, nd->name, "weight", 1, 2, nd->cout, in, 0, 0);
    nd->t_bias = cxr_graph_tensor(g, nd->name, "bias", 1, 1, nd->cout, 0, 0, 0);
    if (nd->t_weight < 0 || nd->t_bias < 0) {
        snprintf(err, CXR_ERR_LEN, "out of memory describing %s", nd->name);
        return -1;
    }
    return 0;
}

static int
linear_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    int in = (int)FLOATS(input_of(m, nd, 0));
    if (a->training) {
        int t = one_blas_thread();
        cxr_linear_forward(a->out[nd->in[0]], a->n, in, nd->cout, cxr_param(m, nd->t_weight),
                           cxr_param(m, nd->t_bias), a->out[self]);
        restore_blas_threads(t);
    } else { /* scores that do not depend on their batch */
        cxr_dot_batch(a->out[nd->in[0]], a->n, in, nd->cout, cxr_param(m, nd->t_weight),
                      cxr_param(m, nd->t_bias), a->out[self]);
    }
    return 0;
}

static int
linear_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                const int *acc)
{
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *x = input_of(m, nd, 0);
    int in = (int)FLOATS(x);
    const float *w = cxr_param(m, nd->t_weight), *dy = a->grad[self];
    float *dx = x->needs_grad ? a->grad[nd->in[0]] : NULL;
    int t = one_blas_thread();
    if (nd->trainable)
        cxr_linear_backward(a->out[nd->in[0]], dy, a->n, in, nd->cout, w,
                            cxr_param_grad(m, grad, nd->t_weight),
                            cxr_param_grad(m, grad, nd->t_bias), acc[0] ? NULL : dx);
    if (dx && (acc[0] || !nd->trainable))
        cxr_sgemm(0, 0, a->n, in, nd->cout, 1.0f, dy, nd->cout, w, in, acc[0] ? 1.0f : 0.0f, dx,
                  in);
    restore_blas_threads(t);
    return 0;
}

/* ---- dropout ---- */

static size_t
dropout_aux(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)g;
    return training ? FLOATS(nd) : 0;
}

static int
dropout_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    int self = (int)(nd - m->graph->nodes);
    size_t n = a->n * FLOATS(nd);
    if (!a->training) {
        memcpy(a->out[self], a->out[nd->in[0]], sizeof(float) * n);
        return 0;
    }
    cxr_dropout_mask(seed, nd->p, a->aux[self], n);
    cxr_dropout_forward(a->out[nd->in[0]], a->aux[self], a->out[self], n);
    return 0;
}

static int
dropout_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
                 const int *acc)
{
    (void)grad;
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    if (!input_of(m, nd, 0)->needs_grad)
        return 0;
    size_t n = a->n * FLOATS(nd);
    float *dx = a->grad[nd->in[0]];
    const float *dy = a->grad[self], *mask = a->aux[self];
    if (acc[0])
        for (size_t i = 0; i < n; i++)
            dx[i] += dy[i] * mask[i];
    else
        cxr_dropout_backward(dy, mask, dx, n);
    return 0;
}

/* ---- attention (models.md): alpha = softmax(scale <f_i, g>), out = sum_i alpha_i f_i ---- */

static int
projects(const cxr_node *nd)
{
    return nd->t_weight >= 0;
}

static int
attention_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    const cxr_node *f = in_node(g, nd, 0), *gl = in_node(g, nd, 1);
    if (gl->c != nd->dim || gl->h * gl->w != 1) {
        snprintf(err, CXR_ERR_LEN,
                 "input size %d gives a %dx%d global map for %s; it needs 1x1 (use %d)",
                 g->model->input_size, gl->h, gl->w, g->model->arch->name,
                 g->model->arch->default_input_size);
        return -1;
    }
    nd->c = nd->dim;
    nd->h = nd->w = 1;
    if (f->c != nd->dim) {
        if (!nd->bias) {
            snprintf(err, CXR_ERR_LEN, "%s needs a projection", nd->name);
            return -1;
        }
        nd->t_weight = cxr_graph_tensor(g, nd->name, "weight", 1, 4, nd->dim, f->c, 1, 1);
        if (nd->t_weight < 0) {
            snprintf(err, CXR_ERR_LEN, "out of memory describing %s", nd->name);
            return -1;
        }
    }
    return 0;
}

static size_t
attention_positions(const cxr_graph *g, const cxr_node *nd)
{
    const cxr_node *f = in_node(g, nd, 0);
    return (size_t)f->h * f->w;
}

static size_t
attention_aux(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)training;
    return attention_positions(g, nd); /* alpha: the attention map */
}

static size_t
attention_feat(const cxr_graph *g, const cxr_node *nd)
{
    return projects(nd) ? (size_t)nd->dim * attention_positions(g, nd) : 0;
}

static size_t
attention_col(const cxr_graph *g, const cxr_node *nd)
{
    return (size_t)nd->dim * attention_positions(g, nd); /* backward's feature gradient */
}

static float
attention_scale(const cxr_model *m, const cxr_node *nd)
{
    return m->attention_scaled ? 1.0f / sqrtf((float)nd->dim) : 1.0f;
}

static void
attention_image(const image_job *j, int b, int lane)
{
    (void)lane;
    const cxr_node *nd = j->nd, *fn = input_of(j->m, nd, 0);
    cxr_acts *a = j->a;
    int self = (int)(nd - j->m->graph->nodes);
    int p = (int)attention_positions(j->m->graph, nd), d = nd->dim, cin = fn->c;
    const float *f = a->out[nd->in[0]] + (size_t)b * cin * p;
    if (projects(nd)) {
        float *proj = a->feat[self] + (size_t)b * d * p;
        cxr_sgemm(0, 0, d, p, cin, 1.0f, cxr_param(j->m, nd->t_weight), cin, f, p, 0.0f, proj, p);
        f = proj;
    }
    cxr_attention_forward(f, a->out[nd->in[1]] + (size_t)b * d, d, p, attention_scale(j->m, nd),
                          a->aux[self] + (size_t)b * p, a->out[self] + (size_t)b * d);
}

static int
attention_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    return each_image(m, nd, a, NULL, attention_image);
}

/* Each lane adds its images' projection gradient into its own partial (zeroed at its first
 * image); attention_backward adds the partials in lane order. */
static void
attention_grad_image(const image_job *j, int b, int lane)
{
    const cxr_node *nd = j->nd, *fn = input_of(j->m, nd, 0), *gn = input_of(j->m, nd, 1);
    cxr_acts *a = j->a;
    int self = (int)(nd - j->m->graph->nodes), lo, hi;
    int p = (int)attention_positions(j->m->graph, nd), d = nd->dim, cin = fn->c;
    float *col = a->col + lane * a->col_stride;
    float *dw = nd->trainable && projects(nd) ? a->partial + lane * a->partial_stride : NULL;
    cxr_share(a->n, lane, a->lanes, &lo, &hi);
    if (dw && b == lo)
        memset(dw, 0, sizeof(float) * d * cin);
    float *dg = gn->needs_grad ? a->grad[nd->in[1]] : NULL;
    const float *raw = a->out[nd->in[0]] + (size_t)b * cin * p;
    const float *f = projects(nd) ? a->feat[self] + (size_t)b * d * p : raw;
    float *dx = fn->needs_grad ? a->grad[nd->in[0]] + (size_t)b * cin * p : NULL;
    /* the features' gradient: straight into dx when nothing else wrote it */
    float *df = projects(nd) || j->acc[0] || !dx ? col : dx;
    float *dgb = dg ? dg + (size_t)b * d : col + (size_t)d * p; /* col holds dim*p + d */
    if (dg && !j->acc[1])
        memset(dgb, 0, sizeof(float) * d);
    cxr_attention_backward(f, a->out[nd->in[1]] + (size_t)b * d, a->aux[self] + (size_t)b * p,
                           a->grad[self] + (size_t)b * d, d, p, attention_scale(j->m, nd), df, dgb);
    if (projects(nd)) {
        if (dw)
            cxr_sgemm(0, 1, d, cin, p, 1.0f, df, p, raw, p, 1.0f, dw, cin);
        if (dx)
            cxr_sgemm(1, 0, cin, p, d, 1.0f, cxr_param(j->m, nd->t_weight), cin, df, p,
                      j->acc[0] ? 1.0f : 0.0f, dx, p);
    } else if (dx && df != dx)
        put(dx, df, (size_t)d * p, 1);
}

static int
attention_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad,
                   float *folded_grad, const int *acc)
{
    (void)folded_grad;
    int cin = input_of(m, nd, 0)->c, d = nd->dim;
    if (each_image(m, nd, a, acc, attention_grad_image))
        return -1;
    float *dw = nd->trainable ? cxr_param_grad(m, grad, nd->t_weight) : NULL;
    if (dw && projects(nd))
        for (int l = 0; l < a->lanes; l++) {
            int lo, hi;
            cxr_share(a->n, l, a->lanes, &lo, &hi);
            const float *pw = a->partial + l * a->partial_stride;
            for (size_t i = 0; hi > lo && i < (size_t)d * cin; i++)
                dw[i] += pw[i];
        }
    return 0;
}

static size_t
attention_col_total(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)training;
    return attention_col(g, nd) + nd->dim; /* plus a throwaway dg when g needs none */
}

/* ---- inference fusions of prepared models ---- */

/* Folds every foldable BatchNorm into its conv's epilogue (scale then shift, cout floats each,
 * written to buf) and every in-place ReLU into the conv or add before it; apply 0: counts only.
 * The epilogue does the BatchNorm's own arithmetic, so outputs do not change. Returns the floats
 * the scales and shifts take. */
size_t
cxr_graph_fuse_inference(cxr_model *m, float *buf, int apply)
{
    cxr_graph *g = m->graph;
    size_t total = 0;
    for (int i = 0; i < g->n; i++) {
        cxr_node *nd = &g->nodes[i];
        if (cxr_graph_bn_foldable(g, i)) {
            if (apply) {
                cxr_node *conv = &g->nodes[nd->in[0]];
                cxr_batchnorm_affine(&bn_cfg, nd->c, cxr_param(m, nd->t_weight),
                                     cxr_param(m, nd->t_bias), cxr_param(m, nd->t_mean),
                                     cxr_param(m, nd->t_var), buf + total, buf + total + nd->c);
                conv->fold_to = i;
                conv->fold_st = (long)total;
                nd->infer_skip = 1;
            }
            total += 2 * (size_t)nd->c;
        } else if (apply && nd->op == CXR_OP_RELU && nd->alias) {
            cxr_node *src = &g->nodes[nd->in[0]];
            cxr_node *by = src->op == CXR_OP_BATCHNORM && src->infer_skip ? &g->nodes[src->in[0]]
                           : src->op == CXR_OP_CONV || src->op == CXR_OP_ADD ? src
                                                                               : NULL;
            if (by) {
                by->infer_relu = 1;
                nd->infer_skip = 1;
            }
        }
    }
    return total;
}

void
cxr_graph_unfuse(cxr_graph *g)
{
    for (int i = 0; i < g->n; i++) {
        g->nodes[i].fold_to = -1;
        g->nodes[i].fold_st = -1;
        g->nodes[i].infer_relu = g->nodes[i].infer_skip = 0;
    }
}

const cxr_op_impl cxr_ops[CXR_N_OPS] = {
    [CXR_OP_INPUT] = {"input", input_shape, NULL, NULL, NULL, input_forward, NULL, 0},
    [CXR_OP_CONV] = {"conv", conv_shape, NULL, NULL, conv_col, conv_forward, conv_backward, 0,
                     conv_prep},
    [CXR_OP_BATCHNORM] = {"batchnorm", bn_shape, bn_aux, NULL, NULL, bn_forward, bn_backward, 0},
    [CXR_OP_RELU] = {"relu", same_as_input, NULL, NULL, NULL, relu_forward, relu_backward, 1},
    [CXR_OP_MAXPOOL] = {"maxpool", maxpool_shape, maxpool_aux, NULL, NULL, maxpool_forward,
                        maxpool_backward, 0},
    [CXR_OP_AVGPOOL] = {"avgpool", avgpool_shape, NULL, NULL, NULL, avgpool_forward,
                        avgpool_backward, 0},
    [CXR_OP_ADD] = {"add", add_shape, NULL, NULL, NULL, add_forward, add_backward, 0},
    [CXR_OP_CONCAT] = {"concat", concat_shape, NULL, NULL, NULL, concat_forward, concat_backward,
                       0},
    [CXR_OP_FLATTEN] = {"flatten", flatten_shape, NULL, NULL, NULL, flatten_forward,
                        flatten_backward, 0},
    [CXR_OP_LINEAR] = {"linear", linear_shape, NULL, NULL, NULL, linear_forward, linear_backward,
                       0},
    [CXR_OP_DROPOUT] = {"dropout", same_as_input, dropout_aux, NULL, NULL, dropout_forward,
                        dropout_backward, 0},
    [CXR_OP_ATTENTION] = {"attention", attention_shape, attention_aux, attention_feat,
                          attention_col_total, attention_forward, attention_backward, 0},
};

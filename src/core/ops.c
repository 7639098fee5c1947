/* The op table: for each op of a graph, its shape rule, its buffers, its forward and its
 * backward, written once over the layer kernels (cxr_layers.h). Backward adds into an input's
 * gradient when another consumer wrote it first (acc), so a tensor read twice gets both. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_graph.h"
#include "cxr_interrupt.h"
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

/* ---- input: the gray image into the model's channels ---- */

static int
input_shape(cxr_graph *g, cxr_node *nd, char *err)
{
    (void)err;
    nd->c = g->model->in_channels;
    nd->h = nd->w = g->model->input_size;
    return 0;
}

static int
input_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    size_t img = (size_t)nd->h * nd->w;
    for (int b = 0; b < a->n; b++) {
        const float *v = a->gray + b * img;
        for (int c = 0; c < nd->c; c++) {
            float *y = a->out[0] + ((size_t)b * nd->c + c) * img;
            float mean = m->mean[c], std = m->std[c];
            for (size_t p = 0; p < img; p++)
                y[p] = (v[p] - mean) / std;
        }
    }
    return 0;
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

static size_t
conv_col(const cxr_graph *g, const cxr_node *nd, int training)
{
    cxr_conv_shape s = conv_shape_of(g, nd);
    const cxr_node *x = in_node(g, nd, 0);
    size_t col = cxr_conv_col_floats(&s, x->h, x->w);
    /* a prepared model may run this layer the Winograd way (cxr_model_prepare_inference) */
    if (!training && !nd->folded && cxr_winograd_applies(&s, x->h, x->w)) {
        size_t wino = cxr_winograd_scratch_floats(&s, x->h, x->w);
        col = wino > col ? wino : col;
    }
    if (!training && cxr_conv_gray_applies(&s, x->h, x->w)) { /* one input channel */
        size_t gray = cxr_conv_gray_scratch_floats(&s, x->h, x->w);
        col = gray > col ? gray : col;
    }
    return col;
}

static int
conv_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    const cxr_node *x = input_of(m, nd, 0);
    cxr_conv_shape s = conv_shape_of(m->graph, nd);
    const float *w = nd->folded ? m->folded : cxr_param(m, nd->t_weight);
    size_t in_f = (size_t)s.cin * x->h * x->w, out_f = FLOATS(nd);
    const float *u = !a->training && m->wino && nd->wino >= 0 ? m->wino + nd->wino : NULL;
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        const float *xin = a->out[nd->in[0]] + b * in_f;
        float *y = a->out[nd - m->graph->nodes] + b * out_f;
        if (u)
            cxr_winograd_forward(&s, xin, x->h, x->w, u, cxr_param(m, nd->t_bias), y, a->col);
        else if (!a->training && cxr_conv_gray_applies(&s, x->h, x->w))
            cxr_conv_gray_forward(&s, xin, x->h, x->w, w, cxr_param(m, nd->t_bias), y, a->col);
        else
            cxr_conv_forward(&s, xin, x->h, x->w, w, cxr_param(m, nd->t_bias), y, a->col);
    }
    return 0;
}

static int
conv_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
              const int *acc)
{
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *x = input_of(m, nd, 0);
    cxr_conv_shape s = conv_shape_of(m->graph, nd);
    const float *w = nd->folded ? m->folded : cxr_param(m, nd->t_weight);
    float *dw = nd->trainable ? cxr_param_grad(m, grad, nd->t_weight) : NULL;
    float *db = nd->trainable ? cxr_param_grad(m, grad, nd->t_bias) : NULL;
    size_t kk = (size_t)s.cout * s.k * s.k;
    if (nd->folded && dw) {
        dw = folded_grad;
        memset(dw, 0, sizeof(float) * kk);
    }
    float *dx = x->needs_grad ? a->grad[nd->in[0]] : NULL;
    size_t in_f = (size_t)s.cin * x->h * x->w, out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        float *target = dx ? (acc[0] ? a->scratch : dx + b * in_f) : NULL;
        const float *xin = a->out[nd->in[0]] + b * in_f, *dy = a->grad[self] + b * out_f;
        if (dw || target)
            cxr_conv_backward(&s, xin, x->h, x->w, w, dy, dw, db, target, a->col);
        if (target && acc[0])
            put(dx + b * in_f, a->scratch, in_f, 1);
    }
    if (nd->folded && dw) {
        /* every input channel saw the same gray image: each gets the folded gradient */
        const cxr_param_info *t = &m->tensors[nd->t_weight];
        int cin = t->shape[1];
        size_t k2 = (size_t)s.k * s.k;
        float *G = grad + t->offset;
        for (int o = 0; o < s.cout; o++)
            for (int c = 0; c < cin; c++)
                for (size_t j = 0; j < k2; j++)
                    G[((size_t)o * cin + c) * k2 + j] += folded_grad[(size_t)o * k2 + j];
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

static int
bn_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes), hw = nd->h * nd->w;
    const float *x = a->out[nd->in[0]];
    /* a frozen BatchNorm keeps its running statistics: it computes as in inference */
    if (a->training && nd->trainable)
        cxr_batchnorm_forward_train(&bn_cfg, x, a->n, nd->c, hw, cxr_param(m, nd->t_weight),
                                    cxr_param(m, nd->t_bias),
                                    m->params + m->tensors[nd->t_mean].offset,
                                    m->params + m->tensors[nd->t_var].offset, a->out[self],
                                    a->aux[self], a->aux[self] + nd->c);
    else
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
        cxr_batchnorm_backward_train(a->out[nd->in[0]], a->grad[self], a->n, nd->c, hw,
                                     cxr_param(m, nd->t_weight), a->aux[self],
                                     a->aux[self] + nd->c, dx,
                                     cxr_param_grad(m, grad, nd->t_weight),
                                     cxr_param_grad(m, grad, nd->t_bias));
        return 0;
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

static int
maxpool_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *x = input_of(m, nd, 0);
    size_t in_f = FLOATS(x), out_f = FLOATS(nd);
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        cxr_maxpool_forward(a->out[nd->in[0]] + b * in_f, nd->c, x->h, x->w, nd->k, nd->stride,
                            nd->pad, a->out[self] + b * out_f,
                            a->aux[self] ? (int32_t *)a->aux[self] + b * out_f : NULL);
    }
    return 0;
}

static int
maxpool_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad, float *folded_grad,
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
        cxr_maxpool_backward(a->grad[self] + b * out_f, (int32_t *)a->aux[self] + b * out_f,
                             nd->c, x->h, x->w, nd->h, nd->w, acc[0] ? a->scratch : dx);
        if (acc[0])
            put(dx, a->scratch, in_f, 1);
    }
    return 0;
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
    for (size_t i = 0; i < n; i++)
        y[i] = x0[i] + x1[i];
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
    if (a->training)
        cxr_linear_forward(a->out[nd->in[0]], a->n, in, nd->cout, cxr_param(m, nd->t_weight),
                           cxr_param(m, nd->t_bias), a->out[self]);
    else /* scores that do not depend on their batch */
        cxr_dot_batch(a->out[nd->in[0]], a->n, in, nd->cout, cxr_param(m, nd->t_weight),
                      cxr_param(m, nd->t_bias), a->out[self]);
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
    if (nd->trainable)
        cxr_linear_backward(a->out[nd->in[0]], dy, a->n, in, nd->cout, w,
                            cxr_param_grad(m, grad, nd->t_weight),
                            cxr_param_grad(m, grad, nd->t_bias), acc[0] ? NULL : dx);
    if (dx && (acc[0] || !nd->trainable))
        cxr_sgemm(0, 0, a->n, in, nd->cout, 1.0f, dy, nd->cout, w, in, acc[0] ? 1.0f : 0.0f, dx,
                  in);
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

static int
attention_forward(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t seed)
{
    (void)seed;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *fn = input_of(m, nd, 0);
    int p = (int)attention_positions(m->graph, nd), d = nd->dim, cin = fn->c;
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        const float *f = a->out[nd->in[0]] + (size_t)b * cin * p;
        if (projects(nd)) {
            float *proj = a->feat[self] + (size_t)b * d * p;
            cxr_sgemm(0, 0, d, p, cin, 1.0f, cxr_param(m, nd->t_weight), cin, f, p, 0.0f, proj,
                      p);
            f = proj;
        }
        cxr_attention_forward(f, a->out[nd->in[1]] + (size_t)b * d, d, p,
                              attention_scale(m, nd), a->aux[self] + (size_t)b * p,
                              a->out[self] + (size_t)b * d);
    }
    return 0;
}

static int
attention_backward(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad,
                   float *folded_grad, const int *acc)
{
    (void)folded_grad;
    int self = (int)(nd - m->graph->nodes);
    const cxr_node *fn = input_of(m, nd, 0), *gn = input_of(m, nd, 1);
    int p = (int)attention_positions(m->graph, nd), d = nd->dim, cin = fn->c;
    float *dg = gn->needs_grad ? a->grad[nd->in[1]] : NULL;
    if (dg && !acc[1])
        memset(dg, 0, sizeof(float) * a->n * d);
    float *dw = nd->trainable ? cxr_param_grad(m, grad, nd->t_weight) : NULL;
    for (int b = 0; b < a->n; b++) {
        CXR_STOP_IF_INTERRUPTED();
        const float *raw = a->out[nd->in[0]] + (size_t)b * cin * p;
        const float *f = projects(nd) ? a->feat[self] + (size_t)b * d * p : raw;
        float *dx = fn->needs_grad ? a->grad[nd->in[0]] + (size_t)b * cin * p : NULL;
        /* the features' gradient: straight into dx when nothing else wrote it */
        float *df = projects(nd) || acc[0] || !dx ? a->col : dx;
        float *dgb = dg ? dg + (size_t)b * d : a->col + (size_t)d * p; /* col holds dim*p + d */
        cxr_attention_backward(f, a->out[nd->in[1]] + (size_t)b * d, a->aux[self] + (size_t)b * p,
                               a->grad[self] + (size_t)b * d, d, p, attention_scale(m, nd), df,
                               dgb);
        if (projects(nd)) {
            if (dw)
                cxr_sgemm(0, 1, d, cin, p, 1.0f, df, p, raw, p, 1.0f, dw, cin);
            if (dx)
                cxr_sgemm(1, 0, cin, p, d, 1.0f, cxr_param(m, nd->t_weight), cin, df, p,
                          acc[0] ? 1.0f : 0.0f, dx, p);
        } else if (dx && df != dx)
            put(dx, df, (size_t)d * p, 1);
    }
    return 0;
}

static size_t
attention_col_total(const cxr_graph *g, const cxr_node *nd, int training)
{
    (void)training;
    return attention_col(g, nd) + nd->dim; /* plus a throwaway dg when g needs none */
}

const cxr_op_impl cxr_ops[CXR_N_OPS] = {
    [CXR_OP_INPUT] = {"input", input_shape, NULL, NULL, NULL, input_forward, NULL, 0},
    [CXR_OP_CONV] = {"conv", conv_shape, NULL, NULL, conv_col, conv_forward, conv_backward, 0},
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

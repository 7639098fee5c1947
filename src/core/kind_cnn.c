/* The CNN-graph kind: a model is a graph of named ops (cxr_graph.h) that its architecture's
 * builder produced; inference, attention maps and training steps are the graph's passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_graph.h"
#include "cxr_kind.h"
#include "cxr_pointwise.h"
#include "cxr_winograd.h"

static int
cnn_build(cxr_model *m, char *err)
{
    if (m->input_size < 32) {
        snprintf(err, CXR_ERR_LEN, "input size %d is outside 32..1024", m->input_size);
        return -1;
    }
    cxr_graph *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        return -1;
    }
    m->graph = g;
    g->model = m;
    err[0] = '\0';
    if (m->arch->build(g, m, err) < 0) {
        if (!err[0])
            snprintf(err, CXR_ERR_LEN, "out of memory building %s", m->arch->name);
        return -1;
    }
    if (cxr_graph_finalize(g, err))
        return -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == CXR_OP_ATTENTION)
            m->n_taps++;
    m->taps = malloc(sizeof(int) * (m->n_taps ? m->n_taps : 1));
    m->params = calloc(m->n_params ? m->n_params : 1, sizeof(float));
    if (!m->taps || !m->params) {
        snprintf(err, CXR_ERR_LEN, "out of memory allocating the model");
        return -1;
    }
    int t = 0;
    for (int i = 0; i < g->n; i++) {
        const cxr_node *nd = &g->nodes[i];
        if (nd->op == CXR_OP_ATTENTION)
            m->taps[t++] = nd->layer;
        if (nd->folded) {
            const cxr_param_info *w = &m->tensors[nd->t_weight];
            m->folded = malloc(sizeof(float) * w->shape[0] * w->shape[2] * w->shape[3]);
            if (!m->folded) {
                snprintf(err, CXR_ERR_LEN, "out of memory allocating the model");
                return -1;
            }
        }
    }
    m->infer = cxr_acts_create(m, 1, 0);
    if (!m->infer) {
        snprintf(err, CXR_ERR_LEN, "out of memory allocating the model's workspace");
        return -1;
    }
    return 0;
}

static void
cnn_release(cxr_model *m)
{
    free(m->wino);
    free(m->bn_fold);
    cxr_acts_free(m->infer);
    cxr_graph_free(m->graph);
    free(m->folded);
}

static float
cnn_forward(cxr_model *m, const float *gray)
{
    if (cxr_graph_forward(m, m->infer, gray, 1, 0))
        return NAN;
    return cxr_graph_output(m, m->infer)[0];
}

/* Weights of the fully connected layers: what a pass over several images reads once. */
static size_t
linear_weight_bytes(const cxr_model *m)
{
    const cxr_graph *g = m->graph;
    size_t floats = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == CXR_OP_LINEAR)
            floats += (size_t)g->nodes[i].cout * cxr_node_floats(&g->nodes[g->nodes[i].in[0]]);
    return floats * sizeof(float);
}

/* Below this, the fully connected layers' weights stay in cache from image to image, and a
 * pass over many images only loses the single image's cache locality: alexnet_attn2 took 13.9
 * ms an image in passes of 32 against 9.1 alone (bench/run.sh), so such networks take their
 * images one at a time. */
#define BATCH_MIN_LINEAR_BYTES ((size_t)4 << 20)

/* The most images of a batch that one pass takes: at most CXR_BATCH_IMAGES, in a workspace of
 * at most CXR_BATCH_WORKSPACE_BYTES (at least one image, whatever its workspace); one where
 * the fully connected layers are small. */
static int
batch_chunk(const cxr_model *m, int n)
{
    if (linear_weight_bytes(m) < BATCH_MIN_LINEAR_BYTES)
        return 1;
    int lo = 1, hi = n < CXR_BATCH_IMAGES ? n : CXR_BATCH_IMAGES;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cxr_acts_bytes(m, mid, 0) <= CXR_BATCH_WORKSPACE_BYTES)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* One image at a time runs in the model's own single-image workspace (m->infer, as
 * cnn_forward does), which costs nothing more. */
static size_t
cnn_batch_bytes(const cxr_model *m, int n)
{
    int chunk = batch_chunk(m, n);
    return chunk == 1 ? 0 : cxr_acts_bytes(m, chunk, 0);
}

static int
cnn_forward_batch(cxr_model *m, const float *gray, int n, float *logits)
{
    int chunk = batch_chunk(m, n);
    cxr_acts *a = chunk == 1 ? m->infer : cxr_acts_create(m, chunk, 0);
    if (!a)
        return -2;
    size_t img = (size_t)m->input_size * m->input_size;
    int rc = 0;
    for (int i = 0; i < n && !rc; i += chunk) {
        int c = n - i < chunk ? n - i : chunk;
        rc = cxr_graph_forward(m, a, gray + i * img, c, 0);
        if (!rc)
            memcpy(logits + i, cxr_graph_output(m, a), sizeof(float) * c);
    }
    if (a != m->infer)
        cxr_acts_free(a);
    return rc;
}

/* The convolutions a prepared model runs from laid-out weights (Winograd, or 1x1 on the same
 * products: pointwise.c), and those weights' floats. */
static size_t
winograd_layout(cxr_model *m, int assign)
{
    size_t total = 0;
    if (!cxr_winograd_enabled())
        return 0;
    for (int i = 0; i < m->graph->n; i++) {
        cxr_node *nd = &m->graph->nodes[i];
        if (nd->op != CXR_OP_CONV || nd->folded)
            continue;
        const cxr_node *x = &m->graph->nodes[nd->in[0]];
        cxr_conv_shape s = {x->c, nd->cout, nd->k, nd->stride, nd->pad};
        int pointwise = cxr_pointwise_applies(&s, x->h, x->w);
        if (!pointwise && !cxr_winograd_applies(&s, x->h, x->w))
            continue;
        if (assign)
            nd->wino = (long)total;
        total += pointwise ? cxr_pointwise_weight_floats(&s) : cxr_winograd_weight_floats(&s);
    }
    return total;
}

static void
cnn_unprepare(cxr_model *m)
{
    free(m->wino);
    m->wino = NULL;
    free(m->bn_fold);
    m->bn_fold = NULL;
    cxr_graph_unfuse(m->graph);
    for (int i = 0; i < m->graph->n; i++)
        m->graph->nodes[i].wino = -1;
}

static size_t
cnn_prepared_bytes(const cxr_model *m)
{
    return sizeof(float) * (winograd_layout((cxr_model *)m, 0) +
                            cxr_graph_fuse_inference((cxr_model *)m, NULL, 0));
}

static int
cnn_prepare(cxr_model *m)
{
    cnn_unprepare(m);
    size_t folds = cxr_graph_fuse_inference(m, NULL, 0);
    if (folds && !(m->bn_fold = malloc(sizeof(float) * folds)))
        return -1;
    cxr_graph_fuse_inference(m, m->bn_fold, 1);
    size_t total = winograd_layout(m, 0);
    if (!total)
        return 0;
    m->wino = malloc(sizeof(float) * total);
    if (!m->wino) {
        cnn_unprepare(m);
        return -1;
    }
    winograd_layout(m, 1);
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        if (nd->wino < 0)
            continue;
        const cxr_node *x = &m->graph->nodes[nd->in[0]];
        cxr_conv_shape s = {x->c, nd->cout, nd->k, nd->stride, nd->pad};
        if (cxr_pointwise_applies(&s, x->h, x->w))
            cxr_pointwise_weights(&s, cxr_param(m, nd->t_weight), m->wino + nd->wino);
        else
            cxr_winograd_weights(&s, cxr_param(m, nd->t_weight), m->wino + nd->wino);
    }
    return 0;
}

static const float *
cnn_attention(const cxr_model *m, int layer)
{
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        if (nd->op == CXR_OP_ATTENTION && nd->layer == layer)
            return m->infer->aux[i];
    }
    return NULL;
}

static int
cnn_attention_side(const cxr_model *m, int layer)
{
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        if (nd->op == CXR_OP_ATTENTION && nd->layer == layer)
            return m->graph->nodes[nd->in[0]].h;
    }
    return 0;
}

static size_t
folded_floats(const cxr_model *m)
{
    for (int i = 0; m->folded && i < m->graph->n; i++)
        if (m->graph->nodes[i].folded) {
            const cxr_param_info *w = &m->tensors[m->graph->nodes[i].t_weight];
            return (size_t)w->shape[0] * w->shape[2] * w->shape[3];
        }
    return 0;
}

static size_t
cnn_workspace_bytes(const cxr_model *m)
{
    return m->infer->floats * sizeof(float) + sizeof(float) * folded_floats(m);
}

static void
cnn_trainable_changed(cxr_model *m)
{
    cxr_graph_mark_trainable(m->graph);
}

static size_t
cnn_trainer_bytes(const cxr_model *m, int max_batch)
{
    return cxr_acts_bytes(m, max_batch > 0 ? max_batch : 0, 1) +
           sizeof(float) * (folded_floats(m) + 1);
}

static int
cnn_trainer_init(cxr_trainer *t)
{
    t->folded_grad = calloc(folded_floats(t->model) + 1, sizeof(float));
    t->acts = cxr_acts_create(t->model, t->max_batch, 1);
    return t->folded_grad && t->acts ? 0 : -1;
}

static void
cnn_trainer_release(cxr_trainer *t)
{
    free(t->folded_grad);
    cxr_acts_free(t->acts);
}

static double
cnn_train_step(cxr_trainer *t, const float *images, const float *labels, int n,
               uint64_t dropout_seed, float *logits)
{
    cxr_model *m = t->model;
    cxr_acts *a = t->acts;
    if (cxr_graph_forward(m, a, images, n, dropout_seed))
        return NAN;
    int last = m->graph->n - 1;
    double loss = cxr_bce_with_logits(a->out[last], labels, n, a->grad[last]);
    if (logits)
        memcpy(logits, a->out[last], sizeof(float) * n);
    if (cxr_graph_backward(m, a, t->grads, t->folded_grad))
        return NAN; /* gradients partial: the caller must not apply Adam */
    return loss;
}

const cxr_model_kind cxr_kind_cnn = {
    .name = "cnn",
    .load = cxr_param_model_load,
    .save = cxr_param_model_save,
    .clone = cxr_param_model_clone,
    .build = cnn_build,
    .release = cnn_release,
    .forward = cnn_forward,
    .forward_batch = cnn_forward_batch,
    .batch_bytes = cnn_batch_bytes,
    .prepare = cnn_prepare,
    .prepared_bytes = cnn_prepared_bytes,
    .unprepare = cnn_unprepare,
    .attention = cnn_attention,
    .attention_side = cnn_attention_side,
    .workspace_bytes = cnn_workspace_bytes,
    .trainable_changed = cnn_trainable_changed,
    .trainer_bytes = cnn_trainer_bytes,
    .trainer_init = cnn_trainer_init,
    .trainer_release = cnn_trainer_release,
    .train_step = cnn_train_step,
};

/* An architecture names its kind; graphs are the default. */
const cxr_model_kind *
cxr_kind_of(const cxr_arch *a)
{
    return a->kind ? a->kind : &cxr_kind_cnn;
}

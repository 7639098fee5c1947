/* The generic passes over a network graph: building, shape inference and the parameter table,
 * the activation arena, forward and backward. No architecture is known here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_graph.h"
#include "cxr_interrupt.h"

/* ---- building ---- */

static int
new_node(cxr_graph *g, const char *name, cxr_op op, const int *in, int n_in)
{
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        cxr_node *nodes = realloc(g->nodes, sizeof *nodes * cap);
        if (!nodes)
            return -1;
        g->nodes = nodes;
        g->cap = cap;
    }
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= g->n)
            return -1; /* a failed earlier call, or not yet built */
    cxr_node *nd = &g->nodes[g->n];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    nd->t_weight = nd->t_bias = nd->t_mean = nd->t_var = -1;
    nd->wino = -1;
    nd->fold_to = -1;
    nd->fold_st = -1;
    char auto_name[32];
    if (!name) {
        snprintf(auto_name, sizeof auto_name, "%s%d", cxr_ops[op].name, g->n);
        name = auto_name;
    }
    nd->name = strdup(name);
    nd->in = malloc(sizeof(int) * (n_in ? n_in : 1));
    if (!nd->name || !nd->in) {
        free(nd->name);
        free(nd->in);
        return -1;
    }
    if (n_in)
        memcpy(nd->in, in, sizeof(int) * n_in);
    nd->n_in = n_in;
    return g->n++;
}

int
cxr_graph_input(cxr_graph *g)
{
    return new_node(g, "input", CXR_OP_INPUT, NULL, 0);
}

int
cxr_graph_conv(cxr_graph *g, const char *name, int in, int cout, int k, int stride, int pad,
               int bias)
{
    int i = new_node(g, name, CXR_OP_CONV, &in, 1);
    if (i >= 0) {
        cxr_node *nd = &g->nodes[i];
        nd->cout = cout;
        nd->k = k;
        nd->stride = stride;
        nd->pad = pad;
        nd->bias = bias;
    }
    return i;
}

int
cxr_graph_batchnorm(cxr_graph *g, const char *name, int in)
{
    return new_node(g, name, CXR_OP_BATCHNORM, &in, 1);
}

int
cxr_graph_relu(cxr_graph *g, int in)
{
    return new_node(g, NULL, CXR_OP_RELU, &in, 1);
}

int
cxr_graph_maxpool(cxr_graph *g, int in, int k, int stride, int pad)
{
    int i = new_node(g, NULL, CXR_OP_MAXPOOL, &in, 1);
    if (i >= 0) {
        g->nodes[i].k = k;
        g->nodes[i].stride = stride;
        g->nodes[i].pad = pad;
    }
    return i;
}

int
cxr_graph_avgpool(cxr_graph *g, int in, int oh, int ow)
{
    int i = new_node(g, NULL, CXR_OP_AVGPOOL, &in, 1);
    if (i >= 0) {
        g->nodes[i].oh = oh;
        g->nodes[i].ow = ow;
    }
    return i;
}

int
cxr_graph_add(cxr_graph *g, int a, int b)
{
    int in[2] = {a, b};
    return new_node(g, NULL, CXR_OP_ADD, in, 2);
}

int
cxr_graph_concat(cxr_graph *g, const int *in, int n_in)
{
    return new_node(g, NULL, CXR_OP_CONCAT, in, n_in);
}

int
cxr_graph_flatten(cxr_graph *g, int in)
{
    return new_node(g, NULL, CXR_OP_FLATTEN, &in, 1);
}

int
cxr_graph_linear(cxr_graph *g, const char *name, int in, int cout)
{
    int i = new_node(g, name, CXR_OP_LINEAR, &in, 1);
    if (i >= 0) {
        g->nodes[i].cout = cout;
        g->nodes[i].bias = 1;
    }
    return i;
}

int
cxr_graph_dropout(cxr_graph *g, int in, float p)
{
    int i = new_node(g, NULL, CXR_OP_DROPOUT, &in, 1);
    if (i >= 0)
        g->nodes[i].p = p;
    return i;
}

int
cxr_graph_attention(cxr_graph *g, int features, int global, int dim, int layer,
                    const char *proj_name)
{
    int in[2] = {features, global};
    char name[32];
    snprintf(name, sizeof name, "attention%d", layer);
    int i = new_node(g, proj_name ? proj_name : name, CXR_OP_ATTENTION, in, 2);
    if (i >= 0) {
        g->nodes[i].dim = dim;
        g->nodes[i].layer = layer;
        g->nodes[i].bias = proj_name != NULL; /* marks the projection */
    }
    return i;
}

int
cxr_graph_tensor(cxr_graph *g, const char *module, const char *field, int trainable, int ndim,
                 int d0, int d1, int d2, int d3)
{
    cxr_model *m = g->model;
    cxr_param_info *t = realloc(m->tensors, sizeof *t * (m->n_tensors + 1));
    if (!t)
        return -1;
    m->tensors = t;
    t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    size_t len = strlen(module) + strlen(field) + 2;
    t->name = malloc(len);
    if (!t->name)
        return -1;
    snprintf(t->name, len, "%s.%s", module, field);
    int dims[4] = {d0, d1, d2, d3};
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        t->numel *= (size_t)dims[i];
    }
    t->trainable = trainable;
    return m->n_tensors++;
}

size_t
cxr_node_floats(const cxr_node *nd)
{
    return (size_t)nd->c * nd->h * nd->w;
}

/* ---- finalising ---- */

int
cxr_graph_finalize(cxr_graph *g, char *err)
{
    cxr_model *m = g->model;
    if (g->n < 2 || g->nodes[0].op != CXR_OP_INPUT) {
        snprintf(err, CXR_ERR_LEN, "a network must start with its input");
        return -1;
    }
    for (int i = 0; i < g->n; i++) {
        cxr_node *nd = &g->nodes[i];
        if (cxr_ops[nd->op].shape(g, nd, err))
            return -1;
        if (nd->c < 1 || nd->h < 1 || nd->w < 1) {
            snprintf(err, CXR_ERR_LEN, "input size %d is too small for %s (%s is empty)",
                     m->input_size, m->arch->name, nd->name);
            return -1;
        }
        for (int k = 0; k < nd->n_in; k++)
            g->nodes[nd->in[k]].consumers++;
    }
    cxr_node *out = &g->nodes[g->n - 1];
    if (cxr_node_floats(out) != 1) {
        snprintf(err, CXR_ERR_LEN, "%s must end in one logit", m->arch->name);
        return -1;
    }
    /* trainable tensors first, each group in the order the nodes declared them */
    m->n_params = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].trainable == pass) {
                m->tensors[i].offset = m->n_params;
                m->n_params += m->tensors[i].numel;
                if (pass)
                    m->n_trainable = m->n_params;
            }
    for (int i = 0; i < g->n; i++) {
        cxr_node *nd = &g->nodes[i];
        const cxr_node *src = nd->n_in ? &g->nodes[nd->in[0]] : NULL;
        /* in place where nothing else reads the input and backward does not need it */
        if (nd->op == CXR_OP_FLATTEN)
            nd->alias = src->consumers == 1;
        else if (nd->op == CXR_OP_RELU)
            nd->alias = src->consumers == 1 && src->op != CXR_OP_INPUT &&
                        !cxr_ops[src->op].kept_output;
    }
    cxr_graph_mark_trainable(g);
    /* identical gray channels: the first conv reads one channel with its weights summed */
    int same = 1;
    for (int c = 1; c < m->in_channels; c++)
        same &= m->mean[c] == m->mean[0] && m->std[c] == m->std[0];
    cxr_node *first = NULL;
    for (int i = 1; i < g->n; i++)
        if (g->nodes[i].n_in && g->nodes[i].in[0] == 0)
            first = &g->nodes[i];
    if (same && g->nodes[0].consumers == 1 && first && first->op == CXR_OP_CONV) {
        first->folded = 1;
        g->nodes[0].c = 1;
    }
    return 0;
}

static int
trains(const cxr_model *m, int t)
{
    return t >= 0 && m->tensors[t].trainable && !m->tensors[t].frozen;
}

void
cxr_graph_mark_trainable(cxr_graph *g)
{
    for (int i = 0; i < g->n; i++) {
        cxr_node *nd = &g->nodes[i];
        nd->trainable = trains(g->model, nd->t_weight) || trains(g->model, nd->t_bias);
        /* an output needs its gradient where this node or one before it trains */
        nd->needs_grad = nd->trainable;
        for (int k = 0; k < nd->n_in; k++)
            nd->needs_grad |= g->nodes[nd->in[k]].needs_grad;
    }
}

void
cxr_graph_free(cxr_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].in);
    }
    free(g->nodes);
    free(g);
}

/* ---- the arena ---- */

/* A buffer and the steps during which it must hold its values (inclusive). */
typedef struct {
    size_t size, offset;
    int first, last;
    float **slot; /* where the pointer goes */
} span;

static size_t
rounded(size_t floats)
{
    return (floats + 15) & ~(size_t)15; /* 64-byte alignment */
}

/* First fit: each buffer at the lowest offset free for its whole lifetime. */
static size_t
place(span *s, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < i; j++)
                if (s[j].first <= s[i].last && s[i].first <= s[j].last &&
                    s[j].offset < off + s[i].size && off < s[j].offset + s[j].size) {
                    off = s[j].offset + s[j].size;
                    moved = 1;
                }
        }
        s[i].offset = off;
        if (off + s[i].size > total)
            total = off + s[i].size;
    }
    return total;
}

/* A BatchNorm that only follows a conv may be folded into it (prepared models): the conv then
 * writes the BatchNorm's buffer, so in inference that buffer is live from the conv on. */
int
cxr_graph_bn_foldable(const cxr_graph *g, int i)
{
    const cxr_node *nd = &g->nodes[i];
    return nd->op == CXR_OP_BATCHNORM && g->nodes[nd->in[0]].op == CXR_OP_CONV &&
           g->nodes[nd->in[0]].consumers == 1;
}

static int
root(const cxr_graph *g, int i)
{
    while (g->nodes[i].alias)
        i = g->nodes[i].in[0];
    return i;
}

/* Lays out a's buffers (a->arena NULL: counts only). Inference reuses an output's memory once
 * its last reader has run; training keeps every output for backward and reuses gradient
 * memory in backward's order. Returns the arena's floats, or 0 when out of memory. */
static size_t
layout(const cxr_model *m, cxr_acts *a)
{
    const cxr_graph *g = m->graph;
    int N = g->n, tr = a->training, ns = 0;
    size_t n = (size_t)a->n;
    span *s = calloc((size_t)4 * N + 4, sizeof *s);
    int *last = malloc(sizeof(int) * N);
    if (!s || !last) {
        free(s);
        free(last);
        return 0;
    }
    size_t col = 0, scratch = 0, partial = 0, prep = 0;
    for (int i = 0; i < N; i++) {
        const cxr_node *nd = &g->nodes[i];
        last[i] = i == N - 1 ? N : i;
        for (int k = 0; k < nd->n_in; k++) {
            int r = root(g, nd->in[k]);
            if (i > last[r])
                last[r] = i;
        }
        if (nd->alias && i > last[root(g, i)])
            last[root(g, i)] = i;
        size_t c = cxr_ops[nd->op].col_floats ? cxr_ops[nd->op].col_floats(g, nd, tr) : 0;
        col = c > col ? c : col;
        if (tr && nd->consumers > 1 && cxr_node_floats(nd) > scratch)
            scratch = cxr_node_floats(nd);
        size_t pf = tr && cxr_ops[nd->op].prep_floats ? cxr_ops[nd->op].prep_floats(g, nd) : 0;
        prep = pf > prep ? pf : prep;
        /* lanes' weight gradients: conv weights and biases, attention projections */
        if (tr && (nd->op == CXR_OP_CONV || nd->op == CXR_OP_ATTENTION) && nd->t_weight >= 0) {
            size_t p = m->tensors[nd->t_weight].numel +
                       (nd->op == CXR_OP_CONV ? (size_t)nd->cout : 0);
            partial = p > partial ? p : partial;
        }
    }
    /* a batch of one gains nothing from four lanes' buffers */
    a->lanes = !tr || a->n < 1 ? 1 : a->n < CXR_TRAIN_LANES ? a->n : CXR_TRAIN_LANES;
    a->col_stride = rounded(col);
    a->scratch_stride = rounded(scratch);
    a->partial_stride = rounded(partial);
    for (int i = 0; i < N; i++) {
        const cxr_node *nd = &g->nodes[i];
        if (!nd->alias)
            s[ns++] = (span){rounded(n * cxr_node_floats(nd)), 0,
                             tr ? 0 : cxr_graph_bn_foldable(g, i) ? nd->in[0] : i,
                             tr ? 2 * N : last[i], &a->out[i]};
        size_t aux = cxr_ops[nd->op].aux_floats ? cxr_ops[nd->op].aux_floats(g, nd, tr) : 0;
        /* attention weights outlive the forward pass: they are the maps a caller reads */
        int keep = tr || nd->op == CXR_OP_ATTENTION;
        if (aux)
            s[ns++] = (span){rounded(nd->op == CXR_OP_BATCHNORM ? aux : n * aux), 0,
                             keep ? 0 : i, keep ? 2 * N : i, &a->aux[i]};
        size_t feat = cxr_ops[nd->op].feat_floats ? cxr_ops[nd->op].feat_floats(g, nd) : 0;
        if (feat)
            s[ns++] = (span){rounded(n * feat), 0, tr ? 0 : i, tr ? 2 * N : i, &a->feat[i]};
        /* a gradient lives from its first consumer's backward to its own node's backward */
        if (tr && nd->needs_grad && !nd->alias) {
            int first_use = i;
            for (int j = i + 1; j < N; j++)
                for (int k = 0; k < g->nodes[j].n_in; k++)
                    if (root(g, g->nodes[j].in[k]) == i && j > first_use)
                        first_use = j;
            for (int j = i + 1; j < N; j++)
                if (g->nodes[j].alias && root(g, j) == i && j > first_use)
                    first_use = j;
            if (i == N - 1)
                first_use = N;
            s[ns++] = (span){rounded(n * cxr_node_floats(nd)), 0, N + (N - first_use),
                             N + (N - i), &a->grad[i]};
        }
    }
    s[ns++] = (span){a->col_stride * a->lanes, 0, 0, 2 * N + 1, &a->col};
    s[ns++] = (span){a->scratch_stride * a->lanes, 0, 0, 2 * N + 1, &a->scratch};
    if (tr)
        s[ns++] = (span){a->partial_stride * a->lanes, 0, 0, 2 * N + 1, &a->partial};
    if (prep)
        s[ns++] = (span){rounded(prep), 0, 0, 2 * N + 1, &a->prep};
    size_t total = place(s, ns);
    if (a->arena)
        for (int i = 0; i < ns; i++)
            *s[i].slot = s[i].size ? a->arena + s[i].offset : NULL;
    if (a->arena)
        for (int i = 0; i < N; i++)
            if (g->nodes[i].alias) {
                a->out[i] = a->out[root(g, i)];
                a->grad[i] = a->grad[root(g, i)];
            }
    free(s);
    free(last);
    return total ? total : 16;
}

static cxr_acts *
acts_shell(const cxr_model *m, int n, int training)
{
    int N = m->graph->n;
    cxr_acts *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->n = n;
    a->training = training;
    a->out = calloc(N, sizeof(float *));
    a->grad = calloc(N, sizeof(float *));
    a->aux = calloc(N, sizeof(float *));
    a->feat = calloc(N, sizeof(float *));
    if (!a->out || !a->grad || !a->aux || !a->feat) {
        cxr_acts_free(a);
        return NULL;
    }
    return a;
}

cxr_acts *
cxr_acts_create(const cxr_model *m, int n, int training)
{
    cxr_acts *a = acts_shell(m, n, training);
    if (!a)
        return NULL;
    a->floats = layout(m, a);
    if (!a->floats || posix_memalign((void **)&a->arena, 64, a->floats * sizeof(float))) {
        a->arena = NULL;
        cxr_acts_free(a);
        return NULL;
    }
    layout(m, a);
    return a;
}

size_t
cxr_acts_bytes(const cxr_model *m, int n, int training)
{
    cxr_acts *a = acts_shell(m, n, training);
    if (!a)
        return SIZE_MAX / 2;
    size_t floats = layout(m, a);
    cxr_acts_free(a);
    size_t N = (size_t)m->graph->n;
    return sizeof(cxr_acts) + 4 * N * sizeof(float *) + floats * sizeof(float);
}

void
cxr_acts_free(cxr_acts *a)
{
    if (!a)
        return;
    free(a->arena);
    free(a->out);
    free(a->grad);
    free(a->aux);
    free(a->feat);
    free(a);
}

/* ---- passes ---- */

int
cxr_graph_forward(cxr_model *m, cxr_acts *a, const float *gray, int n, uint64_t dropout_seed)
{
    const cxr_graph *g = m->graph;
    a->n = n;
    if (m->folded)
        cxr_graph_fold(m);
    a->gray = gray;
    for (int i = 0; i < g->n; i++)
        if (cxr_ops[g->nodes[i].op].forward(m, &g->nodes[i], a, dropout_seed))
            return -1;
    return 0;
}

const float *
cxr_graph_output(const cxr_model *m, const cxr_acts *a)
{
    return a->out[m->graph->n - 1];
}

int
cxr_graph_backward(cxr_model *m, cxr_acts *a, float *grad, float *folded_grad)
{
    const cxr_graph *g = m->graph;
    /* which inputs already hold a gradient (another consumer ran first): add to them */
    unsigned char *written = calloc(g->n, 1);
    int acc[8], rc = 0;
    if (!written)
        return -1;
    for (int i = g->n - 1; i > 0 && rc == 0; i--) {
        const cxr_node *nd = &g->nodes[i];
        if (!nd->needs_grad)
            continue;
        for (int k = 0; k < nd->n_in && k < 8; k++)
            acc[k] = written[nd->in[k]];
        rc = cxr_ops[nd->op].backward(m, nd, a, grad, folded_grad, acc);
        for (int k = 0; k < nd->n_in; k++)
            written[nd->in[k]] = 1;
    }
    free(written);
    return rc;
}

void
cxr_graph_fold(cxr_model *m)
{
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        if (!nd->folded)
            continue;
        const cxr_param_info *t = &m->tensors[nd->t_weight];
        int cout = t->shape[0], cin = t->shape[1];
        size_t kk = (size_t)t->shape[2] * t->shape[3];
        const float *w = m->params + t->offset;
        for (int o = 0; o < cout; o++)
            for (size_t j = 0; j < kk; j++) {
                float acc = 0.0f;
                for (int c = 0; c < cin; c++)
                    acc += w[((size_t)o * cin + c) * kk + j];
                m->folded[(size_t)o * kk + j] = acc;
            }
    }
}

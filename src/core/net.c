#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_blas.h"
#include "cxr_interrupt.h"
#include "cxr_net.h"

#define ATTN_DIM 256
#define POOL_K 3
#define POOL_STRIDE 2
#define DROPOUT_P 0.5f

static const cxr_bn_config bn_cfg = {1e-5f, 0.1f};

static int
tap_projects(const cxr_model *m, int l)
{
    return m->proj_w[l] >= 0;
}

static int
is_tap(const cxr_model *m, int l)
{
    for (int t = 0; t < m->arch->n_taps; t++)
        if (m->arch->taps[t] == l + 1)
            return 1;
    return 0;
}

static size_t
conv_floats(const cxr_model *m, int l)
{
    return (size_t)m->conv[l].cout * m->conv_side[l] * m->conv_side[l];
}

static size_t
block_floats(const cxr_model *m, int l)
{
    return (size_t)m->conv[l].cout * m->block_side[l] * m->block_side[l];
}

static size_t
head_floats(const cxr_model *m)
{
    return (size_t)m->fc_in[0];
}

/* Carves the arena; with a->arena == NULL it only counts. */
static size_t
layout(const cxr_model *m, cxr_acts *a)
{
    size_t used = 0, n = a->n;
    int tr = a->training;
#define TAKE(ptr, count)                                                                           \
    do {                                                                                           \
        size_t c_ = (count);                                                                       \
        if (a->arena)                                                                              \
            (ptr) = (void *)(a->arena + used);                                                     \
        used += (c_ + 15) & ~(size_t)15; /* 64-byte alignment */                                   \
    } while (0)
    size_t col = 0;
    int in_side = m->input_size;
    for (int l = 0; l < CXR_N_CONV; l++) {
        cxr_conv_shape s = m->conv[l];
        if (l == 0)
            s.cin = 1; /* folded gray input */
        size_t c = cxr_conv_col_floats(&s, in_side, in_side);
        /* backward reuses the scratch for the input-gradient columns: same size */
        col = c > col ? c : col;
        in_side = l < CXR_N_BLOCK ? m->block_side[l] : 0;
    }
    for (int l = 0; l < CXR_N_CONV; l++) {
        TAKE(a->conv[l], n * conv_floats(m, l));
        if (tr)
            TAKE(a->d_conv[l], n * conv_floats(m, l));
        if (l < CXR_N_BLOCK) {
            TAKE(a->argmax[l], n * block_floats(m, l));
            TAKE(a->act[l], n * block_floats(m, l));
            TAKE(a->bn[l], n * block_floats(m, l));
            TAKE(a->bn_mean[l], m->conv[l].cout);
            TAKE(a->bn_invstd[l], m->conv[l].cout);
            if (tr) {
                TAKE(a->d_act[l], n * block_floats(m, l));
                TAKE(a->d_bn[l], n * block_floats(m, l));
            }
        }
        if (is_tap(m, l)) {
            size_t p = (size_t)m->conv_side[l] * m->conv_side[l];
            if (tap_projects(m, l))
                TAKE(a->feat[l], n * ATTN_DIM * p);
            TAKE(a->alpha[l], n * p);
            if (tr)
                TAKE(a->d_feat[l], n * ATTN_DIM * p);
        }
    }
    if (tr) {
        TAKE(a->mask, n * block_floats(m, 3));
        TAKE(a->drop, n * block_floats(m, 3));
        TAKE(a->d_drop, n * block_floats(m, 3));
    }
    TAKE(a->head, n * head_floats(m));
    if (tr)
        TAKE(a->d_head, n * head_floats(m));
    for (int f = 0; f < m->arch->n_fc; f++) {
        TAKE(a->fc[f], n * m->arch->fc_out[f]);
        if (tr)
            TAKE(a->d_fc[f], n * m->arch->fc_out[f]);
    }
    TAKE(a->col, col);
#undef TAKE
    return used;
}

cxr_acts *
cxr_acts_create(const cxr_model *m, int n, int training)
{
    cxr_acts *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->n = n;
    a->training = training;
    a->floats = layout(m, a);
    if (posix_memalign((void **)&a->arena, 64, a->floats * sizeof(float))) {
        free(a);
        return NULL;
    }
    layout(m, a);
    return a;
}

void
cxr_acts_free(cxr_acts *a)
{
    if (!a)
        return;
    free(a->arena);
    free(a);
}

size_t
cxr_model_workspace_bytes(const cxr_model *m)
{
    return m->infer->floats * sizeof(float) + sizeof(float) * m->conv[0].cout * m->conv[0].k *
                                                  m->conv[0].k;
}

/* The input is one gray channel repeated in_channels times: sum conv1 over that axis. */
static void
fold_conv1(cxr_model *m)
{
    const cxr_conv_shape *s = &m->conv[0];
    size_t kk = (size_t)s->k * s->k;
    const float *w = m->params + m->conv_w[0];
    for (int o = 0; o < s->cout; o++)
        for (size_t i = 0; i < kk; i++) {
            float acc = 0.0f;
            for (int c = 0; c < s->cin; c++)
                acc += w[((size_t)o * s->cin + c) * kk + i];
            m->conv1_folded[(size_t)o * kk + i] = acc;
        }
}

static const float *
P(const cxr_model *m, long off)
{
    return m->params + off;
}

/* Polled once per image in every layer's loop: between two polls runs at most one image
 * through one layer, so a cancel is seen within milliseconds. */
#define STOP_IF_INTERRUPTED()                                                                      \
    do {                                                                                           \
        if (cxr_interrupt_poll())                                                                  \
            return -1;                                                                             \
    } while (0)

/* Returns 0, or -1 when interrupted (activations then partial). */
static int
forward(cxr_model *m, cxr_acts *a, const float *images, int n, uint64_t dropout_seed)
{
    int tr = a->training;
    fold_conv1(m);
    const float *in = images;
    int in_c = 1;
    for (int l = 0; l < CXR_N_CONV; l++) {
        cxr_conv_shape s = m->conv[l];
        const float *w = P(m, m->conv_w[l]);
        if (l == 0) {
            s.cin = 1;
            w = m->conv1_folded;
        }
        int side = m->conv_in[l], out = m->conv_side[l];
        size_t in_f = (size_t)in_c * side * side, out_f = conv_floats(m, l);
        if (l == 4 && tr) {
            size_t nf = (size_t)n * in_f;
            cxr_dropout_mask(dropout_seed, DROPOUT_P, a->mask, nf);
            cxr_dropout_forward(in, a->mask, a->drop, nf);
            in = a->drop;
        }
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_conv_forward(&s, in + b * in_f, side, side, w, P(m, m->conv_b[l]),
                             a->conv[l] + b * out_f, a->col);
        }
        if (l == CXR_N_BLOCK)
            break;
        int bs = m->block_side[l];
        size_t bf = block_floats(m, l);
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_maxpool_forward(a->conv[l] + b * out_f, s.cout, out, out, POOL_K, POOL_STRIDE,
                                a->act[l] + b * bf, a->argmax[l] + b * bf);
        }
        cxr_relu_forward(a->act[l], a->act[l], n * bf);
        if (tr)
            cxr_batchnorm_forward_train(&bn_cfg, a->act[l], n, s.cout, bs * bs,
                                        P(m, m->bn_w[l]), P(m, m->bn_b[l]),
                                        m->params + m->bn_mean[l], m->params + m->bn_var[l],
                                        a->bn[l], a->bn_mean[l], a->bn_invstd[l]);
        else
            cxr_batchnorm_forward_infer(&bn_cfg, a->act[l], n, s.cout, bs * bs,
                                        P(m, m->bn_w[l]), P(m, m->bn_b[l]),
                                        P(m, m->bn_mean[l]), P(m, m->bn_var[l]), a->bn[l]);
        in = a->bn[l];
        in_c = s.cout;
    }

    const cxr_arch *arch = m->arch;
    size_t hf = head_floats(m), g_f = conv_floats(m, 4);
    if (arch->avgpool) {
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_avgpool_adaptive_forward(a->conv[4] + b * g_f, m->conv[4].cout, m->conv_side[4],
                                         m->conv_side[4], arch->avgpool, arch->avgpool,
                                         a->head + b * hf);
        }
    } else {
        float scale = m->attention_scaled ? 1.0f / sqrtf((float)ATTN_DIM) : 1.0f;
        for (int t = 0; t < arch->n_taps; t++) {
            int l = arch->taps[t] - 1;
            size_t p = (size_t)m->conv_side[l] * m->conv_side[l];
            for (int b = 0; b < n; b++) {
                STOP_IF_INTERRUPTED();
                const float *f = a->conv[l] + b * conv_floats(m, l);
                if (tap_projects(m, l)) {
                    float *proj = a->feat[l] + b * ATTN_DIM * p;
                    cxr_sgemm(0, 0, ATTN_DIM, (int)p, m->conv[l].cout, 1.0f,
                              P(m, m->proj_w[l]), m->conv[l].cout, f, (int)p, 0.0f, proj, (int)p);
                    f = proj;
                }
                cxr_attention_forward(f, a->conv[4] + b * g_f, ATTN_DIM, (int)p, scale,
                                      a->alpha[l] + b * p, a->head + b * hf + t * ATTN_DIM);
            }
        }
    }
    const float *x = a->head;
    for (int f = 0; f < arch->n_fc; f++) {
        int out = arch->fc_out[f];
        cxr_linear_forward(x, n, m->fc_in[f], out, P(m, m->fc_w[f]), P(m, m->fc_b[f]), a->fc[f]);
        if (f + 1 < arch->n_fc)
            cxr_relu_forward(a->fc[f], a->fc[f], (size_t)n * out);
        x = a->fc[f];
    }
    return 0;
}

float
cxr_model_forward(cxr_model *m, const float *image)
{
    if (forward(m, m->infer, image, 1, 0))
        return NAN;
    return m->infer->fc[m->arch->n_fc - 1][0];
}

int
cxr_model_forward_batch(cxr_model *m, const float *images, int n, float *logits)
{
    /* One image at a time through the same workspace: a result never depends on its batch. */
    size_t img = (size_t)m->input_size * m->input_size;
    for (int i = 0; i < n; i++)
        logits[i] = cxr_interrupt_requested() ? NAN : cxr_model_forward(m, images + i * img);
    return cxr_interrupt_requested() ? -1 : 0;
}

const float *
cxr_model_attention(const cxr_model *m, int layer)
{
    if (layer < 1 || layer > CXR_N_CONV || !is_tap(m, layer - 1))
        return NULL;
    return m->infer->alpha[layer - 1];
}

/* ---- training ---- */

cxr_trainer *
cxr_trainer_create(cxr_model *m, int max_batch, const cxr_adam_config *adam)
{
    cxr_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->model = m;
    t->max_batch = max_batch;
    t->adam = *adam;
    t->grads = calloc(m->n_trainable, sizeof(float));
    t->adam_m = calloc(m->n_trainable, sizeof(float));
    t->adam_v = calloc(m->n_trainable, sizeof(float));
    t->conv1_dfolded = calloc((size_t)m->conv[0].cout * m->conv[0].k * m->conv[0].k, sizeof(float));
    t->acts = cxr_acts_create(m, max_batch, 1);
    if (!t->grads || !t->adam_m || !t->adam_v || !t->conv1_dfolded || !t->acts) {
        cxr_trainer_free(t);
        return NULL;
    }
    return t;
}

size_t
cxr_trainer_bytes(const cxr_model *m, int max_batch)
{
    /* the same layout cxr_trainer_create allocates, counted without allocating */
    cxr_acts a;
    memset(&a, 0, sizeof a);
    a.n = max_batch > 0 ? max_batch : 0;
    a.training = 1;
    size_t arena = layout(m, &a);
    size_t conv1 = (size_t)m->conv[0].cout * m->conv[0].k * m->conv[0].k;
    return sizeof(cxr_trainer) + sizeof(cxr_acts) +
           sizeof(float) * (3 * m->n_trainable + conv1 + arena);
}

void
cxr_trainer_free(cxr_trainer *t)
{
    if (!t)
        return;
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->conv1_dfolded);
    cxr_acts_free(t->acts);
    free(t);
}

/* Returns 0, or -1 when interrupted (gradients then partial). */
static int
backward(cxr_trainer *t, const float *images, int n)
{
    cxr_model *m = t->model;
    cxr_acts *a = t->acts;
    const cxr_arch *arch = m->arch;
    float *G = t->grads;
    size_t hf = head_floats(m), g_f = conv_floats(m, 4);

    /* head: d_fc[last] holds dlogit on entry */
    for (int f = arch->n_fc - 1; f >= 0; f--) {
        int out = arch->fc_out[f];
        if (f + 1 < arch->n_fc)
            cxr_relu_backward(a->fc[f], a->d_fc[f], a->d_fc[f], (size_t)n * out);
        const float *x = f ? a->fc[f - 1] : a->head;
        float *dx = f ? a->d_fc[f - 1] : a->d_head;
        cxr_linear_backward(x, a->d_fc[f], n, m->fc_in[f], out, P(m, m->fc_w[f]),
                            G + m->fc_w[f], G + m->fc_b[f], dx);
    }
    if (arch->avgpool) {
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_avgpool_adaptive_backward(a->d_head + b * hf, m->conv[4].cout, m->conv_side[4],
                                          m->conv_side[4], arch->avgpool, arch->avgpool,
                                          a->d_conv[4] + b * g_f);
        }
    } else {
        float scale = m->attention_scaled ? 1.0f / sqrtf((float)ATTN_DIM) : 1.0f;
        memset(a->d_conv[4], 0, sizeof(float) * n * g_f);
        for (int tp = 0; tp < arch->n_taps; tp++) {
            int l = arch->taps[tp] - 1;
            size_t p = (size_t)m->conv_side[l] * m->conv_side[l];
            for (int b = 0; b < n; b++) {
                STOP_IF_INTERRUPTED();
                const float *f = tap_projects(m, l) ? a->feat[l] + b * ATTN_DIM * p
                                                    : a->conv[l] + b * conv_floats(m, l);
                cxr_attention_backward(f, a->conv[4] + b * g_f, a->alpha[l] + b * p,
                                       a->d_head + b * hf + tp * ATTN_DIM, ATTN_DIM, (int)p,
                                       scale, a->d_feat[l] + b * ATTN_DIM * p,
                                       a->d_conv[4] + b * g_f);
            }
        }
    }

    /* conv5, then dropout */
    size_t in4 = block_floats(m, 3);
    for (int b = 0; b < n; b++) {
        STOP_IF_INTERRUPTED();
        cxr_conv_backward(&m->conv[4], a->drop + b * in4, m->conv_in[4], m->conv_in[4],
                          P(m, m->conv_w[4]), a->d_conv[4] + b * g_f, G + m->conv_w[4],
                          G + m->conv_b[4], a->d_drop + b * in4, a->col);
    }
    cxr_dropout_backward(a->d_drop, a->mask, a->d_bn[3], (size_t)n * in4);

    for (int l = CXR_N_BLOCK - 1; l >= 0; l--) {
        int bs = m->block_side[l], cs = m->conv_side[l], cout = m->conv[l].cout;
        size_t bf = block_floats(m, l), cf = conv_floats(m, l);
        cxr_batchnorm_backward_train(a->act[l], a->d_bn[l], n, cout, bs * bs, P(m, m->bn_w[l]),
                                     a->bn_mean[l], a->bn_invstd[l], a->d_act[l],
                                     G + m->bn_w[l], G + m->bn_b[l]);
        cxr_relu_backward(a->act[l], a->d_act[l], a->d_act[l], (size_t)n * bf);
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_maxpool_backward(a->d_act[l] + b * bf, a->argmax[l] + b * bf, cout, cs, cs, bs,
                                 bs, a->d_conv[l] + b * cf);
        }
        if (is_tap(m, l)) {
            int p = cs * cs;
            for (int b = 0; b < n; b++) {
                STOP_IF_INTERRUPTED();
                float *df = a->d_feat[l] + (size_t)b * ATTN_DIM * p;
                float *dc = a->d_conv[l] + b * cf;
                if (tap_projects(m, l)) {
                    cxr_sgemm(0, 1, ATTN_DIM, cout, p, 1.0f, df, p, a->conv[l] + b * cf, p, 1.0f,
                              G + m->proj_w[l], cout);
                    cxr_sgemm(1, 0, cout, p, ATTN_DIM, 1.0f, P(m, m->proj_w[l]), cout, df, p,
                              1.0f, dc, p);
                } else {
                    for (size_t i = 0; i < cf; i++)
                        dc[i] += df[i];
                }
            }
        }
        cxr_conv_shape s = m->conv[l];
        const float *w = P(m, m->conv_w[l]);
        float *dw = G + m->conv_w[l];
        const float *in = l ? a->bn[l - 1] : images;
        size_t in_f = l ? block_floats(m, l - 1) : (size_t)m->input_size * m->input_size;
        if (l == 0) {
            s.cin = 1;
            w = m->conv1_folded;
            dw = t->conv1_dfolded;
            memset(dw, 0, sizeof(float) * s.cout * s.k * s.k);
        }
        for (int b = 0; b < n; b++) {
            STOP_IF_INTERRUPTED();
            cxr_conv_backward(&s, in + b * in_f, m->conv_in[l], m->conv_in[l], w,
                              a->d_conv[l] + b * cf, dw, G + m->conv_b[l],
                              l ? a->d_bn[l - 1] + b * in_f : NULL, a->col);
        }
    }
    /* every input channel saw the same gray image: each gets the folded gradient */
    const cxr_conv_shape *s1 = &m->conv[0];
    size_t kk = (size_t)s1->k * s1->k;
    for (int o = 0; o < s1->cout; o++)
        for (int c = 0; c < s1->cin; c++)
            for (size_t i = 0; i < kk; i++)
                G[m->conv_w[0] + ((size_t)o * s1->cin + c) * kk + i] +=
                    t->conv1_dfolded[(size_t)o * kk + i];
    return 0;
}

double
cxr_trainer_forward_backward(cxr_trainer *t, const float *images, const float *labels, int n,
                             uint64_t dropout_seed, float *logits)
{
    cxr_model *m = t->model;
    cxr_acts *a = t->acts;
    if (n < 1 || n > t->max_batch)
        return NAN;
    a->n = n;
    memset(t->grads, 0, sizeof(float) * m->n_trainable);
    if (forward(m, a, images, n, dropout_seed))
        return NAN;
    int last = m->arch->n_fc - 1;
    double loss = cxr_bce_with_logits(a->fc[last], labels, n, a->d_fc[last]);
    if (logits)
        memcpy(logits, a->fc[last], sizeof(float) * n);
    if (backward(t, images, n))
        return NAN; /* gradients partial: the caller must not apply Adam */
    return loss;
}

void
cxr_trainer_apply_adam(cxr_trainer *t)
{
    t->step++;
    cxr_adam_step(&t->adam, t->step, t->model->params, t->grads, t->adam_m, t->adam_v,
                  t->model->n_trainable);
}

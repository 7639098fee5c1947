/* Training a graph model: the trainer's buffers (gradients and Adam's moments, each one
 * contiguous buffer in the parameters' layout), one step of forward, loss and backward, and the
 * Adam update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_graph.h"

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

/* does name begin with prefix, at a dot or its end? */
static int
under(const char *name, const char *prefix, size_t len)
{
    return len > 0 && strncmp(name, prefix, len) == 0 && (name[len] == '\0' || name[len] == '.');
}

int
cxr_model_train_only(cxr_model *m, const char *prefixes, char *err)
{
    int selected = 0;
    for (int i = 0; i < m->n_tensors; i++)
        m->tensors[i].frozen = 0;
    if (prefixes && prefixes[0]) {
        for (int i = 0; i < m->n_tensors; i++)
            m->tensors[i].frozen = m->tensors[i].trainable;
        for (const char *p = prefixes; *p;) {
            while (*p == ' ' || *p == ',')
                p++;
            size_t len = strcspn(p, ", ");
            int hits = 0;
            for (int i = 0; i < m->n_tensors; i++)
                if (m->tensors[i].trainable && under(m->tensors[i].name, p, len)) {
                    m->tensors[i].frozen = 0;
                    hits++;
                }
            if (len && !hits) {
                snprintf(err, CXR_ERR_LEN, "no parameter of %s is named \"%.*s\" or below it",
                         m->arch->name, (int)(len > 60 ? 60 : len), p);
                for (int i = 0; i < m->n_tensors; i++)
                    m->tensors[i].frozen = 0;
                cxr_graph_mark_trainable(m->graph);
                return -1;
            }
            p += len;
        }
    }
    for (int i = 0; i < m->n_tensors; i++)
        selected += m->tensors[i].trainable && !m->tensors[i].frozen;
    cxr_graph_mark_trainable(m->graph);
    return selected;
}

cxr_trainer *
cxr_trainer_create(cxr_model *m, int max_batch, const cxr_adam_config *adam)
{
    cxr_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->model = m;
    t->max_batch = max_batch;
    t->adam = *adam;
    size_t nt = m->n_trainable ? m->n_trainable : 1;
    t->grads = calloc(nt, sizeof(float));
    t->adam_m = calloc(nt, sizeof(float));
    t->adam_v = calloc(nt, sizeof(float));
    t->folded_grad = calloc(folded_floats(m) + 1, sizeof(float));
    t->acts = cxr_acts_create(m, max_batch, 1);
    if (!t->grads || !t->adam_m || !t->adam_v || !t->folded_grad || !t->acts) {
        cxr_trainer_free(t);
        return NULL;
    }
    return t;
}

size_t
cxr_trainer_bytes(const cxr_model *m, int max_batch)
{
    /* what cxr_trainer_create allocates, counted without allocating */
    return sizeof(cxr_trainer) + cxr_acts_bytes(m, max_batch > 0 ? max_batch : 0, 1) +
           sizeof(float) * (3 * m->n_trainable + folded_floats(m) + 1);
}

void
cxr_trainer_free(cxr_trainer *t)
{
    if (!t)
        return;
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->folded_grad);
    cxr_acts_free(t->acts);
    free(t);
}

double
cxr_trainer_forward_backward(cxr_trainer *t, const float *images, const float *labels, int n,
                             uint64_t dropout_seed, float *logits)
{
    cxr_model *m = t->model;
    cxr_acts *a = t->acts;
    if (n < 1 || n > t->max_batch)
        return NAN;
    memset(t->grads, 0, sizeof(float) * m->n_trainable);
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

void
cxr_trainer_apply_adam(cxr_trainer *t)
{
    const cxr_model *m = t->model;
    t->step++;
    /* tensor by tensor: frozen ones keep their values and moments */
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *p = &m->tensors[i];
        if (p->trainable && !p->frozen)
            cxr_adam_step(&t->adam, t->step, m->params + p->offset, t->grads + p->offset,
                          t->adam_m + p->offset, t->adam_v + p->offset, p->numel);
    }
}

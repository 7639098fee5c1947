/* Training any model: which parameters train, the trainer's buffers (gradients and Adam's
 * moments, each one contiguous buffer in the parameters' layout), a step (the model's kind
 * computes it) and the Adam update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_fpenv.h"
#include "cxr_kind.h"

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
                m->kind->trainable_changed(m);
                return -1;
            }
            p += len;
        }
    }
    for (int i = 0; i < m->n_tensors; i++)
        selected += m->tensors[i].trainable && !m->tensors[i].frozen;
    m->kind->trainable_changed(m);
    return selected;
}

cxr_trainer *
cxr_trainer_create(cxr_model *m, int max_batch, const cxr_adam_config *adam)
{
    cxr_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    cxr_model_unprepare(m); /* its parameters are about to change */
    t->model = m;
    t->max_batch = max_batch;
    t->adam = *adam;
    size_t nt = m->n_trainable ? m->n_trainable : 1;
    t->grads = calloc(nt, sizeof(float));
    t->adam_m = calloc(nt, sizeof(float));
    t->adam_v = calloc(nt, sizeof(float));
    if (!t->grads || !t->adam_m || !t->adam_v || m->kind->trainer_init(t)) {
        cxr_trainer_free(t);
        return NULL;
    }
    return t;
}

size_t
cxr_trainer_bytes(const cxr_model *m, int max_batch)
{
    /* what cxr_trainer_create allocates, counted without allocating */
    return sizeof(cxr_trainer) + sizeof(float) * 3 * m->n_trainable +
           m->kind->trainer_bytes(m, max_batch);
}

void
cxr_trainer_free(cxr_trainer *t)
{
    if (!t)
        return;
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    t->model->kind->trainer_release(t);
    free(t);
}

double
cxr_trainer_forward_backward(cxr_trainer *t, const float *images, const float *labels, int n,
                             uint64_t dropout_seed, float *logits)
{
    if (n < 1 || n > t->max_batch)
        return NAN;
    memset(t->grads, 0, sizeof(float) * t->model->n_trainable);
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    double loss = t->model->kind->train_step(t, images, labels, n, dropout_seed, logits);
    cxr_fp_restore(fp);
    return loss;
}

void
cxr_trainer_apply_adam(cxr_trainer *t)
{
    const cxr_model *m = t->model;
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    t->step++;
    /* tensor by tensor: frozen ones keep their values and moments */
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *p = &m->tensors[i];
        if (p->trainable && !p->frozen)
            cxr_adam_step(&t->adam, t->step, m->params + p->offset, t->grads + p->offset,
                          t->adam_m + p->offset, t->adam_v + p->offset, p->numel);
    }
    cxr_fp_restore(fp);
}

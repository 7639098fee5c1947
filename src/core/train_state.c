#include "cxr_train_state.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_safetensors.h"

#define STATE_FORMAT "cxr_training_state"

static const char *
score_name(const cxr_model *m)
{
    return m->attention_scaled ? "scaled_dot" : "dot";
}

int
cxr_train_state_save(const cxr_trainer *t, const cxr_run_progress *p, uint8_t **out,
                     size_t *out_len)
{
    const cxr_model *m = t->model;
    size_t np = m->n_params, nt = m->n_trainable;
    char step[24], epochs_done[16], best_epoch[16], best_acc[32], best_loss[32];
    /* %.17g keeps the doubles exact; NAN is written as "nan" and read back by strtod */
    snprintf(step, sizeof step, "%ld", t->step);
    snprintf(epochs_done, sizeof epochs_done, "%d", p->epochs_done);
    snprintf(best_epoch, sizeof best_epoch, "%d", p->best_epoch);
    snprintf(best_acc, sizeof best_acc, "%.17g", p->best_val_accuracy);
    snprintf(best_loss, sizeof best_loss, "%.17g", p->best_val_loss);
    cxr_st_meta_out meta[] = {
        {"format", STATE_FORMAT}, {"arch", m->arch->name},   {"attention_score", score_name(m)},
        {"step", step},           {"epochs_done", epochs_done}, {"best_epoch", best_epoch},
        {"best_val_accuracy", best_acc}, {"best_val_loss", best_loss},
    };
    cxr_st_tensor_out tensors[] = {
        {"params", CXR_ST_F32, 1, {(int64_t)np}, m->params},
        {"adam_m", CXR_ST_F32, 1, {(int64_t)nt}, t->adam_m},
        {"adam_v", CXR_ST_F32, 1, {(int64_t)nt}, t->adam_v},
    };
    return cxr_st_write(meta, 8, tensors, 3, out, out_len);
}

static const cxr_st_tensor *
vector(const cxr_st_file *f, const char *name, size_t numel, char *err)
{
    const cxr_st_tensor *s = cxr_st_find(f, name);
    if (!s || s->dtype != CXR_ST_F32 || s->ndim != 1 || (size_t)s->shape[0] != numel) {
        snprintf(err, CXR_ERR_LEN, "training state lacks a float32 \"%s\" of %zu values", name,
                 numel);
        return NULL;
    }
    return s;
}

static int
meta_number(const cxr_st_file *f, const char *key, double lo, double hi, double *out, char *err)
{
    const char *v = cxr_st_meta_get(f, key);
    char *end;
    if (!v) {
        snprintf(err, CXR_ERR_LEN, "training state has no \"%s\"", key);
        return -1;
    }
    errno = 0;
    *out = strtod(v, &end);
    if (errno || *end || end == v || (!isnan(*out) && (*out < lo || *out > hi))) {
        snprintf(err, CXR_ERR_LEN, "training state has a bad \"%s\": \"%.40s\"", key, v);
        return -1;
    }
    return 0;
}

int
cxr_train_state_load(cxr_trainer *t, const uint8_t *buf, size_t len, cxr_run_progress *p,
                     char *err)
{
    const cxr_model *m = t->model;
    cxr_st_file f;
    int rc = -1;
    if (cxr_st_parse(buf, len, &f, err, CXR_ERR_LEN))
        return -1;
    const char *format = cxr_st_meta_get(&f, "format");
    const char *arch = cxr_st_meta_get(&f, "arch");
    const char *score = cxr_st_meta_get(&f, "attention_score");
    double step, epochs, best, acc, loss;
    const cxr_st_tensor *sp, *sm, *sv;
    if (!format || strcmp(format, STATE_FORMAT) != 0) {
        snprintf(err, CXR_ERR_LEN, "not a training state");
        goto done;
    }
    /* the score only matters to a network with attention: states of alexnet and resnet50 runs
     * written before 0.5.0 say "scaled_dot" (cxr_train's default) while their model files,
     * which omit the key for such networks, load as "dot" */
    if (!arch || strcmp(arch, m->arch->name) != 0 || !score ||
        (m->n_taps && strcmp(score, score_name(m)) != 0)) {
        snprintf(err, CXR_ERR_LEN, "training state is for %.32s (%.16s), not %s (%s)",
                 arch ? arch : "?", score ? score : "?", m->arch->name, score_name(m));
        goto done;
    }
    if (meta_number(&f, "step", 0, 1e15, &step, err) ||
        meta_number(&f, "epochs_done", 0, 1e9, &epochs, err) ||
        meta_number(&f, "best_epoch", 0, 1e9, &best, err) ||
        meta_number(&f, "best_val_accuracy", 0, 1, &acc, err) ||
        meta_number(&f, "best_val_loss", 0, INFINITY, &loss, err))
        goto done;
    if (isnan(step) || isnan(epochs) || isnan(best) || step != floor(step) ||
        epochs != floor(epochs) || best != floor(best) || best > epochs) {
        snprintf(err, CXR_ERR_LEN, "training state has a bad step or epoch count");
        goto done;
    }
    if (!(sp = vector(&f, "params", m->n_params, err)) ||
        !(sm = vector(&f, "adam_m", m->n_trainable, err)) ||
        !(sv = vector(&f, "adam_v", m->n_trainable, err)))
        goto done;
    size_t np = m->n_params, nt = m->n_trainable;
    float *tmp = malloc(sizeof(float) * (np + 2 * nt));
    if (!tmp) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        goto done;
    }
    memcpy(tmp, f.data + sp->begin, np * 4);
    memcpy(tmp + np, f.data + sm->begin, nt * 4);
    memcpy(tmp + np + nt, f.data + sv->begin, nt * 4);
    for (size_t i = 0; i < np + 2 * nt; i++)
        if (!isfinite(tmp[i]) || (i >= np + nt && tmp[i] < 0)) {
            snprintf(err, CXR_ERR_LEN, "training state holds NaN or infinite values, or negative second moments");
            free(tmp);
            goto done;
        }
    const char *bad = cxr_model_negative_variance(m, tmp);
    if (bad) {
        snprintf(err, CXR_ERR_LEN, "training state: tensor \"%s\" has a negative value", bad);
        free(tmp);
        goto done;
    }
    memcpy(t->model->params, tmp, np * 4);
    memcpy(t->adam_m, tmp + np, nt * 4);
    memcpy(t->adam_v, tmp + np + nt, nt * 4);
    free(tmp);
    t->step = (long)step;
    p->epochs_done = (int)epochs;
    p->best_epoch = (int)best;
    p->best_val_accuracy = acc;
    p->best_val_loss = loss;
    rc = 0;
done:
    cxr_st_free(&f);
    return rc;
}

/* Models: creation, the model file (safetensors in the layout of models.md) and inference,
 * dispatched through the model's kind (cxr_kind.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_fpenv.h"
#include "cxr_kind.h"
#include "cxr_interrupt.h"
#include "cxr_safetensors.h"

/* ---- creation ---- */

static cxr_model *
model_new(const char *arch, int scaled, int input_size, int in_channels, const float *mean,
          const float *std, char *err)
{
    const cxr_arch *a = cxr_arch_find(arch);
    if (!a) {
        snprintf(err, CXR_ERR_LEN, "unknown architecture \"%s\" (known: %s)", arch,
                 cxr_arch_names());
        return NULL;
    }
    if (input_size < 8 || input_size > 1024) {
        snprintf(err, CXR_ERR_LEN, "input size %d is outside 8..1024", input_size);
        return NULL;
    }
    if (in_channels < 1 || in_channels > CXR_MAX_CHANNELS) {
        snprintf(err, CXR_ERR_LEN, "in_channels %d is outside 1..%d", in_channels,
                 CXR_MAX_CHANNELS);
        return NULL;
    }
    cxr_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        return NULL;
    }
    m->arch = a;
    m->kind = cxr_kind_of(a);
    m->attention_scaled = scaled;
    m->input_size = input_size;
    m->in_channels = in_channels;
    for (int c = 0; c < in_channels; c++) {
        m->mean[c] = mean ? mean[c] : a->default_mean[c < 3 ? c : 2];
        m->std[c] = std ? std[c] : a->default_std[c < 3 ? c : 2];
    }
    if (m->kind->build(m, err)) {
        cxr_model_free(m);
        return NULL;
    }
    /* a network without attention has no score: one value, so that a created model and its
     * saved file (which omits the key) agree */
    if (m->n_taps == 0)
        m->attention_scaled = 0;
    return m;
}

/* Tensor indices in parameter order (the file's order). */
static int *
by_offset(const cxr_model *m)
{
    int *idx = malloc(sizeof(int) * (m->n_tensors ? m->n_tensors : 1));
    if (!idx)
        return NULL;
    for (int i = 0; i < m->n_tensors; i++)
        idx[i] = i;
    for (int i = 1; i < m->n_tensors; i++)
        for (int j = i; j > 0 && m->tensors[idx[j]].offset < m->tensors[idx[j - 1]].offset; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return idx;
}

static const char *
field_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

cxr_model *
cxr_model_create(const char *arch, int attention_scaled, int input_size, uint64_t seed, char *err)
{
    const cxr_arch *a = cxr_arch_find(arch);
    cxr_model *m = model_new(arch, attention_scaled,
                             input_size > 0 ? input_size : a ? a->default_input_size : 0, 3, NULL,
                             NULL, err);
    if (!m)
        return NULL;
    int *idx = by_offset(m);
    if (!idx) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        cxr_model_free(m);
        return NULL;
    }
    /* Xavier-uniform weights, zero biases, BN identity; each tensor's draw seeded by its place
     * in the file */
    for (int r = 0; r < m->n_tensors; r++) {
        const cxr_param_info *t = &m->tensors[idx[r]];
        float *p = m->params + t->offset;
        const char *field = field_of(t->name);
        if (strcmp(field, "weight") == 0 && t->ndim >= 2) {
            int rf = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
            cxr_xavier_uniform(p, t->numel, t->shape[1] * rf, t->shape[0] * rf,
                               seed * 1000003u + (uint64_t)r);
        } else if (strcmp(field, "weight") == 0 || strcmp(field, "running_var") == 0) {
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 1.0f; /* BN scale and running variance start at 1 */
        }
    }
    free(idx);
    return m;
}

/* ---- the model file ---- */

static int
parse_int_meta(const cxr_st_file *f, const char *key, int dflt, int *out, char *err)
{
    const char *v = cxr_st_meta_get(f, key);
    char *end;
    if (!v) {
        *out = dflt;
        return 0;
    }
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 0 || x > 100000) {
        snprintf(err, CXR_ERR_LEN, "metadata %s = \"%.40s\" is not a valid integer", key, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* "mean"/"std": one number for every channel, or one per channel separated by commas. */
static int
parse_channels_meta(const cxr_st_file *f, const char *key, int channels, const float *dflt,
                    float *out, char *err)
{
    const char *v = cxr_st_meta_get(f, key);
    if (!v) {
        for (int c = 0; c < channels; c++)
            out[c] = dflt[c < 3 ? c : 2];
        return 0;
    }
    int n = 0;
    const char *p = v;
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || fabs(x) > 1e6 || n == channels)
            break;
        out[n++] = (float)x;
        while (*end == ' ')
            end++;
        if (*end == '\0') {
            if (n == 1)
                for (int c = 1; c < channels; c++)
                    out[c] = out[0];
            if (n == 1 || n == channels)
                return 0;
            break;
        }
        if (*end != ',')
            break;
        p = end + 1;
    }
    snprintf(err, CXR_ERR_LEN,
             "metadata %s = \"%.40s\" is not a number or %d comma-separated numbers", key, v,
             channels);
    return -1;
}

static int
is_ignored_tensor(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && strcmp(dot, ".num_batches_tracked") == 0;
}

cxr_model *
cxr_model_load(const uint8_t *buf, size_t len, char *err)
{
    cxr_st_file f;
    cxr_model *m = NULL;
    if (cxr_st_parse(buf, len, &f, err, CXR_ERR_LEN))
        return NULL;
    const char *arch = cxr_st_meta_get(&f, "arch");
    const cxr_arch *a = arch ? cxr_arch_find(arch) : NULL;
    if (!arch)
        snprintf(err, CXR_ERR_LEN, "model file has no \"arch\" in its metadata");
    else if (!a)
        snprintf(err, CXR_ERR_LEN, "unknown architecture \"%.40s\" (known: %s)", arch,
                 cxr_arch_names());
    else
        m = cxr_kind_of(a)->load(&f, a, err);
    cxr_st_free(&f);
    return m;
}

cxr_model *
cxr_param_model_load(const cxr_st_file *f, const cxr_arch *a, char *err)
{
    cxr_model *m = NULL;
    const char *arch = a->name;
    const char *score = cxr_st_meta_get(f, "attention_score");
    int input_size, in_channels, scaled = 0;
    float mean[CXR_MAX_CHANNELS], std[CXR_MAX_CHANNELS];
    if (score && strcmp(score, "scaled_dot") == 0)
        scaled = 1;
    else if (score && strcmp(score, "dot") != 0) {
        snprintf(err, CXR_ERR_LEN, "unknown attention_score \"%.40s\" (dot or scaled_dot)",
                 score);
        goto done;
    }
    if (parse_int_meta(f, "input_size", a->default_input_size, &input_size, err) ||
        parse_int_meta(f, "in_channels", 3, &in_channels, err))
        goto done;
    if (in_channels < 1 || in_channels > CXR_MAX_CHANNELS) {
        snprintf(err, CXR_ERR_LEN, "in_channels %d is outside 1..%d", in_channels,
                 CXR_MAX_CHANNELS);
        goto done;
    }
    if (parse_channels_meta(f, "mean", in_channels, a->default_mean, mean, err) ||
        parse_channels_meta(f, "std", in_channels, a->default_std, std, err))
        goto done;
    for (int c = 0; c < in_channels; c++)
        if (!(std[c] > 1e-6f)) {
            snprintf(err, CXR_ERR_LEN, "metadata std must be positive");
            goto done;
        }
    m = model_new(arch, scaled, input_size, in_channels, mean, std, err);
    if (!m)
        goto done;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        const cxr_st_tensor *s = cxr_st_find(f, t->name);
        int same = s && s->dtype == CXR_ST_F32 && s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = s->shape[d] == t->shape[d];
        if (!s) {
            snprintf(err, CXR_ERR_LEN, "model file lacks tensor \"%.80s\" required by %s",
                     t->name, m->arch->name);
            goto fail;
        }
        if (!same) {
            char want[64];
            int n = 0;
            for (int d = 0; d < t->ndim; d++)
                n += snprintf(want + n, sizeof want - n, "%s%d", d ? "," : "", t->shape[d]);
            snprintf(err, CXR_ERR_LEN, "tensor \"%.80s\" must be float32 of shape [%s]", t->name,
                     want);
            goto fail;
        }
        memcpy(m->params + t->offset, f->data + s->begin, t->numel * sizeof(float));
    }
    for (int i = 0; i < f->n_tensors; i++)
        if (!cxr_model_tensor(m, f->tensors[i].name) && !is_ignored_tensor(f->tensors[i].name)) {
            snprintf(err, CXR_ERR_LEN, "unexpected tensor \"%.80s\" for %s", f->tensors[i].name,
                     m->arch->name);
            goto fail;
        }
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->params[i])) {
            snprintf(err, CXR_ERR_LEN, "model file holds NaN or infinite weights");
            goto fail;
        }
    const char *bad = cxr_model_negative_variance(m, m->params);
    if (bad) {
        snprintf(err, CXR_ERR_LEN, "tensor \"%.80s\" has a negative value", bad);
        goto fail;
    }
    goto done;
fail:
    cxr_model_free(m);
    m = NULL;
done:
    return m;
}

/* one number when every channel shares it (the file then reads as models.md's defaults) */
static void
format_channels(char *out, size_t len, const float *v, int channels)
{
    int same = 1, n = snprintf(out, len, "%.9g", v[0]);
    for (int c = 1; c < channels; c++)
        same &= v[c] == v[0];
    for (int c = 1; !same && c < channels; c++)
        n += snprintf(out + n, len - n, ",%.9g", v[c]);
}

int
cxr_model_save(const cxr_model *m, uint8_t **out, size_t *out_len)
{
    return m->kind->save(m, out, out_len);
}

int
cxr_param_model_save(const cxr_model *m, uint8_t **out, size_t *out_len)
{
    char input_size[16], in_channels[16], mean[80], std[80];
    snprintf(input_size, sizeof input_size, "%d", m->input_size);
    snprintf(in_channels, sizeof in_channels, "%d", m->in_channels);
    format_channels(mean, sizeof mean, m->mean, m->in_channels);
    format_channels(std, sizeof std, m->std, m->in_channels);
    cxr_st_meta_out meta[] = {
        {"format", "pt"},           {"arch", m->arch->name}, {"input_size", input_size},
        {"in_channels", in_channels}, {"mean", mean},          {"std", std},
        {"attention_score", m->attention_scaled ? "scaled_dot" : "dot"},
    };
    int *idx = by_offset(m);
    cxr_st_tensor_out *t = malloc(sizeof *t * (m->n_tensors ? m->n_tensors : 1));
    int rc = -1;
    if (idx && t) {
        for (int r = 0; r < m->n_tensors; r++) {
            const cxr_param_info *p = &m->tensors[idx[r]];
            t[r] = (cxr_st_tensor_out){p->name, CXR_ST_F32, p->ndim, {0}, m->params + p->offset};
            for (int d = 0; d < p->ndim; d++)
                t[r].shape[d] = p->shape[d];
        }
        /* a network without attention has no score to record */
        rc = cxr_st_write(meta, m->n_taps ? 7 : 6, t, m->n_tensors, out, out_len);
    }
    free(idx);
    free(t);
    return rc;
}

cxr_model *
cxr_model_clone(const cxr_model *src, char *err)
{
    return src->kind->clone(src, err);
}

cxr_model *
cxr_param_model_clone(const cxr_model *src, char *err)
{
    cxr_model *m = model_new(src->arch->name, src->attention_scaled, src->input_size,
                             src->in_channels, src->mean, src->std, err);
    if (!m)
        return NULL;
    memcpy(m->params, src->params, sizeof(float) * m->n_params);
    return m;
}

void
cxr_model_free(cxr_model *m)
{
    if (!m)
        return;
    if (m->kind)
        m->kind->release(m);
    for (int i = 0; i < m->n_tensors; i++)
        free(m->tensors[i].name);
    free(m->tensors);
    free(m->taps);
    free(m->params);
    free(m);
}

const cxr_param_info *
cxr_model_tensor(const cxr_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

const char *
cxr_model_negative_variance(const cxr_model *m, const float *params)
{
    /* BN divides by sqrt(running_var + eps): a negative variance turns every activation after
     * it into NaN, and the model answers the same for every image */
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        if (strcmp(field_of(t->name), "running_var") != 0)
            continue;
        for (size_t j = 0; j < t->numel; j++)
            if (params[t->offset + j] < 0.0f)
                return t->name;
    }
    return NULL;
}

/* ---- inference ---- */

int
cxr_model_attention_side(const cxr_model *m, int layer)
{
    return m->kind->attention_side(m, layer);
}

size_t
cxr_model_workspace_bytes(const cxr_model *m)
{
    return m->kind->workspace_bytes(m);
}

float
cxr_model_forward(cxr_model *m, const float *gray)
{
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    float logit = m->kind->forward(m, gray);
    cxr_fp_restore(fp);
    return logit;
}

const float *
cxr_model_attention(const cxr_model *m, int layer)
{
    return m->kind->attention(m, layer);
}

int
cxr_model_forward_batch(cxr_model *m, const float *gray, int n, float *logits)
{
    for (int i = 0; i < n; i++)
        logits[i] = NAN;
    if (n <= 0)
        return 0;
    if (m->kind->forward_batch) {
        cxr_fp_mode fp = cxr_fp_flush_denormals();
        int rc = m->kind->forward_batch(m, gray, n, logits);
        cxr_fp_restore(fp);
        return rc;
    }
    size_t img = (size_t)m->input_size * m->input_size;
    for (int i = 0; i < n && !cxr_interrupt_requested(); i++)
        logits[i] = cxr_model_forward(m, gray + i * img);
    return cxr_interrupt_requested() ? -1 : 0;
}

int
cxr_model_prepare_inference(cxr_model *m)
{
    return m->kind->prepare ? m->kind->prepare(m) : 0;
}

void
cxr_model_unprepare(cxr_model *m)
{
    if (m->kind->unprepare)
        m->kind->unprepare(m);
}

size_t
cxr_model_prepared_bytes(const cxr_model *m)
{
    return m->kind->prepared_bytes ? m->kind->prepared_bytes(m) : 0;
}

size_t
cxr_model_batch_bytes(const cxr_model *m, int n)
{
    return m->kind->batch_bytes && n > 0 ? m->kind->batch_bytes(m, n) : 0;
}

/* ---- models fitted in one pass ---- */

int
cxr_arch_one_pass(const cxr_arch *a)
{
    return cxr_kind_of(a)->fit != NULL;
}

int
cxr_model_one_pass(const cxr_model *m)
{
    return m->kind->fit != NULL;
}

int
cxr_model_set_param(cxr_model *m, const char *key, const char *value, char *err)
{
    if (!m->kind->set_param) {
        snprintf(err, CXR_ERR_LEN, "%s takes no named hyperparameters", m->arch->name);
        return -1;
    }
    return m->kind->set_param(m, key, value, err);
}

int
cxr_model_fit_units(const cxr_model *m)
{
    return m->kind->fit_units ? m->kind->fit_units(m) : 0;
}

size_t
cxr_model_fit_bytes(const cxr_model *m, int n_images)
{
    return m->kind->fit_bytes ? m->kind->fit_bytes(m, n_images) : 0;
}

int
cxr_model_fit(cxr_model *m, const cxr_dataset *d, int first, int count, uint64_t seed,
              int threads, char *err)
{
    if (!m->kind->fit) {
        snprintf(err, CXR_ERR_LEN, "%s is trained in epochs, not fitted", m->arch->name);
        return -1;
    }
    return m->kind->fit(m, d, first, count, seed, threads, err);
}

const float *
cxr_model_importance(const cxr_model *m)
{
    return m->kind->importance ? m->kind->importance(m) : NULL;
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_model.h"
#include "cxr_net.h"
#include "cxr_safetensors.h"

/* The four networks of models.md. */
static const cxr_arch archs[] = {
    {"alexnet", 0, {0}, 1, 6, 3, {4096, 4096, 1}},
    {"alexnet_attn1", 1, {4}, 0, 0, 2, {128, 1}},
    {"alexnet_attn2", 2, {3, 4}, 0, 0, 2, {128, 1}},
    {"alexnet_attn3", 3, {2, 3, 4}, 0, 0, 2, {128, 1}},
};

/* The conv stack shared by all of them: cout, kernel, stride, pad (conv5's pad is per arch). */
static const int conv_table[CXR_N_CONV][4] = {
    {64, 11, 4, 2}, {192, 5, 1, 2}, {384, 5, 1, 2}, {256, 3, 1, 1}, {256, 3, 1, -1},
};
#define POOL_K 3
#define POOL_STRIDE 2
#define ATTN_DIM 256

const cxr_arch *
cxr_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0)
            return &archs[i];
    return NULL;
}

const char *
cxr_arch_names(void)
{
    return "alexnet, alexnet_attn1, alexnet_attn2, alexnet_attn3";
}

static long
add_tensor(cxr_model *m, const char *name, int trainable, int ndim, int d0, int d1, int d2, int d3)
{
    cxr_param_info *t = &m->tensors[m->n_tensors++];
    int dims[4] = {d0, d1, d2, d3};
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = dims[i];
        t->numel *= (size_t)dims[i];
    }
    t->offset = m->n_params;
    t->trainable = trainable;
    m->n_params += t->numel;
    if (trainable)
        m->n_trainable = m->n_params;
    return (long)t->offset;
}

/* Fills geometry and the tensor table; params stay unallocated. */
static int
describe(cxr_model *m, char *err)
{
    char name[32];
    const cxr_arch *a = m->arch;
    int side = m->input_size, cin = m->in_channels;
    for (int l = 0; l < CXR_N_CONV; l++) {
        cxr_conv_shape *s = &m->conv[l];
        s->cin = cin;
        s->cout = conv_table[l][0];
        s->k = conv_table[l][1];
        s->stride = conv_table[l][2];
        s->pad = l == 4 ? a->conv5_pad : conv_table[l][3];
        m->conv_in[l] = side;
        m->conv_side[l] = cxr_conv_out_size(side, s->k, s->stride, s->pad);
        side = m->conv_side[l];
        if (l < CXR_N_BLOCK) {
            m->block_side[l] = cxr_maxpool_out_size(side, POOL_K, POOL_STRIDE);
            side = m->block_side[l];
        }
        if (side < 1) {
            snprintf(err, CXR_ERR_LEN, "input size %d is too small for %s", m->input_size,
                     a->name);
            return -1;
        }
        cin = s->cout;
    }
    if (a->n_taps && m->conv_side[4] != 1) {
        snprintf(err, CXR_ERR_LEN,
                 "input size %d gives a %dx%d conv5 map; %s needs 1x1 (use 299)",
                 m->input_size, m->conv_side[4], m->conv_side[4], a->name);
        return -1;
    }

    m->n_tensors = 0;
    m->n_params = m->n_trainable = 0;
    for (int l = 0; l < CXR_N_CONV; l++) {
        const cxr_conv_shape *s = &m->conv[l];
        snprintf(name, sizeof name, "conv%d.weight", l + 1);
        m->conv_w[l] = add_tensor(m, name, 1, 4, s->cout, s->cin, s->k, s->k);
        snprintf(name, sizeof name, "conv%d.bias", l + 1);
        m->conv_b[l] = add_tensor(m, name, 1, 1, s->cout, 0, 0, 0);
        if (l < CXR_N_BLOCK) {
            snprintf(name, sizeof name, "bn%d.weight", l + 1);
            m->bn_w[l] = add_tensor(m, name, 1, 1, s->cout, 0, 0, 0);
            snprintf(name, sizeof name, "bn%d.bias", l + 1);
            m->bn_b[l] = add_tensor(m, name, 1, 1, s->cout, 0, 0, 0);
        }
        m->proj_w[l] = -1;
    }
    for (int t = 0; t < a->n_taps; t++) {
        int l = a->taps[t] - 1;
        if (m->conv[l].cout != ATTN_DIM) {
            snprintf(name, sizeof name, "proj%d.weight", l + 1);
            m->proj_w[l] = add_tensor(m, name, 1, 4, ATTN_DIM, m->conv[l].cout, 1, 1);
        }
    }
    int width = a->avgpool ? m->conv[4].cout * a->avgpool * a->avgpool : ATTN_DIM * a->n_taps;
    for (int f = 0; f < a->n_fc; f++) {
        m->fc_in[f] = width;
        snprintf(name, sizeof name, "fc%d.weight", f + 1);
        m->fc_w[f] = add_tensor(m, name, 1, 2, a->fc_out[f], width, 0, 0);
        snprintf(name, sizeof name, "fc%d.bias", f + 1);
        m->fc_b[f] = add_tensor(m, name, 1, 1, a->fc_out[f], 0, 0, 0);
        width = a->fc_out[f];
    }
    for (int l = 0; l < CXR_N_BLOCK; l++) {
        snprintf(name, sizeof name, "bn%d.running_mean", l + 1);
        m->bn_mean[l] = add_tensor(m, name, 0, 1, m->conv[l].cout, 0, 0, 0);
        snprintf(name, sizeof name, "bn%d.running_var", l + 1);
        m->bn_var[l] = add_tensor(m, name, 0, 1, m->conv[l].cout, 0, 0, 0);
    }
    return 0;
}

/* Allocates parameters and the inference workspace. */
static int
allocate(cxr_model *m, char *err)
{
    m->params = calloc(m->n_params, sizeof(float));
    m->conv1_folded = malloc(sizeof(float) * m->conv[0].cout * m->conv[0].k * m->conv[0].k);
    m->infer = cxr_acts_create(m, 1, 0);
    if (!m->params || !m->conv1_folded || !m->infer) {
        snprintf(err, CXR_ERR_LEN, "out of memory allocating the model");
        return -1;
    }
    return 0;
}

static cxr_model *
model_new(const char *arch, int scaled, int input_size, int in_channels, char *err)
{
    const cxr_arch *a = cxr_arch_find(arch);
    if (!a) {
        snprintf(err, CXR_ERR_LEN, "unknown architecture \"%s\" (known: %s)", arch,
                 cxr_arch_names());
        return NULL;
    }
    if (input_size < 32 || input_size > 1024) {
        snprintf(err, CXR_ERR_LEN, "input size %d is outside 32..1024", input_size);
        return NULL;
    }
    if (in_channels < 1 || in_channels > 4) {
        snprintf(err, CXR_ERR_LEN, "in_channels %d is outside 1..4", in_channels);
        return NULL;
    }
    cxr_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        return NULL;
    }
    m->arch = a;
    m->attention_scaled = scaled;
    m->input_size = input_size;
    m->in_channels = in_channels;
    m->mean = 0.5f;
    m->std = 0.5f;
    if (describe(m, err) || allocate(m, err)) {
        cxr_model_free(m);
        return NULL;
    }
    return m;
}

cxr_model *
cxr_model_create(const char *arch, int attention_scaled, int input_size, uint64_t seed, char *err)
{
    cxr_model *m = model_new(arch, attention_scaled, input_size, 3, err);
    if (!m)
        return NULL;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *field = strchr(t->name, '.') + 1;
        if (strcmp(field, "weight") == 0 && t->ndim >= 2) {
            int rf = t->ndim == 4 ? t->shape[2] * t->shape[3] : 1;
            cxr_xavier_uniform(p, t->numel, t->shape[1] * rf, t->shape[0] * rf,
                               seed * 1000003u + (uint64_t)i);
        } else if (strcmp(field, "weight") == 0 || strcmp(field, "running_var") == 0) {
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 1.0f; /* BN scale and running variance start at 1 */
        }
    }
    return m;
}

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

static int
parse_float_meta(const cxr_st_file *f, const char *key, float dflt, float *out, char *err)
{
    const char *v = cxr_st_meta_get(f, key);
    char *end;
    if (!v) {
        *out = dflt;
        return 0;
    }
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || fabs(x) > 1e6) {
        snprintf(err, CXR_ERR_LEN, "metadata %s = \"%.40s\" is not a valid number", key, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static int
is_ignored_tensor(const char *name)
{
    int l;
    char rest[32];
    return sscanf(name, "bn%d.%31s", &l, rest) == 2 && strcmp(rest, "num_batches_tracked") == 0;
}

cxr_model *
cxr_model_load(const uint8_t *buf, size_t len, char *err)
{
    cxr_st_file f;
    cxr_model *m = NULL;
    if (cxr_st_parse(buf, len, &f, err, CXR_ERR_LEN))
        return NULL;
    const char *arch = cxr_st_meta_get(&f, "arch");
    const char *score = cxr_st_meta_get(&f, "attention_score");
    int input_size, in_channels, scaled = 0;
    float mean, std;
    if (!arch) {
        snprintf(err, CXR_ERR_LEN, "model file has no \"arch\" in its metadata");
        goto done;
    }
    if (score && strcmp(score, "scaled_dot") == 0)
        scaled = 1;
    else if (score && strcmp(score, "dot") != 0) {
        snprintf(err, CXR_ERR_LEN, "unknown attention_score \"%.40s\" (dot or scaled_dot)",
                 score);
        goto done;
    }
    if (parse_int_meta(&f, "input_size", 299, &input_size, err) ||
        parse_int_meta(&f, "in_channels", 3, &in_channels, err) ||
        parse_float_meta(&f, "mean", 0.5f, &mean, err) ||
        parse_float_meta(&f, "std", 0.5f, &std, err))
        goto done;
    if (!(std > 1e-6f)) {
        snprintf(err, CXR_ERR_LEN, "metadata std must be positive");
        goto done;
    }
    m = model_new(arch, scaled, input_size, in_channels, err);
    if (!m)
        goto done;
    m->mean = mean;
    m->std = std;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        const cxr_st_tensor *s = cxr_st_find(&f, t->name);
        int same = s && s->dtype == CXR_ST_F32 && s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = s->shape[d] == t->shape[d];
        if (!s) {
            snprintf(err, CXR_ERR_LEN, "model file lacks tensor \"%s\" required by %s", t->name,
                     m->arch->name);
            goto fail;
        }
        if (!same) {
            char want[64];
            int n = 0;
            for (int d = 0; d < t->ndim; d++)
                n += snprintf(want + n, sizeof want - n, "%s%d", d ? "," : "", t->shape[d]);
            snprintf(err, CXR_ERR_LEN, "tensor \"%s\" must be float32 of shape [%s]", t->name,
                     want);
            goto fail;
        }
        memcpy(m->params + t->offset, f.data + s->begin, t->numel * sizeof(float));
    }
    for (int i = 0; i < f.n_tensors; i++)
        if (!cxr_model_tensor(m, f.tensors[i].name) && !is_ignored_tensor(f.tensors[i].name)) {
            snprintf(err, CXR_ERR_LEN, "unexpected tensor \"%s\" for %s", f.tensors[i].name,
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
        snprintf(err, CXR_ERR_LEN, "tensor \"%s\" has a negative value", bad);
        goto fail;
    }
    goto done;
fail:
    cxr_model_free(m);
    m = NULL;
done:
    cxr_st_free(&f);
    return m;
}

int
cxr_model_save(const cxr_model *m, uint8_t **out, size_t *out_len)
{
    size_t cap = 4096 + (size_t)m->n_tensors * 160, n = 0;
    char *h = malloc(cap);
    if (!h)
        return -1;
    n += snprintf(h + n, cap - n,
                  "{\"__metadata__\":{\"format\":\"pt\",\"arch\":\"%s\",\"input_size\":\"%d\","
                  "\"in_channels\":\"%d\",\"mean\":\"%.9g\",\"std\":\"%.9g\"",
                  m->arch->name, m->input_size, m->in_channels, m->mean, m->std);
    if (m->arch->n_taps)
        n += snprintf(h + n, cap - n, ",\"attention_score\":\"%s\"",
                      m->attention_scaled ? "scaled_dot" : "dot");
    n += snprintf(h + n, cap - n, "}");
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        n += snprintf(h + n, cap - n, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
        for (int d = 0; d < t->ndim; d++)
            n += snprintf(h + n, cap - n, "%s%d", d ? "," : "", t->shape[d]);
        n += snprintf(h + n, cap - n, "],\"data_offsets\":[%zu,%zu]}", t->offset * 4,
                      (t->offset + t->numel) * 4);
    }
    n += snprintf(h + n, cap - n, "}");
    while (n % 8)
        h[n++] = ' '; /* data starts 8-byte aligned, as the reference writer does */
    size_t total = 8 + n + m->n_params * sizeof(float);
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(h);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, h, n);
    memcpy(buf + 8 + n, m->params, m->n_params * sizeof(float));
    free(h);
    *out = buf;
    *out_len = total;
    return 0;
}

cxr_model *
cxr_model_clone(const cxr_model *src, char *err)
{
    cxr_model *m = model_new(src->arch->name, src->attention_scaled, src->input_size,
                             src->in_channels, err);
    if (!m)
        return NULL;
    m->mean = src->mean;
    m->std = src->std;
    memcpy(m->params, src->params, sizeof(float) * m->n_params);
    return m;
}

void
cxr_model_free(cxr_model *m)
{
    if (!m)
        return;
    cxr_acts_free(m->infer);
    free(m->conv1_folded);
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
        const char *dot = strchr(t->name, '.');
        if (!dot || strcmp(dot, ".running_var") != 0)
            continue;
        for (size_t j = 0; j < t->numel; j++)
            if (params[t->offset + j] < 0.0f)
                return t->name;
    }
    return NULL;
}

int
cxr_model_attention_side(const cxr_model *m, int layer)
{
    for (int t = 0; t < m->arch->n_taps; t++)
        if (m->arch->taps[t] == layer)
            return m->conv_side[layer - 1];
    return 0;
}

/* The random-forest kind: architecture "random_forest", its hyperparameters (scikit-learn's
 * names), its file (the trees' node arrays as safetensors) and inference on the feature grid.
 * The model's input_size is the feature grid's side. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_forest.h"
#include "cxr_kind.h"

#define DEFAULT_GRID 64
#define MIN_GRID 8
#define MAX_GRID 512

static cxr_forest *
forest_of(const cxr_model *m)
{
    return (cxr_forest *)m->kind_state;
}

/* A fresh forest for the model's grid and these parameters (no trees). */
static int
reset_forest(cxr_model *m, const cxr_forest_params *p, char *err)
{
    if (m->input_size < MIN_GRID || m->input_size > MAX_GRID) {
        snprintf(err, CXR_ERR_LEN, "feature_grid %d is outside %d..%d", m->input_size, MIN_GRID,
                 MAX_GRID);
        return -1;
    }
    cxr_forest *f = cxr_forest_new(p, m->input_size * m->input_size);
    if (!f) {
        snprintf(err, CXR_ERR_LEN, "out of memory allocating the forest");
        return -1;
    }
    cxr_forest_free(forest_of(m));
    m->kind_state = f;
    return 0;
}

static int
forest_build(cxr_model *m, char *err)
{
    cxr_forest_params p;
    cxr_forest_default_params(&p);
    m->in_channels = 1;
    return reset_forest(m, &p, err);
}

static void
forest_release(cxr_model *m)
{
    cxr_forest_free(forest_of(m));
    m->kind_state = NULL;
}

static float
forest_forward(cxr_model *m, const float *gray)
{
    cxr_forest *f = forest_of(m);
    /* the features are the 8-bit levels the training set stored */
    for (int j = 0; j < f->n_features; j++)
        f->levels[j] = cxr_gray_level(gray[j]);
    double p = cxr_forest_probability(f, f->levels);
    return p <= 0 ? -INFINITY : p >= 1 ? INFINITY : (float)log(p / (1 - p));
}

static const float *
forest_attention(const cxr_model *m, int layer)
{
    (void)m, (void)layer;
    return NULL;
}

static int
forest_attention_side(const cxr_model *m, int layer)
{
    (void)m, (void)layer;
    return 0;
}

static size_t
forest_workspace_bytes(const cxr_model *m)
{
    return (size_t)forest_of(m)->n_features;
}

static void
forest_trainable_changed(cxr_model *m)
{
    (void)m;
}

/* ---- hyperparameters ---- */

static int
parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int
forest_set_param(cxr_model *m, const char *key, const char *value, char *err)
{
    cxr_forest_params p = forest_of(m)->params;
    long x;
    if (strcmp(key, "n_estimators") == 0) {
        if (parse_int(value, 1, CXR_FOREST_MAX_TREES, &x))
            goto bad;
        p.n_estimators = (int)x;
    } else if (strcmp(key, "max_depth") == 0) {
        if (strcmp(value, "null") == 0)
            x = 0;
        else if (parse_int(value, 1, CXR_FOREST_MAX_DEPTH, &x))
            goto bad;
        p.max_depth = (int)x;
    } else if (strcmp(key, "min_samples_split") == 0) {
        if (parse_int(value, 2, 1000000000, &x))
            goto bad;
        p.min_samples_split = (int)x;
    } else if (strcmp(key, "min_samples_leaf") == 0) {
        if (parse_int(value, 1, 1000000000, &x))
            goto bad;
        p.min_samples_leaf = (int)x;
    } else if (strcmp(key, "max_features") == 0) {
        char *end;
        p.max_features_fraction = 0;
        if (strcmp(value, "sqrt") == 0)
            p.max_features = 0;
        else if (strcmp(value, "log2") == 0)
            p.max_features = -1;
        else if (strcmp(value, "null") == 0)
            p.max_features = -2;
        else if (parse_int(value, 1, 1 << 20, &x) == 0)
            p.max_features = (int)x;
        else {
            double fr = strtod(value, &end);
            if (end == value || *end || !(fr > 0.0 && fr <= 1.0))
                goto bad;
            p.max_features_fraction = fr;
        }
    } else if (strcmp(key, "bootstrap") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            goto bad;
        p.bootstrap = strcmp(value, "true") == 0;
    } else if (strcmp(key, "criterion") == 0) {
        if (strcmp(value, "gini") != 0)
            goto bad;
    } else if (strcmp(key, "feature_grid") == 0) {
        if (parse_int(value, MIN_GRID, MAX_GRID, &x))
            goto bad;
        m->input_size = (int)x;
    } else {
        snprintf(err, CXR_ERR_LEN,
                 "random_forest has no parameter \"%.40s\" (it has n_estimators, max_depth, "
                 "min_samples_split, min_samples_leaf, max_features, bootstrap, criterion, "
                 "feature_grid)",
                 key);
        return -1;
    }
    return reset_forest(m, &p, err);
bad:
    snprintf(err, CXR_ERR_LEN, "random_forest parameter %s = %.40s is not valid (%s)", key, value,
             strcmp(key, "n_estimators") == 0         ? "an integer in 1..10000"
             : strcmp(key, "max_depth") == 0          ? "null or an integer in 1..128"
             : strcmp(key, "min_samples_split") == 0  ? "an integer >= 2"
             : strcmp(key, "min_samples_leaf") == 0   ? "an integer >= 1"
             : strcmp(key, "max_features") == 0       ? "\"sqrt\", \"log2\", null, an integer "
                                                         ">= 1 or a fraction in (0, 1]"
             : strcmp(key, "bootstrap") == 0          ? "true or false"
             : strcmp(key, "criterion") == 0          ? "only \"gini\""
                                                      : "an integer in 8..512");
    return -1;
}

static int
forest_fit_units(const cxr_model *m)
{
    return forest_of(m)->params.n_estimators;
}

static size_t
forest_fit_bytes(const cxr_model *m, int n_images)
{
    return cxr_forest_fit_bytes(forest_of(m), n_images);
}

static int
forest_fit(cxr_model *m, const cxr_dataset *d, int first, int count, uint64_t seed, int threads,
           char *err)
{
    cxr_forest *f = forest_of(m);
    if (cxr_forest_fit(f, d, first, count, seed, threads, err))
        return -1;
    if (f->n_trees == f->params.n_estimators && cxr_forest_finish(f)) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        return -1;
    }
    return 0;
}

static const float *
forest_importance(const cxr_model *m)
{
    return forest_of(m)->importance;
}

/* ---- the file ---- */

static void
describe_params(const cxr_forest_params *p, char *max_depth, char *max_features, size_t len)
{
    if (p->max_depth)
        snprintf(max_depth, len, "%d", p->max_depth);
    else
        snprintf(max_depth, len, "null");
    if (p->max_features_fraction > 0)
        snprintf(max_features, len, "%.17g", p->max_features_fraction);
    else if (p->max_features > 0)
        snprintf(max_features, len, "%d", p->max_features);
    else
        snprintf(max_features, len, "%s",
                 p->max_features == 0 ? "sqrt" : p->max_features == -1 ? "log2" : "null");
}

static int
forest_save(const cxr_model *m, uint8_t **out, size_t *out_len)
{
    const cxr_forest *f = forest_of(m);
    const cxr_forest_params *p = &f->params;
    char grid[16], trees[16], depth[32], features[32], split[16], leaf[16];
    snprintf(grid, sizeof grid, "%d", m->input_size);
    snprintf(trees, sizeof trees, "%d", f->n_trees);
    snprintf(split, sizeof split, "%d", p->min_samples_split);
    snprintf(leaf, sizeof leaf, "%d", p->min_samples_leaf);
    describe_params(p, depth, features, sizeof depth);
    cxr_st_meta_out meta[] = {
        {"format", "pt"},
        {"arch", m->arch->name},
        {"input_size", grid},
        {"n_estimators", trees},
        {"max_depth", depth},
        {"min_samples_split", split},
        {"min_samples_leaf", leaf},
        {"max_features", features},
        {"bootstrap", p->bootstrap ? "true" : "false"},
    };
    int64_t n = 0;
    for (int t = 0; t < f->n_trees; t++)
        n += f->trees[t].n;
    int64_t *offsets = malloc(sizeof(int64_t) * (f->n_trees + 1));
    int32_t *feature = malloc(sizeof(int32_t) * (n ? n : 1)),
            *left = malloc(sizeof(int32_t) * (n ? n : 1)),
            *right = malloc(sizeof(int32_t) * (n ? n : 1));
    float *threshold = malloc(sizeof(float) * (n ? n : 1)),
          *value = malloc(sizeof(float) * (n ? n : 1));
    int rc = -1;
    if (offsets && feature && left && right && threshold && value) {
        int64_t at = 0;
        for (int t = 0; t < f->n_trees; t++) {
            const cxr_tree *tr = &f->trees[t];
            offsets[t] = at;
            memcpy(feature + at, tr->feature, sizeof(int32_t) * tr->n);
            memcpy(left + at, tr->left, sizeof(int32_t) * tr->n);
            memcpy(right + at, tr->right, sizeof(int32_t) * tr->n);
            memcpy(threshold + at, tr->threshold, sizeof(float) * tr->n);
            memcpy(value + at, tr->value, sizeof(float) * tr->n);
            at += tr->n;
        }
        offsets[f->n_trees] = at;
        cxr_st_tensor_out tensors[] = {
            {"tree_offsets", CXR_ST_I64, 1, {f->n_trees + 1}, offsets},
            {"feature", CXR_ST_I32, 1, {n}, feature},
            {"threshold", CXR_ST_F32, 1, {n}, threshold},
            {"children_left", CXR_ST_I32, 1, {n}, left},
            {"children_right", CXR_ST_I32, 1, {n}, right},
            {"value", CXR_ST_F32, 1, {n}, value},
            {"feature_importances", CXR_ST_F32, 1, {f->n_features}, f->importance},
        };
        rc = cxr_st_write(meta, sizeof meta / sizeof meta[0], tensors, f->importance ? 7 : 6, out,
                          out_len);
    }
    free(offsets);
    free(feature);
    free(left);
    free(right);
    free(threshold);
    free(value);
    return rc;
}

static const cxr_st_tensor *
vector_of(const cxr_st_file *f, const char *name, cxr_st_dtype dtype, int64_t n, char *err)
{
    const cxr_st_tensor *t = cxr_st_find(f, name);
    if (!t || t->dtype != dtype || t->ndim != 1 || (n >= 0 && t->shape[0] != n)) {
        snprintf(err, CXR_ERR_LEN, "random_forest file needs a %s vector \"%s\"%s",
                 dtype == CXR_ST_F32 ? "float32" : dtype == CXR_ST_I32 ? "int32" : "int64", name,
                 n >= 0 ? " with one value per node (or per feature)" : "");
        return NULL;
    }
    return t;
}

static cxr_model *
forest_load(const cxr_st_file *f, const cxr_arch *a, char *err)
{
    const char *grid_s = cxr_st_meta_get(f, "input_size");
    long grid;
    if (!grid_s || parse_int(grid_s, MIN_GRID, MAX_GRID, &grid)) {
        snprintf(err, CXR_ERR_LEN, "random_forest file needs input_size (the feature grid) in "
                 "%d..%d", MIN_GRID, MAX_GRID);
        return NULL;
    }
    const cxr_st_tensor *off = vector_of(f, "tree_offsets", CXR_ST_I64, -1, err);
    if (!off)
        return NULL;
    int64_t n_trees = off->shape[0] - 1;
    if (n_trees < 1 || n_trees > CXR_FOREST_MAX_TREES) {
        snprintf(err, CXR_ERR_LEN, "random_forest file holds %lld trees (1..%d)",
                 (long long)n_trees, CXR_FOREST_MAX_TREES);
        return NULL;
    }
    const int64_t *offsets = (const int64_t *)(f->data + off->begin);
    const cxr_st_tensor *feat = vector_of(f, "feature", CXR_ST_I32, -1, err);
    int64_t n = feat ? feat->shape[0] : 0;
    const cxr_st_tensor *thr = feat ? vector_of(f, "threshold", CXR_ST_F32, n, err) : NULL;
    const cxr_st_tensor *left = thr ? vector_of(f, "children_left", CXR_ST_I32, n, err) : NULL;
    const cxr_st_tensor *right = left ? vector_of(f, "children_right", CXR_ST_I32, n, err) : NULL;
    const cxr_st_tensor *value = right ? vector_of(f, "value", CXR_ST_F32, n, err) : NULL;
    if (!value)
        return NULL;
    const cxr_st_tensor *imp = cxr_st_find(f, "feature_importances");
    if (imp && !vector_of(f, "feature_importances", CXR_ST_F32, grid * grid, err))
        return NULL;
    for (int i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        if (strcmp(name, "tree_offsets") && strcmp(name, "feature") && strcmp(name, "threshold") &&
            strcmp(name, "children_left") && strcmp(name, "children_right") &&
            strcmp(name, "value") && strcmp(name, "feature_importances")) {
            snprintf(err, CXR_ERR_LEN, "unexpected tensor \"%.80s\" for random_forest", name);
            return NULL;
        }
    }
    if (offsets[0] != 0 || offsets[n_trees] != n) {
        snprintf(err, CXR_ERR_LEN, "tree_offsets must start at 0 and end at the node count");
        return NULL;
    }
    for (int64_t t = 0; t < n_trees; t++)
        if (offsets[t + 1] <= offsets[t]) {
            snprintf(err, CXR_ERR_LEN, "tree_offsets must increase (every tree has a node)");
            return NULL;
        }
    cxr_model *m = cxr_model_create(a->name, 0, (int)grid, 0, err);
    if (!m)
        return NULL;
    cxr_forest_params p;
    cxr_forest_default_params(&p);
    p.n_estimators = (int)n_trees;
    if (reset_forest(m, &p, err))
        goto fail;
    /* the recorded hyperparameters are informational (the trees are what scores): kept when
     * cxr_train would accept them, left at their defaults otherwise (a scikit-learn forest
     * may say max_depth 500 and still have trees within CXR_FOREST_MAX_DEPTH) */
    static const char *const keys[] = {"max_depth", "min_samples_split", "min_samples_leaf",
                                       "max_features", "bootstrap"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = cxr_st_meta_get(f, keys[k]);
        if (v)
            (void)forest_set_param(m, keys[k], v, err); /* a failure keeps the forest as it was */
    }
    err[0] = '\0';
    cxr_forest *fo = forest_of(m);
    for (int64_t t = 0; t < n_trees; t++) {
        cxr_tree *tr = &fo->trees[t];
        int64_t a0 = offsets[t], cnt = offsets[t + 1] - a0;
        tr->n = (int)cnt;
        tr->feature = malloc(sizeof(int32_t) * cnt);
        tr->left = malloc(sizeof(int32_t) * cnt);
        tr->right = malloc(sizeof(int32_t) * cnt);
        tr->threshold = malloc(sizeof(float) * cnt);
        tr->value = malloc(sizeof(float) * cnt);
        if (!tr->feature || !tr->left || !tr->right || !tr->threshold || !tr->value) {
            fo->n_trees = (int)t + 1;
            snprintf(err, CXR_ERR_LEN, "out of memory loading the forest");
            goto fail;
        }
        memcpy(tr->feature, f->data + feat->begin + 4 * a0, 4 * cnt);
        memcpy(tr->left, f->data + left->begin + 4 * a0, 4 * cnt);
        memcpy(tr->right, f->data + right->begin + 4 * a0, 4 * cnt);
        memcpy(tr->threshold, f->data + thr->begin + 4 * a0, 4 * cnt);
        memcpy(tr->value, f->data + value->begin + 4 * a0, 4 * cnt);
        fo->n_trees = (int)t + 1;
        char why[160];
        if (cxr_tree_validate(tr, fo->n_features, why, sizeof why)) {
            snprintf(err, CXR_ERR_LEN, "tree %lld: %s", (long long)t, why);
            goto fail;
        }
    }
    if (imp) {
        fo->importance = malloc(sizeof(float) * fo->n_features);
        if (!fo->importance) {
            snprintf(err, CXR_ERR_LEN, "out of memory loading the forest");
            goto fail;
        }
        memcpy(fo->importance, f->data + imp->begin, sizeof(float) * fo->n_features);
        for (int j = 0; j < fo->n_features; j++)
            if (!(fo->importance[j] >= 0.0f && fo->importance[j] <= 1.0f)) {
                snprintf(err, CXR_ERR_LEN, "feature_importances must lie in [0, 1]");
                goto fail;
            }
    }
    return m;
fail:
    cxr_model_free(m);
    return NULL;
}

static cxr_model *
forest_clone(const cxr_model *src, char *err)
{
    uint8_t *bytes;
    size_t len;
    if (forest_save(src, &bytes, &len)) {
        snprintf(err, CXR_ERR_LEN, "out of memory");
        return NULL;
    }
    cxr_model *m = cxr_model_load(bytes, len, err);
    free(bytes);
    return m;
}

const cxr_model_kind cxr_kind_forest = {
    .name = "random_forest",
    .load = forest_load,
    .save = forest_save,
    .clone = forest_clone,
    .build = forest_build,
    .release = forest_release,
    .forward = forest_forward,
    .attention = forest_attention,
    .attention_side = forest_attention_side,
    .workspace_bytes = forest_workspace_bytes,
    .trainable_changed = forest_trainable_changed,
    .set_param = forest_set_param,
    .fit_units = forest_fit_units,
    .fit_bytes = forest_fit_bytes,
    .fit = forest_fit,
    .importance = forest_importance,
};

/* The pixel baseline of the paper's Table V; mean/std are unused (features are gray levels). */
const cxr_arch cxr_arch_random_forest = {
    "random_forest", DEFAULT_GRID, {0, 0, 0}, {1, 1, 1}, NULL, DEFAULT_GRID, &cxr_kind_forest,
};

/* The random forest is a correct forest: a hand-derived tree on a tiny data set, and on random
 * data the properties every CART forest has (leaf values are the bootstrap-weighted class
 * fractions of the samples that reach them, leaf counts add up to the bootstrap sample, pure
 * nodes are leaves, depth and leaf limits hold), one seed gives the same forest whatever the
 * threads and chunks, the file round-trips, and hostile trees are refused. */
#include <string.h>

#include "cxr_forest.h"
#include "cxr_kind.h"
#include "harness.h"

static cxr_dataset
dataset(int n, int side)
{
    cxr_dataset d = {0};
    d.n = d.capacity = n;
    d.side = side;
    int blocks = (n + CXR_DATASET_BLOCK - 1) / CXR_DATASET_BLOCK;
    d.blocks = calloc(blocks, sizeof(uint8_t *));
    for (int b = 0; b < blocks; b++)
        d.blocks[b] = calloc((size_t)CXR_DATASET_BLOCK * side * side, 1);
    d.labels = calloc(n, sizeof(float));
    return d;
}

static void
dataset_free(cxr_dataset *d)
{
    for (int b = 0; b < (d->n + CXR_DATASET_BLOCK - 1) / CXR_DATASET_BLOCK; b++)
        free(d->blocks[b]);
    free(d->blocks);
    free(d->labels);
}

static int
leaf_of(const cxr_tree *t, const uint8_t *x, int *depth)
{
    int k = 0;
    *depth = 0;
    while (t->left[k] >= 0) {
        k = (float)x[t->feature[k]] <= t->threshold[k] ? t->left[k] : t->right[k];
        (*depth)++;
    }
    return k;
}

/* Five images of 2 x 2 pixels; only pixel 0 varies: class 0 at levels 10, 20, 30, class 1 at
 * 200, 210. Without bootstrap the one split is pixel 0 at (30 + 200) / 2 = 115, with leaves
 * of value 0 and 1, and pixel 0 has all the importance. */
static void
test_hand_built(void)
{
    cxr_dataset d = dataset(5, 2);
    const uint8_t level[5] = {10, 200, 20, 210, 30};
    for (int i = 0; i < 5; i++) {
        uint8_t *img = cxr_dataset_image(&d, i);
        img[0] = level[i];
        img[1] = 7, img[2] = 7, img[3] = 99;
        d.labels[i] = level[i] > 100;
    }
    cxr_forest_params p;
    cxr_forest_default_params(&p);
    p.n_estimators = 3;
    p.bootstrap = 0;
    p.max_features = -2;
    cxr_forest *f = cxr_forest_new(&p, 4);
    char err[256];
    CHECK(cxr_forest_fit(f, &d, 0, 3, 42, 1, err) == 0, "fit: %s", err);
    CHECK(cxr_forest_finish(f) == 0, "finish");
    for (int t = 0; t < 3; t++) {
        const cxr_tree *tr = &f->trees[t];
        CHECK(tr->n == 3, "tree %d has %d nodes, want 3", t, tr->n);
        if (tr->n != 3)
            continue;
        CHECK(tr->feature[0] == 0 && tr->threshold[0] == 115.0f && tr->left[0] == 1 &&
                  tr->right[0] == 2,
              "root: feature %d threshold %g children %d %d", tr->feature[0],
              (double)tr->threshold[0], tr->left[0], tr->right[0]);
        CHECK(tr->left[1] == -1 && tr->right[1] == -1 && tr->value[1] == 0.0f, "left leaf");
        CHECK(tr->left[2] == -1 && tr->right[2] == -1 && tr->value[2] == 1.0f, "right leaf");
        CHECK(tr->value[0] == 0.4f, "root value %g, want 2/5", (double)tr->value[0]);
    }
    CHECK(f->importance[0] == 1.0f && f->importance[1] == 0 && f->importance[3] == 0,
          "importance %g %g", (double)f->importance[0], (double)f->importance[1]);
    uint8_t x[4] = {115, 0, 0, 0};
    CHECK(cxr_forest_probability(f, x) == 0.0, "115 goes left");
    x[0] = 116;
    CHECK(cxr_forest_probability(f, x) == 1.0, "116 goes right");
    cxr_forest_free(f);

    /* one class only, or a node of one sample: a single leaf */
    for (int i = 0; i < 5; i++)
        d.labels[i] = 1;
    f = cxr_forest_new(&p, 4);
    CHECK(cxr_forest_fit(f, &d, 0, 3, 1, 1, err) == 0 && f->trees[0].n == 1 &&
              f->trees[0].value[0] == 1.0f,
          "a pure root is a leaf");
    cxr_forest_free(f);
    dataset_free(&d);
}

/* Random images whose label depends on a few pixels, with noise. */
static cxr_dataset
random_data(int n, int side, uint32_t seed)
{
    cxr_dataset d = dataset(n, side);
    for (int i = 0; i < n; i++) {
        uint8_t *img = cxr_dataset_image(&d, i);
        for (int j = 0; j < side * side; j++) {
            seed = seed * 1664525u + 1013904223u;
            img[j] = (uint8_t)(seed >> 24);
        }
        seed = seed * 1664525u + 1013904223u;
        int noise = (seed >> 24) < 30;
        d.labels[i] = (float)(((img[3] > 128) ^ (img[10] > 60 && img[20] < 200)) ^ noise);
    }
    return d;
}

/* Every property of tree t of f fitted on d with params p and the core's seed. */
static void
check_tree(const cxr_forest *f, const cxr_dataset *d, int t, uint64_t seed)
{
    const cxr_tree *tr = &f->trees[t];
    const cxr_forest_params *p = &f->params;
    int32_t *w = malloc(sizeof(int32_t) * d->n);
    double *lw = calloc(tr->n, sizeof(double)), *lp = calloc(tr->n, sizeof(double));
    int *lc = calloc(tr->n, sizeof(int));
    cxr_forest_bootstrap(seed, t, d->n, p->bootstrap, w);
    long total = 0;
    int max_depth = 0;
    for (int i = 0; i < d->n; i++) {
        if (!w[i])
            continue;
        int depth, k = leaf_of(tr, cxr_dataset_image(d, i), &depth);
        max_depth = depth > max_depth ? depth : max_depth;
        lw[k] += w[i];
        lp[k] += w[i] * d->labels[i];
        lc[k]++;
        total += w[i];
    }
    CHECK(total == d->n, "tree %d: bootstrap weights add to %ld, want %d", t, total, d->n);
    long in_leaves = 0;
    int bad_value = 0, empty = 0, small = 0;
    for (int k = 0; k < tr->n; k++) {
        if (tr->left[k] >= 0)
            continue;
        in_leaves += (long)lw[k];
        empty += lc[k] == 0;
        small += lc[k] < p->min_samples_leaf;
        if (lc[k] && fabs(tr->value[k] - lp[k] / lw[k]) > 1e-6)
            bad_value++;
    }
    CHECK(in_leaves == d->n, "tree %d: leaf counts add to %ld, not the bootstrap sample %d", t,
          in_leaves, d->n);
    CHECK(bad_value == 0, "tree %d: %d leaves whose value is not their class fraction", t,
          bad_value);
    CHECK(empty == 0, "tree %d: %d leaves no training sample reaches", t, empty);
    CHECK(small == 0, "tree %d: %d leaves with fewer than min_samples_leaf = %d samples", t, small,
          p->min_samples_leaf);
    if (p->max_depth)
        CHECK(max_depth <= p->max_depth, "tree %d is %d deep, max_depth %d", t, max_depth,
              p->max_depth);
    /* internal nodes: mixed classes, enough samples to split; the value is their fraction */
    int pure_split = 0, too_few = 0;
    for (int k = tr->n - 1; k >= 0; k--) {
        if (tr->left[k] < 0)
            continue;
        int l = tr->left[k], r = tr->right[k];
        lw[k] = lw[l] + lw[r];
        lp[k] = lp[l] + lp[r];
        lc[k] = lc[l] + lc[r];
        pure_split += lp[k] == 0 || lp[k] == lw[k];
        too_few += lc[k] < p->min_samples_split;
    }
    CHECK(pure_split == 0, "tree %d: %d pure nodes were split", t, pure_split);
    CHECK(too_few == 0, "tree %d: %d nodes split below min_samples_split", t, too_few);
    char err[200];
    CHECK(cxr_tree_validate(tr, f->n_features, err, sizeof err) == 0, "tree %d: %s", t, err);
    free(w);
    free(lw);
    free(lp);
    free(lc);
}

static uint8_t *
saved(cxr_model *m, size_t *len)
{
    uint8_t *bytes = NULL;
    CHECK(cxr_model_save(m, &bytes, len) == 0, "save");
    return bytes;
}

static cxr_model *
forest_model(const char *params[][2], int n_params, char *err)
{
    cxr_model *m = cxr_model_create("random_forest", 0, 8, 1, err);
    for (int i = 0; m && i < n_params; i++)
        if (cxr_model_set_param(m, params[i][0], params[i][1], err)) {
            cxr_model_free(m);
            return NULL;
        }
    return m;
}

static void
test_properties(void)
{
    cxr_dataset d = random_data(600, 8, 5);
    char err[CXR_ERR_LEN];
    const char *configs[][4][2] = {
        {{"n_estimators", "6"}, {"max_depth", "null"}, {"min_samples_leaf", "1"}, {"bootstrap", "true"}},
        {{"n_estimators", "6"}, {"max_depth", "3"}, {"min_samples_leaf", "1"}, {"bootstrap", "true"}},
        {{"n_estimators", "6"}, {"max_depth", "null"}, {"min_samples_leaf", "7"}, {"bootstrap", "false"}},
        {{"n_estimators", "6"}, {"min_samples_split", "40"}, {"max_features", "0.5"}, {"bootstrap", "true"}},
    };
    for (int c = 0; c < 4; c++) {
        cxr_model *m = forest_model(configs[c], 4, err);
        CHECK(m != NULL, "create: %s", err);
        if (!m)
            continue;
        CHECK(cxr_model_fit(m, &d, 0, 6, 77, 2, err) == 0, "fit: %s", err);
        const cxr_forest *f = m->kind_state;
        for (int t = 0; t < 6; t++)
            check_tree(f, &d, t, 77);
        double sum = 0;
        for (int j = 0; j < 64; j++)
            sum += cxr_model_importance(m)[j];
        CHECK(fabs(sum - 1) < 1e-5, "config %d: importances sum to %g", c, sum);
        /* the pixels the label depends on matter most */
        const float *imp = cxr_model_importance(m);
        CHECK(imp[3] > 1.0 / 64 && (c == 1 || imp[10] > 1.0 / 64),
              "config %d: importance of pixels 3, 10: %g %g (depth 3 may not reach pixel 10)", c,
              (double)imp[3], (double)imp[10]);
        cxr_model_free(m);
    }

    /* one seed, one forest: 1, 2 or 3 threads, one call or tree by tree */
    const char *base[][2] = {{"n_estimators", "7"}};
    uint8_t *ref = NULL;
    size_t ref_len = 0;
    for (int threads = 1; threads <= 3; threads++)
        for (int chunked = 0; chunked < 2; chunked++) {
            cxr_model *m = forest_model(base, 1, err);
            if (chunked)
                for (int t = 0; t < 7; t++)
                    CHECK(cxr_model_fit(m, &d, t, 1, 99, threads, err) == 0, "fit: %s", err);
            else
                CHECK(cxr_model_fit(m, &d, 0, 7, 99, threads, err) == 0, "fit: %s", err);
            size_t len;
            uint8_t *bytes = saved(m, &len);
            if (!ref) {
                ref = bytes;
                ref_len = len;
            } else {
                CHECK(len == ref_len && memcmp(bytes, ref, len) == 0,
                      "%d threads, chunked %d: a different forest", threads, chunked);
                free(bytes);
            }
            cxr_model_free(m);
        }
    /* another seed, another forest */
    cxr_model *m = forest_model(base, 1, err);
    cxr_model_fit(m, &d, 0, 7, 100, 2, err);
    size_t len;
    uint8_t *bytes = saved(m, &len);
    CHECK(len != ref_len || memcmp(bytes, ref, len) != 0, "seeds 99 and 100 give the same forest");
    free(bytes);

    /* the file round-trips: same probabilities, same bytes */
    cxr_model *back = cxr_model_load(ref, ref_len, err);
    CHECK(back != NULL, "load: %s", err);
    if (back) {
        cxr_model *fresh = forest_model(base, 1, err);
        cxr_model_fit(fresh, &d, 0, 7, 99, 1, err);
        float gray[64];
        int differ = 0;
        for (int i = 0; i < d.n; i++) {
            for (int j = 0; j < 64; j++)
                gray[j] = cxr_dataset_image(&d, i)[j] / 255.0f;
            differ += cxr_model_forward(back, gray) != cxr_model_forward(fresh, gray);
        }
        CHECK(differ == 0, "%d images score differently after a round trip", differ);
        size_t len2;
        uint8_t *again = saved(back, &len2);
        CHECK(len2 == ref_len && memcmp(again, ref, len2) == 0, "saving a loaded forest changes it");
        free(again);
        cxr_model_free(fresh);
        cxr_model_free(back);
    }
    cxr_model_free(m);
    free(ref);
    dataset_free(&d);
}

static void
test_params(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("random_forest", 0, 8, 1, err);
    const char *bad[][2] = {{"n_estimators", "0"},      {"n_estimators", "1.5"},
                            {"max_depth", "0"},         {"max_depth", "200"},
                            {"min_samples_split", "1"}, {"min_samples_leaf", "0"},
                            {"max_features", "0"},      {"max_features", "1.5"},
                            {"max_features", "cube"},   {"bootstrap", "1"},
                            {"criterion", "entropy"},   {"feature_grid", "4"},
                            {"feature_grid", "1000"},   {"n_trees", "5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(cxr_model_set_param(m, bad[i][0], bad[i][1], err) != 0, "%s = %s accepted",
              bad[i][0], bad[i][1]);
    CHECK(cxr_model_set_param(m, "feature_grid", "16", err) == 0 && m->input_size == 16,
          "feature_grid 16");
    CHECK(cxr_model_set_param(m, "max_features", "log2", err) == 0 &&
              cxr_forest_max_features(&((cxr_forest *)m->kind_state)->params, 256) == 8,
          "log2 of 256 features");
    CHECK(cxr_forest_max_features(&(cxr_forest_params){1, 0, 2, 1, 0, 0, 1}, 4096) == 64,
          "sqrt of 4096");
    cxr_model_free(m);
    cxr_model *net = cxr_model_create("alexnet", 0, 0, 1, err);
    CHECK(net && cxr_model_set_param(net, "n_estimators", "5", err) != 0, "alexnet takes no params");
    cxr_model_free(net);
}

/* Hostile trees: each must be refused by the loader. */
static void
test_validation(void)
{
    int32_t feature[5] = {0, -1, 1, -1, -1}, left[5] = {1, -1, 3, -1, -1},
            right[5] = {2, -1, 4, -1, -1};
    float threshold[5] = {1.5f, 0, 2.5f, 0, 0}, value[5] = {0.5f, 0, 0.7f, 1, 0};
    cxr_tree t = {5, feature, left, right, threshold, value};
    char err[200];
    CHECK(cxr_tree_validate(&t, 4, err, sizeof err) == 0, "a good tree: %s", err);
    struct {
        int32_t *field;
        int node;
        int32_t bad;
        const char *what;
    } cases[] = {
        {left, 0, 0, "a self loop"},        {right, 2, 1, "a child before its parent"},
        {left, 2, 5, "a child past the end"}, {right, 0, 1, "two children the same"},
        {feature, 0, 4, "a feature past the grid"}, {feature, 2, -1, "an internal node without feature"},
        {feature, 1, 0, "a leaf with a feature"}, {left, 1, 3, "a half leaf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t keep = cases[i].field[cases[i].node];
        cases[i].field[cases[i].node] = cases[i].bad;
        CHECK(cxr_tree_validate(&t, 4, err, sizeof err) != 0, "%s accepted", cases[i].what);
        cases[i].field[cases[i].node] = keep;
    }
    /* node 1 made internal with node 2's children: nodes 3 and 4 have two parents */
    feature[1] = 0, left[1] = 3, right[1] = 4;
    CHECK(cxr_tree_validate(&t, 4, err, sizeof err) != 0, "a node with two parents accepted");
    feature[1] = -1, left[1] = -1, right[1] = -1;
    threshold[0] = NAN;
    CHECK(cxr_tree_validate(&t, 4, err, sizeof err) != 0, "a NaN threshold accepted");
    threshold[0] = 1.5f;
    value[3] = 1.5f;
    CHECK(cxr_tree_validate(&t, 4, err, sizeof err) != 0, "a value above 1 accepted");
    value[3] = 1;
    /* a chain deeper than the bound */
    int n = 2 * CXR_FOREST_MAX_DEPTH + 3;
    cxr_tree deep = {n, malloc(4 * n), malloc(4 * n), malloc(4 * n), calloc(n, 4), calloc(n, 4)};
    for (int k = 0; k < n; k++) {
        int leaf = k % 2 == 1 || k == n - 1;
        deep.feature[k] = leaf ? -1 : 0;
        deep.left[k] = leaf ? -1 : k + 1;
        deep.right[k] = leaf ? -1 : k + 2;
    }
    CHECK(cxr_tree_validate(&deep, 4, err, sizeof err) != 0, "a tree deeper than %d accepted",
          CXR_FOREST_MAX_DEPTH);
    free(deep.feature), free(deep.left), free(deep.right), free(deep.threshold), free(deep.value);
}

int
main(void)
{
    test_hand_built();
    test_properties();
    test_params();
    test_validation();
    return harness_finish("test_forest");
}

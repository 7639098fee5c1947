/* Random forests of binary decision trees on the 8-bit gray levels of an image resized to a
 * square feature grid (the paper's pixel baseline): fitting (Gini impurity, bootstrap samples,
 * a random subset of features at each split, as scikit-learn's RandomForestClassifier), the
 * class-1 probability (the mean over trees of the leaf's class fraction, as predict_proba) and
 * the impurity importance of every pixel. */
#ifndef CXR_FOREST_H
#define CXR_FOREST_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_train.h"

/* No tree is deeper than this, whatever max_depth says (a loaded file deeper than this is
 * refused), so that every walk from root to leaf is short. */
#define CXR_FOREST_MAX_DEPTH 128
#define CXR_FOREST_MAX_TREES 10000

typedef struct {
    int n_estimators;      /* 100 */
    int max_depth;         /* 0: none (CXR_FOREST_MAX_DEPTH) */
    int min_samples_split; /* 2 */
    int min_samples_leaf;  /* 1 */
    /* features tried at each split: 0 = "sqrt", -1 = "log2", -2 = all (None), k > 0: k, and
     * max_features_fraction > 0: that fraction of the features */
    int max_features;
    double max_features_fraction;
    int bootstrap; /* 1 */
} cxr_forest_params;

/* One tree in scikit-learn's node layout: node 0 is the root; an internal node's children
 * have larger indices; a leaf has left = right = -1 and feature = -1. A sample goes left when
 * its level at feature is <= threshold. value: the fraction of class 1 among the node's
 * (bootstrap-weighted) samples. */
typedef struct {
    int n;
    int32_t *feature, *left, *right;
    float *threshold, *value;
} cxr_tree;

typedef struct cxr_forest {
    cxr_forest_params params;
    int n_features; /* grid * grid */
    int n_trees;    /* fitted (or loaded) so far */
    cxr_tree *trees; /* params.n_estimators slots */
    /* impurity decrease per feature, per tree (fitting only; NULL for loaded forests) */
    double *tree_importance;
    float *importance; /* normalised, n_features; NULL until computed or loaded */
    uint8_t *levels;   /* the inference workspace: one image's features */
    uint8_t *columns;  /* fitting: the data set feature by feature (n_features x n) */
    const cxr_dataset *columns_of;
} cxr_forest;

void cxr_forest_default_params(cxr_forest_params *p);
/* Features tried at each split for n_features features. */
int cxr_forest_max_features(const cxr_forest_params *p, int n_features);

cxr_forest *cxr_forest_new(const cxr_forest_params *p, int n_features);
void cxr_forest_free(cxr_forest *f);

/* Bytes fitting on n images allocates beyond the data set and the trees' final size bound. */
size_t cxr_forest_fit_bytes(const cxr_forest *f, int n_images);
/* Fits trees [first, first + count) on d (side * side == n_features) with up to `threads`
 * threads. Tree t depends only on (seed, t): one seed gives the same forest whatever the
 * thread count and the chunks. Polls cxr_interrupt_poll from the calling thread; returns 0,
 * or -1 with err filled (out of memory, or "interrupted"). */
int cxr_forest_fit(cxr_forest *f, const cxr_dataset *d, int first, int count, uint64_t seed,
                   int threads, char *err);
/* The sample weights of tree `tree` (n draws with replacement, or 1 each without bootstrap):
 * what fitting that tree counts each image as. */
void cxr_forest_bootstrap(uint64_t seed, int tree, int n, int bootstrap, int32_t *weight);
/* After the last tree: the normalised importance (scikit-learn's feature_importances_). */
int cxr_forest_finish(cxr_forest *f);

/* P(class 1) for one image's levels (n_features bytes). */
double cxr_forest_probability(const cxr_forest *f, const uint8_t *levels);

/* Checks a tree read from a file: indices in range, children after their parent and within
 * the tree, every node but the root reached exactly once, features in range, finite
 * thresholds, values in [0, 1], depth <= CXR_FOREST_MAX_DEPTH. 0, or -1 with err filled. */
int cxr_tree_validate(const cxr_tree *t, int n_features, char *err, size_t errlen);

#endif

/* Random forests: fitting, prediction and importance (cxr_forest.h).
 *
 * Features are 8-bit gray levels, so a node finds its best split on a feature from a histogram
 * of its samples over the 256 levels (one pass over the samples, one over the levels present)
 * instead of sorting them. Bootstrap weights are integers and class counts are kept as
 * integers, so sums are exact and do not depend on the order samples are visited in. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_forest.h"
#include "cxr_interrupt.h"
#include "cxr_layers.h"
#include "cxr_threads.h"

void
cxr_forest_default_params(cxr_forest_params *p)
{
    *p = (cxr_forest_params){100, 0, 2, 1, 0, 0.0, 1};
}

int
cxr_forest_max_features(const cxr_forest_params *p, int n_features)
{
    int k;
    if (p->max_features_fraction > 0)
        k = (int)(p->max_features_fraction * n_features);
    else if (p->max_features == 0)
        k = (int)sqrt((double)n_features);
    else if (p->max_features == -1)
        k = (int)log2((double)n_features);
    else if (p->max_features == -2)
        k = n_features;
    else
        k = p->max_features;
    return k < 1 ? 1 : k > n_features ? n_features : k;
}

cxr_forest *
cxr_forest_new(const cxr_forest_params *p, int n_features)
{
    cxr_forest *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->params = *p;
    f->n_features = n_features;
    f->trees = calloc((size_t)p->n_estimators, sizeof *f->trees);
    f->levels = malloc((size_t)n_features);
    if (!f->trees || !f->levels) {
        cxr_forest_free(f);
        return NULL;
    }
    return f;
}

static void
tree_free(cxr_tree *t)
{
    free(t->feature);
    free(t->left);
    free(t->right);
    free(t->threshold);
    free(t->value);
    memset(t, 0, sizeof *t);
}

void
cxr_forest_free(cxr_forest *f)
{
    if (!f)
        return;
    for (int t = 0; f->trees && t < f->params.n_estimators; t++)
        tree_free(&f->trees[t]);
    free(f->trees);
    free(f->tree_importance);
    free(f->importance);
    free(f->levels);
    free(f->columns);
    free(f);
}

/* ---- fitting ---- */

typedef struct {
    uint64_t state;
} rng;

static uint64_t
rng_next(rng *r)
{
    r->state += 0x9E3779B97F4A7C15ull;
    return cxr_splitmix64(r->state);
}

/* uniform in [0, n) */
static uint32_t
rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

void
cxr_forest_bootstrap(uint64_t seed, int tree, int n, int bootstrap, int32_t *weight)
{
    rng r = {cxr_splitmix64(seed ^ cxr_splitmix64(0x626f6f74ull + (uint64_t)tree))};
    memset(weight, 0, sizeof(int32_t) * n);
    if (bootstrap)
        for (int k = 0; k < n; k++)
            weight[rng_below(&r, (uint32_t)n)]++;
    else
        for (int k = 0; k < n; k++)
            weight[k] = 1;
}

/* Per-thread work space, sized for the data set. */
typedef struct {
    int n;                /* images */
    int32_t *weight;      /* bootstrap count of each image */
    int32_t *idx;         /* the samples of the tree, partitioned node by node */
    int32_t *features;    /* a permutation of the features, drawn from per node */
    int64_t hw[256], hp[256];
    int32_t hc[256];
    /* the tree under construction, at its largest possible size */
    int cap;
    int32_t *feature, *left, *right;
    float *threshold, *value;
    struct frame {
        int start, end, depth, parent, is_left;
    } * stack;
} workspace;

static void
workspace_free(workspace *w)
{
    free(w->weight);
    free(w->idx);
    free(w->features);
    free(w->feature);
    free(w->left);
    free(w->right);
    free(w->threshold);
    free(w->value);
    free(w->stack);
}

static int
workspace_init(workspace *w, int n, int n_features)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    w->cap = 2 * n - 1 > 0 ? 2 * n - 1 : 1;
    w->weight = malloc(sizeof(int32_t) * n);
    w->idx = malloc(sizeof(int32_t) * n);
    w->features = malloc(sizeof(int32_t) * n_features);
    w->feature = malloc(sizeof(int32_t) * w->cap);
    w->left = malloc(sizeof(int32_t) * w->cap);
    w->right = malloc(sizeof(int32_t) * w->cap);
    w->threshold = malloc(sizeof(float) * w->cap);
    w->value = malloc(sizeof(float) * w->cap);
    w->stack = malloc(sizeof(*w->stack) * (CXR_FOREST_MAX_DEPTH + 2) * 2);
    if (!w->weight || !w->idx || !w->features || !w->feature || !w->left || !w->right ||
        !w->threshold || !w->value || !w->stack) {
        workspace_free(w);
        return -1;
    }
    return 0;
}

static size_t
workspace_bytes(int n, int n_features)
{
    size_t cap = 2 * (size_t)n;
    return sizeof(int32_t) * (2 * (size_t)n + n_features) + cap * 5 * 4 +
           sizeof(struct frame) * (CXR_FOREST_MAX_DEPTH + 2) * 2;
}

size_t
cxr_forest_fit_bytes(const cxr_forest *f, int n_images)
{
    /* the data set by feature, two workspaces per thread at most (bounded by 64 threads by
     * the caller's setting), the trees at their bound, the importances */
    size_t trees = (size_t)f->params.n_estimators * (2 * (size_t)n_images) * 5 * 4;
    return (size_t)f->n_features * n_images + 64 * workspace_bytes(n_images, f->n_features) +
           trees + sizeof(double) * (size_t)f->n_features * (f->params.n_estimators + 1);
}

typedef struct {
    int64_t w, p; /* weighted samples, weighted class-1 samples */
    int32_t c;    /* samples (distinct images) */
} node_stats;

static double
gini(int64_t w, int64_t p)
{
    if (w == 0)
        return 0.0;
    double q = (double)p / (double)w;
    return 1.0 - q * q - (1.0 - q) * (1.0 - q);
}

/* Children's weighted sum of squared class counts over their weight: the larger, the lower
 * their weighted Gini impurity (scikit-learn's "proxy improvement"). */
static double
proxy(int64_t wl, int64_t pl, int64_t wr, int64_t pr)
{
    double a = (double)pl, b = (double)(wl - pl), c = (double)pr, d = (double)(wr - pr);
    return (a * a + b * b) / (double)wl + (c * c + d * d) / (double)wr;
}

typedef struct {
    const cxr_forest *f;
    const uint8_t *columns;
    const float *labels;
    int n, min_leaf;
} fit_input;

/* The best split of samples idx[start, end) on feature j: its level (left: <= level) and
 * proxy; -1 when no split leaves min_samples_leaf samples on both sides, -2 when the feature
 * is constant on the node. */
static int
best_on_feature(const fit_input *in, workspace *w, int start, int end, int j, double *best)
{
    const uint8_t *col = in->columns + (size_t)j * in->n;
    int lo = 255, hi = 0;
    for (int k = start; k < end; k++) {
        int i = w->idx[k], v = col[i];
        w->hc[v]++;
        w->hw[v] += w->weight[i];
        w->hp[v] += in->labels[i] > 0.5f ? w->weight[i] : 0;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    int found = lo == hi ? -2 : -1;
    int64_t tw = 0, tp = 0;
    for (int v = lo; v <= hi; v++)
        tw += w->hw[v], tp += w->hp[v];
    int32_t cl = 0, n = end - start;
    int64_t wl = 0, pl = 0;
    for (int v = lo; v < hi; v++) {
        if (w->hc[v] == 0)
            continue;
        cl += w->hc[v];
        wl += w->hw[v];
        pl += w->hp[v];
        if (cl < in->min_leaf)
            continue;
        if (n - cl < in->min_leaf)
            break;
        double q = proxy(wl, pl, tw - wl, tp - pl);
        if (q > *best) {
            *best = q;
            found = v;
        }
    }
    for (int v = lo; v <= hi; v++)
        w->hc[v] = 0, w->hw[v] = 0, w->hp[v] = 0;
    return found;
}

static node_stats
stats_of(const fit_input *in, const workspace *w, int start, int end)
{
    node_stats s = {0, 0, end - start};
    for (int k = start; k < end; k++) {
        int i = w->idx[k];
        s.w += w->weight[i];
        s.p += in->labels[i] > 0.5f ? w->weight[i] : 0;
    }
    return s;
}

/* Grows tree t into w; its per-feature impurity decrease into importance. 0, or -1 when
 * interrupted. */
static int
grow_tree(const fit_input *in, workspace *w, int t, uint64_t seed, int poll, double *importance)
{
    const cxr_forest_params *p = &in->f->params;
    int F = in->f->n_features, n = in->n;
    int max_features = cxr_forest_max_features(p, F);
    int max_depth = p->max_depth > 0 && p->max_depth < CXR_FOREST_MAX_DEPTH ? p->max_depth
                                                                            : CXR_FOREST_MAX_DEPTH;
    rng r = {cxr_splitmix64(seed ^ cxr_splitmix64(0x7265657274ull + (uint64_t)t))};
    cxr_forest_bootstrap(seed, t, n, p->bootstrap, w->weight);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (w->weight[i] > 0)
            w->idx[m++] = i;
    for (int j = 0; j < F; j++)
        w->features[j] = j;
    memset(importance, 0, sizeof(double) * F);

    int nodes = 0, top = 0;
    w->stack[top++] = (struct frame){0, m, 0, -1, 0};
    double root_w = 0;
    while (top > 0) {
        struct frame fr = w->stack[--top];
        if (poll ? cxr_interrupt_poll() : cxr_interrupt_requested())
            return -1;
        int id = nodes++;
        if (fr.parent >= 0) {
            if (fr.is_left)
                w->left[fr.parent] = id;
            else
                w->right[fr.parent] = id;
        }
        node_stats s = stats_of(in, w, fr.start, fr.end);
        if (id == 0)
            root_w = (double)s.w;
        double imp = gini(s.w, s.p);
        w->value[id] = (float)((double)s.p / (double)s.w);
        w->feature[id] = -1;
        w->left[id] = w->right[id] = -1;
        w->threshold[id] = 0.0f;
        int leaf = fr.depth >= max_depth || s.c < p->min_samples_split ||
                   s.c < 2 * p->min_samples_leaf || imp <= 1e-7;
        if (leaf)
            continue;
        /* features without replacement, max_features of them, and more until one that is
         * not constant on the node has been seen (as scikit-learn does) */
        double best = -1.0;
        int best_feature = -1, best_level = -1, seen = 0, nonconstant = 0;
        for (int i = 0; i < F && (seen < max_features || nonconstant == 0); i++) {
            int k = i + (int)rng_below(&r, (uint32_t)(F - i));
            int32_t j = w->features[k];
            w->features[k] = w->features[i];
            w->features[i] = j;
            seen++;
            double before = best;
            int level = best_on_feature(in, w, fr.start, fr.end, j, &best);
            if (level != -2)
                nonconstant++;
            if (level >= 0 && best > before) {
                best_feature = j;
                best_level = level;
            }
        }
        if (best_feature < 0)
            continue;
        /* partition: left keeps levels <= best_level */
        const uint8_t *col = in->columns + (size_t)best_feature * n;
        int a = fr.start, b = fr.end - 1;
        while (a <= b) {
            if (col[w->idx[a]] <= best_level)
                a++;
            else {
                int32_t tmp = w->idx[a];
                w->idx[a] = w->idx[b];
                w->idx[b--] = tmp;
            }
        }
        /* the threshold halfway to the next level present on the node, as scikit-learn's */
        int next = 256;
        for (int k = a; k < fr.end; k++)
            next = col[w->idx[k]] < next ? col[w->idx[k]] : next;
        w->feature[id] = best_feature;
        w->threshold[id] = (float)(best_level + next) * 0.5f;
        node_stats sl = stats_of(in, w, fr.start, a), sr = stats_of(in, w, a, fr.end);
        importance[best_feature] += (double)s.w * imp - (double)sl.w * gini(sl.w, sl.p) -
                                    (double)sr.w * gini(sr.w, sr.p);
        /* depth first, left child next: children get larger indices than their parent */
        w->stack[top++] = (struct frame){a, fr.end, fr.depth + 1, id, 0};
        w->stack[top++] = (struct frame){fr.start, a, fr.depth + 1, id, 1};
    }
    for (int j = 0; j < F; j++)
        importance[j] /= root_w;
    cxr_tree *out = &in->f->trees[t];
    out->n = nodes;
    out->feature = malloc(sizeof(int32_t) * nodes);
    out->left = malloc(sizeof(int32_t) * nodes);
    out->right = malloc(sizeof(int32_t) * nodes);
    out->threshold = malloc(sizeof(float) * nodes);
    out->value = malloc(sizeof(float) * nodes);
    if (!out->feature || !out->left || !out->right || !out->threshold || !out->value) {
        tree_free(out);
        return -2;
    }
    memcpy(out->feature, w->feature, sizeof(int32_t) * nodes);
    memcpy(out->left, w->left, sizeof(int32_t) * nodes);
    memcpy(out->right, w->right, sizeof(int32_t) * nodes);
    memcpy(out->threshold, w->threshold, sizeof(float) * nodes);
    memcpy(out->value, w->value, sizeof(float) * nodes);
    return 0;
}

typedef struct {
    fit_input in;
    uint64_t seed;
    int first, end;
    atomic_int next;
    atomic_int failed; /* 1 interrupted, 2 out of memory */
} fit_job;

typedef struct {
    fit_job *job;
    int poll;
} worker_arg;

static void *
worker(void *arg_)
{
    worker_arg *arg = arg_;
    fit_job *job = arg->job;
    cxr_forest *f = (cxr_forest *)job->in.f;
    workspace w;
    if (workspace_init(&w, job->in.n, f->n_features)) {
        atomic_store(&job->failed, 2);
        return NULL;
    }
    for (;;) {
        int t = atomic_fetch_add(&job->next, 1);
        if (t >= job->end || atomic_load(&job->failed))
            break;
        int rc = grow_tree(&job->in, &w, t, job->seed, arg->poll,
                           f->tree_importance + (size_t)t * f->n_features);
        if (rc) {
            atomic_store(&job->failed, rc == -1 ? 1 : 2);
            break;
        }
    }
    workspace_free(&w);
    return NULL;
}

int
cxr_forest_fit(cxr_forest *f, const cxr_dataset *d, int first, int count, uint64_t seed,
               int threads, char *err)
{
    int F = f->n_features, n = d->n;
    if (d->side * d->side != F || n < 1 || first < 0 || count < 0 ||
        first + count > f->params.n_estimators) {
        snprintf(err, 256, "the data set does not match the forest's feature grid");
        return -1;
    }
    if (!f->tree_importance)
        f->tree_importance = calloc((size_t)f->params.n_estimators * F, sizeof(double));
    int fresh = f->columns_of != d;
    if (fresh) {
        free(f->columns);
        f->columns = malloc((size_t)F * n);
        f->columns_of = d;
    }
    if (!f->tree_importance || !f->columns) {
        free(f->columns);
        f->columns = NULL;
        f->columns_of = NULL;
        snprintf(err, 256, "out of memory fitting the forest");
        return -1;
    }
    if (fresh) {
        /* the data set by feature: a feature's levels for every image are contiguous */
        for (int i = 0; i < n; i++) {
            const uint8_t *img = cxr_dataset_image(d, i);
            for (int j = 0; j < F; j++)
                f->columns[(size_t)j * n + i] = img[j];
        }
    }
    fit_job job = {{f, f->columns, d->labels, n, f->params.min_samples_leaf}, seed, first,
                   first + count, first, 0};
    int extra = threads > count ? count - 1 : threads - 1;
    extra = extra < 0 ? 0 : extra > 63 ? 63 : extra;
    pthread_t tid[63];
    worker_arg args[64];
    int started = 0;
    for (int k = 0; k < extra; k++) {
        args[k + 1] = (worker_arg){&job, 0};
        if (cxr_thread_start(&tid[k], worker, &args[k + 1]) != 0)
            break;
        started++;
    }
    /* the calling thread works too, and is the one that polls for cancellation */
    args[0] = (worker_arg){&job, 1};
    worker(&args[0]);
    for (int k = 0; k < started; k++)
        pthread_join(tid[k], NULL);
    int failed = atomic_load(&job.failed);
    if (failed) {
        for (int t = first; t < first + count; t++)
            tree_free(&f->trees[t]);
        snprintf(err, 256, failed == 1 ? "interrupted" : "out of memory fitting the forest");
        return -1;
    }
    if (first + count > f->n_trees)
        f->n_trees = first + count;
    if (f->n_trees == f->params.n_estimators) {
        free(f->columns);
        f->columns = NULL;
        f->columns_of = NULL;
    }
    return 0;
}

int
cxr_forest_finish(cxr_forest *f)
{
    int F = f->n_features;
    double *sum = calloc((size_t)F, sizeof(double));
    if (!f->importance)
        f->importance = malloc(sizeof(float) * F);
    if (!sum || !f->importance || !f->tree_importance) {
        free(sum);
        return -1;
    }
    /* scikit-learn: each tree's importances sum to 1 (trees that never split are left out),
     * their mean is normalised again */
    int used = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const double *ti = f->tree_importance + (size_t)t * F;
        double total = 0;
        for (int j = 0; j < F; j++)
            total += ti[j];
        if (f->trees[t].n <= 1 || total <= 0)
            continue;
        used++;
        for (int j = 0; j < F; j++)
            sum[j] += ti[j] / total;
    }
    double total = 0;
    for (int j = 0; j < F; j++)
        total += sum[j];
    for (int j = 0; j < F; j++)
        f->importance[j] = used && total > 0 ? (float)(sum[j] / total) : 0.0f;
    free(sum);
    free(f->tree_importance);
    f->tree_importance = NULL;
    return 0;
}

/* ---- prediction ---- */

double
cxr_forest_probability(const cxr_forest *f, const uint8_t *levels)
{
    double sum = 0;
    for (int t = 0; t < f->n_trees; t++) {
        const cxr_tree *tr = &f->trees[t];
        int k = 0;
        while (tr->left[k] >= 0)
            k = (float)levels[tr->feature[k]] <= tr->threshold[k] ? tr->left[k] : tr->right[k];
        sum += tr->value[k];
    }
    return f->n_trees ? sum / f->n_trees : 0.5;
}

int
cxr_tree_validate(const cxr_tree *t, int n_features, char *err, size_t errlen)
{
    if (t->n < 1) {
        snprintf(err, errlen, "a tree has no nodes");
        return -1;
    }
    uint8_t *depth = calloc((size_t)t->n, 1), *reached = calloc((size_t)t->n, 1);
    int rc = -1;
    if (!depth || !reached) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int k = 0; k < t->n; k++) {
        int l = t->left[k], r = t->right[k];
        if (k > 0 && !reached[k]) {
            snprintf(err, errlen, "node %d is not reached from the root", k);
            goto done;
        }
        if (l == -1 && r == -1) {
            if (t->feature[k] != -1 || !isfinite(t->threshold[k])) {
                snprintf(err, errlen, "leaf %d must have feature -1 and a finite threshold", k);
                goto done;
            }
            if (!(t->value[k] >= 0.0f && t->value[k] <= 1.0f)) {
                snprintf(err, errlen, "node %d has a value outside [0, 1]", k);
                goto done;
            }
            continue;
        }
        /* children after their parent: no walk can cycle */
        if (l <= k || r <= k || l >= t->n || r >= t->n || l == r) {
            snprintf(err, errlen, "node %d has children %d and %d: they must be distinct nodes "
                     "after it in the same tree", k, l, r);
            goto done;
        }
        if (t->feature[k] < 0 || t->feature[k] >= n_features || !isfinite(t->threshold[k])) {
            snprintf(err, errlen, "node %d splits on feature %d at %g: features are 0..%d and "
                     "thresholds finite", k, t->feature[k], (double)t->threshold[k], n_features - 1);
            goto done;
        }
        if (!(t->value[k] >= 0.0f && t->value[k] <= 1.0f)) {
            snprintf(err, errlen, "node %d has a value outside [0, 1]", k);
            goto done;
        }
        if (reached[l] || reached[r]) {
            snprintf(err, errlen, "a node is the child of two nodes");
            goto done;
        }
        if (depth[k] >= CXR_FOREST_MAX_DEPTH) {
            snprintf(err, errlen, "a tree is deeper than %d", CXR_FOREST_MAX_DEPTH);
            goto done;
        }
        reached[l] = reached[r] = 1;
        depth[l] = depth[r] = (uint8_t)(depth[k] + 1);
    }
    rc = 0;
done:
    free(depth);
    free(reached);
    return rc;
}

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_interrupt.h"
#include "cxr_layers.h"
#include "cxr_train.h"

int
cxr_dataset_block_slots(size_t budget_left, size_t per_image)
{
    size_t more = per_image ? budget_left / per_image : CXR_DATASET_BLOCK;
    return more + 1 < CXR_DATASET_BLOCK ? (int)(more + 1) : CXR_DATASET_BLOCK;
}

void
cxr_dataset_store(cxr_dataset *d, int i, const float *gray)
{
    uint8_t *dst = cxr_dataset_image(d, i);
    for (size_t p = 0; p < (size_t)d->side * d->side; p++)
        dst[p] = cxr_gray_level(gray[p]);
}

void
cxr_shuffle(int *idx, int n, uint64_t seed)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(cxr_uniform(seed, (uint64_t)i) * (i + 1));
        if (j > i)
            j = i;
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

static float
pixel(const uint8_t *img, int side, int x, int y)
{
    return x < 0 || y < 0 || x >= side || y >= side ? 0.0f : img[(size_t)y * side + x] / 255.0f;
}

/* Rotation about the image centre by `deg` degrees, optional mirror, bilinear sampling. */
static void
rotate_flip(const uint8_t *img, int side, float deg, int flip, float *out)
{
    double rad = deg * M_PI / 180.0, c = cos(rad), s = sin(rad), mid = (side - 1) / 2.0;
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int xo = flip ? side - 1 - x : x;
            /* inverse map: where in the source does output (x, y) come from */
            double dx = x - mid, dy = y - mid;
            double sx = c * dx + s * dy + mid, sy = -s * dx + c * dy + mid;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            float fx = (float)(sx - x0), fy = (float)(sy - y0);
            float v = (1 - fy) * ((1 - fx) * pixel(img, side, x0, y0) + fx * pixel(img, side, x0 + 1, y0)) +
                      fy * ((1 - fx) * pixel(img, side, x0, y0 + 1) + fx * pixel(img, side, x0 + 1, y0 + 1));
            out[(size_t)y * side + xo] = v;
        }
}

int
cxr_make_batch(const cxr_dataset *d, const int *idx, int n, const cxr_augment_config *aug,
               uint64_t seed, uint64_t draw_base, float *out)
{
    size_t img = (size_t)d->side * d->side;
    for (int b = 0; b < n; b++) {
        if (cxr_interrupt_poll())
            return -1;
        const uint8_t *src = cxr_dataset_image(d, idx[b]);
        float *dst = out + b * img;
        if (aug) {
            uint64_t draw = (draw_base + (uint64_t)b) * 2;
            float deg = (2.0f * cxr_uniform(seed, draw) - 1.0f) * aug->max_rotation_deg;
            int flip = aug->hflip && cxr_uniform(seed, draw + 1) < 0.5f;
            rotate_flip(src, d->side, deg, flip, dst);
        } else
            for (size_t p = 0; p < img; p++)
                dst[p] = src[p] / 255.0f;
    }
    return 0;
}

static const double *sort_keys;

static int
by_prob(const void *a, const void *b)
{
    double x = sort_keys[*(const long *)a], y = sort_keys[*(const long *)b];
    return x < y ? -1 : x > y;
}

void
cxr_compute_metrics(const double *prob, const float *labels, long n, long *order, cxr_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->n = n;
    double loss = 0.0;
    for (long i = 0; i < n; i++) {
        int pos = labels[i] > 0.5f, pred = prob[i] >= 0.5;
        m->tp += pos && pred;
        m->tn += !pos && !pred;
        m->fp += !pos && pred;
        m->fn += pos && !pred;
        double p = fmin(fmax(prob[i], 1e-12), 1 - 1e-12);
        loss -= pos ? log(p) : log(1 - p);
        order[i] = i;
    }
    m->loss = n ? loss / n : NAN;
    m->accuracy = n ? (double)(m->tp + m->tn) / n : NAN;
    m->sensitivity = m->tp + m->fn ? (double)m->tp / (m->tp + m->fn) : NAN;
    m->specificity = m->tn + m->fp ? (double)m->tn / (m->tn + m->fp) : NAN;
    m->precision = m->tp + m->fp ? (double)m->tp / (m->tp + m->fp) : NAN;
    m->f1 = m->tp ? 2.0 * m->tp / (2.0 * m->tp + m->fp + m->fn) : 0.0;
    /* ROC AUC = P(score of a positive > score of a negative), ties counted half (Mann-Whitney) */
    sort_keys = prob;
    qsort(order, n, sizeof *order, by_prob);
    double rank_sum = 0.0;
    long npos = m->tp + m->fn, nneg = m->tn + m->fp;
    for (long i = 0; i < n;) {
        long j = i;
        while (j < n && prob[order[j]] == prob[order[i]])
            j++;
        double avg_rank = (i + 1 + j) / 2.0;
        for (long k = i; k < j; k++)
            if (labels[order[k]] > 0.5f)
                rank_sum += avg_rank;
        i = j;
    }
    m->auc = npos && nneg ? (rank_sum - npos * (npos + 1) / 2.0) / ((double)npos * nneg) : NAN;
}

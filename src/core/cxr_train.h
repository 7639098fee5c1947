/* Training data handling shared by every trainer: an 8-bit dataset at the model's input size,
 * seeded shuffling, augmentation (rotation and horizontal flip) and batch assembly; plus the
 * evaluation metrics. */
#ifndef CXR_TRAIN_H
#define CXR_TRAIN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Images live in blocks of CXR_DATASET_BLOCK, so that a growing dataset is never copied (a
 * copy would briefly need twice its memory). */
#define CXR_DATASET_BLOCK 256

typedef struct cxr_dataset {
    int n, capacity, side;
    uint8_t **blocks; /* image i: blocks[i / BLOCK] + (i % BLOCK) * side * side, gray 0..255 */
    float *labels;    /* 0 or 1 */
} cxr_dataset;

/* The side*side bytes of image i. */
static inline uint8_t *
cxr_dataset_image(const cxr_dataset *d, int i)
{
    return d->blocks[i / CXR_DATASET_BLOCK] +
           (size_t)(i % CXR_DATASET_BLOCK) * (size_t)d->side * (size_t)d->side;
}

/* Slots for the block a growing dataset needs for image d->capacity, the image being added,
 * which the caller has already charged to its budget: a full block, or near the budget's end
 * that image plus the images budget_left can still pay for. Never 0. */
int cxr_dataset_block_slots(size_t budget_left, size_t per_image);

/* The 8-bit level a gray value in [0, 1] is stored as (and a forest's feature). */
static inline uint8_t
cxr_gray_level(float gray)
{
    float v = gray * 255.0f;
    return (uint8_t)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Quantises one decoded, resized image (side*side floats in [0, 1]) into slot i. */
void cxr_dataset_store(cxr_dataset *d, int i, const float *gray);

void cxr_shuffle(int *idx, int n, uint64_t seed);

typedef struct {
    float max_rotation_deg; /* 10 in the paper's recipe */
    int hflip;
} cxr_augment_config;

/* Builds a batch of model inputs (gray, [0, 1]) for images idx[0..n). With aug != NULL each image
 * is rotated by a uniform angle in [-max, max] about its centre (bilinear, black outside) and
 * flipped with probability 1/2, all drawn from (seed, image position in the run).
 * Polls cxr_interrupt_poll per image; returns 0, or -1 when interrupted (out incomplete). */
int cxr_make_batch(const cxr_dataset *d, const int *idx, int n, const cxr_augment_config *aug,
                   uint64_t seed, uint64_t draw_base, float *out);

typedef struct cxr_metrics {
    long n, tp, tn, fp, fn;
    double accuracy, sensitivity, specificity, precision, f1, auc, loss;
} cxr_metrics;

/* probabilities and 0/1 labels of n images; threshold 0.5. order is n ints of scratch. */
void cxr_compute_metrics(const double *prob, const float *labels, long n, long *order,
                         cxr_metrics *out);

#endif

/* A dataset that grows under a memory budget must have a slot for every image the budget pays
 * for. The loop below is the glue's (charge the image, grow when full, store), run with real
 * blocks of exactly the slots asked for, so that a slot past a block's end is a heap overflow
 * under ASan or valgrind, and the property (every stored index below the capacity, every index
 * inside its block) is checked directly. The expected count is budget / per_image, by hand. */
#include <string.h>

#include "cxr_train.h"
#include "harness.h"

/* Returns the number of images stored before the budget refused one. */
static int
fill(size_t budget, int side, int max_images, int *bad)
{
    size_t per_image = (size_t)side * side;
    float *gray = calloc(per_image, sizeof(float));
    int *block_slots = calloc(max_images + 1, sizeof(int));
    cxr_dataset d = {0, 0, side, calloc(max_images + 1, sizeof(uint8_t *)), NULL};
    int nblocks = 0;
    *bad = 0;
    for (int i = 0; i < max_images; i++) {
        if (per_image > budget)
            break;
        budget -= per_image;
        if (d.n == d.capacity) {
            int slots = cxr_dataset_block_slots(budget, per_image);
            if (slots < 1 || slots > CXR_DATASET_BLOCK)
                (*bad)++;
            block_slots[nblocks] = slots;
            d.blocks[nblocks++] = malloc((size_t)slots * per_image);
            d.capacity += slots;
        }
        if (d.n >= d.capacity || d.n / CXR_DATASET_BLOCK >= nblocks ||
            d.n % CXR_DATASET_BLOCK >= block_slots[d.n / CXR_DATASET_BLOCK]) {
            (*bad)++;
            break;
        }
        cxr_dataset_store(&d, d.n, gray);
        d.n++;
    }
    for (int b = 0; b < nblocks; b++)
        free(d.blocks[b]);
    free(d.blocks);
    free(block_slots);
    free(gray);
    return d.n;
}

int
main(void)
{
    /* budgets that pay for exactly k images, and k plus a part of one */
    const int sides[] = {1, 7, 32};
    const int counts[] = {1, 2, 13, 255, 256, 257, 511, 600};
    for (size_t s = 0; s < sizeof sides / sizeof *sides; s++) {
        for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
            size_t per_image = (size_t)sides[s] * sides[s];
            for (size_t extra = 0; extra < per_image; extra += per_image > 2 ? per_image / 2 : 1) {
                int bad;
                int k = counts[c];
                int n = fill(per_image * k + extra, sides[s], 2000, &bad);
                CHECK(bad == 0, "side %d, budget of %d images + %zu bytes: a slot outside its block",
                      sides[s], k, extra);
                CHECK(n == k, "side %d, budget of %d images + %zu bytes: stored %d", sides[s], k,
                      extra, n);
            }
        }
    }
    /* a budget larger than the data: the data's count, in full blocks */
    int bad;
    CHECK(fill((size_t)1 << 30, 8, 700, &bad) == 700 && bad == 0, "unbounded budget");
    /* the rule itself: a full block while the budget lasts, and the image being added counts */
    CHECK(cxr_dataset_block_slots(0, 100) == 1, "the last image the budget paid for");
    CHECK(cxr_dataset_block_slots(1200, 100) == 13, "12 more images and this one");
    CHECK(cxr_dataset_block_slots((size_t)100 * 300, 100) == CXR_DATASET_BLOCK, "a full block");
    return harness_finish("test_dataset_budget");
}

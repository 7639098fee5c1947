/* cxr_trainer_bytes tells a caller what cxr_trainer_create will allocate, before it does: here
 * checked against what glibc's allocator actually hands out (mallinfo2: bytes in use in the
 * heap arenas plus mmapped chunks) around the call. */
#include <malloc.h>

#include "cxr_model.h"
#include "harness.h"

static size_t
heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

int
main(void)
{
    char err[CXR_ERR_LEN];
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_model *m = cxr_model_create("alexnet_attn2", 1, 299, 3, err);
    CHECK(m != NULL, "create: %s", err);
    if (!m)
        return harness_finish("test_trainer_bytes");
    int batches[] = {1, 8};
    size_t predicted[2];
    for (int i = 0; i < 2; i++) {
        size_t before = heap_in_use();
        cxr_trainer *t = cxr_trainer_create(m, batches[i], &adam);
        size_t measured = heap_in_use() - before;
        predicted[i] = cxr_trainer_bytes(m, batches[i]);
        CHECK(t != NULL, "trainer of batch %d", batches[i]);
        double ratio = (double)measured / (double)predicted[i];
        CHECK(ratio > 0.97 && ratio < 1.03,
              "batch %d: allocated %zu bytes, cxr_trainer_bytes says %zu (ratio %.4f)",
              batches[i], measured, predicted[i], ratio);
        printf("  alexnet_attn2 batch %d: allocated %zu bytes, predicted %zu (ratio %.5f)\n",
               batches[i], measured, predicted[i], ratio);
        cxr_trainer_free(t);
    }
    /* the activations grow with the batch, the parameters' three copies do not */
    CHECK(predicted[1] > predicted[0] && predicted[0] > 3 * m->n_trainable * sizeof(float),
          "bytes %zu (batch 1), %zu (batch 8)", predicted[0], predicted[1]);
    cxr_model_free(m);
    return harness_finish("test_trainer_bytes");
}

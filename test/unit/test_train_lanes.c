/* Training shares a batch's images among fixed lanes and adds the lanes' weight gradients in
 * lane order, so the thread count changes no bit of a step: gradients and losses at 1, 2 and 3
 * BLAS threads are compared bit for bit, for a network with attention and for resnet50 (at a
 * small input size, batch 5: lanes of unequal shares, one of them a single image). A cancel seen
 * while the lanes run on threads stops the step. */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_interrupt.h"
#include "cxr_model.h"
#include "harness.h"

enum { BATCH = 5 };

static float *
step(const char *arch, int size, int threads, const float *x, const float *labels, double *loss)
{
    char err[CXR_ERR_LEN];
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_model *m = cxr_model_create(arch, 1, size, 3, err);
    CHECK(m != NULL, "create %s: %s", arch, err);
    if (!m)
        return NULL;
    cxr_trainer *t = cxr_trainer_create(m, BATCH, &adam);
    CHECK(t != NULL, "trainer");
    float *g = NULL;
    if (t) {
        cxr_blas_set_threads(threads);
        *loss = cxr_trainer_forward_backward(t, x, labels, BATCH, 17, NULL);
        cxr_blas_set_threads(1);
        g = malloc(sizeof(float) * m->n_trainable);
        memcpy(g, t->grads, sizeof(float) * m->n_trainable);
        cxr_trainer_free(t);
    }
    cxr_model_free(m);
    return g;
}

static int calls;
static int
cancel_on_third_call(void)
{
    return ++calls >= 3;
}

int
main(void)
{
    struct {
        const char *arch;
        int size;
    } nets[] = {{"alexnet_attn2", 299}, {"resnet50", 64}};
    float labels[BATCH] = {1, 0, 0, 1, 1};
    for (int n = 0; n < 2; n++) {
        size_t img = (size_t)nets[n].size * nets[n].size;
        float *x = malloc(sizeof(float) * img * BATCH);
        harness_fill(x, img * BATCH, 23 + n);
        for (size_t i = 0; i < img * BATCH; i++)
            x[i] = 0.5f + 0.5f * x[i];
        char err[CXR_ERR_LEN];
        cxr_model *m = cxr_model_create(nets[n].arch, 1, nets[n].size, 3, err);
        size_t nt = m ? m->n_trainable : 0;
        cxr_model_free(m);
        double l1 = 0, l2 = 0, l3 = 0;
        float *g1 = step(nets[n].arch, nets[n].size, 1, x, labels, &l1);
        float *g2 = step(nets[n].arch, nets[n].size, 2, x, labels, &l2);
        float *g3 = step(nets[n].arch, nets[n].size, 3, x, labels, &l3);
        if (g1 && g2 && g3) {
            double mag = 0;
            for (size_t i = 0; i < nt; i++)
                mag += fabs(g1[i]);
            CHECK(mag > 0 && l1 == l1, "%s: a real step (loss %g, sum |grad| %g)", nets[n].arch, l1, mag);
            CHECK(l1 == l2 && l1 == l3, "%s: the same loss on 1, 2 and 3 threads", nets[n].arch);
            CHECK(memcmp(g1, g2, sizeof(float) * nt) == 0, "%s: 2 threads give the gradient bits of 1",
                  nets[n].arch);
            CHECK(memcmp(g1, g3, sizeof(float) * nt) == 0, "%s: 3 threads give the gradient bits of 1",
                  nets[n].arch);
            if (l1 == l2 && l1 == l3 && !memcmp(g1, g2, sizeof(float) * nt) &&
                !memcmp(g1, g3, sizeof(float) * nt))
                printf("  %s at %d, batch %d: loss %.6f, %zu gradients bit-equal on 1, 2 and 3 threads\n",
                   nets[n].arch, nets[n].size, BATCH, l1, nt);
        }
        free(g1), free(g2), free(g3), free(x);
    }

    /* a cancel while lanes run on two threads: the step reports it (NaN) and the hook is not
     * asked again once it said stop */
    char err[CXR_ERR_LEN];
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_model *m = cxr_model_create("alexnet_attn2", 1, 299, 3, err);
    cxr_trainer *t = m ? cxr_trainer_create(m, BATCH, &adam) : NULL;
    CHECK(t != NULL, "trainer for the cancel");
    if (t) {
        float *x = calloc((size_t)299 * 299 * BATCH, sizeof(float));
        cxr_blas_set_threads(2);
        cxr_set_interrupt_hook(cancel_on_third_call);
        double loss = cxr_trainer_forward_backward(t, x, labels, BATCH, 1, NULL);
        cxr_set_interrupt_hook(NULL);
        CHECK(loss != loss, "the cancelled step returns NaN (got %g)", loss);
        CHECK(calls == 3, "the hook is asked until it says stop, then not again (%d calls)", calls);
        CHECK(cxr_blas_get_threads() == 2, "the caller's BLAS thread count is restored");
        cxr_interrupt_clear();
        cxr_blas_set_threads(1);
        free(x);
    }
    cxr_trainer_free(t);
    cxr_model_free(m);
    return harness_finish("test_train_lanes");
}

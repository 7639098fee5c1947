/* The core flushes denormals while it computes and gives the caller its own mode back: a
 * product below FLT_MIN is 0 inside, and the caller still gets IEEE denormals after a forward
 * pass and a training step. */
#include <float.h>
#include <string.h>

#include "cxr_fpenv.h"
#include "cxr_model.h"
#include "harness.h"

static volatile float tiny = 1e-20f; /* volatile: computed at run time, in the current mode */

static float
product(void)
{
    return tiny * tiny; /* 1e-40: a denormal in IEEE arithmetic */
}

int
main(void)
{
    CHECK(product() > 0.0f && product() < FLT_MIN, "the caller's mode keeps denormals");
    cxr_fp_mode fp = cxr_fp_flush_denormals();
#if defined(__x86_64__) || defined(__SSE2__)
    CHECK(product() == 0.0f, "inside the core a denormal result is flushed to zero");
#endif
    cxr_fp_restore(fp);
    CHECK(product() > 0.0f, "restored: denormals again");

    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("alexnet_attn1", 1, 299, 1, err);
    CHECK(m != NULL, "create: %s", err);
    float *img = calloc(299 * 299, sizeof(float));
    cxr_model_forward(m, img);
    CHECK(product() > 0.0f, "a forward pass restores the caller's mode");
    cxr_adam_config adam = {1e-4f, 0.9f, 0.999f, 1e-8f};
    cxr_trainer *t = cxr_trainer_create(m, 1, &adam);
    float label = 1.0f;
    cxr_trainer_forward_backward(t, img, &label, 1, 1, NULL);
    cxr_trainer_apply_adam(t);
    CHECK(product() > 0.0f, "a training step restores the caller's mode");
    cxr_trainer_free(t);
    cxr_model_free(m);
    free(img);
    return harness_finish("test_fpenv");
}

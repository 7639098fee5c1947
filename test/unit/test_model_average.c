/* Federated averaging (cxr_model_average), by its definition and its properties: a model
 * averaged with itself at any weights is itself, bit for bit; weights (1, 0) give the first;
 * the order of two models does not matter; each parameter of an equal-weight mean is the mean
 * of the two floats (computed here in long double); BatchNorm statistics are averaged too; the
 * result survives save and load; mismatched models and bad weights are refused. */
#include <string.h>

#include "cxr_model.h"
#include "harness.h"

static int
same_params(const cxr_model *a, const cxr_model *b)
{
    return a->n_params == b->n_params && memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0;
}

static cxr_model *
fresh(const char *arch, int size, uint64_t seed)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create(arch, 1, size, seed, err);
    CHECK(m != NULL, "create %s: %s", arch, m ? "" : err);
    return m;
}

int
main(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *a = fresh("alexnet_attn1", 299, 1), *b = fresh("alexnet_attn1", 299, 2);
    cxr_model *r = fresh("resnet50", 64, 3), *f = fresh("random_forest", 16, 4);
    cxr_model *aa[2] = {a, a}, *ab[2] = {a, b}, *ba[2] = {b, a};

    double w25[2] = {2, 5}, w10[2] = {1, 0}, w11[2] = {1, 1}, w00[2] = {0, 0}, wneg[2] = {1, -1};
    cxr_model *m = cxr_model_average(aa, w25, 2, err);
    CHECK(m && same_params(m, a), "A averaged with itself at weights 2 and 5 is A");
    cxr_model_free(m);
    m = cxr_model_average(ab, w10, 2, err);
    CHECK(m && same_params(m, a), "weights 1 and 0 give the first model");
    cxr_model_free(m);
    cxr_model *m1 = cxr_model_average(ab, w11, 2, err), *m2 = cxr_model_average(ba, w11, 2, err);
    CHECK(m1 && m2 && same_params(m1, m2), "the order of two models does not change their mean");
    size_t off = 0;
    for (size_t i = 0; m1 && i < a->n_params; i++) {
        long double want = ((long double)a->params[i] + b->params[i]) / 2;
        if (m1->params[i] != (float)want) {
            off++;
        }
    }
    CHECK(m1 && off == 0, "every parameter of an equal-weight mean is the mean of the two (%zu of %zu differ)", off,
          a->n_params);

    /* BatchNorm running statistics: set them apart, and their mean comes out */
    cxr_model *r2 = cxr_model_clone(r, err);
    const cxr_param_info *var = cxr_model_tensor(r, "bn1.running_var");
    CHECK(var != NULL, "resnet50 has bn1.running_var");
    if (var && r2) {
        for (size_t i = 0; i < var->numel; i++) {
            r->params[var->offset + i] = 1.0f;
            r2->params[var->offset + i] = 4.0f;
        }
        cxr_model *rr[2] = {r, r2};
        double w13[2] = {1, 3};
        cxr_model *rm = cxr_model_average(rr, w13, 2, err);
        CHECK(rm && rm->params[var->offset] == 3.25f && rm->params[var->offset + var->numel - 1] == 3.25f,
              "running variances 1 and 4 at weights 1 and 3 average to 3.25");
        /* save and load: the file is a valid model with the averaged parameters */
        uint8_t *buf = NULL;
        size_t len = 0;
        cxr_model *back = NULL;
        if (rm && cxr_model_save(rm, &buf, &len) == 0)
            back = cxr_model_load(buf, len, err);
        CHECK(back && same_params(back, rm), "the average saves and loads back unchanged");
        free(buf);
        cxr_model_free(back);
        cxr_model_free(rm);
    }

    cxr_model *ar[2] = {a, r}, *ff[2] = {f, f};
    CHECK(!cxr_model_average(ar, w11, 2, err) && strstr(err, "not laid out"), "two architectures: %s", err);
    CHECK(!cxr_model_average(ff, w11, 2, err) && strstr(err, "no parameters"), "a forest: %s", err);
    CHECK(!cxr_model_average(ab, w00, 2, err) && strstr(err, "sum to 0"), "weights 0 and 0: %s", err);
    CHECK(!cxr_model_average(ab, wneg, 2, err) && strstr(err, "0 or more"), "a negative weight: %s", err);
    CHECK(!cxr_model_average(ab, w11, 0, err), "no models: %s", err);

    cxr_model_free(m1), cxr_model_free(m2), cxr_model_free(r2);
    cxr_model_free(a), cxr_model_free(b), cxr_model_free(r), cxr_model_free(f);
    return harness_finish("test_model_average");
}

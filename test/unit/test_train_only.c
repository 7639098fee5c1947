/* Training a part of a network (cxr_model_train_only), checked by properties: every parameter
 * and running statistic outside the trained part is bit for bit unchanged after Adam steps, the
 * trained part moves, frozen BatchNorms compute with their running statistics (so a frozen
 * ResNet50 gives its inference logits in training mode), backward keeps no gradient memory for
 * the frozen part, and prefixes match whole dotted names. */
#include <string.h>

#include "cxr_model.h"
#include "harness.h"

static int
under(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && (name[n] == '\0' || name[n] == '.');
}

/* after vs before, tensor by tensor: unchanged outside prefixes a and b, changed inside */
static void
check_moves(const cxr_model *m, const float *before, const char *a, const char *b,
            const char *what)
{
    int moved = 0, kept = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        int same = memcmp(m->params + t->offset, before + t->offset, t->numel * 4) == 0;
        int selected = under(t->name, a) || (b && under(t->name, b));
        if (selected && t->trainable) {
            CHECK(!same, "%s: trained %s did not move", what, t->name);
            moved++;
        } else if (!selected) {
            CHECK(same, "%s: frozen %s changed", what, t->name);
            kept++;
        }
    }
    printf("  %s: %d tensors trained and moved, %d frozen and unchanged\n", what, moved, kept);
}

int
main(void)
{
    char err[CXR_ERR_LEN];
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_model *m = cxr_model_create("resnet50", 0, 64, 5, err);
    CHECK(m != NULL, "create: %s", err);
    if (!m)
        return harness_finish("test_train_only");
    enum { N = 2 };
    size_t img = (size_t)m->input_size * m->input_size;
    float *x = malloc(sizeof(float) * img * N), labels[N] = {1, 0}, logits[N], eval[N];
    for (size_t i = 0; i < img * N; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    float *before = malloc(sizeof(float) * m->n_params);

    /* prefixes: whole components only, and an unknown one is an error that trains all */
    CHECK(cxr_model_train_only(m, "layer40", err) == -1 && strstr(err, "layer40"),
          "layer40 matches nothing: %s", err);
    CHECK(cxr_model_train_only(m, "fc.weight", err) == 1, "fc.weight is one tensor");
    CHECK(cxr_model_train_only(m, "fc", err) == 2, "fc is weight and bias");
    int all = cxr_model_train_only(m, NULL, err);
    CHECK(all == cxr_model_train_only(m, "", err) && all > 100, "all: %d tensors", all);
    size_t bytes_all = cxr_trainer_bytes(m, N);

    /* the head only: BatchNorms frozen, so training mode computes the inference logits */
    CHECK(cxr_model_train_only(m, " fc ", err) == 2, "fc with spaces");
    size_t bytes_fc = cxr_trainer_bytes(m, N);
    /* at least the gradient of conv1's output (64 x 32 x 32 per image at input 64) is not kept */
    CHECK(bytes_fc + (size_t)N * 64 * 32 * 32 * sizeof(float) <= bytes_all,
          "head-only training keeps %zu bytes, all %zu", bytes_fc, bytes_all);
    for (int i = 0; i < N; i++)
        eval[i] = cxr_model_forward(m, x + i * img);
    cxr_trainer *t = cxr_trainer_create(m, N, &adam);
    CHECK(t != NULL, "trainer");
    memcpy(before, m->params, sizeof(float) * m->n_params);
    for (int step = 0; step < 2 && t; step++) {
        double loss = cxr_trainer_forward_backward(t, x, labels, N, 0, logits);
        CHECK(isfinite(loss), "loss");
        /* the same logits up to the rounding of differently shaped products (a batch of N
         * against one image: OpenBLAS's Haswell kernel blocks them differently, so the bits
         * may differ); batch statistics instead of the running ones would move them by far
         * more */
        if (step == 0)
            CHECK(rel_error(logits, eval, N) <= 1e-5,
                  "frozen BN in training mode: %.9g %.9g, inference %.9g %.9g", logits[0],
                  logits[1], eval[0], eval[1]);
        for (int i = 0; i < m->n_tensors; i++) {
            const cxr_param_info *p = &m->tensors[i];
            if (p->trainable && p->frozen) {
                int zero = 1;
                for (size_t j = 0; j < p->numel && zero; j++)
                    zero = t->grads[p->offset + j] == 0.0f;
                CHECK(zero, "no gradient is spent on frozen %s", p->name);
            }
        }
        cxr_trainer_apply_adam(t);
    }
    check_moves(m, before, "fc", NULL, "fc");
    cxr_trainer_free(t);

    /* layer4 and the head: layer4's BatchNorms use and update batch statistics */
    CHECK(cxr_model_train_only(m, "layer4,fc", err) > 2, "layer4,fc");
    t = cxr_trainer_create(m, N, &adam);
    memcpy(before, m->params, sizeof(float) * m->n_params);
    for (int step = 0; step < 2 && t; step++) {
        CHECK(isfinite(cxr_trainer_forward_backward(t, x, labels, N, 0, logits)), "loss");
        cxr_trainer_apply_adam(t);
    }
    check_moves(m, before, "layer4", "fc", "layer4,fc");
    cxr_trainer_free(t);

    /* layer1 alone: the gradient crosses every frozen conv after it (their input gradient
     * only), and only layer1 moves */
    CHECK(cxr_model_train_only(m, "layer1", err) > 2, "layer1");
    t = cxr_trainer_create(m, N, &adam);
    memcpy(before, m->params, sizeof(float) * m->n_params);
    for (int step = 0; step < 2 && t; step++) {
        CHECK(isfinite(cxr_trainer_forward_backward(t, x, labels, N, 0, logits)), "loss");
        cxr_trainer_apply_adam(t);
    }
    check_moves(m, before, "layer1", NULL, "layer1");
    cxr_trainer_free(t);

    free(before);
    free(x);
    cxr_model_free(m);
    return harness_finish("test_train_only");
}

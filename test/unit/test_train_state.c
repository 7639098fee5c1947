/* Training states: saving after some Adam steps and loading into a fresh trainer restores the
 * parameters, both moments and the step exactly, so the next step matches an uninterrupted
 * trainer bit for bit; foreign or damaged states are refused and leave the trainer untouched. */
#include <string.h>

#include "cxr_train_state.h"
#include "harness.h"

#define BATCH 2

static void
step(cxr_trainer *t, const float *images, const float *labels)
{
    cxr_trainer_forward_backward(t, images, labels, BATCH, 99u + (uint64_t)t->step, NULL);
    cxr_trainer_apply_adam(t);
}

static cxr_trainer *
new_trainer(const char *arch)
{
    char err[CXR_ERR_LEN];
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_model *m = cxr_model_create(arch, 1, 299, 7, err);
    CHECK(m != NULL, "create %s: %s", arch, err);
    return cxr_trainer_create(m, BATCH, &adam);
}

static void
free_trainer(cxr_trainer *t)
{
    cxr_model *m = t->model;
    cxr_trainer_free(t);
    cxr_model_free(m);
}

static void
expect_refused(const char *what, cxr_trainer *t, const uint8_t *buf, size_t len, const char *want)
{
    char err[CXR_ERR_LEN] = "";
    cxr_run_progress p = {0};
    size_t np = t->model->n_params;
    float *before = malloc(np * sizeof(float));
    memcpy(before, t->model->params, np * sizeof(float));
    long step_before = t->step;
    CHECK(cxr_train_state_load(t, buf, len, &p, err) != 0, "%s: accepted", what);
    CHECK(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err, want);
    CHECK(memcmp(before, t->model->params, np * sizeof(float)) == 0 && t->step == step_before,
          "%s: trainer changed", what);
    free(before);
}

int
main(void)
{
    size_t img = 299 * 299;
    float *images = malloc(sizeof(float) * img * BATCH), labels[BATCH] = {1, 0};
    harness_fill(images, img * BATCH, 3);

    cxr_trainer *whole = new_trainer("alexnet_attn2"), *resumed = new_trainer("alexnet_attn2");
    step(whole, images, labels);
    step(whole, images, labels);
    cxr_run_progress saved = {2, 1, 0.75, 0.5}, got = {0};
    uint8_t *buf;
    size_t len;
    CHECK(cxr_train_state_save(whole, &saved, &buf, &len) == 0, "save");

    char err[CXR_ERR_LEN] = "";
    CHECK(cxr_train_state_load(resumed, buf, len, &got, err) == 0, "load: %s", err);
    CHECK(got.epochs_done == 2 && got.best_epoch == 1 && got.best_val_accuracy == 0.75 &&
              got.best_val_loss == 0.5, "progress restored");
    CHECK(resumed->step == 2, "step restored: %ld", resumed->step);
    size_t np = whole->model->n_params, nt = whole->model->n_trainable;
    CHECK(memcmp(whole->model->params, resumed->model->params, np * 4) == 0, "params restored");
    CHECK(memcmp(whole->adam_m, resumed->adam_m, nt * 4) == 0 &&
              memcmp(whole->adam_v, resumed->adam_v, nt * 4) == 0, "moments restored");
    step(whole, images, labels);
    step(resumed, images, labels);
    CHECK(memcmp(whole->model->params, resumed->model->params, np * 4) == 0,
          "the step after resuming equals the uninterrupted one");

    /* a run without validation keeps NAN for its best figures */
    cxr_run_progress none = {1, 1, NAN, NAN};
    uint8_t *buf2;
    size_t len2;
    CHECK(cxr_train_state_save(whole, &none, &buf2, &len2) == 0, "save without validation");
    CHECK(cxr_train_state_load(resumed, buf2, len2, &got, err) == 0 && isnan(got.best_val_accuracy) &&
              isnan(got.best_val_loss), "NAN progress round-trips: %s", err);
    free(buf2);

    /* refused: another arch, a model file, truncation, damaged moments, bad metadata */
    cxr_trainer *other = new_trainer("alexnet_attn1");
    expect_refused("other arch", other, buf, len, "training state is for alexnet_attn2");
    uint8_t *model_file;
    size_t model_len;
    CHECK(cxr_model_save(whole->model, &model_file, &model_len) == 0, "model save");
    expect_refused("model file", resumed, model_file, model_len, "not a training state");
    expect_refused("truncated", resumed, buf, len - 4, "outside the file");
    expect_refused("header only", resumed, buf, 16, "");

    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)buf[i] << (8 * i);
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    float neg = -1.0f; /* a negative second moment: impossible after any Adam step */
    memcpy(bad + 8 + hl + (np + nt) * 4, &neg, 4);
    expect_refused("negative second moment", resumed, bad, len, "negative second moments");
    memcpy(bad, buf, len);
    const cxr_param_info *rv = cxr_model_tensor(whole->model, "bn3.running_var");
    memcpy(bad + 8 + hl + (rv->offset + 2) * 4, &neg, 4); /* params come first */
    expect_refused("negative running variance", resumed, bad, len,
                   "tensor \"bn3.running_var\" has a negative value");
    memcpy(bad, buf, len);
    float inf = INFINITY;
    memcpy(bad + 8 + hl + 4, &inf, 4);
    expect_refused("infinite weight", resumed, bad, len, "infinite");
    memcpy(bad, buf, len);
    char *at = memmem(bad + 8, hl, "\"step\":\"2\"", 10);
    CHECK(at != NULL, "step in header");
    if (at) {
        memcpy(at, "\"step\":\"x\"", 10);
        expect_refused("bad step", resumed, bad, len, "bad \"step\"");
    }
    memcpy(bad, buf, len);
    at = memmem(bad + 8, hl, "\"best_epoch\":\"1\"", 16);
    CHECK(at != NULL, "best_epoch in header");
    if (at) {
        memcpy(at, "\"best_epoch\":\"9\"", 16);
        expect_refused("best epoch after the last", resumed, bad, len, "bad step or epoch");
    }

    free(bad);
    free(model_file);
    free(buf);
    free(images);
    free_trainer(whole);
    free_trainer(resumed);
    free_trainer(other);
    return harness_finish("test_train_state");
}

/* The C core against the PyTorch fixtures of test/ref/reference.py (and resnet_reference.py, from
 * torchvision's resnet50 at 224), for every network and score:
 * eval logits and attention maps (<= 1e-4), gradients of one training step (<= 1e-3), running
 * statistics and Adam-updated parameters (<= 1e-4); for the shipped network and one other, eight
 * steps in a row. Then models written here, checked by PyTorch in `reference.py --verify-c`. */
#include <string.h>
#include <sys/stat.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "cxr_model.h"
#include "cxr_safetensors.h"
#include "cxr_winograd.h"
#include "harness.h"

static const char *configs[] = {"alexnet-dot",         "alexnet_attn1-dot",
                                "alexnet_attn1-scaled_dot", "alexnet_attn2-dot",
                                "alexnet_attn2-scaled_dot", "alexnet_attn3-dot",
                                "alexnet_attn3-scaled_dot", "resnet50-dot"};

static const float *
fx_tensor(const cxr_st_file *f, const char *name, size_t *numel)
{
    const cxr_st_tensor *t = cxr_st_find(f, name);
    if (!t)
        return NULL;
    if (numel)
        *numel = (t->end - t->begin) / 4;
    return (const float *)(f->data + t->begin);
}

static void
save_outputs(const char *path, const float *input, int n, int side, const float *logits,
             cxr_model *m)
{
    /* a small safetensors of the C outputs, for PyTorch to compare against */
    char header[2048];
    size_t img = (size_t)n * side * side, off = 0;
    int len = snprintf(header, sizeof header,
                       "{\"input\":{\"dtype\":\"F32\",\"shape\":[%d,%d,%d],\"data_offsets\":[0,%zu]}"
                       ",\"logits\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                       n, side, side, img * 4, n, img * 4, img * 4 + n * 4);
    off = img * 4 + n * 4;
    float *alphas[3] = {0};
    int sides[3] = {0};
    for (int t = 0; t < m->n_taps; t++) {
        int layer = m->taps[t], s = cxr_model_attention_side(m, layer);
        sides[t] = s;
        alphas[t] = malloc(sizeof(float) * n * s * s);
        for (int i = 0; i < n; i++) {
            cxr_model_forward(m, input + (size_t)i * side * side);
            memcpy(alphas[t] + (size_t)i * s * s, cxr_model_attention(m, layer),
                   sizeof(float) * s * s);
        }
        len += snprintf(header + len, sizeof header - len,
                        ",\"alpha%d\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                        layer, n, s * s, off, off + (size_t)n * s * s * 4);
        off += (size_t)n * s * s * 4;
    }
    len += snprintf(header + len, sizeof header - len, "}");
    while (len % 8)
        header[len++] = ' ';
    FILE *f = fopen(path, "wb");
    uint64_t hl = (uint64_t)len;
    fwrite(&hl, 8, 1, f);
    fwrite(header, 1, len, f);
    fwrite(input, 4, img, f);
    fwrite(logits, 4, n, f);
    for (int t = 0; t < m->n_taps; t++) {
        fwrite(alphas[t], 4, (size_t)n * sides[t] * sides[t], f);
        free(alphas[t]);
    }
    fclose(f);
}

/* A weight tensor is noise-dominated when float32 runs in different summation orders disagree
 * on its update by more than this fraction of its norm (seen: 0.066-0.13 for the conv biases
 * concerned; at most 1e-4 for every other tensor, 3e-3 with other thread counts). */
#define NOISE_DOMINATED 1e-2

/* Several steps in a row (reference.py's run.safetensors, for some configs): the loss of every
 * step, then each weight tensor's total update, the running statistics and the eval logits after
 * the last. Float32 against float64 drifts with each Adam step (a gradient that is zero up to
 * rounding still moves a weight by lr), so weight updates are held to twice PyTorch's own float32
 * error on the same run; likewise the losses, running statistics and logits, with a floor of 1e-3
 * (seen up to 6.5e-4 with the "dot" score). */
static double
f32_bound(const cxr_st_file *run, const char *key, double floor)
{
    const char *v = cxr_st_meta_get(run, key);
    return 2 * fmax(floor, v ? atof(v) : 0);
}

static void
check_run(const char *dir, const char *cfg, const uint8_t *mbuf, size_t mlen, const float *input,
          const float *labels, int batch)
{
    char path[512], err[CXR_ERR_LEN];
    size_t rlen = 0, n = 0;
    snprintf(path, sizeof path, "%s/%s/run.safetensors", dir, cfg);
    uint8_t *rbuf = read_file(path, &rlen);
    if (!rbuf)
        return; /* not every config has a run */
    cxr_st_file run;
    CHECK(cxr_st_parse(rbuf, rlen, &run, err, sizeof err) == 0, "%s: run: %s", cfg, err);
    cxr_model *m = cxr_model_load(mbuf, mlen, err);
    const char *steps_s = cxr_st_meta_get(&run, "steps"), *lr_s = cxr_st_meta_get(&run, "lr");
    const char *seed_s = cxr_st_meta_get(&run, "dropout_seed");
    CHECK(m && steps_s && lr_s && seed_s, "%s: run fixture incomplete", cfg);
    if (!m || !steps_s || !lr_s || !seed_s)
        return;
    int steps = atoi(steps_s);
    uint64_t seed = strtoull(seed_s, NULL, 10);
    cxr_adam_config adam = {(float)atof(lr_s), 0.9f, 0.999f, 1e-8f};
    cxr_trainer *tr = cxr_trainer_create(m, batch, &adam);
    float *start = malloc(sizeof(float) * m->n_params);
    memcpy(start, m->params, sizeof(float) * m->n_params);
    const float *want_loss = fx_tensor(&run, "losses", &n);
    CHECK(tr && want_loss && (int)n == steps, "%s: run setup", cfg);
    double worst_loss = 0, e;
    /* PyTorch's own float32 errors on the same run, doubled, at least 2e-3 */
    double loss_bound = f32_bound(&run, "f32_loss_error", 1e-3);
    double stat_bound = f32_bound(&run, "f32_stat_error", 1e-3);
    double logit_bound = f32_bound(&run, "f32_logit_error", 1e-3);
    for (int k = 0; tr && want_loss && k < steps; k++) {
        float loss = (float)cxr_trainer_forward_backward(tr, input, labels, batch, seed + 1 + k, NULL);
        cxr_trainer_apply_adam(tr);
        e = fabs(loss - want_loss[k]) / fabs(want_loss[k]);
        worst_loss = e > worst_loss ? e : worst_loss;
        CHECK(e <= loss_bound, "%s run step %d loss %.6f, PyTorch %.6f", cfg, k + 1, loss, want_loss[k]);
    }
    double worst_param = 0, worst_noisy = 0, worst_stat = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        char name[64];
        snprintf(name, sizeof name, "after.%s", t->name);
        const float *g = fx_tensor(&run, name, &n);
        CHECK(g && n == t->numel, "%s: no run fixture %s", cfg, name);
        if (!g)
            continue;
        if (t->trainable) {
            /* Adam moves a weight whose gradient is zero up to rounding by up to lr either way,
             * so weights are compared by their whole update: |dC - dRef|_2 / |dRef|_2 */
            double diff = 0, norm = 0;
            for (size_t j = 0; j < t->numel; j++) {
                double dr = (double)g[j] - start[t->offset + j];
                double dc = (double)m->params[t->offset + j] - start[t->offset + j];
                diff += (dc - dr) * (dc - dr);
                norm += dr * dr;
            }
            e = sqrt(diff / (norm > 0 ? norm : 1e-300));
            /* held to PyTorch's own float32 error on this tensor (at least 1e-2), doubled; for a
             * noise-dominated tensor, to that error plus the reordering noise, doubled */
            char key[96];
            snprintf(key, sizeof key, "f32_update_error.%s", t->name);
            const char *f32_s = cxr_st_meta_get(&run, key);
            snprintf(key, sizeof key, "f32_update_noise.%s", t->name);
            const char *noise_s = cxr_st_meta_get(&run, key);
            CHECK(!f32_s || noise_s, "%s: run fixture lacks %s (regenerate it)", cfg, key);
            double allowance = fmax(1e-2, f32_s ? atof(f32_s) : 0);
            /* Reordering noise: how far PyTorch float32 runs that differ only in summation order
             * land apart, relative to the update. Above NOISE_DOMINATED, part of the update is
             * rounding (a conv bias whose channel BatchNorm normalises whole has a gradient that
             * is zero up to rounding, which Adam turns into lr-sized steps): any float32 engine
             * may be that far off by its summation order alone, so the spread is allowed on top.
             * Tensors that carry signal stay below it and keep the bound unchanged. */
            double noise = noise_s ? atof(noise_s) : 0;
            int noisy = noise > NOISE_DOMINATED;
            if (noisy)
                allowance += noise;
            CHECK(e <= 2 * allowance,
                  "%s run %s: update differs by %.3g of its norm (PyTorch float32: %s, "
                  "reordering noise %s)", cfg, name, e, f32_s ? f32_s : "?", noise_s ? noise_s : "?");
            if (noisy)
                printf("  %-26s %s is noise-dominated: update error %.3g, PyTorch float32 %.3g, "
                       "reordering noise %.3g, bound %.3g\n", cfg, name, e,
                       f32_s ? atof(f32_s) : 0, noise, 2 * allowance);
            double ratio = e / allowance, *worst = noisy ? &worst_noisy : &worst_param;
            *worst = ratio > *worst ? ratio : *worst;
        } else {
            e = rel_error(m->params + t->offset, g, t->numel);
            CHECK(e <= stat_bound, "%s run %s: relative error %.3g", cfg, name, e);
            worst_stat = e > worst_stat ? e : worst_stat;
        }
    }
    float logits[8];
    cxr_model_forward_batch(m, input, batch, logits);
    e = rel_error(logits, fx_tensor(&run, "eval_logits", NULL), batch);
    CHECK(e <= logit_bound, "%s run eval logits: relative error %.3g", cfg, e);
    printf("  %-26s %d steps: loss rel err %.2e (PyTorch float32 %s), running stats %.2e (%s), "
           "eval logits %.2e (%s), worst update error / its allowance (half the bound) %.2f, "
           "noise-dominated tensors %.2f\n",
           cfg, steps, worst_loss, cxr_st_meta_get(&run, "f32_loss_error"), worst_stat,
           cxr_st_meta_get(&run, "f32_stat_error"), e, cxr_st_meta_get(&run, "f32_logit_error"),
           worst_param, worst_noisy);
    free(start);
    cxr_trainer_free(tr);
    cxr_model_free(m);
    cxr_st_free(&run);
    free(rbuf);
}

static void
check_config(const char *dir, const char *cfg)
{
    char path[512], err[CXR_ERR_LEN];
    size_t mlen = 0, flen = 0, n = 0;
    snprintf(path, sizeof path, "%s/%s/model.safetensors", dir, cfg);
    uint8_t *mbuf = read_file(path, &mlen);
    snprintf(path, sizeof path, "%s/%s/fixture.safetensors", dir, cfg);
    uint8_t *fbuf = read_file(path, &flen);
    CHECK(mbuf && fbuf, "%s: fixtures missing (run reference.py)", cfg);
    if (!mbuf || !fbuf)
        return;
    cxr_st_file fx;
    CHECK(cxr_st_parse(fbuf, flen, &fx, err, sizeof err) == 0, "%s: fixture: %s", cfg, err);
    cxr_model *m = cxr_model_load(mbuf, mlen, err);
    CHECK(m != NULL, "%s: PyTorch-written model does not load: %s", cfg, err);
    if (!m)
        return;
    const float *input = fx_tensor(&fx, "input", &n);
    int side = m->input_size, batch = (int)(n / ((size_t)side * side));

    /* inference: logits and attention maps */
    float logits[8];
    const float *want = fx_tensor(&fx, "eval_logits", NULL);
    for (int i = 0; i < batch; i++) {
        logits[i] = cxr_model_forward(m, input + (size_t)i * side * side);
        for (int t = 0; t < m->n_taps; t++) {
            int layer = m->taps[t], s = cxr_model_attention_side(m, layer);
            char name[16];
            snprintf(name, sizeof name, "alpha%d", layer);
            const float *wa = fx_tensor(&fx, name, NULL) + (size_t)i * s * s;
            double e = rel_error(cxr_model_attention(m, layer), wa, (size_t)s * s);
            CHECK(e <= 1e-4, "%s image %d %s: relative error %.3g", cfg, i, name, e);
            double sum = 0;
            for (int j = 0; j < s * s; j++)
                sum += cxr_model_attention(m, layer)[j];
            CHECK(fabs(sum - 1.0) < 1e-5, "%s %s sums to %.8f", cfg, name, sum);
        }
    }
    double e = rel_error(logits, want, batch);
    CHECK(e <= 1e-4, "%s eval logits: relative error %.3g", cfg, e);
    printf("  %-26s eval logits rel err %.2e\n", cfg, e);

    /* batch API equals one-by-one */
    float blog[8];
    cxr_model_forward_batch(m, input, batch, blog);
    CHECK(memcmp(blog, logits, sizeof(float) * batch) == 0, "%s: batch differs from single", cfg);

    /* prepared for inference (Winograd convolutions where they apply): the same bounds */
    CHECK(cxr_model_prepare_inference(m) == 0, "%s: prepare", cfg);
    float plog[8];
    for (int i = 0; i < batch; i++) {
        plog[i] = cxr_model_forward(m, input + (size_t)i * side * side);
        for (int t = 0; t < m->n_taps; t++) {
            int layer = m->taps[t], s = cxr_model_attention_side(m, layer);
            char name[16];
            snprintf(name, sizeof name, "alpha%d", layer);
            const float *wa = fx_tensor(&fx, name, NULL) + (size_t)i * s * s;
            double ea = rel_error(cxr_model_attention(m, layer), wa, (size_t)s * s);
            CHECK(ea <= 1e-4, "%s prepared, image %d %s: relative error %.3g", cfg, i, name, ea);
        }
    }
    e = rel_error(plog, want, batch);
    CHECK(e <= 1e-4, "%s prepared eval logits: relative error %.3g", cfg, e);
    cxr_model_forward_batch(m, input, batch, blog);
    CHECK(memcmp(blog, plog, sizeof(float) * batch) == 0, "%s: prepared batch differs from single",
          cfg);
    printf("  %-26s prepared (%s): eval logits rel err %.2e\n", cfg,
           m->wino ? "Winograd layers" : "nothing to prepare", e);

    if (getenv("CXR_REFERENCE_INFERENCE_ONLY")) { /* another dot path: inference is all it changes */
        cxr_model_free(m);
        cxr_st_free(&fx);
        free(mbuf);
        free(fbuf);
        return;
    }

    /* one training step */
    cxr_adam_config adam = {1e-4f, 0.9f, 0.999f, 1e-8f};
    const char *seed_s = cxr_st_meta_get(&fx, "dropout_seed");
    /* The same step on a copy with one BLAS thread and every input gradient on im2col + sgemm
     * (training's lanes make the thread count alone change no bit): the gradients' reordering
     * noise. Where a ReLU input lies within rounding of 0, summation order alone decides the
     * mask, and a gradient below it moves by far more than rounding (resnet50 with Winograd in
     * the forward pass too: 2.3e-3 for layer3.1's conv3); such a tensor is allowed its
     * reordering noise, doubled, beyond 1e-3. */
    char clone_err[CXR_ERR_LEN];
    cxr_model *m1 = cxr_model_clone(m, clone_err);
    CHECK(m1 != NULL, "%s: clone: %s", cfg, clone_err);
    int wino_training = cxr_winograd_set_training(0);
    cxr_trainer *tr1 = m1 ? cxr_trainer_create(m1, batch, &adam) : NULL;
    cxr_winograd_set_training(wino_training);
    CHECK(tr1 != NULL, "trainer on one thread");
    float tlog[8];
    if (tr1) {
        cxr_blas_set_threads(1);
        cxr_trainer_forward_backward(tr1, input, fx_tensor(&fx, "labels", NULL), batch,
                                     strtoull(seed_s ? seed_s : "0", NULL, 10), tlog);
        cxr_blas_set_threads(2);
    }
    cxr_trainer *tr = cxr_trainer_create(m, batch, &adam);
    CHECK(tr != NULL, "trainer");
    double loss = cxr_trainer_forward_backward(tr, input, fx_tensor(&fx, "labels", NULL), batch,
                                               strtoull(seed_s ? seed_s : "0", NULL, 10), tlog);
    e = rel_error(tlog, fx_tensor(&fx, "train_logits", NULL), batch);
    CHECK(e <= 1e-4, "%s train logits: relative error %.3g", cfg, e);
    float lossf = (float)loss;
    e = rel_error(&lossf, fx_tensor(&fx, "train_loss", NULL), 1);
    CHECK(e <= 1e-4, "%s train loss: relative error %.3g", cfg, e);
    double worst_grad = 0, worst_after = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        char name[64];
        if (t->trainable) {
            snprintf(name, sizeof name, "grad.%s", t->name);
            const float *g = fx_tensor(&fx, name, &n);
            CHECK(g && n == t->numel, "%s: no fixture %s", cfg, name);
            if (g) {
                e = rel_error(tr->grads + t->offset, g, t->numel);
                double noise = tr1 ? rel_error(tr->grads + t->offset, tr1->grads + t->offset,
                                               t->numel)
                                   : 0;
                double bound = 1e-3 + 2 * noise;
                CHECK(e <= bound, "%s %s: relative error %.3g (bound %.3g)", cfg, name, e, bound);
                if (e > 1e-3)
                    printf("  %-26s %s is order-sensitive: error %.3g, reordering noise %.3g\n",
                           cfg, name, e, noise);
                worst_grad = e > worst_grad ? e : worst_grad;
            }
        }
    }
    /* Adam is checked on the reference gradients: its first step is lr * sign(g), so a
     * gradient that is zero up to rounding would flip an update by 2 lr and hide nothing. */
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        char name[64];
        snprintf(name, sizeof name, "grad.%s", t->name);
        const float *g = t->trainable ? fx_tensor(&fx, name, &n) : NULL;
        if (g && n == t->numel)
            memcpy(tr->grads + t->offset, g, sizeof(float) * n);
    }
    cxr_trainer_apply_adam(tr);
    for (int i = 0; i < m->n_tensors; i++) {
        const cxr_param_info *t = &m->tensors[i];
        char name[64];
        snprintf(name, sizeof name, "after.%s", t->name);
        const float *g = fx_tensor(&fx, name, &n);
        CHECK(g && n == t->numel, "%s: no fixture %s", cfg, name);
        if (g) {
            e = rel_error(m->params + t->offset, g, t->numel);
            CHECK(e <= 1e-4, "%s %s: relative error %.3g", cfg, name, e);
            worst_after = e > worst_after ? e : worst_after;
        }
    }
    printf("  %-26s worst gradient rel err %.2e, worst updated tensor rel err %.2e\n", cfg,
           worst_grad, worst_after);
    cxr_trainer_free(tr);
    if (tr1)
        cxr_trainer_free(tr1);
    if (m1)
        cxr_model_free(m1);
    check_run(dir, cfg, mbuf, mlen, input, fx_tensor(&fx, "labels", NULL), batch);

    /* a model written here, for PyTorch to read back (reference.py --verify-c) */
    uint8_t *out;
    size_t out_len;
    CHECK(cxr_model_save(m, &out, &out_len) == 0, "save");
    snprintf(path, sizeof path, "%s/c_written", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/c_written/%s.model.safetensors", dir, cfg);
    FILE *f = fopen(path, "wb");
    fwrite(out, 1, out_len, f);
    fclose(f);
    cxr_model *again = cxr_model_load(out, out_len, err);
    CHECK(again != NULL, "%s: own file does not load: %s", cfg, err);
    if (again) {
        CHECK(memcmp(again->params, m->params, m->n_params * 4) == 0, "round trip");
        cxr_model_forward_batch(again, input, batch, logits);
        snprintf(path, sizeof path, "%s/c_written/%s.outputs.safetensors", dir, cfg);
        save_outputs(path, input, batch, side, logits, again);
        cxr_model_free(again);
    }
    free(out);
    cxr_model_free(m);
    cxr_st_free(&fx);
    free(mbuf);
    free(fbuf);
}

int
main(void)
{
    const char *dir = getenv("CXR_FIXTURES") ? getenv("CXR_FIXTURES") : "test/fixtures";
    cxr_blas_set_threads(2);
    printf("BLAS: %s\n", cxr_blas_describe());
    printf("%s\n", cxr_dot_describe());
    const char *path = getenv("CXR_DOT_PATH");
    CHECK(!path || strstr(cxr_dot_describe(), path), "CXR_DOT_PATH=%s is not the path in use", path);
    printf("%s\n", cxr_winograd_describe());
    const char *wino = getenv("CXR_WINO_PATH");
    CHECK(!wino || strstr(cxr_winograd_describe(), wino), "CXR_WINO_PATH=%s is not the path in use", wino);
    printf("%s\n", cxr_conv_gray_describe());
    const char *gray = getenv("CXR_CONV_GRAY_PATH");
    CHECK(!gray || strstr(cxr_conv_gray_describe(), gray), "CXR_CONV_GRAY_PATH=%s is not the path in use", gray);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        check_config(dir, configs[i]);
    return harness_finish("test_reference");
}

/* The C core against the PyTorch fixtures of test/ref/reference.py, for every network and score:
 * eval logits and attention maps (<= 1e-4), gradients of one training step (<= 1e-3), running
 * statistics and Adam-updated parameters (<= 1e-4). Then models written here, checked by
 * PyTorch in `reference.py --verify-c`. */
#include <string.h>
#include <sys/stat.h>

#include "cxr_blas.h"
#include "cxr_model.h"
#include "cxr_safetensors.h"
#include "harness.h"

static const char *configs[] = {"alexnet-dot",         "alexnet_attn1-dot",
                                "alexnet_attn1-scaled_dot", "alexnet_attn2-dot",
                                "alexnet_attn2-scaled_dot", "alexnet_attn3-dot",
                                "alexnet_attn3-scaled_dot"};

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
    for (int t = 0; t < m->arch->n_taps; t++) {
        int layer = m->arch->taps[t], s = cxr_model_attention_side(m, layer);
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
    for (int t = 0; t < m->arch->n_taps; t++) {
        fwrite(alphas[t], 4, (size_t)n * sides[t] * sides[t], f);
        free(alphas[t]);
    }
    fclose(f);
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
        for (int t = 0; t < m->arch->n_taps; t++) {
            int layer = m->arch->taps[t], s = cxr_model_attention_side(m, layer);
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

    /* one training step */
    cxr_adam_config adam = {1e-4f, 0.9f, 0.999f, 1e-8f};
    cxr_trainer *tr = cxr_trainer_create(m, batch, &adam);
    CHECK(tr != NULL, "trainer");
    const char *seed_s = cxr_st_meta_get(&fx, "dropout_seed");
    float tlog[8];
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
                CHECK(e <= 1e-3, "%s %s: relative error %.3g", cfg, name, e);
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
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        check_config(dir, configs[i]);
    return harness_finish("test_reference");
}

/* The core library alone, from the command line: the reference the SQL tests compare against.
 *
 *   cxr_cli init ARCH SCORE SEED OUT.safetensors     random (Xavier) model, for tests
 *   cxr_cli predict MODEL IMAGE...                    probability per image (PNG, JPEG, DICOM)
 *   cxr_cli time MODEL IMAGE REPEATS                  best ms of decoding, and of scoring
 *   cxr_cli attention MODEL IMAGE LAYER               the attention map, one row per line
 *   cxr_cli info MODEL                                arch, score, parameters, workspace
 *   cxr_cli state ARCH SCORE SEED OUT                 training state after one Adam step on
 *                                                     random input (batch 2), for fuzz seeds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cxr_blas.h"
#include "cxr_image.h"
#include "cxr_model.h"
#include "cxr_train.h"
#include "cxr_train_state.h"
#include "harness.h"

static cxr_model *
load(const char *path)
{
    size_t len;
    char err[CXR_ERR_LEN];
    uint8_t *buf = read_file(path, &len);
    if (!buf) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    cxr_model *m = cxr_model_load(buf, len, err);
    free(buf);
    if (!m) {
        fprintf(stderr, "%s: %s\n", path, err);
        exit(2);
    }
    cxr_model_prepare_inference(m); /* as the extension's model cache does */
    return m;
}

static void *
malloc_alloc(size_t bytes, void *ctx)
{
    (void)ctx;
    return malloc(bytes);
}

/* Decode (PNG, JPEG or DICOM), resize, normalise: the same steps the extension takes. */
static void
prepare(const cxr_model *m, const char *path, float *input)
{
    size_t len;
    char err[256];
    uint8_t *buf = read_file(path, &len);
    cxr_decoded_image d;
    if (!buf || cxr_image_decode(buf, len, (size_t)1 << 28, malloc_alloc, NULL, &d, err,
                                 sizeof err) != CXR_IMG_OK) {
        fprintf(stderr, "%s: %s\n", path, buf ? err : "cannot read");
        exit(2);
    }
    float *tmp = malloc(sizeof(float) * cxr_resize_scratch_floats(d.width, d.height,
                                                                  m->input_size, m->input_size));
    cxr_resize_bilinear(d.gray, d.width, d.height, input, m->input_size, m->input_size, tmp);
    free(d.gray);
    free(tmp);
    free(buf);
}

int
main(int argc, char **argv)
{
    char err[CXR_ERR_LEN];
    cxr_blas_set_threads(1);
    if (argc == 6 && strcmp(argv[1], "init") == 0) {
        cxr_model *m = cxr_model_create(argv[2], strcmp(argv[3], "scaled_dot") == 0, 299,
                                        strtoull(argv[4], NULL, 10), err);
        if (!m) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        uint8_t *buf;
        size_t len;
        FILE *f = fopen(argv[5], "wb");
        if (!f || cxr_model_save(m, &buf, &len) || fwrite(buf, 1, len, f) != len)
            return 2;
        fclose(f);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "forest") == 0) {
        /* a small fitted forest (16 x 16 grid, 5 trees, random images): a fuzzing seed */
        cxr_model *m = cxr_model_create("random_forest", 0, 16, 1, err);
        if (!m || cxr_model_set_param(m, "n_estimators", "5", err)) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        cxr_dataset d = {.n = 40, .capacity = CXR_DATASET_BLOCK, .side = 16};
        uint8_t *block = calloc(CXR_DATASET_BLOCK, 256);
        d.blocks = &block;
        d.labels = calloc(CXR_DATASET_BLOCK, sizeof(float));
        uint64_t x = strtoull(argv[2], NULL, 10);
        for (int i = 0; i < 40 * 256; i++)
            block[i] = (uint8_t)((x = cxr_splitmix64(x)) >> 56);
        for (int i = 0; i < 40; i++)
            d.labels[i] = block[i * 256 + 17] > 128;
        uint8_t *buf;
        size_t len;
        FILE *f = fopen(argv[3], "wb");
        if (cxr_model_fit(m, &d, 0, 5, x, 1, err) || !f || cxr_model_save(m, &buf, &len) ||
            fwrite(buf, 1, len, f) != len)
            return 2;
        fclose(f);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "predict") == 0) {
        cxr_model *m = load(argv[2]);
        float *input = malloc(sizeof(float) * m->input_size * m->input_size);
        for (int i = 3; i < argc; i++) {
            prepare(m, argv[i], input);
            printf("%.9g\n", cxr_sigmoid(cxr_model_forward(m, input)));
        }
        return 0;
    }
    /* time MODEL FILE REPEATS: milliseconds per decode, and per decode + resize + forward */
    if (argc == 5 && strcmp(argv[1], "time") == 0) {
        cxr_model *m = load(argv[2]);
        int repeats = atoi(argv[4]);
        size_t len;
        char err[256];
        uint8_t *buf = read_file(argv[3], &len);
        float *input = malloc(sizeof(float) * m->input_size * m->input_size);
        if (!buf || repeats < 1) {
            fprintf(stderr, "%s: cannot read, or repeats < 1\n", argv[3]);
            return 2;
        }
        double best_decode = 1e30, best_score = 1e30;
        for (int r = 0; r < repeats; r++) {
            struct timespec t0, t1, t2;
            cxr_decoded_image d;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            if (cxr_image_decode(buf, len, (size_t)1 << 28, malloc_alloc, NULL, &d, err,
                                 sizeof err) != CXR_IMG_OK) {
                fprintf(stderr, "%s: %s\n", argv[3], err);
                return 2;
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
            free(d.gray);
            prepare(m, argv[3], input);
            cxr_model_forward(m, input);
            clock_gettime(CLOCK_MONOTONIC, &t2);
            double dec = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
            double all = (t2.tv_sec - t1.tv_sec) * 1e3 + (t2.tv_nsec - t1.tv_nsec) / 1e6;
            best_decode = dec < best_decode ? dec : best_decode;
            best_score = all < best_score ? all : best_score;
        }
        printf("decode_ms %.3f score_ms %.3f\n", best_decode, best_score);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "attention") == 0) {
        cxr_model *m = load(argv[2]);
        int layer = atoi(argv[4]), side = cxr_model_attention_side(m, layer);
        if (!side) {
            fprintf(stderr, "no attention at layer %d\n", layer);
            return 2;
        }
        float *input = malloc(sizeof(float) * m->input_size * m->input_size);
        prepare(m, argv[3], input);
        cxr_model_forward(m, input);
        const float *a = cxr_model_attention(m, layer);
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                printf("%.9g%c", a[y * side + x], x + 1 < side ? ' ' : '\n');
        return 0;
    }
    if (argc == 6 && strcmp(argv[1], "state") == 0) {
        enum { BATCH = 2 };
        uint64_t seed = strtoull(argv[4], NULL, 10);
        cxr_model *m = cxr_model_create(argv[2], strcmp(argv[3], "scaled_dot") == 0, 299, seed,
                                        err);
        if (!m) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
        cxr_trainer *t = cxr_trainer_create(m, BATCH, &adam);
        size_t img = (size_t)m->input_size * m->input_size;
        float *images = malloc(sizeof(float) * img * BATCH), labels[BATCH] = {1, 0};
        if (!t || !images)
            return 2;
        for (size_t i = 0; i < img * BATCH; i++)
            images[i] = 2.0f * cxr_uniform(seed, i) - 1.0f;
        if (!isfinite(cxr_trainer_forward_backward(t, images, labels, BATCH, seed, NULL)))
            return 2;
        cxr_trainer_apply_adam(t);
        cxr_run_progress p = {1, 1, NAN, NAN};
        uint8_t *buf;
        size_t len;
        FILE *f = fopen(argv[5], "wb");
        if (!f || cxr_train_state_save(t, &p, &buf, &len) || fwrite(buf, 1, len, f) != len ||
            fclose(f))
            return 2;
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "info") == 0) {
        cxr_model *m = load(argv[2]);
        printf("arch %s\nattention_score %s\nparameters %zu\nworkspace_bytes %zu\nkernels %s\n",
               m->arch->name, m->attention_scaled ? "scaled_dot" : "dot", m->n_params,
               cxr_model_workspace_bytes(m), cxr_blas_describe());
        return 0;
    }
    fprintf(stderr, "usage: cxr_cli init|forest|predict|attention|info|state ... (see source)\n");
    return 2;
}

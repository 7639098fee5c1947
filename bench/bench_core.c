/* Core library benchmark: per network, single-image inference latency (median ms), batch-32
 * inference images/s and training images/s (batch 64; resnet50 32, at 224), the inference
 * workspace beyond the weights; then conv-layer GFLOP/s against
 * cblas_sgemm on square matrices. Prints one "C ..." line per measurement for bench/run.sh.
 *
 *   bench/bin/bench_core THREADS [networks...] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cxr_blas.h"
#include "cxr_graph.h"

static double
now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void
bench_network(const char *arch, int do_train)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create(arch, 1, 0, 1, err); /* the architecture's input size */
    if (!m) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    size_t img = (size_t)m->input_size * m->input_size;
    int batch = strcmp(arch, "resnet50") == 0 ? 32 : 64;
    float *x = malloc(sizeof(float) * img * batch), labels[64], logits[64];
    for (size_t i = 0; i < img * batch; i++)
        x[i] = cxr_uniform(7, i); /* gray, [0, 1] */
    for (int i = 0; i < batch; i++)
        labels[i] = (float)(i & 1);

    double t[25];
    cxr_model_forward(m, x); /* warm-up */
    for (int r = 0; r < 25; r++) {
        double t0 = now();
        cxr_model_forward(m, x + (r % 8) * img);
        t[r] = (now() - t0) * 1e3;
    }
    qsort(t, 25, sizeof t[0], cmp_double);
    printf("C %s single_ms %.3f\n", arch, t[12]);

    double t0 = now();
    int reps = 2;
    for (int r = 0; r < reps; r++)
        cxr_model_forward_batch(m, x, 32, logits);
    printf("C %s batch32_img_s %.2f\n", arch, reps * 32 / (now() - t0));
    printf("C %s workspace_mib %.2f\n", arch, cxr_model_workspace_bytes(m) / 1048576.0);

    if (do_train) {
        cxr_adam_config adam = {1e-4f, 0.9f, 0.999f, 1e-8f};
        printf("C %s training memory at batch %d: %.0f MiB (cxr_trainer_bytes)\n", arch, batch,
               cxr_trainer_bytes(m, batch) / 1048576.0);
        cxr_trainer *tr = cxr_trainer_create(m, batch, &adam);
        cxr_trainer_forward_backward(tr, x, labels, batch, 1, NULL); /* warm-up */
        cxr_trainer_apply_adam(tr);
        t0 = now();
        int steps = 2;
        for (int s = 0; s < steps; s++) {
            cxr_trainer_forward_backward(tr, x, labels, batch, (uint64_t)s, NULL);
            cxr_trainer_apply_adam(tr);
        }
        printf("C %s train_img_s %.2f\n", arch, steps * batch / (now() - t0));
        cxr_trainer_free(tr);
    }
    free(x);
    cxr_model_free(m);
}

/* GFLOP/s of the conv layers of alexnet_attn2 on one image, and of square sgemm. */
static void
bench_gflops(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("alexnet_attn2", 1, 299, 1, err);
    double flops = 0;
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        if (nd->op != CXR_OP_CONV)
            continue;
        /* conv1 runs folded over the gray channel */
        int cin = nd->folded ? 1 : m->graph->nodes[nd->in[0]].c;
        flops += 2.0 * nd->cout * cin * nd->k * nd->k * nd->h * nd->w;
    }
    float *x = malloc(sizeof(float) * 299 * 299);
    for (int i = 0; i < 299 * 299; i++)
        x[i] = cxr_uniform(3, i); /* gray, [0, 1] */
    cxr_model_forward(m, x);
    double best = 1e9;
    for (int r = 0; r < 15; r++) {
        double t0 = now();
        cxr_model_forward(m, x);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    printf("C conv_gflops %.1f (whole forward, conv FLOPs only: %.2f GFLOP)\n", flops / best / 1e9,
           flops / 1e9);
    for (int n = 512; n <= 2048; n *= 2) {
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
              *c = malloc(sizeof(float) * n * n);
        for (int i = 0; i < n * n; i++)
            a[i] = b[i] = cxr_uniform(5, i);
        cxr_sgemm(0, 0, n, n, n, 1, a, n, b, n, 0, c, n);
        double t0 = now();
        int reps = n <= 512 ? 20 : n <= 1024 ? 5 : 2;
        for (int r = 0; r < reps; r++)
            cxr_sgemm(0, 0, n, n, n, 1, a, n, b, n, 0, c, n);
        printf("C sgemm_%d_gflops %.1f\n", n, 2.0 * n * n * n * reps / (now() - t0) / 1e9);
        free(a);
        free(b);
        free(c);
    }
    free(x);
    cxr_model_free(m);
}

int
main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    cxr_blas_set_threads(threads);
    printf("C kernels %s\n", cxr_blas_describe());
    int train = getenv("BENCH_NO_TRAIN") == NULL;
    if (argc > 2)
        for (int i = 2; i < argc; i++)
            bench_network(argv[i], train);
    else {
        const char *nets[] = {"alexnet", "alexnet_attn1", "alexnet_attn2", "alexnet_attn3",
                              "resnet50"};
        for (int i = 0; i < 5; i++)
            bench_network(nets[i], train);
    }
    bench_gflops();
    return 0;
}

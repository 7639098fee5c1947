/* Core library benchmark: per network, single-image inference latency (median ms), batch-32
 * inference images/s and training images/s (batch 64; resnet50 32, at 224), the inference
 * workspace beyond the weights; then conv-layer GFLOP/s against
 * cblas_sgemm on square matrices. Prints one "C ..." line per measurement for bench/run.sh.
 *
 *   bench/bin/bench_core THREADS [networks...]
 *   BENCH_GFLOPS_ONLY=1 CXR_WINO_PATH=avx2 bench/bin/bench_core 1    (the conv rate on one path)
 *   BENCH_SINGLE_ONLY=1 bench/bin/bench_core 1 resnet50    (the 1-image latency alone) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cxr_blas.h"
#include "cxr_graph.h"
#include "cxr_winograd.h"

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
    /* scoring runs on prepared models, as the extension's model cache prepares them */
    cxr_model_prepare_inference(m);
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
    if (getenv("BENCH_SINGLE_ONLY")) {
        free(x);
        cxr_model_free(m);
        return;
    }

    double t0 = now();
    int reps = 2;
    for (int r = 0; r < reps; r++)
        cxr_model_forward_batch(m, x, 32, logits);
    printf("C %s batch32_img_s %.2f\n", arch, reps * 32 / (now() - t0));
    printf("C %s workspace_mib %.2f\n", arch, cxr_model_workspace_bytes(m) / 1048576.0);
    printf("C %s prepared weights %.1f MiB beyond the %.1f MiB of parameters; batch-32 workspace "
           "%.1f MiB\n", arch, cxr_model_prepared_bytes(m) / 1048576.0,
           m->n_params * 4 / 1048576.0, cxr_model_batch_bytes(m, 32) / 1048576.0);

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

/* The FMA peak of one core at the vector width of the Winograd products' path in use (the widest
 * the CPU has, unless CXR_WINO_PATH names another): independent accumulators, no memory
 * traffic. */
static const char *peak_isa = "scalar";

#define PEAK_LOOP(VT)                                                                              \
    VT acc[12], mul, add;                                                                          \
    for (int i = 0; i < 12; i++)                                                                   \
        acc[i] = (VT){0} + 0.001f * i;                                                             \
    mul = (VT){0} + 0.999999f;                                                                     \
    add = (VT){0} + 0.000001f;                                                                     \
    double t0 = now();                                                                             \
    for (long it = 0; it < iters; it++)                                                            \
        for (int i = 0; i < 12; i++)                                                               \
            acc[i] = acc[i] * mul + add;                                                           \
    double dt = now() - t0;                                                                        \
    float sink = 0;                                                                                \
    for (int i = 0; i < 12; i++)                                                                   \
        sink += acc[i][0];                                                                         \
    return sink == 12345.0f ? 0 : 2.0 * 12 * sizeof(VT) / 4 * iters / dt / 1e9;

typedef float pv16 __attribute__((vector_size(64)));
typedef float pv8 __attribute__((vector_size(32)));
__attribute__((target("avx512f,fma"), optimize("fp-contract=fast", "unroll-loops"))) static double
peak_avx512(long iters)
{
    PEAK_LOOP(pv16)
}
__attribute__((target("avx2,fma"), optimize("fp-contract=fast", "unroll-loops"))) static double
peak_avx2(long iters)
{
    PEAK_LOOP(pv8)
}

static double
fma_peak(void)
{
    __builtin_cpu_init();
    int narrow = strstr(cxr_winograd_describe(), "products: avx2") != NULL;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double g = 0;
        if (__builtin_cpu_supports("avx512f") && !narrow) {
            g = peak_avx512(20000000);
            peak_isa = "avx512, 16 floats";
        } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            g = peak_avx2(20000000);
            peak_isa = "avx2, 8 floats";
        }
        best = g > best ? g : best;
    }
    return best;
}

/* GFLOP/s of the conv layers of alexnet_attn2 on one image, and of square sgemm. */
static void
bench_gflops(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("alexnet_attn2", 1, 299, 1, err);
    cxr_model_prepare_inference(m);
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
    double peak = fma_peak();
    printf("C conv_gflops %.1f (whole forward, direct-convolution FLOPs only: %.2f GFLOP), "
           "%.0f%% of the FMA peak of one core, %.1f GFLOP/s (%s); %s\n",
           flops / best / 1e9, flops / 1e9, 100 * flops / best / 1e9 / peak, peak, peak_isa,
           cxr_winograd_describe());
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
    if (getenv("BENCH_GFLOPS_ONLY")) {
        bench_gflops();
        return 0;
    }
    if (argc > 2)
        for (int i = 2; i < argc; i++)
            bench_network(argv[i], train);
    else {
        const char *nets[] = {"alexnet", "alexnet_attn1", "alexnet_attn2", "alexnet_attn3",
                              "resnet50"};
        for (int i = 0; i < 5; i++)
            bench_network(nets[i], train);
    }
    if (!getenv("BENCH_SINGLE_ONLY"))
        bench_gflops();
    return 0;
}

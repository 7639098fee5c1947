#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cxr_blas.h"
#include "cxr_fpenv.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CBLAS constants, declared here so the core needs no cblas.h at build time. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);

static sgemm_fn blas_sgemm;
static void (*blas_set_threads)(int);
static char *(*blas_corename)(void);
static char *(*blas_config)(void);
static int blas_threads = 1; /* the core's thread count (cxr_blas_set_threads) */
static int blas_applied = 1; /* OpenBLAS's own, which can lag behind: cxr_blas_single_begin */
static int blas_single;      /* inside cxr_blas_single_begin .. _end */
static char blas_description[256] = "not initialised";
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_is_builtin = 1;

/* Portable fallback, used only when no working optimised BLAS is found. */
static void
builtin_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        float *crow = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++)
            crow[j] = beta == 0.0f ? 0.0f : beta * crow[j];
        for (int p = 0; p < k; p++) {
            float av = alpha * (trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p]);
            if (av == 0.0f)
                continue;
            if (!trans_b) {
                const float *brow = b + (size_t)p * ldb;
                for (int j = 0; j < n; j++)
                    crow[j] += av * brow[j];
            } else {
                for (int j = 0; j < n; j++)
                    crow[j] += av * b[(size_t)j * ldb + p];
            }
        }
    }
}

/* The core type OpenBLAS should use on this CPU, or NULL to leave its own detection. */
static const char *
preferred_coretype(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

/* Compares every transpose combination the core uses against a double-precision product. */
static int
sgemm_self_test(sgemm_fn fn)
{
    enum { M = 37, N = 45, K = 131 };
    static float a[M * K], b[K * N], c[M * N];
    int ok = 1;
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 104729 % 197) - 98) / 98.0f;
    for (int combo = 0; combo < 3 && ok; combo++) {
        int ta = combo == 2, tb = combo == 1;
        /* a is read as M x K (NoTrans) or as its stored K x M transpose (Trans). */
        int lda = ta ? M : K, ldb = tb ? K : N;
        for (int i = 0; i < M * N; i++)
            c[i] = 1.0f;
        fn(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS,
           M, N, K, 1.0f, a, lda, b, ldb, 0.5f, c, N);
        for (int i = 0; i < M && ok; i++)
            for (int j = 0; j < N && ok; j++) {
                double s = 0.5, mag = 0.5;
                for (int p = 0; p < K; p++) {
                    double av = ta ? a[p * lda + i] : a[i * lda + p];
                    double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                    s += av * bv;
                    mag += fabs(av * bv);
                }
                if (!(fabs(c[i * N + j] - s) <= 1e-5 * mag))
                    ok = 0;
            }
    }
    return ok;
}

static void
blas_load(void)
{
    static const char *candidates[] = {"libopenblas.so.0", "libopenblas.so", NULL};
    const char *user_choice = getenv("OPENBLAS_CORETYPE");
    if (user_choice && !*user_choice)
        user_choice = NULL;
    const char *chosen = NULL;
    void *handle = NULL;

    /* Respect a core type the administrator set; otherwise choose one from the CPU's vector
     * units. The variable is only read while OpenBLAS initialises, so it is removed again. */
    if (user_choice == NULL) {
        chosen = preferred_coretype();
        if (chosen)
            setenv("OPENBLAS_CORETYPE", chosen, 1);
    }
    /* OpenBLAS starts one thread per core when it loads; a database backend wants one. The
     * pool grows again when more threads are asked for (training). */
    int set_threads_env = getenv("OPENBLAS_NUM_THREADS") == NULL;
    if (set_threads_env)
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
    /* threads OpenBLAS starts now inherit the core's floating-point mode (cxr_fpenv.h) */
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    for (int i = 0; candidates[i] && !handle; i++)
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    cxr_fp_restore(fp);
    if (chosen)
        unsetenv("OPENBLAS_CORETYPE");
    if (set_threads_env)
        unsetenv("OPENBLAS_NUM_THREADS");

    if (handle) {
        sgemm_fn fn = (sgemm_fn)dlsym(handle, "cblas_sgemm");
        blas_set_threads = (void (*)(int))dlsym(handle, "openblas_set_num_threads");
        blas_corename = (char *(*)(void))dlsym(handle, "openblas_get_corename");
        blas_config = (char *(*)(void))dlsym(handle, "openblas_get_config");
        if (fn && sgemm_self_test(fn)) {
            blas_sgemm = fn;
            blas_is_builtin = 0;
            if (blas_set_threads)
                blas_set_threads(blas_threads);
            blas_applied = blas_threads;
            snprintf(blas_description, sizeof blas_description,
                     "%s; core %s (%s); sgemm self-test passed",
                     blas_config ? blas_config() : "OpenBLAS",
                     blas_corename ? blas_corename() : "?",
                     user_choice ? "set by OPENBLAS_CORETYPE"
                     : chosen    ? "chosen by cxr_attn from CPU features"
                                 : "detected by OpenBLAS");
            return;
        }
        snprintf(blas_description, sizeof blas_description,
                 "portable built-in sgemm (OpenBLAS %s failed its self-test)",
                 blas_corename ? blas_corename() : "?");
    } else {
        snprintf(blas_description, sizeof blas_description,
                 "portable built-in sgemm (libopenblas.so.0 not found)");
    }
    blas_sgemm = NULL;
    blas_is_builtin = 1;
}

int
cxr_blas_init(void)
{
    pthread_once(&blas_once, blas_load);
    return blas_is_builtin;
}

/* OpenBLAS's count to n. Its new threads inherit the core's floating-point mode
 * (cxr_fpenv.h). */
static void
apply_threads(int n)
{
    if (n == blas_applied)
        return;
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    if (blas_set_threads)
        blas_set_threads(n);
    cxr_fp_restore(fp);
    blas_applied = n;
}

void
cxr_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cxr_blas_init();
    if (!blas_single && blas_applied != blas_threads)
        apply_threads(blas_threads);
    if (blas_sgemm)
        blas_sgemm(CBLAS_ROW_MAJOR, trans_a ? CBLAS_TRANS : CBLAS_NO_TRANS,
                   trans_b ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b, ldb, beta,
                   c, ldc);
    else
        builtin_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void
cxr_blas_set_threads(int n)
{
    if (n < 1)
        n = 1;
    cxr_blas_init();
    blas_threads = n;
    apply_threads(n);
}

void
cxr_blas_single_begin(void)
{
    cxr_blas_init();
    blas_single++;
    apply_threads(1);
}

void
cxr_blas_single_end(void)
{
    blas_single--;
}

int
cxr_blas_get_threads(void)
{
    return blas_threads;
}

const char *
cxr_blas_describe(void)
{
    cxr_blas_init();
    return blas_description;
}

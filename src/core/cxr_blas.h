/* BLAS access for the numerical core.
 *
 * OpenBLAS is opened at run time rather than linked, so that the core type can be chosen
 * before OpenBLAS initialises: Debian's OpenBLAS 0.3.21 does not recognise recent CPUs and
 * would otherwise run its oldest kernels. */
#ifndef CXR_BLAS_H
#define CXR_BLAS_H

/* Row-major GEMM: C = alpha * op(A) * op(B) + beta * C, op(A) is m x k, op(B) is k x n. */
void cxr_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Loads and self-checks the BLAS once; safe to call repeatedly. Returns 0 when an optimised
 * BLAS passed its self-test, 1 when the portable built-in GEMM is in use. */
int cxr_blas_init(void);

/* Number of threads BLAS may use for one call (1 inside a database backend). */
void cxr_blas_set_threads(int n);
int cxr_blas_get_threads(void);
/* Between these, OpenBLAS runs every product on the thread that calls it, and the core's own
 * threads may call it at once (cxr_conv_forward shares a layer out that way). The count stays
 * cxr_blas_get_threads(); OpenBLAS gets it back at the next product outside, not at _end, so
 * that layer after layer shared out costs no switching of OpenBLAS's pool. */
void cxr_blas_single_begin(void);
void cxr_blas_single_end(void);

/* Human-readable description of the kernels in use, e.g.
 * "OpenBLAS 0.3.21 ... core SkylakeX (chosen by cxr_attn: avx512), self-test passed". */
const char *cxr_blas_describe(void);

#endif

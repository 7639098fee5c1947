/* Denormal floats. A trained network fine-tuned on data it already fits has tiny gradients
 * whose products fall below FLT_MIN; x86 computes on such denormals about a hundred times more
 * slowly (fine-tuning the shipped model ran at 1.5 images/s instead of 20). The core flushes
 * them to zero while it computes (FTZ and DAZ), as oneDNN does, and restores the caller's mode
 * on return, so PostgreSQL's own arithmetic keeps IEEE denormals. BLAS worker threads inherit
 * the mode when the core creates them (cxr_blas_set_threads). Elsewhere: no-ops. */
#ifndef CXR_FPENV_H
#define CXR_FPENV_H

typedef struct {
    unsigned int saved;
} cxr_fp_mode;

/* Flushes denormals in this thread; returns what to restore. */
cxr_fp_mode cxr_fp_flush_denormals(void);
void cxr_fp_restore(cxr_fp_mode mode);
/* This thread's mode, to hand to another thread (the thread pool: cxr_threads.h)... */
unsigned cxr_fp_current(void);
/* ... which sets it for a job; returns what to restore. */
cxr_fp_mode cxr_fp_set(unsigned mode);

#endif

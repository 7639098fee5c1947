/* Cancellation of long computations. The core cannot call PostgreSQL, so the glue installs a
 * hook that reports a pending cancel; long loops poll it (from the calling thread only, never
 * from BLAS threads) about once per image per layer and return early when it says stop. */
#ifndef CXR_INTERRUPT_H
#define CXR_INTERRUPT_H

typedef int (*cxr_interrupt_fn)(void);

/* Installs the hook (NULL: never interrupted). Does not clear a request already seen. */
void cxr_set_interrupt_hook(cxr_interrupt_fn fn);
/* Calls the hook; once it has returned nonzero, returns 1 without calling it again (sticky)
 * until cxr_interrupt_clear. */
int cxr_interrupt_poll(void);
/* The sticky flag, without calling the hook. */
int cxr_interrupt_requested(void);
void cxr_interrupt_clear(void);

#endif

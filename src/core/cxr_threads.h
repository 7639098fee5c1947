/* Threads the core starts (forest fitting, shared-out convolutions, training's image lanes). */
#ifndef CXR_THREADS_H
#define CXR_THREADS_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread: the host's signals (PostgreSQL's
 * cancel and timeout) are then delivered to the thread that started it, never to a worker.
 * Returns pthread_create's result. */
int cxr_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);

/* Runs fn(ctx, part, on_caller) for every part in [0, parts) on up to `threads` threads, this one
 * included: thread t runs parts t, t + threads, ... in that order. on_caller is 1 on the calling
 * thread, the only one that may poll the interrupt hook (workers read cxr_interrupt_requested).
 * A part whose thread cannot start runs on this thread afterwards. Which part does what is
 * fixed by `parts` alone, so results do not depend on `threads`. The other threads come from a
 * pool that stays from call to call, and run each call's parts in the caller's floating-point
 * mode of that call. A call made while the pool is busy (from inside a part, or from another
 * thread at the same time) starts threads of its own. */
void cxr_parallel_parts(int parts, int threads, void (*fn)(void *ctx, int part, int on_caller),
                        void *ctx);

/* [*lo, *hi): part `part` of `parts` equal shares of n items */
void cxr_share(int n, int part, int parts, int *lo, int *hi);

#endif

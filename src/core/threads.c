#include "cxr_threads.h"

#include <signal.h>

int
cxr_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits this mask */
    int rc = pthread_create(tid, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void
cxr_share(int n, int part, int parts, int *lo, int *hi)
{
    *lo = (int)((long)n * part / parts);
    *hi = (int)((long)n * (part + 1) / parts);
}

#define MAX_THREADS 64

typedef struct {
    void (*fn)(void *ctx, int part, int on_caller);
    void *ctx;
    int first, parts, stride;
} strand;

static void
run_strand(const strand *s, int on_caller)
{
    for (int p = s->first; p < s->parts; p += s->stride)
        s->fn(s->ctx, p, on_caller);
}

static void *
strand_main(void *arg)
{
    run_strand(arg, 0);
    return NULL;
}

void
cxr_parallel_parts(int parts, int threads, void (*fn)(void *ctx, int part, int on_caller),
                   void *ctx)
{
    if (threads > parts)
        threads = parts;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads < 1)
        threads = 1;
    pthread_t tid[MAX_THREADS];
    strand st[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++)
        st[t] = (strand){fn, ctx, t, parts, threads};
    for (int t = 1; t < threads; t++)
        started[t] = cxr_thread_start(&tid[t], strand_main, &st[t]) == 0;
    run_strand(&st[0], 1);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_strand(&st[t], 1);
    }
}

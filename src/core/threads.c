#include "cxr_threads.h"
#include "cxr_fpenv.h"

#include <signal.h>
#include <stdatomic.h>
#include <time.h>

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

/* Threads started and joined for one call: the path when the pool is in use by another call
 * (a nested or concurrent one) or cannot grow. */
static void
parts_on_new_threads(const strand *st, int threads)
{
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 1; t < threads; t++)
        started[t] = cxr_thread_start(&tid[t], strand_main, (void *)&st[t]) == 0;
    run_strand(&st[0], 1);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_strand(&st[t], 1);
    }
}

/* ---- the pool ----
 * A Winograd layer runs three parallel phases, and resnet50 has about a dozen such layers per
 * image: a thread started and joined per phase cost tens of microseconds. The pool's workers
 * stay; after a job each spins briefly for the next (the phases of one layer follow each other
 * at once), then sleeps on a condition variable, so that it leaves the core to other threads
 * and processes between layers. Workers never call the host. */

#define SPIN_NS 50000L

static struct {
    pthread_mutex_t busy; /* held by the one call using the pool */
    pthread_mutex_t lock; /* guards sleeping workers' wake-ups and the caller's */
    pthread_cond_t wake;  /* a job is posted */
    pthread_cond_t done;  /* the last worker finished it */
    int workers; /* started, never stopped */
    unsigned born_gen[MAX_THREADS]; /* gen when each worker was started: its last job seen */
    strand job[MAX_THREADS];
    int job_threads;
    unsigned job_fp;   /* the caller's MXCSR, so every part computes in the caller's mode */
    atomic_uint gen;   /* bumped once per job, after the job is written */
    atomic_int undone; /* workers that have not finished the current job */
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
            .lock = PTHREAD_MUTEX_INITIALIZER,
            .wake = PTHREAD_COND_INITIALIZER,
            .done = PTHREAD_COND_INITIALIZER};

static _Thread_local int on_pool_worker;

static long
ns_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until pool.gen differs from seen: spins for SPIN_NS, then sleeps. */
static unsigned
await_job(unsigned seen)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1;; i++) {
        unsigned g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g != seen)
            return g;
        cpu_relax();
        if ((i & 63) == 0 && ns_since(&t0) > SPIN_NS)
            break;
    }
    pthread_mutex_lock(&pool.lock);
    unsigned g;
    while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool.wake, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    return g;
}

static void *
worker_main(void *arg)
{
    int k = (int)(long)arg;
    on_pool_worker = 1;
    unsigned seen = pool.born_gen[k]; /* not gen now: the first job may already be posted */
    for (;;) {
        seen = await_job(seen);
        if (k < pool.job_threads) {
            cxr_fp_mode fp = cxr_fp_set(pool.job_fp);
            run_strand(&pool.job[k], 0);
            cxr_fp_restore(fp);
        }
        if (atomic_fetch_sub_explicit(&pool.undone, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* A child of fork() has none of its parent's threads: it starts a pool of its own. */
static void
pool_forget_after_fork(void)
{
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.workers = 0;
    on_pool_worker = 0;
}

static void
register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, pool_forget_after_fork);
}

/* Starts workers 1 .. threads - 1 that do not exist yet; how many threads the pool then has,
 * the caller included. Called with pool.busy held, so no job is in flight. */
static int
grow_pool(int threads)
{
    static pthread_once_t fork_handler = PTHREAD_ONCE_INIT;
    pthread_once(&fork_handler, register_fork_handler);
    while (pool.workers + 1 < threads) {
        pthread_t tid;
        pool.born_gen[pool.workers + 1] = atomic_load_explicit(&pool.gen, memory_order_relaxed);
        if (cxr_thread_start(&tid, worker_main, (void *)(long)(pool.workers + 1)) != 0)
            break;
        pthread_detach(tid);
        pool.workers++;
    }
    return pool.workers + 1;
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
    strand st[MAX_THREADS];
    for (int t = 0; t < threads; t++)
        st[t] = (strand){fn, ctx, t, parts, threads};
    if (threads == 1) {
        run_strand(&st[0], 1);
        return;
    }
    if (on_pool_worker || pthread_mutex_trylock(&pool.busy) != 0) {
        parts_on_new_threads(st, threads);
        return;
    }
    int have = grow_pool(threads);
    int on_pool = have < threads ? have : threads;
    for (int t = 0; t < on_pool; t++)
        pool.job[t] = st[t];
    pool.job_threads = on_pool;
    pool.job_fp = cxr_fp_current();
    atomic_store_explicit(&pool.undone, pool.workers, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_strand(&st[0], 1);
    for (int t = on_pool; t < threads; t++) /* strands the pool could not take */
        run_strand(&st[t], 1);
    /* the workers' shares are as long as this thread's: spin a little, then sleep */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; atomic_load_explicit(&pool.undone, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 0 && ns_since(&t0) > SPIN_NS) {
            pthread_mutex_lock(&pool.lock);
            while (atomic_load_explicit(&pool.undone, memory_order_acquire) > 0)
                pthread_cond_wait(&pool.done, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
            break;
        }
    }
    pthread_mutex_unlock(&pool.busy);
}

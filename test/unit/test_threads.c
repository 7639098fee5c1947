/* Threads the core starts block every signal (a PostgreSQL cancel must reach the backend's own
 * thread), and starting one leaves the caller's mask as it was. cxr_parallel_parts runs every
 * part once, on the caller or on threads that block signals too, and only the caller's parts
 * are told they may poll the interrupt hook. Its pool's threads serve call after call, compute
 * in the caller's floating-point mode of each call, and a call made from inside a part, or from
 * two threads at once, still runs every part once. */
#include <float.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cxr_fpenv.h"
#include "cxr_threads.h"
#include "harness.h"

static volatile float tiny = 1e-20f; /* volatile: multiplied at run time, in the thread's mode */

typedef struct {
    float product[4];
    pthread_t thread[4];
} fp_record;

static void
fp_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    fp_record *r = ctx;
    r->product[part] = tiny * tiny; /* 1e-40: a denormal, or 0 when flushed */
    r->thread[part] = pthread_self();
}

/* each part of the outer call makes an inner call of 3 parts, which count into runs[part] */
typedef struct {
    atomic_int runs[3][3];
} nested_record;

typedef struct {
    nested_record *r;
    int outer;
} inner_ctx;

static void
inner_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    inner_ctx *c = ctx;
    atomic_fetch_add(&c->r->runs[c->outer][part], 1);
}

static void
outer_part(void *ctx, int part, int on_caller)
{
    (void)on_caller;
    inner_ctx c = {ctx, part};
    cxr_parallel_parts(3, 3, inner_part, &c);
}

static void *
nested_caller(void *arg)
{
    for (int i = 0; i < 200; i++)
        cxr_parallel_parts(3, 3, outer_part, arg);
    return NULL;
}

static void *
report_mask(void *arg)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    int *blocked = arg;
    *blocked = sigismember(&cur, SIGINT) && sigismember(&cur, SIGTERM) &&
               sigismember(&cur, SIGALRM) && sigismember(&cur, SIGUSR1);
    return NULL;
}

enum { PARTS = 7 };

typedef struct {
    atomic_int runs[PARTS];
    int on_caller[PARTS], blocked[PARTS];
    pthread_t caller, thread[PARTS];
} record;

static void
note_part(void *ctx, int part, int on_caller)
{
    record *r = ctx;
    atomic_fetch_add(&r->runs[part], 1);
    r->on_caller[part] = on_caller;
    r->thread[part] = pthread_self();
    report_mask(&r->blocked[part]);
}

int
main(void)
{
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    int blocked = 0;
    pthread_t tid;
    CHECK(cxr_thread_start(&tid, report_mask, &blocked) == 0, "thread starts");
    pthread_join(tid, NULL);
    CHECK(blocked, "the worker blocks SIGINT, SIGTERM, SIGALRM and SIGUSR1");
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    CHECK(!sigismember(&after, SIGINT) && sigismember(&before, SIGINT) == sigismember(&after, SIGINT),
          "the caller's mask is unchanged");
    for (int threads = 1; threads <= 9; threads += 2) {
        record r;
        memset(&r, 0, sizeof r);
        r.caller = pthread_self();
        cxr_parallel_parts(PARTS, threads, note_part, &r);
        int used = threads < PARTS ? threads : PARTS;
        for (int p = 0; p < PARTS; p++) {
            int here = pthread_equal(r.thread[p], r.caller) != 0;
            CHECK(atomic_load(&r.runs[p]) == 1, "%d threads: part %d runs once", threads, p);
            CHECK(r.on_caller[p] == here, "%d threads: part %d knows whether it is on the caller",
                  threads, p);
            /* thread t takes parts t, t + used, ...: part p is the caller's when p % used == 0 */
            CHECK(here == (p % used == 0), "%d threads: part %d on the expected thread", threads, p);
            CHECK(here || r.blocked[p], "%d threads: part %d's thread blocks signals", threads, p);
            for (int q = 0; q < p; q++)
                if (p % used == q % used)
                    CHECK(pthread_equal(r.thread[p], r.thread[q]), "%d threads: parts %d and %d share a thread", threads, q, p);
        }
    }
    /* the pool: the same threads call after call, in each call's floating-point mode */
    fp_record f1, f2, f3;
    cxr_parallel_parts(4, 4, fp_part, &f1);
    cxr_fp_mode fp = cxr_fp_flush_denormals();
    cxr_parallel_parts(4, 4, fp_part, &f2);
    cxr_fp_restore(fp);
    cxr_parallel_parts(4, 4, fp_part, &f3);
    for (int p = 1; p < 4; p++) {
        CHECK(pthread_equal(f1.thread[p], f2.thread[p]) && pthread_equal(f1.thread[p], f3.thread[p]),
              "part %d runs on the same pool thread in every call", p);
        CHECK(f1.product[p] > 0.0f && f1.product[p] < FLT_MIN, "part %d: IEEE denormals", p);
#if defined(__x86_64__) || defined(__SSE2__)
        CHECK(f2.product[p] == 0.0f, "part %d: flushed when the caller flushes", p);
#endif
        CHECK(f3.product[p] > 0.0f, "part %d: denormals again when the caller's are back", p);
    }
    /* calls from inside parts, from two threads at once: every inner part runs once a call */
    nested_record nr[2];
    memset(nr, 0, sizeof nr);
    pthread_t other;
    CHECK(pthread_create(&other, NULL, nested_caller, &nr[1]) == 0, "second caller starts");
    nested_caller(&nr[0]);
    pthread_join(other, NULL);
    for (int c = 0; c < 2; c++)
        for (int o = 0; o < 3; o++)
            for (int i = 0; i < 3; i++)
                CHECK(atomic_load(&nr[c].runs[o][i]) == 200,
                      "caller %d, outer part %d, inner part %d: %d runs of 200", c, o, i,
                      atomic_load(&nr[c].runs[o][i]));
    /* a child of fork() has no pool threads: it starts its own and finishes its call */
    pid_t child = fork();
    if (child == 0) {
        fp_record fc;
        alarm(10); /* a child waiting on its parent's workers would hang: fail it instead */
        cxr_parallel_parts(4, 4, fp_part, &fc);
        _exit(fc.product[3] > 0.0f ? 0 : 1);
    }
    int status = -1;
    CHECK(child > 0 && waitpid(child, &status, 0) == child, "child forked and waited for");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "after fork the child's call runs every part");
    int lo, hi, covered = 0;
    for (int p = 0; p < 4; p++) {
        cxr_share(10, p, 4, &lo, &hi);
        CHECK(lo == covered && hi - lo >= 2 && hi - lo <= 3, "share %d of 10 in 4: [%d, %d)", p, lo, hi);
        covered = hi;
    }
    CHECK(covered == 10, "the shares cover every item");
    return harness_finish("test_threads");
}

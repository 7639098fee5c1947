/* Threads the core starts block every signal (a PostgreSQL cancel must reach the backend's own
 * thread), and starting one leaves the caller's mask as it was. cxr_parallel_parts runs every
 * part once, on the caller or on threads that block signals too, and only the caller's parts
 * are told they may poll the interrupt hook. */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "cxr_threads.h"
#include "harness.h"

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
    int lo, hi, covered = 0;
    for (int p = 0; p < 4; p++) {
        cxr_share(10, p, 4, &lo, &hi);
        CHECK(lo == covered && hi - lo >= 2 && hi - lo <= 3, "share %d of 10 in 4: [%d, %d)", p, lo, hi);
        covered = hi;
    }
    CHECK(covered == 10, "the shares cover every item");
    return harness_finish("test_threads");
}

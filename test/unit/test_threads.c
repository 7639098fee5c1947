/* Threads the core starts block every signal (a PostgreSQL cancel must reach the backend's own
 * thread), and starting one leaves the caller's mask as it was. */
#include <signal.h>

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
    return harness_finish("test_threads");
}

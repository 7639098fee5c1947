/* Threads the core starts (forest fitting, Winograd layers). */
#ifndef CXR_THREADS_H
#define CXR_THREADS_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread: the host's signals (PostgreSQL's
 * cancel and timeout) are then delivered to the thread that started it, never to a worker.
 * Returns pthread_create's result. */
int cxr_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg);

#endif

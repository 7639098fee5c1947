/* A counting interrupt hook for the unit tests: arm(k) makes the core's (k+1)-th poll say stop
 * (k < 0: never); calls counts the polls. */
#ifndef CXR_TEST_INTERRUPT_HOOK_H
#define CXR_TEST_INTERRUPT_HOOK_H

#include "cxr_interrupt.h"

static long calls, stop_after = -1;

static int
hook(void)
{
    calls++;
    return stop_after >= 0 && calls > stop_after;
}

static void
arm(long k)
{
    cxr_interrupt_clear();
    calls = 0;
    stop_after = k;
    cxr_set_interrupt_hook(hook);
}

static void
disarm(void)
{
    cxr_set_interrupt_hook(NULL);
    cxr_interrupt_clear();
}

#endif

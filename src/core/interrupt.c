#include <stdatomic.h>

#include "cxr_interrupt.h"

/* Process-wide: the core is driven from one thread (a backend, or a test), which alone calls
 * the hook; worker threads (a forest's fit) only read the flag. */
static cxr_interrupt_fn hook;
static atomic_int requested;

void
cxr_set_interrupt_hook(cxr_interrupt_fn fn)
{
    hook = fn;
}

int
cxr_interrupt_poll(void)
{
    /* sticky: every loop up the call chain sees the same answer, and the hook (which may
     * have side effects in the glue) is not asked again once it said stop */
    if (!requested && hook && hook())
        requested = 1;
    return requested;
}

int
cxr_interrupt_requested(void)
{
    return requested;
}

void
cxr_interrupt_clear(void)
{
    requested = 0;
}

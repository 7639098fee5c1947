/* Cancel and statement_timeout during long core work. The core cannot call PostgreSQL, so it
 * polls a hook (per image and layer, per image row); the hook only reads PostgreSQL's pending
 * flags, and the glue raises the ERROR once the core has returned. */
#include "postgres.h"

#include "cxr_interrupt.h"
#include "cxr_pg.h"
#include "miscadmin.h"

/* Only what CHECK_FOR_INTERRUPTS would turn into an ERROR here stops the core: other pending
 * interrupts (a barrier, a config reload) are served at the next CHECK_FOR_INTERRUPTS. */
static int
cancel_pending(void)
{
    return (QueryCancelPending || ProcDiePending) && INTERRUPTS_CAN_BE_PROCESSED();
}

void
cxr_pg_interrupts_init(void)
{
    cxr_set_interrupt_hook(cancel_pending);
}

void
cxr_pg_check_core_interrupt(void)
{
    if (!cxr_interrupt_requested())
        return;
    cxr_interrupt_clear();
    CHECK_FOR_INTERRUPTS();
    /* the core stopped early, so its result is unusable even if the cancel was consumed */
    ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                    errmsg("canceling statement due to user request")));
}

/* The extension's own SPI queries (registry lookups, storing a trained model) run with
 * search_path pinned to pg_catalog, pg_temp: an operator or function the caller created and put
 * first on search_path can never be picked up by them. The caller's own queries (training and
 * evaluation queries) keep the caller's search_path. */
#include "postgres.h"

#include "cxr_pg.h"
#include "executor/spi.h"
#include "utils/datum.h"
#include "utils/guc.h"

int
cxr_pg_pin_search_path(void)
{
    int level = NewGUCNestLevel();
    /* GUC_ACTION_SAVE: undone at the nest level's end, also allowed in parallel workers */
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    return level;
}

void
cxr_pg_unpin_search_path(int nestlevel)
{
    AtEOXact_GUC(true, nestlevel);
}

Datum
cxr_pg_query_one(const char *sql, Oid argtype, Datum arg, bool *isnull, bool byval, int typlen)
{
    MemoryContext caller = CurrentMemoryContext;
    Datum result = (Datum)0;
    *isnull = true;
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    int level = cxr_pg_pin_search_path();
    int rc = SPI_execute_with_args(sql, 1, &argtype, &arg, NULL, true, 1);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "registry query failed: %s", SPI_result_code_string(rc));
    if (SPI_processed > 0) {
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
        if (!*isnull) {
            MemoryContext spi = MemoryContextSwitchTo(caller);
            result = datumCopy(d, byval, typlen);
            MemoryContextSwitchTo(spi);
        }
    }
    cxr_pg_unpin_search_path(level);
    SPI_finish();
    return result;
}

/* covid_predict_batch: scores the (key, image) rows of a query in batches, so the core runs
 * many images through each layer at once (a network's fully connected layers then read their
 * weights once per batch). Each probability is, bit for bit, covid_predict's for the same image
 * and model: the core's batch path sums every output in the same order whatever the batch
 * (src/core/dot_kernels.c). Rows come back in the query's order; a NULL image scores NULL, as
 * covid_predict (STRICT) does. */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "cxr_interrupt.h"
#include "cxr_pg.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#define MAX_BATCH 256
#define PROGRESS_SECONDS 10.0

typedef struct {
    int n;           /* rows in this batch */
    int scored;      /* rows with an image */
    char **keys;     /* the key column as text (NULL for NULL) */
    int *slot;       /* row -> image slot, -1 for a NULL image */
    float *images;   /* scored x side^2 */
    float *logits;
} batch_rows;

static void
emit(Tuplestorestate *ts, TupleDesc td, const batch_rows *b)
{
    for (int i = 0; i < b->n; i++) {
        Datum v[2];
        bool nulls[2] = {b->keys[i] == NULL, b->slot[i] < 0};
        v[0] = b->keys[i] ? CStringGetTextDatum(b->keys[i]) : (Datum)0;
        v[1] = b->slot[i] < 0 ? (Datum)0
                              : Float8GetDatum((double)cxr_sigmoid(b->logits[b->slot[i]]));
        tuplestore_putvalues(ts, td, v, nulls);
    }
}

static void
score_batch(cxr_model *m, batch_rows *b)
{
    if (b->scored == 0)
        return;
    cxr_pg_use_threads(cxr_scoring_threads);
    int rc = cxr_model_forward_batch(m, b->images, b->scored, b->logits);
    if (rc == -2)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("out of memory allocating the batch workspace")));
    cxr_pg_check_core_interrupt();
}

static Datum
predict_batch(FunctionCallInfo fcinfo, bool by_id)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    char *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
    int batch = PG_GETARG_INT32(2);
    if (batch < 1 || batch > MAX_BATCH)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("batch_size must be between 1 and %d, not %d", MAX_BATCH, batch)));
    InitMaterializedSRF(fcinfo, 0);
    MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "covid_predict_batch",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(ctx);
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 1, by_id);
    /* the query below is user code: it may change the registry and flush the cache */
    cxr_pg_model_hold(cm, ctx);
    cxr_model *m = cm->model;
    size_t per_image = sizeof(float) * m->input_size * m->input_size;
    size_t need = (size_t)batch * (per_image + sizeof(float)) + cxr_model_batch_bytes(m, batch);
    if (need > (size_t)cxr_training_memory_mb * 1024 * 1024)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a batch of %d images needs %zu MB, more than "
                               "cxr_attn.training_memory (%d MB)",
                               batch, need >> 20, cxr_training_memory_mb),
                        errhint("Use a smaller batch_size.")));
    batch_rows b = {0};
    b.keys = palloc(sizeof(char *) * batch);
    b.slot = palloc(sizeof(int) * batch);
    b.images = MemoryContextAllocHuge(ctx, per_image * batch);
    b.logits = palloc(sizeof(float) * batch);
    MemoryContext batch_ctx = AllocSetContextCreate(ctx, "covid_predict_batch rows",
                                                    ALLOCSET_DEFAULT_SIZES);
    MemoryContext image_ctx = AllocSetContextCreate(ctx, "covid_predict_batch image",
                                                    ALLOCSET_DEFAULT_SIZES);
    cxr_interrupt_clear();

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    SPIPlanPtr plan = SPI_prepare(query, 0, NULL);
    if (!plan)
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                        errmsg("the scoring query could not be prepared: %s",
                               SPI_result_code_string(SPI_result))));
    if (!SPI_is_cursor_plan(plan))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the scoring query must be a SELECT returning (key, image bytea)")));
    Portal portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
    long rows = 0;
    instr_time start, now;
    INSTR_TIME_SET_CURRENT(start);
    double last_report = 0;
    for (;;) {
        SPI_cursor_fetch(portal, true, batch);
        if (SPI_processed == 0)
            break;
        TupleDesc td = SPI_tuptable->tupdesc;
        if (td->natts != 2 || getBaseType(SPI_gettypeid(td, 2)) != BYTEAOID)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("the scoring query must return two columns (key, image bytea)"),
                            errdetail("It returns %d column(s)%s%s.", td->natts,
                                      td->natts >= 2 ? ", the second of type " : "",
                                      td->natts >= 2 ? format_type_be(SPI_gettypeid(td, 2)) : "")));
        MemoryContextReset(batch_ctx);
        b.n = b.scored = 0;
        for (uint64 i = 0; i < SPI_processed; i++) {
            bool inull;
            CHECK_FOR_INTERRUPTS();
            HeapTuple tup = SPI_tuptable->vals[i];
            MemoryContext o = MemoryContextSwitchTo(batch_ctx);
            b.keys[b.n] = SPI_getvalue(tup, td, 1); /* NULL for NULL */
            MemoryContextSwitchTo(o);
            Datum img = SPI_getbinval(tup, td, 2, &inull);
            b.slot[b.n] = inull ? -1 : b.scored;
            if (!inull) {
                int w, h;
                o = MemoryContextSwitchTo(image_ctx);
                cxr_pg_prepare_input(DatumGetByteaPP(img), m,
                                     b.images + (size_t)b.scored * m->input_size * m->input_size,
                                     &w, &h);
                MemoryContextSwitchTo(o);
                MemoryContextReset(image_ctx);
                b.scored++;
            }
            b.n++;
        }
        SPI_freetuptable(SPI_tuptable);
        score_batch(m, &b);
        MemoryContext o = MemoryContextSwitchTo(batch_ctx); /* the keys' text datums */
        emit(rsinfo->setResult, rsinfo->setDesc, &b);
        MemoryContextSwitchTo(o);
        rows += b.n;
        INSTR_TIME_SET_CURRENT(now);
        INSTR_TIME_SUBTRACT(now, start);
        double seconds = INSTR_TIME_GET_DOUBLE(now);
        if (seconds - last_report >= PROGRESS_SECONDS) {
            last_report = seconds;
            ereport(NOTICE, (errmsg("covid_predict_batch: %ld rows scored, %.1f rows/s", rows,
                                    rows / seconds)));
        }
    }
    SPI_cursor_close(portal);
    SPI_finish();
    MemoryContextSwitchTo(old);
    MemoryContextDelete(ctx);
    return (Datum)0;
}

BY_NAME_AND_BY_ID(cxr_covid_predict_batch, predict_batch)

/* cxr.cxr_metrics(label, probability): cxr_evaluate's figures over rows already scored, as an
 * aggregate. Federated evaluation needs it: the sites score their own images (the scoring is
 * pushed down through postgres_fdw), and only labels and probabilities reach the coordinator,
 * which then computes per-site figures (GROUP BY site) and pooled ones (ROLLUP) in one query. */
#include "postgres.h"

#include <math.h>

#include "cxr_pg.h"
#include "cxr_train.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/memutils.h"

typedef struct {
    long n, cap;
    double *prob;
    float *labels;
} metrics_state;

/* per row held: a probability, a label, and the sort scratch of the final function */
#define METRICS_ROW_BYTES (sizeof(double) + sizeof(float) + sizeof(long))

static void
grow(metrics_state *st, MemoryContext agg)
{
    long cap = st->cap ? st->cap * 2 : 1024;
    size_t budget = (size_t)cxr_training_memory_mb * 1024 * 1024;
    if ((size_t)cap * METRICS_ROW_BYTES > budget)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("cxr_metrics over more than %ld rows would exceed "
                               "cxr_attn.training_memory (%d MB)", st->n, cxr_training_memory_mb),
                        errhint("Evaluate fewer rows per group, or ask a superuser to raise "
                                "cxr_attn.training_memory.")));
    double *prob = MemoryContextAllocHuge(agg, sizeof(double) * cap);
    float *labels = MemoryContextAllocHuge(agg, sizeof(float) * cap);
    if (st->n) {
        memcpy(prob, st->prob, sizeof(double) * st->n);
        memcpy(labels, st->labels, sizeof(float) * st->n);
        pfree(st->prob);
        pfree(st->labels);
    }
    st->prob = prob;
    st->labels = labels;
    st->cap = cap;
}

/* Rows with a NULL label or probability are skipped, as SQL's aggregates skip NULLs. */
PG_FUNCTION_INFO_V1(cxr_metrics_accum);
Datum
cxr_metrics_accum(PG_FUNCTION_ARGS)
{
    MemoryContext agg;
    if (!AggCheckCallContext(fcinfo, &agg))
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cxr_metrics_accum can only be called by the cxr_metrics aggregate")));
    metrics_state *st = PG_ARGISNULL(0) ? NULL : (metrics_state *)PG_GETARG_POINTER(0);
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2)) {
        if (!st)
            PG_RETURN_NULL();
        PG_RETURN_POINTER(st);
    }
    double p = PG_GETARG_FLOAT8(2);
    if (!(p >= 0.0 && p <= 1.0))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("cxr_metrics: a probability must lie in [0, 1], not %g", p)));
    if (!st)
        st = MemoryContextAllocZero(agg, sizeof *st);
    if (st->n == st->cap)
        grow(st, agg);
    st->prob[st->n] = p;
    st->labels[st->n] = PG_GETARG_BOOL(1) ? 1.0f : 0.0f;
    st->n++;
    PG_RETURN_POINTER(st);
}

Datum
cxr_pg_metrics_datum(FunctionCallInfo fcinfo, const cxr_metrics *mt)
{
    TupleDesc tupdesc;
    if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum v[11] = {Int64GetDatum(mt->n), Float8GetDatum(mt->accuracy),
                   Float8GetDatum(mt->sensitivity), Float8GetDatum(mt->specificity),
                   Float8GetDatum(mt->precision), Float8GetDatum(mt->f1), Float8GetDatum(mt->auc),
                   Int64GetDatum(mt->tp), Int64GetDatum(mt->fp), Int64GetDatum(mt->tn),
                   Int64GetDatum(mt->fn)};
    bool nulls[11] = {0};
    for (int i = 1; i < 7; i++) /* a ratio with nothing to divide (no positives, ...) */
        nulls[i] = isnan(DatumGetFloat8(v[i]));
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), v, nulls));
}

PG_FUNCTION_INFO_V1(cxr_metrics_final);
Datum
cxr_metrics_final(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL(); /* no rows: like every aggregate but count */
    metrics_state *st = (metrics_state *)PG_GETARG_POINTER(0);
    long *scratch = palloc_extended(sizeof(long) * st->n, MCXT_ALLOC_HUGE);
    cxr_metrics mt;
    cxr_compute_metrics(st->prob, st->labels, st->n, scratch, &mt);
    pfree(scratch);
    PG_RETURN_DATUM(cxr_pg_metrics_datum(fcinfo, &mt));
}

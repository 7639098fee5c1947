/* cxr.cxr_model_average(weights bytea[], sample_counts float8[]): the federated average of
 * models trained at several sites (cxr_train_federated averages each round with it). The core
 * models are malloc'd: a reset callback on the call's memory context frees them on success and
 * on error alike. */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "cxr_pg.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct {
    cxr_model **models;
    int n;
    cxr_model *mean;
    uint8 *saved;
} average_resources;

static void
free_average(void *arg)
{
    average_resources *r = arg;
    for (int i = 0; i < r->n; i++)
        cxr_model_free(r->models[i]);
    cxr_model_free(r->mean);
    free(r->saved);
}

PG_FUNCTION_INFO_V1(cxr_model_average_sql);
Datum
cxr_model_average_sql(PG_FUNCTION_ARGS)
{
    ArrayType *wa = PG_GETARG_ARRAYTYPE_P(0), *ca = PG_GETARG_ARRAYTYPE_P(1);
    Datum *wd, *cd;
    bool *wn, *cn;
    int nw, nc;
    deconstruct_array(wa, BYTEAOID, -1, false, TYPALIGN_INT, &wd, &wn, &nw);
    deconstruct_array(ca, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &cd, &cn, &nc);
    if (nw == 0 || nw != nc)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("cxr_model_average needs one sample count per model (%d models, %d counts)",
                               nw, nc)));
    /* the models loaded side by side, and their mean: bounded before any is loaded */
    size_t bytes = 0, budget = (size_t)cxr_training_memory_mb * 1024 * 1024;
    for (int i = 0; i < nw; i++) {
        if (wn[i] || cn[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("cxr_model_average: model %d or its sample count is NULL", i + 1)));
        bytes += VARSIZE_ANY_EXHDR(DatumGetPointer(wd[i]));
    }
    if (bytes + bytes / nw > budget)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("averaging %d models of %zu MB needs more than cxr_attn.training_memory (%d MB)",
                               nw, (bytes / nw) >> 20, cxr_training_memory_mb)));

    MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "cxr_model_average",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(ctx);
    average_resources *res = palloc0(sizeof *res);
    res->models = palloc0(sizeof(cxr_model *) * nw);
    MemoryContextCallback *cb = palloc(sizeof *cb);
    cb->func = free_average;
    cb->arg = res;
    MemoryContextRegisterResetCallback(ctx, cb);
    double *counts = palloc(sizeof(double) * nw);
    char err[CXR_ERR_LEN];
    for (int i = 0; i < nw; i++) {
        bytea *w = DatumGetByteaPP(wd[i]);
        CHECK_FOR_INTERRUPTS();
        res->models[i] = cxr_model_load((const uint8 *)VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), err);
        if (!res->models[i])
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("cxr_model_average: model %d is not a valid model: %s", i + 1, err)));
        res->n = i + 1;
        counts[i] = DatumGetFloat8(cd[i]);
    }
    res->mean = cxr_model_average(res->models, counts, nw, err);
    if (!res->mean)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("cxr_model_average: %s", err)));
    size_t len;
    if (cxr_model_save(res->mean, &res->saved, &len) != 0)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory saving the average")));
    MemoryContextSwitchTo(old);
    bytea *out = palloc(VARHDRSZ + len);
    SET_VARSIZE(out, VARHDRSZ + len);
    memcpy(VARDATA(out), res->saved, len);
    MemoryContextDelete(ctx);
    PG_RETURN_BYTEA_P(out);
}

/* cxr_train and cxr_evaluate: training and evaluation over the rows of a query.
 *
 * Rows are read through an SPI cursor with the caller's privileges; images are decoded once and
 * kept at the model's input size as 8-bit gray (bounded by cxr_attn.training_memory). The core
 * trainer's memory is malloc'd and tied to this call's memory context by a reset callback, so
 * an ERROR or a cancel frees it and stores nothing. */
#include "postgres.h"

#include <limits.h>
#include <math.h>
#include <time.h>

#include "catalog/pg_type.h"
#include "cxr_blas.h"
#include "cxr_pg.h"
#include "cxr_train.h"
#include "cxr_train_state.h"
#include "cxr_interrupt.h"
#include "catalog/namespace.h"
#include "utils/acl.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

typedef struct {
    cxr_model *model;
    cxr_trainer *trainer;
    float *best;
} train_resources;

static void
free_resources(void *arg)
{
    train_resources *r = arg;
    cxr_trainer_free(r->trainer);
    cxr_model_free(r->model);
    free(r->best);
}

static double
seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float
label_value(Datum d, Oid type, long row)
{
    int64 v;
    switch (type) {
    case BOOLOID:
        return DatumGetBool(d) ? 1.0f : 0.0f;
    case INT2OID:
        v = DatumGetInt16(d);
        break;
    case INT4OID:
        v = DatumGetInt32(d);
        break;
    case INT8OID:
        v = DatumGetInt64(d);
        break;
    default:
        v = -1;
    }
    if (v != 0 && v != 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("labels must be 0 or 1 (or boolean), but row %ld has %lld", row,
                               (long long)v)));
    return (float)v;
}

/* Reads (image, label) rows of `query` into d, decoding and resizing each image once. */
static void
load_rows(const char *query, const char *what, const cxr_model *m, cxr_dataset *d,
          size_t *budget_left, size_t extra_per_image)
{
    int side = m->input_size;
    size_t per_image = (size_t)side * side;
    float *input = palloc(sizeof(float) * per_image);
    MemoryContext row_ctx = AllocSetContextCreate(CurrentMemoryContext, "cxr_attn row",
                                                  ALLOCSET_DEFAULT_SIZES);
    MemoryContext outer = CurrentMemoryContext;
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    SPIPlanPtr plan = SPI_prepare(query, 0, NULL);
    if (!plan)
        ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                        errmsg("%s query could not be prepared: %s", what,
                               SPI_result_code_string(SPI_result))));
    if (!SPI_is_cursor_plan(plan))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s query must be a SELECT returning (image bytea, label boolean)",
                               what)));
    Portal portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
    long row = 0;
    d->side = side;
    for (;;) {
        SPI_cursor_fetch(portal, true, 64);
        if (SPI_processed == 0)
            break;
        TupleDesc td = SPI_tuptable->tupdesc;
        if (td->natts != 2 || getBaseType(SPI_gettypeid(td, 1)) != BYTEAOID)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("%s query must return two columns (image bytea, label boolean)",
                                   what),
                            errdetail("It returns %d column(s), the first of type %s.", td->natts,
                                      format_type_be(SPI_gettypeid(td, 1)))));
        Oid ltype = getBaseType(SPI_gettypeid(td, 2));
        if (ltype != BOOLOID && ltype != INT2OID && ltype != INT4OID && ltype != INT8OID)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("the label column of the %s query must be boolean or integer, "
                                   "not %s", what, format_type_be(ltype))));
        for (uint64 i = 0; i < SPI_processed; i++) {
            bool inull, lnull;
            row++;
            CHECK_FOR_INTERRUPTS();
            Datum img = SPI_getbinval(SPI_tuptable->vals[i], td, 1, &inull);
            Datum lab = SPI_getbinval(SPI_tuptable->vals[i], td, 2, &lnull);
            if (inull || lnull)
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                errmsg("row %ld of the %s query has a NULL %s", row, what,
                                       inull ? "image" : "label")));
            float label = label_value(lab, ltype, row);
            /* the image, and what fitting will need for it, are charged as it is loaded */
            if (per_image + extra_per_image > *budget_left)
                ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                                errmsg("decoded images exceed cxr_attn.training_memory (%d MB) "
                                       "at row %ld of the %s query", cxr_training_memory_mb, row,
                                       what),
                                errhint("Raise cxr_attn.training_memory or train on fewer rows.")));
            *budget_left -= per_image + extra_per_image;
            if (d->n == d->capacity) {
                /* a new block, never larger than what the budget can still hold; a short
                 * block is the last one the budget allows */
                int nblocks = d->capacity / CXR_DATASET_BLOCK;
                int slots = cxr_dataset_block_slots(*budget_left, per_image);
                MemoryContext o = MemoryContextSwitchTo(outer);
                d->blocks = d->blocks ? repalloc(d->blocks, sizeof(uint8 *) * (nblocks + 1))
                                      : palloc(sizeof(uint8 *) * (nblocks + 1));
                d->blocks[nblocks] = MemoryContextAllocHuge(outer, (size_t)slots * per_image);
                d->capacity += slots;
                d->labels = d->labels ? repalloc(d->labels, sizeof(float) * (nblocks + 1) * CXR_DATASET_BLOCK)
                                      : palloc(sizeof(float) * CXR_DATASET_BLOCK);
                MemoryContextSwitchTo(o);
            }
            MemoryContext o = MemoryContextSwitchTo(row_ctx);
            int w, h;
            cxr_pg_prepare_input(DatumGetByteaPP(img), m, input, &w, &h);
            MemoryContextSwitchTo(o);
            MemoryContextReset(row_ctx);
            /* the dataset keeps [0, 1] gray as 8-bit */
            cxr_dataset_store(d, d->n, input);
            d->labels[d->n++] = label;
        }
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(portal);
    SPI_finish();
    MemoryContextDelete(row_ctx);
    pfree(input);
}

/* Inference-mode probabilities of every image of d. */
static void
predict_all(cxr_model *m, const cxr_dataset *d, double *prob)
{
    size_t img = (size_t)d->side * d->side;
    float *input = palloc(sizeof(float) * img);
    for (int i = 0; i < d->n; i++) {
        CHECK_FOR_INTERRUPTS();
        cxr_make_batch(d, &i, 1, NULL, 0, 0, input);
        prob[i] = cxr_sigmoid(cxr_model_forward(m, input));
        cxr_pg_check_core_interrupt();
    }
    pfree(input);
}

typedef struct {
    int epoch;
    double train_loss, train_acc, val_loss, val_acc, seconds;
} epoch_row;

/* For resume: model id's stored training state (a copy in the current memory context); what
 * names the model in messages. Reads with the caller's privileges. */
static void
fetch_training_state(int64 id, const char *what, bytea **state)
{
    bool isnull;
    Datum d = cxr_pg_query_one(psprintf("SELECT state FROM %s.training_states WHERE model_id = $1",
                                        cxr_pg_schema()),
                               INT8OID, Int64GetDatum(id), &isnull, false, -1);
    if (isnull)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("%s has no training state to resume", what),
                        errdetail("Only models stored by cxr_train keep the state of their run."),
                        errhint("Use init_model without resume to start a new run from its weights.")));
    *state = (bytea *)PG_DETOAST_DATUM(d); /* query_one copied it into this context */
}

/* Everything cxr_train will store must be storable by the caller: checked before any image is
 * decoded, so that a caller without rights, or with another role's name, wastes nothing. */
static void
check_rights_to_store(const char *name, bool deploy, bool resume)
{
    static const struct {
        const char *table;
        AclMode mode;
        int when; /* 0 always, 1 when deploying, 2 when resuming */
    } needed[] = {
        {"models", ACL_SELECT, 0},           {"models", ACL_INSERT, 0},
        {"deployments", ACL_SELECT, 0},      {"deployments", ACL_INSERT, 1},
        {"training_history", ACL_INSERT, 0}, {"training_states", ACL_INSERT, 0},
        {"training_history", ACL_SELECT, 2}, {"training_states", ACL_SELECT, 2},
    };
    Oid nsp = get_namespace_oid(cxr_pg_schema(), false);
    for (size_t i = 0; i < lengthof(needed); i++) {
        if ((needed[i].when == 1 && !deploy) || (needed[i].when == 2 && !resume))
            continue;
        Oid rel = get_relname_relid(needed[i].table, nsp);
        if (!OidIsValid(rel) || pg_class_aclcheck(rel, GetUserId(), needed[i].mode) != ACLCHECK_OK)
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("permission denied to train models: %s on cxr.%s is missing",
                            needed[i].mode == ACL_INSERT ? "INSERT" : "SELECT", needed[i].table),
                     errdetail("cxr_train stores a model row, its history and its training state "
                               "(and a deployment unless deploy => false)."),
                     errhint("GRANT SELECT, INSERT ON cxr.models, cxr.deployments, "
                             "cxr.training_history, cxr.training_states TO the role.")));
    }
    if (!cxr_pg_name_writable(name))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("model name \"%s\" belongs to another role", name)));
}

/* The library serves older SQL for scoring, but training stores rows the current SQL defines. */
static void
require_current_sql(void)
{
    bool isnull;
    Datum v = cxr_pg_query_one("SELECT extversion FROM pg_catalog.pg_extension "
                               "WHERE extname = $1", TEXTOID, CStringGetTextDatum("cxr_attn"),
                               &isnull, false, -1);
    if (isnull || strcmp(TextDatumGetCString(v), CXR_SQL_VERSION) != 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("the cxr_attn extension in this database is older than its library"),
                        errhint("Run ALTER EXTENSION cxr_attn UPDATE.")));
}

/* Stores the model row (validated by the registry's trigger, under the caller's rights and row
 * security), the run's state and its history; a resumed run's history starts with the rows of
 * the model it resumed. Returns the new model's id. */
static int64
store_trained(const char *name, bytea *weights, bool deploy, Jsonb *metrics, Jsonb *history,
              bytea *state, int64 resumed_from)
{
    const char *x = cxr_pg_schema();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    int level = cxr_pg_pin_search_path();
    int64 id = cxr_pg_store_model(name, weights, deploy, metrics);
    if (resumed_from) {
        Oid types[2] = {INT8OID, INT8OID};
        Datum args[2] = {Int64GetDatum(id), Int64GetDatum(resumed_from)};
        if (SPI_execute_with_args(
                psprintf("INSERT INTO %s.training_history SELECT $1, h.epoch, h.train_loss, "
                         "h.train_accuracy, h.val_loss, h.val_accuracy, h.seconds "
                         "FROM %s.training_history h WHERE h.model_id = $2", x, x),
                2, types, args, NULL, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "copying the resumed run's history failed");
    }
    Oid state_types[2] = {INT8OID, BYTEAOID};
    Datum state_args[2] = {Int64GetDatum(id), PointerGetDatum(state)};
    /* a model fitted in one pass has no state to resume */
    if (state && SPI_execute_with_args(psprintf("INSERT INTO %s.training_states VALUES ($1, $2)", x), 2,
                              state_types, state_args, NULL, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "storing the training state failed");
    Oid hist_types[2] = {INT8OID, JSONBOID};
    Datum hist_args[2] = {Int64GetDatum(id), JsonbPGetDatum(history)};
    if (SPI_execute_with_args(
            psprintf("INSERT INTO %s.training_history SELECT $1, (h ->> 'epoch')::int, "
                     "(h ->> 'train_loss')::float8, (h ->> 'train_accuracy')::float8, "
                     "(h ->> 'val_loss')::float8, (h ->> 'val_accuracy')::float8, "
                     "(h ->> 'seconds')::float8 FROM jsonb_array_elements($2) h", x),
            2, hist_types, hist_args, NULL, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "storing the training history failed");
    cxr_pg_unpin_search_path(level);
    SPI_finish();
    return id;
}

static char *
arg_text(FunctionCallInfo fcinfo, int i, const char *what)
{
    if (PG_ARGISNULL(i))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", what)));
    return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

static int32
arg_int(FunctionCallInfo fcinfo, int i, const char *what, int lo, int hi)
{
    if (PG_ARGISNULL(i))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", what)));
    int32 v = PG_GETARG_INT32(i);
    if (v < lo || v > hi)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s must be between %d and %d, not %d", what, lo, hi, v)));
    return v;
}

/* The training rows, and the validation rows when there is a validation query; an ERROR
 * when either query returns none. */
static void
load_training_data(const char *train_query, const char *val_query, const cxr_model *m,
                   cxr_dataset *train, cxr_dataset *val, size_t *budget, size_t extra_per_image)
{
    load_rows(train_query, "training", m, train, budget, extra_per_image);
    if (train->n == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the training query returned no rows")));
    if (val_query) {
        load_rows(val_query, "validation", m, val, budget, 0);
        if (val->n == 0)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("the validation query returned no rows")));
    }
}

/* The model's file as a bytea in ctx. */
static bytea *
model_bytea(const cxr_model *m, MemoryContext ctx)
{
    uint8_t *bytes;
    size_t nbytes;
    if (cxr_model_save(m, &bytes, &nbytes) != 0)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory saving the model")));
    bytea *weights = MemoryContextAllocHuge(ctx, VARHDRSZ + nbytes);
    SET_VARSIZE(weights, VARHDRSZ + nbytes);
    memcpy(VARDATA(weights), bytes, nbytes);
    free(bytes);
    return weights;
}

/* The history rows as the jsonb array store_trained reads. */
static Jsonb *
history_jsonb(const epoch_row *rows, int n)
{
    cxr_jsonb hist = {0};
    cxr_jsonb_begin(&hist, true);
    for (int e = 0; e < n; e++) {
        const epoch_row *h = &rows[e];
        cxr_jsonb_begin(&hist, false);
        cxr_jsonb_put_int(&hist, "epoch", h->epoch);
        cxr_jsonb_put_number(&hist, "train_loss", h->train_loss);
        cxr_jsonb_put_number(&hist, "train_accuracy", h->train_acc);
        cxr_jsonb_put_number(&hist, "val_loss", h->val_loss);
        cxr_jsonb_put_number(&hist, "val_accuracy", h->val_acc);
        cxr_jsonb_put_number(&hist, "seconds", h->seconds);
        cxr_jsonb_end(&hist);
    }
    cxr_jsonb_end(&hist);
    return cxr_jsonb_finish(&hist);
}

/* cxr_train's result: the history rows, each with the stored model's id. */
static void
return_history(ReturnSetInfo *rsinfo, int64 stored, const epoch_row *rows, int n)
{
    for (int e = 0; e < n; e++) {
        const epoch_row *h = &rows[e];
        Datum v[7] = {Int64GetDatum(stored), Int32GetDatum(h->epoch), Float8GetDatum(h->train_loss),
                      Float8GetDatum(h->train_acc), Float8GetDatum(h->val_loss),
                      Float8GetDatum(h->val_acc), Float8GetDatum(h->seconds)};
        bool nulls[7] = {false, false, false, false, isnan(h->val_loss), isnan(h->val_acc), false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
    }
}

/* cxr_train's params (jsonb object) handed to the model's kind, key by key, as text: strings
 * as they are, numbers as written, true/false, null. */
static void
apply_params(cxr_model *m, Jsonb *params)
{
    char err[CXR_ERR_LEN];
    if (!JB_ROOT_IS_OBJECT(params) || JB_ROOT_IS_SCALAR(params))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("params must be a JSON object, e.g. '{\"n_estimators\": 100}'")));
    JsonbIterator *it = JsonbIteratorInit(&params->root);
    JsonbValue v;
    JsonbIteratorToken tok;
    char *key = NULL;
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
        if (tok == WJB_KEY) {
            key = pnstrdup(v.val.string.val, v.val.string.len);
            continue;
        }
        if (tok != WJB_VALUE)
            continue;
        char *value;
        switch (v.type) {
        case jbvString:
            value = pnstrdup(v.val.string.val, v.val.string.len);
            break;
        case jbvNumeric:
            value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
            break;
        case jbvBool:
            value = v.val.boolean ? "true" : "false";
            break;
        case jbvNull:
            value = "null";
            break;
        default:
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("params: the value of \"%s\" must be a string, number, boolean "
                                   "or null", key)));
        }
        if (cxr_model_set_param(m, key, value, err))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", err)));
    }
}

/* Training for kinds fitted in one pass over the data (a forest): the data set at the model's
 * input size, the fit in chunks (cancel and progress between them, and inside the core), one
 * history row, the model stored. Arguments are checked by the caller. */
static void
fit_in_one_pass(FunctionCallInfo fcinfo, const char *name, cxr_model *m, Jsonb *params,
                const char *train_query, const char *val_query, int seed, bool deploy,
                MemoryContext train_ctx, MemoryContext old)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    char err[CXR_ERR_LEN];
    int units = cxr_model_fit_units(m);
    /* the budget: the fit's own memory grows with the images, and is charged with each */
    size_t budget = (size_t)cxr_training_memory_mb * 1024 * 1024;
    size_t fixed = cxr_model_fit_bytes(m, 0) + cxr_model_workspace_bytes(m);
    size_t per_image = cxr_model_fit_bytes(m, 1) - cxr_model_fit_bytes(m, 0) +
                       (size_t)units * 2 * 3 * 24; /* the saved file and its copies */
    if (fixed + per_image + (size_t)m->input_size * m->input_size >= budget)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("fitting %s on a %d x %d feature grid needs %zu MB before any image "
                               "is loaded, more than cxr_attn.training_memory (%d MB)",
                               m->arch->name, m->input_size, m->input_size, (fixed >> 20) + 1,
                               cxr_training_memory_mb),
                        errhint("Lower feature_grid or n_estimators, or ask a superuser to raise "
                                "cxr_attn.training_memory.")));
    budget -= fixed;
    cxr_dataset train = {0}, val = {0};
    double t_load = seconds_now();
    load_training_data(train_query, val_query, m, &train, &val, &budget, per_image);
    bool both = false;
    for (int i = 1; i < train.n && !both; i++)
        both = train.labels[i] != train.labels[0];
    if (!both)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the training query returned only one class (every label is %s)",
                               train.labels[0] > 0.5f ? "true" : "false"),
                        errhint("A classifier needs X-rays of both classes.")));
    int threads = cxr_training_threads;
    ereport(NOTICE, (errmsg("cxr_train: %d training and %d validation images decoded in %.1f s; "
                            "%s, %d trees on a %d x %d grid, %d %s",
                            train.n, val.n, seconds_now() - t_load, m->arch->name, units,
                            m->input_size, m->input_size, threads,
                            threads == 1 ? "thread" : "threads")));
    double t0 = seconds_now(), last_note = t0;
    uint64_t fit_seed = cxr_splitmix64((uint64_t)(uint32)seed);
    for (int done = 0; done < units;) {
        int count = Min(threads, units - done);
        CHECK_FOR_INTERRUPTS();
        if (cxr_model_fit(m, &train, done, count, fit_seed, threads, err)) {
            cxr_pg_check_core_interrupt();
            ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("cxr_train: %s", err)));
        }
        done += count;
        if (seconds_now() - last_note > 30 && done < units) {
            last_note = seconds_now();
            ereport(NOTICE, (errmsg("cxr_train: %d/%d trees fitted, %.0f s", done, units,
                                    last_note - t0)));
        }
    }
    double fit_seconds = seconds_now() - t0;
    double *prob = palloc(sizeof(double) * Max(train.n, val.n));
    long *scratch = palloc(sizeof(long) * Max(train.n, val.n));
    cxr_metrics tm, vm = {0};
    predict_all(m, &train, prob);
    cxr_compute_metrics(prob, train.labels, train.n, scratch, &tm);
    double val_loss = NAN, val_acc = NAN;
    if (val.n) {
        predict_all(m, &val, prob);
        cxr_compute_metrics(prob, val.labels, val.n, scratch, &vm);
        val_loss = vm.loss;
        val_acc = vm.accuracy;
    }
    double seconds = seconds_now() - t0;
    ereport(NOTICE, (errmsg("cxr_train: %d trees fitted in %.1f s: train accuracy %.4f%s", units,
                            fit_seconds, tm.accuracy,
                            val.n ? psprintf(", val accuracy %.4f", val_acc) : "")));

    bytea *weights = model_bytea(m, train_ctx);
    epoch_row row = {1, tm.loss, tm.accuracy, val_loss, val_acc, seconds};
    cxr_jsonb metrics = {0};
    cxr_jsonb_begin(&metrics, false);
    cxr_jsonb_put_string(&metrics, "trained_by", "cxr_train");
    cxr_jsonb_put_jsonb(&metrics, "params", params);
    cxr_jsonb_put_int(&metrics, "n_estimators", units);
    cxr_jsonb_put_int(&metrics, "feature_grid", m->input_size);
    cxr_jsonb_put_int(&metrics, "train_images", train.n);
    cxr_jsonb_put_int(&metrics, "val_images", val.n);
    cxr_jsonb_put_int(&metrics, "seed", seed);
    cxr_jsonb_put_int(&metrics, "threads", threads);
    cxr_jsonb_put_number(&metrics, "fit_seconds", round(fit_seconds * 10) / 10);
    cxr_jsonb_put_number(&metrics, "train_accuracy", tm.accuracy);
    if (val.n) {
        cxr_jsonb_put_number(&metrics, "val_accuracy", val_acc);
        cxr_jsonb_put_number(&metrics, "val_loss", val_loss);
    }
    cxr_jsonb_end(&metrics);
    int64 stored = store_trained(name, weights, deploy, cxr_jsonb_finish(&metrics),
                                 history_jsonb(&row, 1), NULL, 0);
    ereport(NOTICE, (errmsg("cxr_train: stored model %lld under \"%s\"%s", (long long)stored, name,
                            deploy ? "" : " (not deployed: reach it by its id)")));
    MemoryContextSwitchTo(old);
    return_history(rsinfo, stored, &row, 1);
    MemoryContextDelete(train_ctx);
}

PG_FUNCTION_INFO_V1(cxr_train);
Datum
cxr_train(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    char *name = arg_text(fcinfo, 0, "name");
    char *train_query = arg_text(fcinfo, 1, "training_query");
    char *arch = arg_text(fcinfo, 2, "arch");
    char *val_query = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
    int epochs = arg_int(fcinfo, 4, "epochs", 1, 100000);
    int batch = arg_int(fcinfo, 5, "batch_size", 1, 1024);
    if (PG_ARGISNULL(6) || !(PG_GETARG_FLOAT8(6) > 0) || !isfinite(PG_GETARG_FLOAT8(6)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("learning_rate must be a positive number")));
    double lr = PG_GETARG_FLOAT8(6);
    bool augment = PG_ARGISNULL(7) ? true : PG_GETARG_BOOL(7);
    int seed = PG_ARGISNULL(8) ? 1 : PG_GETARG_INT32(8);
    bool deploy = PG_ARGISNULL(9) ? true : PG_GETARG_BOOL(9);
    char *init_model = PG_ARGISNULL(10) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(10));
    char *score = PG_ARGISNULL(11) ? "scaled_dot" : text_to_cstring(PG_GETARG_TEXT_PP(11));
    /* 0.1.0's declaration has no resume argument */
    if (PG_NARGS() < 13)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("the cxr_attn extension in this database is older than its library"),
                        errhint("Run ALTER EXTENSION cxr_attn UPDATE.")));
    bool resume = !PG_ARGISNULL(12) && PG_GETARG_BOOL(12);
    /* the starting model by id (0.4.0): a row reachable without a deployed name */
    bool by_id = PG_NARGS() > 13 && !PG_ARGISNULL(13);
    int64 init_id = by_id ? PG_GETARG_INT64(13) : 0;
    /* which parameters train (0.5.0): name prefixes, NULL for all */
    char *trainable = PG_NARGS() > 14 && !PG_ARGISNULL(14) ? text_to_cstring(PG_GETARG_TEXT_PP(14))
                                                           : NULL;
    /* the architecture's hyperparameters (0.6.0): a jsonb object, scikit-learn's names */
    Jsonb *params = PG_NARGS() > 15 && !PG_ARGISNULL(15) ? PG_GETARG_JSONB_P(15) : NULL;
    char err[CXR_ERR_LEN];

    InitMaterializedSRF(fcinfo, 0);
    cxr_interrupt_clear();
    /* Everything is checked before the first image is decoded: the SQL, the arguments, the
     * caller's rights and name, the starting model and the memory the run will take. */
    require_current_sql();
    if (name[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the model name must not be empty")));
    if (strcmp(score, "dot") != 0 && strcmp(score, "scaled_dot") != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("attention_score must be \"dot\" or \"scaled_dot\", not \"%s\"", score)));
    if (init_model && by_id)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("pass init_model or init_model_id, not both")));
    if (!init_model && !by_id && !cxr_arch_find(arch))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("unknown architecture \"%s\" (known: %s)", arch, cxr_arch_names())));
    if (resume && !init_model && !by_id)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("resume needs init_model or init_model_id: the model whose run to continue")));
    if (init_model && init_model[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("init_model must not be empty")));
    const cxr_arch *fresh_arch = init_model || by_id ? NULL : cxr_arch_find(arch);
    bool one_pass = fresh_arch && cxr_arch_one_pass(fresh_arch);
    if (params && !one_pass)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("params are hyperparameters of a fresh random_forest; a network's "
                               "are cxr_train's own arguments")));
    if (one_pass && trainable)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("trainable names a network's parameters; a %s has none",
                               fresh_arch->name)));
    check_rights_to_store(name, deploy, resume);

    MemoryContext train_ctx = AllocSetContextCreate(CurrentMemoryContext, "cxr_train",
                                                    ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(train_ctx);
    train_resources *res = palloc0(sizeof *res);
    MemoryContextCallback *cb = palloc(sizeof *cb);
    cb->func = free_resources;
    cb->arg = res;
    MemoryContextRegisterResetCallback(train_ctx, cb);

    bytea *resume_state = NULL;
    int64 resume_from = 0;
    /* a name resolves to its deployed row, or an ERROR that says why it resolves to nothing */
    if (init_model)
        init_id = cxr_pg_resolve_name(init_model);
    const char *init_what = init_model ? psprintf("model \"%s\"", init_model)
                                       : psprintf("model %lld", (long long)init_id);
    if (resume) {
        fetch_training_state(init_id, init_what, &resume_state);
        resume_from = init_id;
        res->model = cxr_pg_model_copy(resume_from);
    } else if (init_model || by_id) {
        res->model = cxr_pg_model_copy(init_id);
    } else {
        res->model = cxr_model_create(arch, strcmp(score, "scaled_dot") == 0,
                                      cxr_arch_train_input_size(fresh_arch),
                                      (uint64_t)(uint32)seed, err);
        if (!res->model)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", err)));
    }
    cxr_model *m = res->model;
    if (one_pass) {
        if (params)
            apply_params(m, params);
        fit_in_one_pass(fcinfo, name, m, params, train_query, val_query, seed, deploy, train_ctx,
                        old);
        return (Datum)0;
    }
    /* a forest is fitted afresh: it has no state to continue from */
    if (cxr_model_one_pass(m))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("init_model %s is a %s, which cannot be trained further",
                               init_what, m->arch->name),
                        errhint("Fit a new one with arch => '%s'.", m->arch->name)));
    /* arch keeps its default when starting from a model: the model's own arch is used */
    if ((init_model || by_id) && !PG_ARGISNULL(2) && strcmp(arch, m->arch->name) != 0 &&
        strcmp(arch, "alexnet_attn2") != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("init_model %s is a %s, not a %s", init_what, m->arch->name, arch)));

    int n_trained = cxr_model_train_only(m, trainable, err);
    if (n_trained < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("trainable: %s", err),
                        errhint("Name parameters as the model file does (torchvision's names "
                                "for resnet50), e.g. 'fc' or 'layer4,fc'.")));
    if (trainable)
        ereport(NOTICE, (errmsg("cxr_train: training the %d parameter tensors under \"%s\"; the "
                                "others, and their BatchNorm statistics, stay as they are",
                                n_trained, trainable)));

    /* One budget for the whole run: the optimiser and activations of a batch, the batch's
     * inputs, the best epoch's weights, and then the decoded images. */
    size_t budget = (size_t)cxr_training_memory_mb * 1024 * 1024;
    size_t img_floats = (size_t)m->input_size * m->input_size;
    /* weights: the model, the best epoch's copy, and at the end the saved state (three
     * tensors of the parameters' size, and its bytea copy) and the saved model (and its copy) */
    size_t fixed = cxr_trainer_bytes(m, batch) + sizeof(float) * img_floats * batch +
                   sizeof(float) * m->n_params * (2 + 6 + 2) + cxr_model_workspace_bytes(m);
    if (fixed >= budget)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("training %s at batch_size %d needs %zu MB before any image is "
                               "loaded, more than cxr_attn.training_memory (%d MB)",
                               m->arch->name, batch, (fixed >> 20) + 1, cxr_training_memory_mb),
                        errhint("Lower batch_size, or ask a superuser to raise "
                                "cxr_attn.training_memory.")));
    budget -= fixed;
    cxr_dataset train = {0}, val = {0};
    double t_load = seconds_now();
    load_training_data(train_query, val_query, m, &train, &val, &budget, 0);
    ereport(NOTICE, (errmsg("cxr_train: %d training and %d validation images decoded in %.1f s; "
                            "%s, %d %s, batch %d, %d BLAS %s",
                            train.n, val.n, seconds_now() - t_load, m->arch->name, epochs,
                            epochs == 1 ? "epoch" : "epochs", batch, cxr_training_threads,
                            cxr_training_threads == 1 ? "thread" : "threads")));

    cxr_pg_use_threads(cxr_training_threads);
    cxr_adam_config adam = {(float)lr, 0.9f, 0.999f, 1e-8f};
    int max_batch = batch < train.n ? batch : train.n;
    res->trainer = cxr_trainer_create(m, max_batch, &adam);
    res->best = malloc(sizeof(float) * m->n_params);
    if (!res->trainer || !res->best)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("out of memory creating a trainer for batch %d", max_batch)));
    /* the stored model is the run's best epoch so far: resuming, that is init_model's weights */
    memcpy(res->best, m->params, sizeof(float) * m->n_params);
    cxr_run_progress run = {0, 0, NAN, NAN};
    if (resume_state &&
        cxr_train_state_load(res->trainer, (const uint8_t *)VARDATA_ANY(resume_state),
                             VARSIZE_ANY_EXHDR(resume_state), &run, err) != 0)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("the training state of %s cannot be resumed: %s", init_what, err)));
    if (resume_state)
        pfree(resume_state); /* ~3x the model's size, not needed while training */

    size_t img = (size_t)m->input_size * m->input_size;
    float *inputs = MemoryContextAllocHuge(train_ctx, sizeof(float) * img * max_batch);
    float *labels = palloc(sizeof(float) * max_batch), *logits = palloc(sizeof(float) * max_batch);
    int *order = palloc(sizeof(int) * train.n);
    double *val_prob = palloc(sizeof(double) * (val.n ? val.n : 1));
    long *scratch = palloc(sizeof(long) * (val.n ? val.n : 1));
    epoch_row *history = palloc(sizeof(epoch_row) * epochs);
    cxr_augment_config aug = {10.0f, 1};
    /* Epoch numbers, shuffles, augmentation and dropout draws continue a resumed run, so a run
     * resumed with the same arguments equals one uninterrupted run, bit for bit. */
    int first = run.epochs_done, last_epoch = first + epochs, best_epoch = run.best_epoch;
    double best_acc = isnan(run.best_val_accuracy) ? -1 : run.best_val_accuracy;
    double best_loss = isnan(run.best_val_loss) ? INFINITY : run.best_val_loss;
    double t_start = seconds_now();
    uint64_t run_seed = cxr_splitmix64((uint64_t)(uint32)seed);

    for (int e = first; e < last_epoch; e++) {
        double t0 = seconds_now(), last_note = t0, loss_sum = 0;
        long correct = 0;
        for (int i = 0; i < train.n; i++)
            order[i] = i;
        cxr_shuffle(order, train.n, run_seed + (uint64_t)e);
        int nbatches = (train.n + max_batch - 1) / max_batch;
        for (int b = 0; b < nbatches; b++) {
            int start = b * max_batch, n = Min(max_batch, train.n - start);
            CHECK_FOR_INTERRUPTS();
            cxr_make_batch(&train, order + start, n, augment ? &aug : NULL, run_seed,
                           (uint64_t)e * train.n + start, inputs);
            cxr_pg_check_core_interrupt();
            for (int k = 0; k < n; k++)
                labels[k] = train.labels[order[start + k]];
            double loss = cxr_trainer_forward_backward(res->trainer, inputs, labels, n,
                                                       cxr_splitmix64(run_seed ^ (uint64_t)res->trainer->step),
                                                       logits);
            /* a step the core stopped early is never applied */
            cxr_pg_check_core_interrupt();
            cxr_trainer_apply_adam(res->trainer);
            if (!isfinite(loss))
                ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                                errmsg("training diverged at epoch %d (loss is not finite)", e + 1),
                                errhint("Lower learning_rate.")));
            loss_sum += loss * n;
            for (int k = 0; k < n; k++)
                correct += (logits[k] > 0) == (labels[k] > 0.5f);
            double now = seconds_now();
            if (now - last_note > 30 && b + 1 < nbatches) {
                ereport(NOTICE, (errmsg("cxr_train: epoch %d/%d, batch %d/%d, loss %.4f, %.1f images/s",
                                        e + 1, last_epoch, b + 1, nbatches, loss_sum / (start + n),
                                        (start + n) / (now - t0))));
                last_note = now;
            }
        }
        epoch_row *h = &history[e - first];
        h->epoch = e + 1;
        h->train_loss = loss_sum / train.n;
        h->train_acc = (double)correct / train.n;
        h->val_loss = h->val_acc = NAN;
        double train_seconds = seconds_now() - t0;
        if (val.n) {
            cxr_metrics vm;
            predict_all(m, &val, val_prob);
            cxr_compute_metrics(val_prob, val.labels, val.n, scratch, &vm);
            h->val_loss = vm.loss;
            h->val_acc = vm.accuracy;
            /* keep the best validation epoch, as the reference recipe does */
            if (vm.accuracy > best_acc || (vm.accuracy == best_acc && vm.loss < best_loss)) {
                best_acc = vm.accuracy;
                best_loss = vm.loss;
                best_epoch = e + 1;
                memcpy(res->best, m->params, sizeof(float) * m->n_params);
            }
        } else {
            best_epoch = e + 1;
            memcpy(res->best, m->params, sizeof(float) * m->n_params);
        }
        h->seconds = seconds_now() - t0;
        double elapsed = seconds_now() - t_start;
        double eta = elapsed / (e + 1 - first) * (last_epoch - e - 1);
        /* without a validation query there is nothing to say about validation */
        char *val_part = val.n ? psprintf(", val loss %.4f acc %.4f", h->val_loss, h->val_acc) : "";
        ereport(NOTICE,
                (errmsg("cxr_train: epoch %d/%d: train loss %.4f acc %.4f%s, %.1f images/s, %.0f s, "
                        "ETA %.0f s",
                        e + 1, last_epoch, h->train_loss, h->train_acc, val_part,
                        train.n / train_seconds, h->seconds, eta)));
    }

    /* the run's state after its last epoch, then the chosen epoch's weights */
    uint8_t *bytes;
    size_t nbytes;
    run.epochs_done = last_epoch;
    run.best_epoch = best_epoch;
    run.best_val_accuracy = best_acc >= 0 ? best_acc : NAN;
    run.best_val_loss = best_acc >= 0 ? best_loss : NAN;
    if (cxr_train_state_save(res->trainer, &run, &bytes, &nbytes) != 0)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory saving the training state")));
    bytea *state = MemoryContextAllocHuge(train_ctx, VARHDRSZ + nbytes);
    SET_VARSIZE(state, VARHDRSZ + nbytes);
    memcpy(VARDATA(state), bytes, nbytes);
    free(bytes);

    memcpy(m->params, res->best, sizeof(float) * m->n_params);
    bytea *weights = model_bytea(m, train_ctx);

    cxr_jsonb metrics = {0};
    cxr_jsonb_begin(&metrics, false);
    cxr_jsonb_put_string(&metrics, "trained_by", "cxr_train");
    cxr_jsonb_put_int(&metrics, "epochs", epochs);
    cxr_jsonb_put_int(&metrics, "best_epoch", best_epoch);
    cxr_jsonb_put_int(&metrics, "train_images", train.n);
    cxr_jsonb_put_int(&metrics, "val_images", val.n);
    cxr_jsonb_put_int(&metrics, "batch_size", batch);
    cxr_jsonb_put_number(&metrics, "learning_rate", lr);
    cxr_jsonb_put_bool(&metrics, "augment", augment);
    cxr_jsonb_put_int(&metrics, "seed", seed);
    cxr_jsonb_put_int(&metrics, "threads", cxr_training_threads);
    cxr_jsonb_put_number(&metrics, "seconds", round((seconds_now() - t_start) * 10) / 10);
    cxr_jsonb_put_int(&metrics, "first_epoch", first + 1);
    cxr_jsonb_put_bool(&metrics, "resumed", resume);
    cxr_jsonb_put_string(&metrics, "init_model", init_model); /* the caller's text, escaped by the writer */
    if (init_id)
        cxr_jsonb_put_int(&metrics, "init_model_id", init_id);
    if (val.n) {
        cxr_jsonb_put_number(&metrics, "val_accuracy", best_acc);
        cxr_jsonb_put_number(&metrics, "val_loss", best_loss);
    }
    cxr_jsonb_end(&metrics);

    int64 stored = store_trained(name, weights, deploy, cxr_jsonb_finish(&metrics),
                                 history_jsonb(history, epochs), state, resume ? resume_from : 0);
    ereport(NOTICE, (errmsg("cxr_train: stored model %lld under \"%s\"%s", (long long)stored, name,
                            deploy ? "" : " (not deployed: reach it by its id)")));

    MemoryContextSwitchTo(old);
    return_history(rsinfo, stored, history, epochs);
    MemoryContextDelete(train_ctx);
    cxr_pg_use_threads(cxr_scoring_threads);
    return (Datum)0;
}

static Datum
evaluate(FunctionCallInfo fcinfo, bool by_id)
{
    char *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
    MemoryContext ctx = AllocSetContextCreate(CurrentMemoryContext, "cxr_evaluate",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(ctx);
    cxr_cached_model *cm = by_id ? cxr_pg_model_by_id(cxr_pg_model_id_arg(fcinfo, 0))
                                 : cxr_pg_model_by_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    /* the query below is user code: it may change the registry and flush the cache */
    cxr_pg_model_hold(cm, ctx);
    cxr_interrupt_clear();
    size_t budget = (size_t)cxr_training_memory_mb * 1024 * 1024;
    cxr_dataset d = {0};
    load_rows(query, "evaluation", cm->model, &d, &budget, 0);
    if (d.n == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("the evaluation query returned no rows")));
    cxr_pg_use_threads(cxr_scoring_threads);
    double *prob = palloc(sizeof(double) * d.n);
    long *scratch = palloc(sizeof(long) * d.n);
    predict_all(cm->model, &d, prob);
    cxr_metrics mt;
    cxr_compute_metrics(prob, d.labels, d.n, scratch, &mt);
    if (isnan(mt.auc))
        ereport(NOTICE, (errmsg("roc_auc is NULL: the evaluation set has only %s images",
                                mt.tp + mt.fn > 0 ? "positive" : "negative"),
                         errdetail("ROC AUC needs images of both classes.")));
    MemoryContextSwitchTo(old);
    MemoryContextDelete(ctx);
    PG_RETURN_DATUM(cxr_pg_metrics_datum(fcinfo, &mt));
}

PG_FUNCTION_INFO_V1(cxr_evaluate);
Datum
cxr_evaluate(PG_FUNCTION_ARGS)
{
    return evaluate(fcinfo, false);
}

PG_FUNCTION_INFO_V1(cxr_evaluate_by_id);
Datum
cxr_evaluate_by_id(PG_FUNCTION_ARGS)
{
    return evaluate(fcinfo, true);
}

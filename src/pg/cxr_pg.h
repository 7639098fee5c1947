/* PostgreSQL glue shared declarations. The numerical core (src/core) never sees postgres.h;
 * everything here turns its return codes into ereport()s. */
#ifndef CXR_PG_H
#define CXR_PG_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

#include "cxr_image.h"
#include "cxr_model.h"

/* The SQL script version this library was built with (training needs it current). */
#define CXR_SQL_VERSION "0.10.0"

/* GUCs */
extern int cxr_max_image_pixels;
extern int cxr_scoring_threads;
extern int cxr_training_threads;
extern int cxr_training_memory_mb;

/* model_cache.c: per-backend cache of loaded models, keyed by model id.
 *
 * Lifetime rule: a pointer from cxr_pg_model_by_id/by_name is valid until the next lookup or
 * until any user code runs (a query, a trigger, another scoring call), because a registry
 * change seen then flushes the cache. Whoever keeps a model across user code holds it with
 * cxr_pg_model_hold, which keeps it alive until the given memory context is reset or deleted
 * (on success or on error). */
typedef struct cxr_cached_model {
    int64 id;
    cxr_model *model;
    float *input; /* input_size^2 floats, reused by every call */
    int holds;    /* cxr_pg_model_hold()s not yet released */
    bool flushed; /* dropped from the cache while held: freed at the last release */
} cxr_cached_model;

cxr_cached_model *cxr_pg_model_by_id(int64 id);
cxr_cached_model *cxr_pg_model_by_name(const char *name);
void cxr_pg_model_hold(cxr_cached_model *cm, MemoryContext until);
/* A private copy of a registered model's weights (for training from it). */
cxr_model *cxr_pg_model_copy(int64 id);
void cxr_pg_cache_init(void);
const char *cxr_pg_schema(void);
/* The id a model name points at now (ERROR when none). */
int64 cxr_pg_resolve_name(const char *name);
/* The local row id of the model whose weights have this SHA-256 (ERROR when none). */
#define CXR_DIGEST_LEN 32
int64 cxr_pg_resolve_digest(bytea *digest);
/* A by-id function's model argument: a bigint row id, or (for the bytea overloads) a digest. */
int64 cxr_pg_model_id_arg(FunctionCallInfo fcinfo, int argno);

/* metrics_agg.c: cxr_evaluate's row of figures (NULL where a ratio has nothing to divide). */
struct cxr_metrics;
Datum cxr_pg_metrics_datum(FunctionCallInfo fcinfo, const struct cxr_metrics *mt);

/* predict.c: scoring shared with the pictures. Every scoring function exists by model name
 * (STABLE) and by model id (IMMUTABLE): impl(fcinfo, by_id) behind two SQL entry points. */
#define BY_NAME_AND_BY_ID(sqlname, impl)                                                          \
    PG_FUNCTION_INFO_V1(sqlname##_by_name);                                                        \
    Datum sqlname##_by_name(PG_FUNCTION_ARGS) { return impl(fcinfo, false); }                      \
    PG_FUNCTION_INFO_V1(sqlname##_by_id);                                                          \
    Datum sqlname##_by_id(PG_FUNCTION_ARGS) { return impl(fcinfo, true); }
/* The model argument argno, by id or by name. */
cxr_cached_model *cxr_pg_model_arg(FunctionCallInfo fcinfo, int argno, bool by_id);
/* Decodes and scores one image with a cached model: returns the decoded gray (native w x h,
 * current memory context); the model's attention maps hold this image's until the next forward. */
float *cxr_pg_score(bytea *image, cxr_cached_model *cm, float *logit, int *w, int *h);
/* The model's attention side for `layer`, or an ERROR that names the layers it has. */
/* ERROR (feature not supported) for a model without attention layers (resnet50, alexnet). */
void cxr_pg_require_attention(const cxr_model *m);
/* A model's feature importance map (input_size^2), or an ERROR for models without one. */
const float *cxr_pg_require_importance(const cxr_model *m);
int cxr_pg_attention_side(const cxr_model *m, int layer);

/* registry.c: the write-right check of a model name (the row-security policies' rule), and
 * storing a model row (validated, under the caller's rights), deployed under name when asked. */
bool cxr_pg_name_writable(const char *name);
int64 cxr_pg_store_model(const char *name, bytea *weights, bool deploy, Jsonb *metrics);

/* internal_query.c: the extension's own SPI queries run with search_path pinned to
 * pg_catalog, pg_temp, so that nothing the caller put on search_path (a function, an
 * operator) runs inside them. Callers connect SPI themselves. */
int cxr_pg_pin_search_path(void);
void cxr_pg_unpin_search_path(int nestlevel);
/* A one-row, one-column query with one parameter, run with the pinned search_path; a copy of
 * the value in the caller's memory context, or *isnull. */
Datum cxr_pg_query_one(const char *sql, Oid argtype, Datum arg, bool *isnull, bool byval,
                       int typlen);

/* interrupts.c: the core polls PostgreSQL's pending cancel through a hook. */
void cxr_pg_interrupts_init(void);
/* After a core call that may have stopped early: raises the pending cancel as an ERROR. */
void cxr_pg_check_core_interrupt(void);

/* jsonb_writer.c: the one writer of the JSON values the extension stores. */
typedef struct cxr_jsonb {
    JsonbParseState *state;
    JsonbValue *result;
    int depth;
    bool in_array[8];
} cxr_jsonb;
void cxr_jsonb_begin(cxr_jsonb *j, bool array);
void cxr_jsonb_end(cxr_jsonb *j);
Jsonb *cxr_jsonb_finish(cxr_jsonb *j);
/* key and value, inside an object */
void cxr_jsonb_put_string(cxr_jsonb *j, const char *key, const char *s); /* NULL: null */
void cxr_jsonb_put_number(cxr_jsonb *j, const char *key, double v);      /* NaN, inf: null */
void cxr_jsonb_put_int(cxr_jsonb *j, const char *key, int64 v);
void cxr_jsonb_put_bool(cxr_jsonb *j, const char *key, bool v);
void cxr_jsonb_put_numbers(cxr_jsonb *j, const char *key, const double *v, int n); /* array */
void cxr_jsonb_put_jsonb(cxr_jsonb *j, const char *key, Jsonb *value); /* NULL: null */

/* images.c */
void cxr_pg_image_error(cxr_img_status st, const char *msg);
/* Decodes a PNG to gray [0,1] (palloc'd, *w x *h) in the current memory context. */
float *cxr_pg_decode(bytea *image, int *w, int *h);
/* Decodes, resizes to the model's input and normalises into `input`. Returns the decoded gray
 * image (palloc'd) for callers that draw on it. */
float *cxr_pg_prepare_input(bytea *image, const cxr_model *m, float *input, int *w, int *h);
/* Resizes a decoded gray image (w x h) to side x side; scratch bounded by the larger of the two. */
void cxr_pg_resize(const float *gray, int w, int h, float *out, int side);
void cxr_pg_use_threads(int n);
/* A side x side real[] (lower bounds 1), for images and attention maps. */
ArrayType *cxr_pg_grid_array(const float *values, int side);

#endif

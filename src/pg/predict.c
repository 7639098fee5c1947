/* covid_predict, attention_map, attention_overlay: decode once, run the cached model once, in a
 * memory context of its own that is deleted before returning (flat memory over many rows). */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "cxr_pg.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct {
    cxr_cached_model *cm;
    float logit;
    float *gray; /* decoded image, in the call's context */
    int w, h;
} scored;

/* Every scoring function exists by model name (STABLE) and by model id (IMMUTABLE). */
#define BY_NAME_AND_BY_ID(sqlname, impl)                                                          \
    PG_FUNCTION_INFO_V1(sqlname##_by_name);                                                        \
    Datum sqlname##_by_name(PG_FUNCTION_ARGS) { return impl(fcinfo, false); }                      \
    PG_FUNCTION_INFO_V1(sqlname##_by_id);                                                          \
    Datum sqlname##_by_id(PG_FUNCTION_ARGS) { return impl(fcinfo, true); }

static cxr_cached_model *
model_arg(FunctionCallInfo fcinfo, int argno, bool by_id)
{
    if (by_id)
        return cxr_pg_model_by_id(PG_GETARG_INT64(argno));
    return cxr_pg_model_by_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
}

static void
score(bytea *image, cxr_cached_model *cm, scored *out)
{
    cxr_pg_use_threads(cxr_scoring_threads);
    out->cm = cm;
    out->gray = cxr_pg_prepare_input(image, cm->model, cm->input, &out->w, &out->h);
    CHECK_FOR_INTERRUPTS();
    out->logit = cxr_model_forward(cm->model, cm->input);
    cxr_pg_check_core_interrupt();
}

static MemoryContext
call_context(void)
{
    return AllocSetContextCreate(CurrentMemoryContext, "cxr_attn scoring",
                                 ALLOCSET_DEFAULT_SIZES);
}

static Datum
predict(FunctionCallInfo fcinfo, bool by_id)
{
    bytea *image = PG_GETARG_BYTEA_PP(0);
    cxr_cached_model *cm = model_arg(fcinfo, 1, by_id);
    MemoryContext ctx = call_context(), old = MemoryContextSwitchTo(ctx);
    scored s;
    score(image, cm, &s);
    MemoryContextSwitchTo(old);
    MemoryContextDelete(ctx);
    PG_RETURN_FLOAT8((double)cxr_sigmoid(s.logit));
}

BY_NAME_AND_BY_ID(cxr_covid_predict, predict)

/* The model's attention side for `layer`, or an ERROR that names the layers it has. */
static int
checked_layer(const cxr_model *m, int layer)
{
    if (m->arch->n_taps == 0)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("model architecture %s has no attention layers", m->arch->name)));
    int side = cxr_model_attention_side(m, layer);
    if (side == 0) {
        char layers[32] = "";
        for (int t = 0; t < m->arch->n_taps; t++)
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%d",
                     t ? ", " : "", m->arch->taps[t]);
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("model architecture %s has no attention at layer %d",
                               m->arch->name, layer),
                        errhint("Its attention layers are: %s.", layers)));
    }
    return side;
}

/* Shared start of the attention functions: the layer is checked before any work, then the image
 * is scored in a fresh memory context, which is current on return (the caller deletes it). */
static MemoryContext
score_for_attention(FunctionCallInfo fcinfo, bool by_id, scored *s, int *layer, int *side)
{
    bytea *image = PG_GETARG_BYTEA_PP(0);
    cxr_cached_model *cm = model_arg(fcinfo, 2, by_id);
    *layer = PG_GETARG_INT32(1);
    *side = checked_layer(cm->model, *layer);
    MemoryContext ctx = call_context();
    MemoryContextSwitchTo(ctx);
    score(image, cm, s);
    return ctx;
}

static Datum
attention_map(FunctionCallInfo fcinfo, bool by_id)
{
    MemoryContext old = CurrentMemoryContext;
    scored s;
    int layer, side;
    MemoryContext ctx = score_for_attention(fcinfo, by_id, &s, &layer, &side);
    MemoryContextSwitchTo(old);
    ArrayType *result = cxr_pg_grid_array(cxr_model_attention(s.cm->model, layer), side);
    MemoryContextDelete(ctx);
    PG_RETURN_ARRAYTYPE_P(result);
}

BY_NAME_AND_BY_ID(cxr_attention_map, attention_map)

static Datum
attention_overlay(FunctionCallInfo fcinfo, bool by_id)
{
    MemoryContext old = CurrentMemoryContext;
    scored s;
    int layer, side;
    MemoryContext ctx = score_for_attention(fcinfo, by_id, &s, &layer, &side);
    cxr_cached_model *cm = s.cm;
    /* drawn at the model's input size: the resolution the network saw */
    int n = cm->model->input_size;
    float *gray = palloc(sizeof(float) * n * n);
    cxr_pg_resize(s.gray, s.w, s.h, gray, n);
    /* the map's scratch: the n x n upsampled map and its resize pass */
    size_t scratch = (size_t)n * n + cxr_resize_scratch_floats(side, side, n, n);
    float *tmp = MemoryContextAllocHuge(ctx, sizeof(float) * scratch);
    uint8 *rgb = palloc((size_t)n * n * 3);
    cxr_pg_image_error(cxr_heatmap_overlay(gray, n, n, cxr_model_attention(cm->model, layer), side,
                                           rgb, tmp),
                       "out of memory drawing an overlay");
    uint8 *png = NULL;
    size_t png_len = 0;
    cxr_img_status st = cxr_png_encode_rgb(rgb, n, n, &png, &png_len);
    MemoryContextSwitchTo(old);
    if (st != CXR_IMG_OK)
        cxr_pg_image_error(st, "could not encode the overlay PNG");
    bytea *result = palloc(VARHDRSZ + png_len);
    SET_VARSIZE(result, VARHDRSZ + png_len);
    memcpy(VARDATA(result), png, png_len);
    free(png);
    MemoryContextDelete(ctx);
    PG_RETURN_BYTEA_P(result);
}

BY_NAME_AND_BY_ID(cxr_attention_overlay, attention_overlay)

PG_FUNCTION_INFO_V1(cxr_model_validate);
Datum
cxr_model_validate(PG_FUNCTION_ARGS)
{
    bytea *w = PG_GETARG_BYTEA_PP(0);
    char err[CXR_ERR_LEN];
    TupleDesc tupdesc;
    cxr_model *m = cxr_model_load((const uint8 *)VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), err);
    if (!m)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid model file: %s", err)));
    cxr_jsonb meta = {0};
    cxr_jsonb_begin(&meta, false);
    cxr_jsonb_put_string(&meta, "arch", m->arch->name);
    cxr_jsonb_put_int(&meta, "input_size", m->input_size);
    cxr_jsonb_put_int(&meta, "in_channels", m->in_channels);
    /* float32 values, written with the digits that identify them */
    cxr_jsonb_put_number(&meta, "mean", strtod(psprintf("%.9g", m->mean), NULL));
    cxr_jsonb_put_number(&meta, "std", strtod(psprintf("%.9g", m->std), NULL));
    if (m->arch->n_taps) {
        cxr_jsonb_put_string(&meta, "attention_score", m->attention_scaled ? "scaled_dot" : "dot");
    }
    cxr_jsonb_end(&meta);
    char *arch = pstrdup(m->arch->name);
    cxr_model_free(m);
    if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum values[2] = {CStringGetTextDatum(arch),
                       JsonbPGetDatum(cxr_jsonb_finish(&meta))};
    bool nulls[2] = {0};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

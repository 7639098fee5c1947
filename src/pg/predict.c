/* covid_predict and attention_map: decode once, run the cached model once, in a memory context
 * of its own that is deleted before returning (flat memory over many rows). The pictures
 * (pictures.c) score through cxr_pg_score and cxr_pg_attention_side. */
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

/* Every scoring function exists by model name (STABLE) and by model id or digest (IMMUTABLE). */
cxr_cached_model *
cxr_pg_model_arg(FunctionCallInfo fcinfo, int argno, bool by_id)
{
    if (by_id)
        return cxr_pg_model_by_id(cxr_pg_model_id_arg(fcinfo, argno));
    return cxr_pg_model_by_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
}

float *
cxr_pg_score(bytea *image, cxr_cached_model *cm, float *logit, int *w, int *h)
{
    cxr_pg_use_threads(cxr_scoring_threads);
    float *gray = cxr_pg_prepare_input(image, cm->model, cm->input, w, h);
    CHECK_FOR_INTERRUPTS();
    *logit = cxr_model_forward(cm->model, cm->input);
    cxr_pg_check_core_interrupt();
    return gray;
}

static void
score(bytea *image, cxr_cached_model *cm, scored *out)
{
    out->cm = cm;
    out->gray = cxr_pg_score(image, cm, &out->logit, &out->w, &out->h);
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
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 1, by_id);
    MemoryContext ctx = call_context(), old = MemoryContextSwitchTo(ctx);
    scored s;
    score(image, cm, &s);
    MemoryContextSwitchTo(old);
    MemoryContextDelete(ctx);
    PG_RETURN_FLOAT8((double)cxr_sigmoid(s.logit));
}

BY_NAME_AND_BY_ID(cxr_covid_predict, predict)

void
cxr_pg_require_attention(const cxr_model *m)
{
    if (m->n_taps == 0)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("model architecture %s has no attention layers", m->arch->name),
                        cxr_model_importance(m)
                            ? errhint("feature_importance shows which pixels a %s uses.",
                                      m->arch->name)
                            : 0));
}

const float *
cxr_pg_require_importance(const cxr_model *m)
{
    const float *map = cxr_model_importance(m);
    if (!map)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("model architecture %s has no feature importance map",
                               m->arch->name),
                        m->n_taps ? errhint("attention_map shows where an attention network looks.")
                                  : 0));
    return map;
}

/* feature_importance(model): the forest's impurity importance of every pixel of its grid */
static Datum
feature_importance(FunctionCallInfo fcinfo, bool by_id)
{
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 0, by_id);
    const float *map = cxr_pg_require_importance(cm->model);
    PG_RETURN_ARRAYTYPE_P(cxr_pg_grid_array(map, cm->model->input_size));
}

BY_NAME_AND_BY_ID(cxr_feature_importance, feature_importance)

int
cxr_pg_attention_side(const cxr_model *m, int layer)
{
    cxr_pg_require_attention(m);
    int side = cxr_model_attention_side(m, layer);
    if (side == 0) {
        char layers[32] = "";
        for (int t = 0; t < m->n_taps; t++)
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%d",
                     t ? ", " : "", m->taps[t]);
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
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 2, by_id);
    *layer = PG_GETARG_INT32(1);
    *side = cxr_pg_attention_side(cm->model, *layer);
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

/* The one writer of the JSON the extension stores (model metadata, training metrics and
 * histories): values are pushed through PostgreSQL's jsonb builder, so strings are escaped by
 * PostgreSQL and numbers are valid JSON, whatever a caller's names contain. */
#include "postgres.h"

#include <math.h>

#include "cxr_pg.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

static void
push_scalar(cxr_jsonb *j, JsonbValue *v)
{
    bool array = j->depth > 0 && j->in_array[j->depth - 1];
    j->result = pushJsonbValue(&j->state, array ? WJB_ELEM : WJB_VALUE, v);
}

void
cxr_jsonb_begin(cxr_jsonb *j, bool array)
{
    if (j->depth == 0) {
        j->state = NULL;
        j->result = NULL;
    }
    if (j->depth >= (int)lengthof(j->in_array))
        elog(ERROR, "cxr_jsonb: nesting too deep");
    j->in_array[j->depth++] = array;
    j->result = pushJsonbValue(&j->state, array ? WJB_BEGIN_ARRAY : WJB_BEGIN_OBJECT, NULL);
}

void
cxr_jsonb_end(cxr_jsonb *j)
{
    Assert(j->depth > 0);
    bool array = j->in_array[--j->depth];
    j->result = pushJsonbValue(&j->state, array ? WJB_END_ARRAY : WJB_END_OBJECT, NULL);
}

static void
cxr_jsonb_key(cxr_jsonb *j, const char *key)
{
    JsonbValue v;
    v.type = jbvString;
    v.val.string.val = pstrdup(key);
    v.val.string.len = strlen(key);
    j->result = pushJsonbValue(&j->state, WJB_KEY, &v);
}

static void
cxr_jsonb_string(cxr_jsonb *j, const char *s)
{
    JsonbValue v;
    if (!s) {
        v.type = jbvNull;
    } else {
        v.type = jbvString;
        v.val.string.val = pstrdup(s);
        v.val.string.len = strlen(s);
    }
    push_scalar(j, &v);
}

static void
cxr_jsonb_number(cxr_jsonb *j, double x)
{
    JsonbValue v;
    if (!isfinite(x)) {
        v.type = jbvNull;
    } else {
        v.type = jbvNumeric;
        v.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(x)));
    }
    push_scalar(j, &v);
}

static void
cxr_jsonb_int(cxr_jsonb *j, int64 x)
{
    JsonbValue v;
    v.type = jbvNumeric;
    v.val.numeric = int64_to_numeric(x);
    push_scalar(j, &v);
}

static void
cxr_jsonb_bool(cxr_jsonb *j, bool x)
{
    JsonbValue v;
    v.type = jbvBool;
    v.val.boolean = x;
    push_scalar(j, &v);
}

void
cxr_jsonb_put_string(cxr_jsonb *j, const char *key, const char *s)
{
    cxr_jsonb_key(j, key);
    cxr_jsonb_string(j, s);
}

void
cxr_jsonb_put_number(cxr_jsonb *j, const char *key, double v)
{
    cxr_jsonb_key(j, key);
    cxr_jsonb_number(j, v);
}

void
cxr_jsonb_put_int(cxr_jsonb *j, const char *key, int64 v)
{
    cxr_jsonb_key(j, key);
    cxr_jsonb_int(j, v);
}

void
cxr_jsonb_put_bool(cxr_jsonb *j, const char *key, bool v)
{
    cxr_jsonb_key(j, key);
    cxr_jsonb_bool(j, v);
}

void
cxr_jsonb_put_numbers(cxr_jsonb *j, const char *key, const double *v, int n)
{
    cxr_jsonb_key(j, key);
    cxr_jsonb_begin(j, true);
    for (int i = 0; i < n; i++)
        cxr_jsonb_number(j, v[i]);
    cxr_jsonb_end(j);
}

Jsonb *
cxr_jsonb_finish(cxr_jsonb *j)
{
    if (j->depth != 0 || !j->result)
        elog(ERROR, "cxr_jsonb: unbalanced value");
    return JsonbValueToJsonb(j->result);
}

void
cxr_jsonb_put_jsonb(cxr_jsonb *j, const char *key, Jsonb *value)
{
    JsonbValue v;
    cxr_jsonb_key(j, key);
    if (!value) {
        v.type = jbvNull;
        push_scalar(j, &v);
        return;
    }
    /* a whole jsonb document as the value, copied by the builder */
    v.type = jbvBinary;
    v.val.binary.data = &value->root;
    v.val.binary.len = VARSIZE(value) - VARHDRSZ;
    push_scalar(j, &v);
}

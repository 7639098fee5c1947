/* The registry's writers: validation of every stored model (a trigger), import, deploy, drop,
 * export by id, and the write-right check they share (also callable: cxr_model_name_writable).
 *
 * They are C so that they reach the extension's internal helpers (schema cxr_internal, on which
 * no user has USAGE) by oid rather than by name: a name lookup would run with the caller's
 * rights and fail, and a helper users could name would be one they could call. Their SQL runs
 * with the pinned search_path (internal_query.c), as the caller, so the registry's row-level
 * security still decides what they may write. */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "cxr_pg.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#define INTERNAL_SCHEMA "cxr_internal"

/* A one-argument function of cxr_internal, called by oid (no schema USAGE needed). */
static Datum
call_internal(const char *fname, Oid argtype, Datum arg)
{
    Oid nsp = get_namespace_oid(INTERNAL_SCHEMA, false);
    oidvector *args = buildoidvector(&argtype, 1);
    Oid fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum(fname),
                             PointerGetDatum(args), ObjectIdGetDatum(nsp));
    if (!OidIsValid(fn))
        elog(ERROR, "cxr_attn: %s.%s is missing (ALTER EXTENSION cxr_attn UPDATE?)",
             INTERNAL_SCHEMA, fname);
    return OidFunctionCall1(fn, arg);
}

bool
cxr_pg_name_writable(const char *name)
{
    return DatumGetBool(call_internal("name_writable", TEXTOID, CStringGetTextDatum(name)));
}

static void
require_name_writable(const char *name)
{
    if (!cxr_pg_name_writable(name))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("model name \"%s\" belongs to another role", name),
                        errhint("A name belongs to the roles that own its models and the roles "
                                "that deployed it; choose another name.")));
}

static bool
has_registry_privilege(const char *table, AclMode mode)
{
    Oid rel = get_relname_relid(table, get_namespace_oid(cxr_pg_schema(), false));
    return OidIsValid(rel) && pg_class_aclcheck(rel, GetUserId(), mode) == ACLCHECK_OK;
}

/* Runs one registry statement (pinned search_path) with SPI already connected; returns the
 * first column of its first row as int8, or 0 when there is none. */
static int64
registry_exec(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
    int level = cxr_pg_pin_search_path();
    int rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
    cxr_pg_unpin_search_path(level);
    if (rc != expect)
        elog(ERROR, "registry statement failed: %s", SPI_result_code_string(rc));
    if (SPI_tuptable == NULL || SPI_processed == 0)
        return 0;
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

/* Points name at model id (SPI connected). The whole database scores by name, so a name that
 * moves says so; announce_new also reports a name that pointed at nothing. */
static void
deploy_name(const char *name, int64 id, bool announce_new)
{
    const char *x = cxr_pg_schema();
    Oid t1[1] = {TEXTOID};
    Datum v1[1] = {CStringGetTextDatum(name)};
    int64 old = registry_exec(psprintf("SELECT model_id FROM %s.deployments WHERE name = $1 "
                                       "ORDER BY id DESC LIMIT 1", x),
                              1, t1, v1, SPI_OK_SELECT);
    Oid t2[2] = {TEXTOID, INT8OID};
    Datum v2[2] = {CStringGetTextDatum(name), Int64GetDatum(id)};
    /* deployed_by: the column's default, the current role's id */
    registry_exec(psprintf("INSERT INTO %s.deployments (name, model_id) VALUES ($1, $2)", x), 2,
                  t2, v2, SPI_OK_INSERT);
    if (old && old != id)
        ereport(NOTICE, (errmsg("model name \"%s\" now points at model %lld (was model %lld)",
                                name, (long long)id, (long long)old)));
    else if (!old && announce_new)
        ereport(NOTICE, (errmsg("model name \"%s\" now points at model %lld (was nothing)", name,
                                (long long)id)));
}

int64
cxr_pg_store_model(const char *name, bytea *weights, bool deploy, Jsonb *metrics)
{
    if (name[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("model name and weights must not be null or empty")));
    /* rights first: nothing is parsed for a caller who may not store it */
    if (!has_registry_privilege("models", ACL_INSERT) ||
        (deploy && !has_registry_privilege("deployments", ACL_INSERT)))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied to store models in the cxr_attn registry"),
                        errhint("Storing needs INSERT on cxr.models (and cxr.deployments to deploy).")));
    require_name_writable(name);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    /* the validation trigger parses the file and fills arch and metadata; owner is the
     * column's default, the current role's id */
    Oid types[3] = {TEXTOID, BYTEAOID, JSONBOID};
    Datum values[3] = {CStringGetTextDatum(name), PointerGetDatum(weights),
                       JsonbPGetDatum(metrics)};
    int64 id = registry_exec(psprintf("INSERT INTO %s.models (name, arch, metadata, weights, metrics) "
                                      "VALUES ($1, NULL, NULL, $2, $3) RETURNING id",
                                      cxr_pg_schema()),
                             3, types, values, SPI_OK_INSERT_RETURNING);
    if (deploy)
        deploy_name(name, id, false);
    SPI_finish();
    return id;
}

PG_FUNCTION_INFO_V1(cxr_model_import);
Datum
cxr_model_import(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("model name and weights must not be null or empty")));
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    bool deploy = !PG_ARGISNULL(2) && PG_GETARG_BOOL(2);
    Jsonb *metrics = PG_ARGISNULL(3)
        ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))
        : PG_GETARG_JSONB_P(3);
    PG_RETURN_INT64(cxr_pg_store_model(name, PG_GETARG_BYTEA_P(1), deploy, metrics));
}

PG_FUNCTION_INFO_V1(cxr_model_deploy);
Datum
cxr_model_deploy(PG_FUNCTION_ARGS)
{
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    int64 id = PG_GETARG_INT64(1);
    require_name_writable(name);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    Oid t[1] = {INT8OID};
    Datum v[1] = {Int64GetDatum(id)};
    if (!registry_exec(psprintf("SELECT id FROM %s.models WHERE id = $1", cxr_pg_schema()), 1, t,
                       v, SPI_OK_SELECT))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model %lld does not exist", (long long)id)));
    deploy_name(name, id, true);
    SPI_finish();
    PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(cxr_model_drop);
Datum
cxr_model_drop(PG_FUNCTION_ARGS)
{
    char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    require_name_writable(name);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    const char *x = cxr_pg_schema();
    Oid t[1] = {TEXTOID};
    Datum v[1] = {CStringGetTextDatum(name)};
    registry_exec(psprintf("DELETE FROM %s.deployments WHERE name = $1", x), 1, t, v,
                  SPI_OK_DELETE);
    registry_exec(psprintf("DELETE FROM %s.models WHERE name = $1", x), 1, t, v, SPI_OK_DELETE);
    uint64 n = SPI_processed;
    SPI_finish();
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model \"%s\" does not exist", name)));
    PG_RETURN_INT64((int64)n);
}

/* Whether the caller may store a model under a name (what the registry's row security will
 * decide), so that long work such as federated training can ask before it starts. */
PG_FUNCTION_INFO_V1(cxr_model_name_writable);
Datum
cxr_model_name_writable(PG_FUNCTION_ARGS)
{
    PG_RETURN_BOOL(cxr_pg_name_writable(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

PG_FUNCTION_INFO_V1(cxr_model_export_by_id);
Datum
cxr_model_export_by_id(PG_FUNCTION_ARGS)
{
    int64 id = PG_GETARG_INT64(0);
    bool isnull;
    Datum w = cxr_pg_query_one(psprintf("SELECT weights FROM %s.models WHERE id = $1",
                                        cxr_pg_schema()),
                               INT8OID, Int64GetDatum(id), &isnull, false, -1);
    if (isnull)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model %lld does not exist", (long long)id),
                        errhint("SELECT id, name FROM cxr.model_list lists the stored models.")));
    PG_RETURN_DATUM(w);
}

PG_FUNCTION_INFO_V1(cxr_model_export_by_name);
Datum
cxr_model_export_by_name(PG_FUNCTION_ARGS)
{
    /* resolving raises when the name points at nothing, saying why */
    int64 id = cxr_pg_resolve_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    return DirectFunctionCall1(cxr_model_export_by_id, Int64GetDatum(id));
}

/* The model file's architecture and metadata, or an ERROR saying what is wrong with it. */
static void
validate_model(bytea *w, char **arch, Jsonb **metadata)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_load((const uint8 *)VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), err);
    if (!m)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid model file: %s", err)));
    cxr_jsonb meta = {0};
    cxr_jsonb_begin(&meta, false);
    cxr_jsonb_put_string(&meta, "arch", m->arch->name);
    cxr_jsonb_put_int(&meta, "input_size", m->input_size);
    /* a forest reads gray levels on its grid: no channels to normalise, but trees */
    if (cxr_model_one_pass(m))
        cxr_jsonb_put_int(&meta, "n_estimators", cxr_model_fit_units(m));
    else
        cxr_jsonb_put_int(&meta, "in_channels", m->in_channels);
    /* float32 values, written with the digits that identify them: one number when every
     * channel shares it (as the model file writes it), else one per channel */
    for (int k = 0; k < 2 && !cxr_model_one_pass(m); k++) {
        const float *v = k ? m->std : m->mean;
        double d[CXR_MAX_CHANNELS] = {0};
        bool same = true;
        for (int c = 0; c < m->in_channels; c++) {
            d[c] = strtod(psprintf("%.9g", v[c]), NULL);
            same = same && v[c] == v[0];
        }
        if (same)
            cxr_jsonb_put_number(&meta, k ? "std" : "mean", d[0]);
        else
            cxr_jsonb_put_numbers(&meta, k ? "std" : "mean", d, m->in_channels);
    }
    if (m->n_taps)
        cxr_jsonb_put_string(&meta, "attention_score", m->attention_scaled ? "scaled_dot" : "dot");
    cxr_jsonb_end(&meta);
    *arch = pstrdup(m->arch->name);
    cxr_model_free(m);
    *metadata = cxr_jsonb_finish(&meta);
}

PG_FUNCTION_INFO_V1(cxr_model_validate);
Datum
cxr_model_validate(PG_FUNCTION_ARGS)
{
    TupleDesc tupdesc;
    char *arch;
    Jsonb *metadata;
    validate_model(PG_GETARG_BYTEA_PP(0), &arch, &metadata);
    if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    Datum values[2] = {CStringGetTextDatum(arch), JsonbPGetDatum(metadata)};
    bool nulls[2] = {0};
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

static int
column(TupleDesc desc, const char *name)
{
    int n = SPI_fnumber(desc, name);
    if (n <= 0)
        elog(ERROR, "cxr.models has no column \"%s\"", name);
    return n;
}

/* BEFORE INSERT on cxr.models: every way of storing a model (import, cxr_train, a direct INSERT,
 * a restore) passes here. The rights the row-security policy checks come first, so a file is
 * parsed only for a caller who may store it (roles that bypass row security, such as a restore,
 * skip this); then the file must load, arch and metadata become what the file says, and only
 * the extension's own script may mark a model as shipped (pg_dump leaves shipped models out). */
PG_FUNCTION_INFO_V1(cxr_models_validate);
Datum
cxr_models_validate(PG_FUNCTION_ARGS)
{
    TriggerData *td = (TriggerData *)fcinfo->context;
    if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
        !TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("models_validate() must run as a BEFORE INSERT row trigger")));
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple row = td->tg_trigtuple;
    bool isnull;
    int c_name = column(desc, "name"), c_owner = column(desc, "owner"),
        c_weights = column(desc, "weights"), c_arch = column(desc, "arch"),
        c_metadata = column(desc, "metadata"), c_metrics = column(desc, "metrics");

    if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED) {
        Datum owner = heap_getattr(row, c_owner, desc, &isnull);
        bool own = !isnull && DatumGetObjectId(owner) == GetUserId();
        Datum name = heap_getattr(row, c_name, desc, &isnull);
        if (!own || isnull || !cxr_pg_name_writable(TextDatumGetCString(name)))
            ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                            errmsg("new row violates row-level security policy for table \"models\""),
                            errdetail("A role stores models under its own id, in names it owns.")));
    }
    Datum weights = heap_getattr(row, c_weights, desc, &isnull);
    if (isnull)
        return PointerGetDatum(row); /* the NOT NULL constraint says so */
    char *arch;
    Jsonb *metadata;
    validate_model(DatumGetByteaPP(weights), &arch, &metadata);
    Datum given = heap_getattr(row, c_arch, desc, &isnull);
    if (!isnull && strcmp(TextDatumGetCString(given), arch) != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("arch \"%s\" does not match the model file (%s)",
                               TextDatumGetCString(given), arch)));
    Datum metrics = heap_getattr(row, c_metrics, desc, &isnull);
    if (!isnull &&
        DatumGetBool(DirectFunctionCall2(jsonb_exists, metrics, CStringGetTextDatum("shipped"))) &&
        !(creating_extension && CurrentExtensionObject == get_extension_oid("cxr_attn", true)))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("the metrics key \"shipped\" is reserved for the model shipped with cxr_attn")));
    int cols[2] = {c_arch, c_metadata};
    Datum values[2] = {CStringGetTextDatum(arch), JsonbPGetDatum(metadata)};
    bool nulls[2] = {false, false};
    return PointerGetDatum(heap_modify_tuple_by_cols(row, desc, 2, cols, values, nulls));
}

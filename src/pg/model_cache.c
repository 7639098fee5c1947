/* Per-backend model cache. Models are loaded once per backend and kept by id (model rows never
 * change); names are resolved through the deployment log and cached too. Any change to the
 * registry sends a relcache invalidation for cxr.deployments (cxr_registry_changed), which marks
 * the cache stale in every backend; it is flushed at the next lookup, never in the middle of a
 * call that is using a model. */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "commands/extension.h"
#include "cxr_pg.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

typedef struct {
    char *name;
    int64 id;
} name_entry;

/* Entries are allocated one by one (their addresses never move); the array holds pointers. */
static cxr_cached_model **models;
static int n_models, cap_models;
static name_entry *names;
static int n_names, cap_names;
/* content digests (SHA-256 of the weights) resolved to a local row id */
typedef struct {
    uint8 digest[CXR_DIGEST_LEN];
    int64 id;
} digest_entry;
static digest_entry *digests;
static int n_digests, cap_digests;
static bool cache_stale;
static void check_read_privilege(void);
static char *schema_name;
static Oid deployments_relid = InvalidOid;
static Oid models_relid = InvalidOid;

static void
registry_invalidated(Datum arg, Oid relid)
{
    if (relid == InvalidOid || relid == deployments_relid)
        cache_stale = true;
}

void
cxr_pg_cache_init(void)
{
    CacheRegisterRelcacheCallback(registry_invalidated, (Datum)0);
}

const char *
cxr_pg_schema(void)
{
    if (!schema_name) {
        /* the control file fixes the schema (relocatable = false, schema = cxr) */
        if (!OidIsValid(get_extension_oid("cxr_attn", true)))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("extension cxr_attn is not installed in this database")));
        Oid nsp = get_namespace_oid("cxr", false);
        schema_name = MemoryContextStrdup(TopMemoryContext, "cxr");
        deployments_relid = get_relname_relid("deployments", nsp);
        models_relid = get_relname_relid("models", nsp);
    }
    return schema_name;
}

static void
free_entry(cxr_cached_model *cm)
{
    cxr_model_free(cm->model);
    free(cm->input);
    pfree(cm);
}

/* Held entries leave the cache but stay alive until their last release. */
static void
flush_if_stale(void)
{
    if (!cache_stale)
        return;
    for (int i = 0; i < n_models; i++) {
        if (models[i]->holds > 0)
            models[i]->flushed = true;
        else
            free_entry(models[i]);
    }
    for (int i = 0; i < n_names; i++)
        pfree(names[i].name);
    n_models = n_names = n_digests = 0;
    cache_stale = false;
}

static void
release_hold(void *arg)
{
    cxr_cached_model *cm = arg;
    if (--cm->holds == 0 && cm->flushed)
        free_entry(cm);
}

void
cxr_pg_model_hold(cxr_cached_model *cm, MemoryContext until)
{
    MemoryContextCallback *cb = MemoryContextAlloc(until, sizeof *cb);
    cb->func = release_hold;
    cb->arg = cm;
    cm->holds++;
    MemoryContextRegisterResetCallback(until, cb);
}

int64
cxr_pg_resolve_name(const char *name)
{
    bool isnull;
    for (int i = 0; i < n_names; i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].id;
    char *sql = psprintf("SELECT model_id FROM %s.current_models WHERE name = $1", cxr_pg_schema());
    Datum d = cxr_pg_query_one(sql, TEXTOID, CStringGetTextDatum(name), &isnull, true, 8);
    if (isnull) {
        /* say why: rows stored under the name but none deployed, or no row at all */
        bool none;
        Datum ids = cxr_pg_query_one(psprintf("SELECT string_agg(id::text, ', ' ORDER BY id) "
                                              "FROM %s.models WHERE name = $1", cxr_pg_schema()),
                                     TEXTOID, CStringGetTextDatum(name), &none, false, -1);
        if (!none) {
            char *list = TextDatumGetCString(ids);
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("model \"%s\" is not deployed", name),
                            errdetail("Model rows stored under this name: %s; none is deployed.", list),
                            errhint("Deploy one with SELECT cxr.cxr_model_deploy('%s', <id>), or "
                                    "pass a model id instead of the name.", name)));
        }
        if (strcmp(name, "default") == 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("there is no default model"),
                            errdetail("No model is deployed under the name \"default\": this "
                                      "build shipped none, or it was dropped."),
                            errhint("Pass a model name, or import or train one under the name "
                                    "\"default\".")));
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model \"%s\" does not exist", name),
                        errhint("SELECT id, name FROM cxr.model_list lists the stored models.")));
    }
    if (n_names == cap_names) {
        cap_names = cap_names ? cap_names * 2 : 8;
        names = names ? repalloc(names, sizeof(name_entry) * cap_names)
                      : MemoryContextAlloc(TopMemoryContext, sizeof(name_entry) * cap_names);
    }
    names[n_names].name = MemoryContextStrdup(TopMemoryContext, name);
    names[n_names].id = DatumGetInt64(d);
    return names[n_names++].id;
}

/* A model's identity across servers is the SHA-256 of its weights (cxr.models.digest): the
 * same bytes imported anywhere have it. Any local row holding those bytes computes the same. */
int64
cxr_pg_resolve_digest(bytea *digest)
{
    bool isnull;
    size_t len = VARSIZE_ANY_EXHDR(digest);
    const uint8 *d = (const uint8 *)VARDATA_ANY(digest);
    if (len != CXR_DIGEST_LEN)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("a model digest is %d bytes (SHA-256), not %zu", CXR_DIGEST_LEN, len),
                        errhint("SELECT cxr.cxr_model_digest('name') gives a model's digest.")));
    for (int i = 0; i < n_digests; i++)
        if (memcmp(digests[i].digest, d, CXR_DIGEST_LEN) == 0)
            return digests[i].id;
    char *sql = psprintf("SELECT min(id) FROM %s.models WHERE digest = $1", cxr_pg_schema());
    Datum id = cxr_pg_query_one(sql, BYTEAOID, PointerGetDatum(digest), &isnull, true, 8);
    if (isnull) {
        char hex[2 * CXR_DIGEST_LEN + 1];
        for (int i = 0; i < CXR_DIGEST_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("no model with digest \\x%s is stored on this server", hex),
                        errhint("Import the model here, or distribute it from the server that "
                                "has it with cxr.cxr_model_distribute.")));
    }
    /* the lookup ran a query: a change it saw must not flush the entry made from it */
    flush_if_stale();
    if (n_digests == cap_digests) {
        cap_digests = cap_digests ? cap_digests * 2 : 8;
        digests = digests ? repalloc(digests, sizeof(digest_entry) * cap_digests)
                          : MemoryContextAlloc(TopMemoryContext, sizeof(digest_entry) * cap_digests);
    }
    memcpy(digests[n_digests].digest, d, CXR_DIGEST_LEN);
    digests[n_digests].id = DatumGetInt64(id);
    return digests[n_digests++].id;
}

/* A model argument given by row id (bigint) or by digest (bytea): the local row id. */
int64
cxr_pg_model_id_arg(FunctionCallInfo fcinfo, int argno)
{
    if (get_fn_expr_argtype(fcinfo->flinfo, argno) == BYTEAOID) {
        check_read_privilege();
        flush_if_stale();
        return cxr_pg_resolve_digest(PG_GETARG_BYTEA_PP(argno));
    }
    return PG_GETARG_INT64(argno);
}

/* Loads the weights of model `id` into a core model (malloc'd). */
static cxr_model *
load_model(int64 id)
{
    bool isnull;
    char err[CXR_ERR_LEN];
    char *sql = psprintf("SELECT weights FROM %s.models WHERE id = $1", cxr_pg_schema());
    Datum d = cxr_pg_query_one(sql, INT8OID, Int64GetDatum(id), &isnull, false, -1);
    if (isnull)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model %lld does not exist", (long long)id)));
    bytea *w = DatumGetByteaPP(d);
    cxr_model *m = cxr_model_load((const uint8 *)VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), err);
    if (!m)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("stored model %lld cannot be loaded: %s", (long long)id, err)));
    return m;
}

/* Cached models must not outlive the caller's right to read them (SET ROLE, REVOKE). */
static void
check_read_privilege(void)
{
    cxr_pg_schema();
    if (pg_class_aclcheck(models_relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK ||
        pg_class_aclcheck(deployments_relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for the cxr_attn model registry"),
                        errhint("Scoring needs SELECT on cxr.models and cxr.deployments, and by model name on cxr.current_models too.")));
}

cxr_cached_model *
cxr_pg_model_by_id(int64 id)
{
    check_read_privilege();
    flush_if_stale();
    for (int i = 0; i < n_models; i++)
        if (models[i]->id == id)
            return models[i];
    cxr_model *m = load_model(id);
    /* loading ran a query: a change it saw must not flush the entry made from it */
    flush_if_stale();
    /* model rows never change: the cached copy computes the fast way (Winograd weights and the
     * 1x1 layers' laid-out copies: 21 MiB beyond alexnet_attn2's 15 MiB of parameters, 89 MiB
     * beyond resnet50's 90, bench/run.sh); out of memory, it scores unprepared */
    cxr_model_prepare_inference(m);
    float *input = malloc(sizeof(float) * m->input_size * m->input_size);
    if (!input) {
        cxr_model_free(m);
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    }
    if (n_models == cap_models) {
        int cap = cap_models ? cap_models * 2 : 4;
        cxr_cached_model **grown = models ? repalloc(models, sizeof(*models) * cap)
                                          : MemoryContextAlloc(TopMemoryContext,
                                                               sizeof(*models) * cap);
        models = grown;
        cap_models = cap;
    }
    cxr_cached_model *cm = MemoryContextAllocZero(TopMemoryContext, sizeof *cm);
    cm->id = id;
    cm->model = m;
    cm->input = input;
    models[n_models++] = cm;
    return cm;
}

cxr_cached_model *
cxr_pg_model_by_name(const char *name)
{
    check_read_privilege();
    flush_if_stale();
    return cxr_pg_model_by_id(cxr_pg_resolve_name(name));
}

cxr_model *
cxr_pg_model_copy(int64 id)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_clone(cxr_pg_model_by_id(id)->model, err);
    if (!m)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("%s", err)));
    return m;
}

/* The id of the model a name points at now: for the by-id functions, and every error a name
 * that resolves to nothing gets. */
PG_FUNCTION_INFO_V1(cxr_model_id);
Datum
cxr_model_id(PG_FUNCTION_ARGS)
{
    check_read_privilege();
    flush_if_stale();
    PG_RETURN_INT64(cxr_pg_resolve_name(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/* Every backend marks its cache stale when the transaction commits. */
static void
invalidate_registry(void)
{
    cxr_pg_schema();
    if (OidIsValid(deployments_relid))
        CacheInvalidateRelcacheByRelid(deployments_relid);
}

PG_FUNCTION_INFO_V1(cxr_registry_changed);
Datum
cxr_registry_changed(PG_FUNCTION_ARGS)
{
    invalidate_registry();
    PG_RETURN_VOID();
}

/* The registry's statement triggers: a trigger function cannot be called from SQL, so the
 * invalidation is not open to PUBLIC. */
PG_FUNCTION_INFO_V1(cxr_registry_changed_trigger);
Datum
cxr_registry_changed_trigger(PG_FUNCTION_ARGS)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("registry_changed_trigger() must be called as a trigger")));
    invalidate_registry();
    return PointerGetDatum(NULL);
}

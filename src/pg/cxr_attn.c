/* Module entry: GUCs, cache registration, kernel report. */
#include "postgres.h"

#include <limits.h>
#include <unistd.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "cxr_pg.h"
#include "cxr_winograd.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "catalog/pg_parameter_acl.h"
#include "commands/extension.h"
#include "access/xact.h"
#include "utils/acl.h"

PG_MODULE_MAGIC;

int cxr_max_image_pixels = 40000000;
int cxr_scoring_threads = 1;
int cxr_training_threads = 1;
int cxr_training_memory_mb = 2048;

void _PG_init(void);

/* Limits that protect the server (image size, training memory, threads) are set by the server's
 * configuration or by a role allowed to (a superuser, or GRANT SET ON PARAMETER). Any role may
 * lower them for itself, never raise them above the configured value: that value is the
 * ceiling. The check runs wherever a value comes from: SET, set_config, ALTER ROLE/DATABASE SET,
 * a function's SET clause, the connection's options. */
typedef struct {
    const char *name;
    int ceiling; /* the value the server's configuration gives */
} server_limit;

static server_limit limit_pixels = {"cxr_attn.max_image_pixels", 0};
static server_limit limit_threads = {"cxr_attn.training_threads", 0};
static server_limit limit_memory = {"cxr_attn.training_memory", 0};
static server_limit limit_scoring = {"cxr_attn.scoring_threads", 0};

static bool
may_raise(const char *name)
{
    /* outside a transaction the catalogs cannot be read: only lowering is allowed */
    if (!IsTransactionState())
        return false;
    return superuser() || pg_parameter_aclcheck(name, GetUserId(), ACL_SET) == ACLCHECK_OK;
}

static bool
check_limit(server_limit *l, int *newval, GucSource source)
{
    if (source <= PGC_S_ARGV) {
        /* the defaults, the environment, postgresql.conf (ALTER SYSTEM) and the command line */
        l->ceiling = *newval;
        return true;
    }
    if (*newval <= l->ceiling || may_raise(l->name))
        return true;
    GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
    GUC_check_errmsg("permission denied to raise %s above the server's setting (%d)", l->name,
                     l->ceiling);
    GUC_check_errhint("Lowering it is allowed. A superuser raises it in postgresql.conf, with "
                      "ALTER SYSTEM, or grants the right with GRANT SET ON PARAMETER %s.",
                      l->name);
    return false;
}

static bool
check_pixels(int *newval, void **extra, GucSource source)
{
    return check_limit(&limit_pixels, newval, source);
}

static bool
check_training_threads(int *newval, void **extra, GucSource source)
{
    return check_limit(&limit_threads, newval, source);
}

static bool
check_training_memory(int *newval, void **extra, GucSource source)
{
    return check_limit(&limit_memory, newval, source);
}

static bool
check_scoring_threads(int *newval, void **extra, GucSource source)
{
    return check_limit(&limit_scoring, newval, source);
}

void
_PG_init(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int default_training_threads = cores > 0 ? (int)(cores > 64 ? 64 : cores) : 1;

    DefineCustomIntVariable("cxr_attn.max_image_pixels",
                            "Largest image (width x height) that will be decoded.",
                            "Checked before any memory is allocated for the pixels; every "
                            "buffer of an image's decoding and resizing is bounded by it. Roles "
                            "may lower it; raising it needs a superuser.",
                            &cxr_max_image_pixels, 40000000, 1, INT_MAX, PGC_USERSET, 0,
                            check_pixels, NULL, NULL);
    DefineCustomIntVariable("cxr_attn.scoring_threads",
                            "BLAS threads one backend uses for scoring.",
                            "Scoring runs in many backends at once, so the default is 1. Roles "
                            "may lower it; raising it needs a superuser.",
                            &cxr_scoring_threads, 1, 1, 64, PGC_USERSET, 0, check_scoring_threads,
                            NULL, NULL);
    DefineCustomIntVariable("cxr_attn.training_threads",
                            "BLAS threads cxr_train uses.",
                            "Training is one heavy call; the default is the machine's cores. "
                            "Roles may lower it; raising it needs a superuser.",
                            &cxr_training_threads, default_training_threads, 1, 64, PGC_USERSET,
                            0, check_training_threads, NULL, NULL);
    DefineCustomIntVariable("cxr_attn.training_memory",
                            "Memory cxr_train and cxr_evaluate may use: the decoded images, and "
                            "for training the network's activations and optimiser state.",
                            "Checked before anything is allocated. Roles may lower it; raising "
                            "it needs a superuser.",
                            &cxr_training_memory_mb, 2048, 1, INT_MAX / 2, PGC_USERSET,
                            GUC_UNIT_MB, check_training_memory, NULL, NULL);
    MarkGUCPrefixReserved("cxr_attn");
    cxr_pg_cache_init();
    cxr_pg_interrupts_init();
}

/* current_user as a role id (what the registry stores as owners). */
PG_FUNCTION_INFO_V1(cxr_current_role);
Datum
cxr_current_role(PG_FUNCTION_ARGS)
{
    PG_RETURN_OID(GetUserId());
}

/* 0.3.0's cxr_in_extension_script(): the 0.2.0 -> 0.3.0 upgrade script still creates it (0.4.0
 * drops it; the validation trigger tests the same thing in C). */
PG_FUNCTION_INFO_V1(cxr_in_extension_script);
Datum
cxr_in_extension_script(PG_FUNCTION_ARGS)
{
    PG_RETURN_BOOL(creating_extension &&
                   CurrentExtensionObject == get_extension_oid("cxr_attn", true));
}

PG_FUNCTION_INFO_V1(cxr_kernels);
Datum
cxr_kernels(PG_FUNCTION_ARGS)
{
    cxr_pg_use_threads(cxr_scoring_threads);
    PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s; %s; %s; %s; %d thread(s) for scoring, %d for training",
                                              cxr_blas_describe(), cxr_winograd_describe(),
                                              cxr_conv_gray_describe(), cxr_dot_describe(),
                                              cxr_blas_get_threads(), cxr_training_threads)));
}

/* The shipped default model's bytes (installed beside the extension's scripts), or NULL when
 * this build ships none. Read by CREATE EXTENSION to register it as "default". */
PG_FUNCTION_INFO_V1(cxr_shipped_default);
Datum
cxr_shipped_default(PG_FUNCTION_ARGS)
{
    char share[MAXPGPATH], path[MAXPGPATH];
    get_share_path(my_exec_path, share);
    snprintf(path, sizeof path, "%s/extension/cxr_attn_default.safetensors", share);
    FILE *f = AllocateFile(path, PG_BINARY_R);
    if (!f)
        PG_RETURN_NULL();
    if (fseek(f, 0, SEEK_END) != 0) {
        FreeFile(f);
        PG_RETURN_NULL();
    }
    long len = ftell(f);
    if (len <= 0 || len > MaxAllocSize - VARHDRSZ || fseek(f, 0, SEEK_SET) != 0) {
        FreeFile(f);
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("cannot read \"%s\"", path)));
    }
    bytea *b = palloc(VARHDRSZ + len);
    SET_VARSIZE(b, VARHDRSZ + len);
    size_t got = fread(VARDATA(b), 1, (size_t)len, f);
    FreeFile(f);
    if (got != (size_t)len)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("cannot read \"%s\"", path)));
    PG_RETURN_BYTEA_P(b);
}

/* Module entry: GUCs, cache registration, kernel report. */
#include "postgres.h"

#include <limits.h>
#include <unistd.h>

#include "cxr_blas.h"
#include "cxr_pg.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

int cxr_max_image_pixels = 40000000;
int cxr_scoring_threads = 1;
int cxr_training_threads = 1;
int cxr_training_memory_mb = 2048;

void _PG_init(void);

void
_PG_init(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cxr_training_threads = cores > 0 ? (int)(cores > 64 ? 64 : cores) : 1;

    DefineCustomIntVariable("cxr_attn.max_image_pixels",
                            "Largest image (width x height) that will be decoded.",
                            "Checked before any memory is allocated for the pixels.",
                            &cxr_max_image_pixels, 40000000, 1, INT_MAX, PGC_USERSET, 0, NULL,
                            NULL, NULL);
    DefineCustomIntVariable("cxr_attn.scoring_threads",
                            "BLAS threads one backend uses for scoring.",
                            "Scoring runs in many backends at once, so the default is 1.",
                            &cxr_scoring_threads, 1, 1, 64, PGC_USERSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("cxr_attn.training_threads",
                            "BLAS threads cxr_train uses.",
                            "Training is one heavy call; the default is the machine's cores.",
                            &cxr_training_threads, cxr_training_threads, 1, 64, PGC_USERSET, 0,
                            NULL, NULL, NULL);
    DefineCustomIntVariable("cxr_attn.training_memory",
                            "Memory cxr_train may use to hold decoded training images.",
                            "Images are kept at the model's input size as 8-bit gray.",
                            &cxr_training_memory_mb, 2048, 1, INT_MAX / 2, PGC_USERSET,
                            GUC_UNIT_MB, NULL, NULL, NULL);
    MarkGUCPrefixReserved("cxr_attn");
    cxr_pg_cache_init();
}

PG_FUNCTION_INFO_V1(cxr_kernels);
Datum
cxr_kernels(PG_FUNCTION_ARGS)
{
    cxr_pg_use_threads(cxr_scoring_threads);
    PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s; %d thread(s) for scoring, %d for training",
                                              cxr_blas_describe(), cxr_blas_get_threads(),
                                              cxr_training_threads)));
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

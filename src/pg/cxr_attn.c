/* Module entry: GUCs, cache registration, kernel report. */
#include "postgres.h"

#include <limits.h>
#include <unistd.h>

#include "cxr_blas.h"
#include "cxr_pg.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

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

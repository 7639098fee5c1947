/* PostgreSQL glue shared declarations. The numerical core (src/core) never sees postgres.h;
 * everything here turns its return codes into ereport()s. */
#ifndef CXR_PG_H
#define CXR_PG_H

#include "postgres.h"

#include "utils/array.h"

#include "cxr_image.h"
#include "cxr_model.h"

/* GUCs */
extern int cxr_max_image_pixels;
extern int cxr_scoring_threads;
extern int cxr_training_threads;
extern int cxr_training_memory_mb;

/* model_cache.c: per-backend cache of loaded models, keyed by model id. */
typedef struct cxr_cached_model {
    int64 id;
    cxr_model *model;
    float *input; /* input_size^2 floats, reused by every call */
} cxr_cached_model;

cxr_cached_model *cxr_pg_model_by_id(int64 id);
cxr_cached_model *cxr_pg_model_by_name(const char *name);
/* A private copy of a registered model's weights (for training from it). */
cxr_model *cxr_pg_model_copy(const char *name);
void cxr_pg_cache_init(void);
const char *cxr_pg_schema(void);

/* images.c */
void cxr_pg_image_error(cxr_img_status st, const char *msg);
/* Decodes a PNG to gray [0,1] (palloc'd, *w x *h) in the current memory context. */
float *cxr_pg_decode(bytea *png, int *w, int *h);
/* Decodes, resizes to the model's input and normalises into `input`. Returns the decoded gray
 * image (palloc'd) for callers that draw on it. */
float *cxr_pg_prepare_input(bytea *png, const cxr_model *m, float *input, int *w, int *h);
void cxr_pg_use_threads(int n);
/* A side x side real[] (lower bounds 1), for images and attention maps. */
ArrayType *cxr_pg_grid_array(const float *values, int side);

#endif

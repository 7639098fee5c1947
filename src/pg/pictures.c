/* Pictures a person can read: attention_overlay (one X-ray at its own resolution, with a colour
 * scale and an optional caption), attention_figure (several X-rays side by side, each with every
 * attention layer), cxr_training_curve (a model's losses and accuracies per epoch).
 *
 * The core draws into a canvas (cxr_draw.h) whose size is known before anything is decoded: a
 * figure is refused up front when it would exceed cxr_attn.max_image_pixels; an overlay is the
 * image's own pixels (already bounded when decoded) plus a caption band of a few dozen rows. */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "cxr_draw.h"
#include "cxr_interrupt.h"
#include "cxr_pg.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* Overlays keep the X-ray's own resolution up to this side; larger X-rays are drawn scaled down
 * to it (memory: about 18 bytes a drawn pixel, and PNG's own limit is a million rows). */
#define OVERLAY_MAX_SIDE 4096
#define FIGURE_MAX_IMAGES 64
#define FIGURE_MIN_PANEL 64
#define FIGURE_MAX_PANEL 1024
#define CURVE_MAX_EPOCHS 1000000

/* A canvas of w x h in the current memory context; an ERROR when it cannot be allocated. */
static void
canvas_alloc(cxr_canvas *c, int w, int h, const char *what)
{
    size_t bytes = cxr_canvas_bytes(w, h);
    if (bytes == 0 || bytes == SIZE_MAX || bytes > MaxAllocHugeSize)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("%s of %d x %d pixels is too large", what, w, h)));
    c->w = w;
    c->h = h;
    c->rgb = MemoryContextAllocHuge(CurrentMemoryContext, bytes);
}

static float *
scratch_alloc(size_t floats)
{
    if (floats == SIZE_MAX || floats > MaxAllocHugeSize / sizeof(float))
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a picture this large needs more memory than one allocation allows")));
    return MemoryContextAllocHuge(CurrentMemoryContext, Max(floats, 1) * sizeof(float));
}

/* The canvas as PNG bytes, allocated in ctx. */
static bytea *
png_bytea(const cxr_canvas *c, MemoryContext ctx)
{
    uint8 *png = NULL;
    size_t len = 0;
    cxr_img_status st = cxr_png_encode_rgb(c->rgb, c->w, c->h, &png, &len);
    if (st != CXR_IMG_OK)
        cxr_pg_image_error(st, "could not encode the picture as PNG");
    if (len > MaxAllocSize - VARHDRSZ) {
        free(png);
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("the picture's PNG (%zu bytes) is larger than a bytea", len)));
    }
    bytea *result = MemoryContextAlloc(ctx, VARHDRSZ + len);
    SET_VARSIZE(result, VARHDRSZ + len);
    memcpy(VARDATA(result), png, len);
    free(png);
    return result;
}

/* How a caption names the model: by the name the caller used, or by row id. */
static char *
model_label(FunctionCallInfo fcinfo, int argno, bool by_id, const cxr_cached_model *cm)
{
    if (by_id)
        return psprintf("model %lld, %s", (long long)cm->id, cm->model->arch->name);
    return psprintf("model \"%s\" (id %lld), %s", text_to_cstring(PG_GETARG_TEXT_PP(argno)),
                    (long long)cm->id, cm->model->arch->name);
}

static MemoryContext
picture_context(void)
{
    return AllocSetContextCreate(CurrentMemoryContext, "cxr_attn picture", ALLOCSET_DEFAULT_SIZES);
}

/* The rectangle an image of w x h fills in a square of side `panel`, keeping its aspect (the
 * core's rule for figure panels, cxr_draw.h). */
static void
fitted(int w, int h, int panel, int *pw, int *ph)
{
    if (w >= h) {
        *pw = panel;
        *ph = Max(1, (int)lround((double)panel * h / w));
    } else {
        *ph = panel;
        *pw = Max(1, (int)lround((double)panel * w / h));
    }
}

/* The X-ray (argument 0) at its own resolution (at most OVERLAY_MAX_SIDE) with a map over it:
 * the attention of `layer`, or with layer 0 the model's feature importance. The model is
 * argument model_arg; the caption says what the map is. */
static bytea *
overlay(FunctionCallInfo fcinfo, bool by_id, int model_arg, cxr_cached_model *cm, int layer,
        int side, bool caption)
{
    bytea *image = PG_GETARG_BYTEA_PP(0);
    MemoryContext caller = CurrentMemoryContext, ctx = picture_context();
    MemoryContextSwitchTo(ctx);
    float logit;
    int w, h;
    float *gray = cxr_pg_score(image, cm, &logit, &w, &h);
    if (w > OVERLAY_MAX_SIDE || h > OVERLAY_MAX_SIDE) {
        int dw, dh;
        fitted(w, h, OVERLAY_MAX_SIDE, &dw, &dh);
        float *tmp = scratch_alloc(cxr_resize_scratch_floats(w, h, dw, dh));
        float *smaller = scratch_alloc((size_t)dw * dh);
        cxr_pg_image_error(cxr_resize_bilinear(gray, w, h, smaller, dw, dh, tmp),
                           "out of memory resizing an image");
        pfree(tmp);
        pfree(gray);
        gray = smaller;
        w = dw;
        h = dh;
    }
    const char *lines[2];
    int n_lines = 0;
    if (caption) {
        lines[n_lines++] =
            layer ? psprintf("p(COVID-19) = %.3f, attention of layer %d", (double)cxr_sigmoid(logit),
                             layer)
                  : psprintf("p(COVID-19) = %.3f, pixel importance", (double)cxr_sigmoid(logit));
        lines[n_lines++] = model_label(fcinfo, model_arg, by_id, cm);
    }
    const float *map = layer ? cxr_model_attention(cm->model, layer) : cxr_model_importance(cm->model);
    int cw, ch;
    cxr_overlay_size(w, h, n_lines, &cw, &ch);
    cxr_canvas canvas;
    canvas_alloc(&canvas, cw, ch, "an overlay");
    float *scratch = scratch_alloc(cxr_overlay_scratch_floats(w, h, side));
    cxr_pg_image_error(cxr_overlay_draw_scaled(gray, w, h, map, side,
                                               layer ? "attention" : "importance", lines, n_lines,
                                               &canvas, scratch),
                       "could not draw the overlay");
    bytea *result = png_bytea(&canvas, caller);
    MemoryContextSwitchTo(caller);
    MemoryContextDelete(ctx);
    return result;
}

/* attention_overlay(image, layer, model, caption) */
static Datum
attention_overlay(FunctionCallInfo fcinfo, bool by_id)
{
    int layer = PG_GETARG_INT32(1);
    bool caption = PG_NARGS() > 3 && PG_GETARG_BOOL(3);
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 2, by_id);
    int side = cxr_pg_attention_side(cm->model, layer); /* checked before any work */
    PG_RETURN_BYTEA_P(overlay(fcinfo, by_id, 2, cm, layer, side, caption));
}

/* feature_importance_overlay(image, model, caption) */
static Datum
feature_importance_overlay(FunctionCallInfo fcinfo, bool by_id)
{
    bool caption = PG_NARGS() > 2 && PG_GETARG_BOOL(2);
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 1, by_id);
    cxr_pg_require_importance(cm->model); /* checked before any work */
    PG_RETURN_BYTEA_P(overlay(fcinfo, by_id, 1, cm, 0, cm->model->input_size, caption));
}

BY_NAME_AND_BY_ID(cxr_feature_importance_overlay, feature_importance_overlay)
BY_NAME_AND_BY_ID(cxr_attention_overlay, attention_overlay)

/* attention_figure(images, captions, model, panel): one row per image, the X-ray and then one
 * panel per attention layer of the model. */
static Datum
attention_figure(FunctionCallInfo fcinfo, bool by_id)
{
    for (int i = 0; i < 4; i++)
        if (PG_ARGISNULL(i) && i != 1)
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("%s must not be NULL", i == 0 ? "images" : i == 2 ? "model" : "panel")));
    ArrayType *images = PG_GETARG_ARRAYTYPE_P(0);
    ArrayType *captions = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
    int panel = PG_GETARG_INT32(3);
    if (ARR_NDIM(images) > 1 || (captions && ARR_NDIM(captions) > 1))
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("images and captions must be one-dimensional arrays")));
    Datum *img;
    bool *img_null;
    int rows;
    /* the element type as stored: an array of cxr_image (a domain over bytea) arrives as is */
    deconstruct_array(images, ARR_ELEMTYPE(images), -1, false, TYPALIGN_INT, &img, &img_null, &rows);
    if (rows < 1 || rows > FIGURE_MAX_IMAGES)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a figure shows 1 to %d images, not %d", FIGURE_MAX_IMAGES, rows)));
    for (int r = 0; r < rows; r++)
        if (img_null[r])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("image %d of the figure is NULL", r + 1)));
    Datum *cap = NULL;
    bool *cap_null = NULL;
    int n_cap = 0;
    if (captions) {
        deconstruct_array(captions, ARR_ELEMTYPE(captions), -1, false, TYPALIGN_INT, &cap,
                          &cap_null, &n_cap);
        if (n_cap != rows)
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                            errmsg("%d captions for %d images", n_cap, rows),
                            errhint("Pass one caption per image, or NULL.")));
    }
    if (panel < FIGURE_MIN_PANEL || panel > FIGURE_MAX_PANEL)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("panel must be between %d and %d pixels, not %d", FIGURE_MIN_PANEL,
                               FIGURE_MAX_PANEL, panel)));
    cxr_cached_model *cm = cxr_pg_model_arg(fcinfo, 2, by_id);
    const cxr_model *m = cm->model;
    cxr_pg_require_attention(m); /* a figure of attention maps needs some */
    int cols = 1 + m->n_taps;
    int fw, fh;
    cxr_figure_size(rows, cols, panel, 1, &fw, &fh);
    if (fw == 0 || (uint64)fw * fh > (uint64)cxr_max_image_pixels)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a figure of %d images at %d pixels a panel has %d x %d pixels, more "
                               "than cxr_attn.max_image_pixels (%d)",
                               rows, panel, fw, fh, cxr_max_image_pixels),
                        errhint("Show fewer images or pass a smaller panel.")));

    MemoryContext caller = CurrentMemoryContext, ctx = picture_context();
    MemoryContextSwitchTo(ctx);
    cxr_pg_model_hold(cm, ctx); /* kept across the images' detoasting */
    MemoryContext per_image = AllocSetContextCreate(ctx, "cxr_attn figure image",
                                                    ALLOCSET_DEFAULT_SIZES);
    cxr_figure_panel *panels = palloc0(sizeof(cxr_figure_panel) * rows * cols);
    for (int r = 0; r < rows; r++) {
        /* each X-ray is kept only at its panel's size, so memory follows the figure's pixels;
         * the probability leads its caption, so a long label is what gets cut */
        MemoryContextSwitchTo(per_image);
        float logit;
        int w, h, pw, ph;
        float *gray = cxr_pg_score(DatumGetByteaPP(img[r]), cm, &logit, &w, &h);
        fitted(w, h, panel, &pw, &ph);
        MemoryContextSwitchTo(ctx);
        float *small = scratch_alloc((size_t)pw * ph);
        MemoryContextSwitchTo(per_image);
        float *tmp = scratch_alloc(cxr_resize_scratch_floats(w, h, pw, ph));
        cxr_pg_image_error(cxr_resize_bilinear(gray, w, h, small, pw, ph, tmp),
                           "out of memory resizing an image");
        MemoryContextSwitchTo(ctx);
        MemoryContextReset(per_image);
        const char *label = cap && !cap_null[r] ? TextDatumGetCString(cap[r]) : psprintf("image %d", r + 1);
        panels[r * cols] = (cxr_figure_panel){small, pw, ph, NULL, 0,
                                              psprintf("p=%.3f %s", (double)cxr_sigmoid(logit), label)};
        for (int t = 0; t < m->n_taps; t++) {
            int layer = m->taps[t], side = cxr_model_attention_side(m, layer);
            float *map = palloc(sizeof(float) * side * side);
            memcpy(map, cxr_model_attention(m, layer), sizeof(float) * side * side);
            panels[r * cols + 1 + t] = (cxr_figure_panel){small, pw, ph, map, side,
                                                          psprintf("layer %d", layer)};
        }
    }
    cxr_canvas canvas;
    canvas_alloc(&canvas, fw, fh, "a figure");
    float *scratch = scratch_alloc(cxr_figure_scratch_floats(panels, rows * cols, panel));
    char *title = psprintf("attention of %s", model_label(fcinfo, 2, by_id, cm));
    cxr_pg_image_error(cxr_figure_draw(panels, rows, cols, panel, title, &canvas, scratch),
                       "could not draw the figure");
    bytea *result = png_bytea(&canvas, caller);
    MemoryContextSwitchTo(caller);
    MemoryContextDelete(ctx);
    PG_RETURN_BYTEA_P(result);
}

BY_NAME_AND_BY_ID(cxr_attention_figure, attention_figure)

/* Reads column col of row r of the last SPI result as float8; NaN for NULL. */
static double
spi_float8(int r, int col)
{
    bool isnull;
    Datum d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, col, &isnull);
    return isnull ? NAN : DatumGetFloat8(d);
}

/* cxr_training_curve(model): the training_history rows of a model row, read with the caller's
 * privileges (SELECT on cxr.training_history), drawn as loss and accuracy per epoch. */
static Datum
training_curve(FunctionCallInfo fcinfo, bool by_id)
{
    int64 id = by_id ? PG_GETARG_INT64(0) : cxr_pg_resolve_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
    MemoryContext caller = CurrentMemoryContext, ctx = picture_context();
    MemoryContextSwitchTo(ctx);
    const char *x = cxr_pg_schema();
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(id)};
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    int level = cxr_pg_pin_search_path();
    if (SPI_execute_with_args(psprintf("SELECT name, arch FROM %s.models WHERE id = $1", x), 1,
                              types, args, NULL, true, 1) != SPI_OK_SELECT)
        elog(ERROR, "reading the model row failed");
    if (SPI_processed == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("model %lld does not exist", (long long)id),
                        errhint("SELECT id, name FROM cxr.model_list lists the stored models.")));
    char *title = psprintf("%s (model %lld, %s)",
                           SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
                           (long long)id, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
    title = MemoryContextStrdup(ctx, title);
    if (SPI_execute_with_args(psprintf("SELECT epoch, train_loss, train_accuracy, val_loss, "
                                       "val_accuracy FROM %s.training_history WHERE model_id = $1 "
                                       "ORDER BY epoch", x),
                              1, types, args, NULL, true, CURVE_MAX_EPOCHS + 1) != SPI_OK_SELECT)
        elog(ERROR, "reading the training history failed");
    int n = (int)SPI_processed;
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("model %lld has no training history", (long long)id),
                        errdetail("Only models stored by cxr_train have one.")));
    if (n > CURVE_MAX_EPOCHS)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("model %lld has more than %d epochs of history", (long long)id,
                               CURVE_MAX_EPOCHS)));
    int *epoch = MemoryContextAlloc(ctx, sizeof(int) * n);
    double *v = MemoryContextAlloc(ctx, sizeof(double) * 4 * (size_t)n);
    for (int r = 0; r < n; r++) {
        bool isnull;
        epoch[r] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
        for (int k = 0; k < 4; k++)
            v[(size_t)k * n + r] = spi_float8(r, 2 + k);
    }
    cxr_pg_unpin_search_path(level);
    SPI_finish();
    cxr_history hist = {n, epoch, v, v + 2 * (size_t)n, v + (size_t)n, v + 3 * (size_t)n};
    int w, h;
    cxr_plot_size(&w, &h);
    cxr_canvas canvas;
    canvas_alloc(&canvas, w, h, "a training curve");
    cxr_interrupt_clear();
    cxr_pg_image_error(cxr_plot_history(&hist, title, &canvas), "could not draw the training curve");
    bytea *result = png_bytea(&canvas, caller);
    MemoryContextSwitchTo(caller);
    MemoryContextDelete(ctx);
    PG_RETURN_BYTEA_P(result);
}

BY_NAME_AND_BY_ID(cxr_training_curve, training_curve)

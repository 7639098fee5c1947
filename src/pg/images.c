/* Image SQL functions and the decode path every scoring and training function shares. */
#include "postgres.h"

#include "cxr_pg.h"
#include "cxr_blas.h"
#include "cxr_interrupt.h"
#include "cxr_train.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/pg_type.h"

void
cxr_pg_image_error(cxr_img_status st, const char *msg)
{
    switch (st) {
    case CXR_IMG_OK:
        return;
    case CXR_IMG_NOT_PNG:
    case CXR_IMG_UNKNOWN_FORMAT:
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("%s", msg),
                        errhint("X-rays must be stored as PNG, JPEG or DICOM bytes.")));
        break;
    case CXR_IMG_UNSUPPORTED:
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("%s", msg)));
        break;
    case CXR_IMG_CORRUPT:
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION), errmsg("%s", msg)));
        break;
    case CXR_IMG_TOO_LARGE:
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("%s", msg),
                        errhint("Raise cxr_attn.max_image_pixels to accept larger images.")));
        break;
    case CXR_IMG_NO_MEMORY:
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("%s", msg)));
        break;
    case CXR_IMG_INTERRUPTED:
        cxr_pg_check_core_interrupt();
        break;
    }
}

/* The decoder's allocator: the current memory context, NULL instead of an ERROR (the core must
 * not be longjmp'd through; it reports NO_MEMORY and the glue raises it). */
static void *
context_alloc(size_t bytes, void *ctx)
{
    return MemoryContextAllocExtended((MemoryContext)ctx, bytes,
                                      MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

float *
cxr_pg_decode(bytea *image, int *w, int *h)
{
    const uint8 *buf = (const uint8 *)VARDATA_ANY(image);
    size_t len = VARSIZE_ANY_EXHDR(image);
    char err[256];
    cxr_decoded_image d;
    cxr_interrupt_clear(); /* a stop left by an earlier statement is not this one's */
    /* the pixel count is checked by the decoder before anything is allocated */
    cxr_img_status st = cxr_image_decode(buf, len, (size_t)cxr_max_image_pixels, context_alloc,
                                         CurrentMemoryContext, &d, err, sizeof err);
    cxr_pg_image_error(st, err);
    if (d.frames > 1)
        ereport(NOTICE, (errmsg("DICOM image has %d frames; frame 1 is used", d.frames)));
    *w = d.width;
    *h = d.height;
    return d.gray;
}

/* Resizes w x h to side x side; the scratch is at most max(source, destination) pixels. */
void
cxr_pg_resize(const float *gray, int w, int h, float *out, int side)
{
    size_t scratch = cxr_resize_scratch_floats(w, h, side, side);
    float *tmp = MemoryContextAllocHuge(CurrentMemoryContext, Max(scratch, 1) * sizeof(float));
    cxr_pg_image_error(cxr_resize_bilinear(gray, w, h, out, side, side, tmp),
                       "out of memory resizing an image");
    pfree(tmp);
}

float *
cxr_pg_prepare_input(bytea *image, const cxr_model *m, float *input, int *w, int *h)
{
    float *gray = cxr_pg_decode(image, w, h);
    int side = m->input_size;
    cxr_pg_resize(gray, *w, *h, input, side);
    return gray;
}

ArrayType *
cxr_pg_grid_array(const float *values, int side)
{
    Datum *elems = palloc(sizeof(Datum) * side * side);
    for (int i = 0; i < side * side; i++)
        elems[i] = Float4GetDatum(values[i]);
    int dims[2] = {side, side}, lbs[2] = {1, 1};
    return construct_md_array(elems, NULL, 2, dims, lbs, FLOAT4OID, 4, true, TYPALIGN_INT);
}

void
cxr_pg_use_threads(int n)
{
    if (cxr_blas_get_threads() != n)
        cxr_blas_set_threads(n);
}

PG_FUNCTION_INFO_V1(cxr_is_png);
Datum
cxr_is_png(PG_FUNCTION_ARGS)
{
    bytea *b = PG_GETARG_BYTEA_PP(0);
    PG_RETURN_BOOL(cxr_png_has_signature((const uint8 *)VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

/* What bytes that are not a PNG look like, for the cxr_image domain's error. */
static const char *
looks_like(const uint8 *p, size_t n)
{
    static const uint8 jp2[8] = {0, 0, 0, 0x0c, 'j', 'P', ' ', ' '};
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return "a JPEG image";
    if (n >= 132 && memcmp(p + 128, "DICM", 4) == 0)
        return "a DICOM file";
    if (n >= 8 && memcmp(p, jp2, 8) == 0)
        return "a JPEG 2000 image";
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "a GIF image";
    if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
        return "a TIFF image";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M')
        return "a BMP image";
    if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return "gzip data";
    size_t text = 0, look = Min(n, 64);
    for (size_t i = 0; i < look; i++)
        text += (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\r' || p[i] == '\t';
    return text == look ? "text" : "binary data of no known image format";
}

/* The cxr_image domain's check: true for PNG, JPEG or DICOM bytes (told by content, as the
 * decoder tells them), otherwise an ERROR that says what the bytes look like (a GIF, text)
 * rather than only that a constraint failed. */
PG_FUNCTION_INFO_V1(cxr_image_check);
Datum
cxr_image_check(PG_FUNCTION_ARGS)
{
    bytea *b = PG_GETARG_BYTEA_PP(0);
    const uint8 *p = (const uint8 *)VARDATA_ANY(b);
    size_t n = VARSIZE_ANY_EXHDR(b);
    if (cxr_image_detect(p, n) != CXR_FMT_UNKNOWN)
        PG_RETURN_BOOL(true);
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION),
                        errmsg("value for domain cxr.cxr_image is empty, not an image")));
    StringInfoData first;
    initStringInfo(&first);
    for (size_t i = 0; i < Min(n, 8); i++)
        appendStringInfo(&first, "%s%02x", i ? " " : "", p[i]);
    ereport(ERROR, (errcode(ERRCODE_CHECK_VIOLATION),
                    errmsg("value for domain cxr.cxr_image is not a PNG, JPEG or DICOM image: it "
                           "looks like %s",
                           looks_like(p, n)),
                    errdetail("It is %zu bytes starting with %s. A cxr_image holds PNG, JPEG or "
                              "DICOM (Part 10) bytes.",
                              n, first.data),
                    errhint("Convert other formats to PNG before storing them.")));
    PG_RETURN_BOOL(false);
}

PG_FUNCTION_INFO_V1(cxr_image_info);
Datum
cxr_image_info(PG_FUNCTION_ARGS)
{
    bytea *b = PG_GETARG_BYTEA_PP(0);
    cxr_image_header info;
    char err[256];
    TupleDesc tupdesc;
    cxr_img_status st = cxr_image_read_info((const uint8 *)VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b),
                                            &info, err, sizeof err);
    cxr_pg_image_error(st, err);
    if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
    bool dicom = info.format == CXR_FMT_DICOM;
    Datum values[17] = {Int32GetDatum((int32)info.width),
                        Int32GetDatum((int32)info.height),
                        Int32GetDatum(info.bit_depth),
                        CStringGetTextDatum(info.color),
                        Int32GetDatum(info.channels),
                        BoolGetDatum(info.interlaced != 0),
                        CStringGetTextDatum(cxr_image_format_name(info.format)),
                        Int32GetDatum(info.frames)};
    bool nulls[17] = {0};
    if (dicom) {
        values[8] = CStringGetTextDatum(info.transfer_syntax);
        values[9] = CStringGetTextDatum(info.photometric);
        values[10] = Int32GetDatum(info.bits_allocated);
        values[11] = BoolGetDatum(info.pixel_signed != 0);
        values[12] = Float8GetDatum(info.rescale_slope);
        values[13] = Float8GetDatum(info.rescale_intercept);
        values[14] = CStringGetTextDatum(info.voi);
        values[15] = Float8GetDatum(info.window_center);
        values[16] = Float8GetDatum(info.window_width);
        nulls[15] = nulls[16] = !info.has_window;
    } else {
        for (int i = 8; i < 17; i++)
            nulls[i] = true;
    }
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* The image argument decoded and resized to size x size (the size argument, checked against
 * cxr_attn.max_image_pixels before decoding). */
static float *
resized_arg(FunctionCallInfo fcinfo, int *side_out)
{
    bytea *b = PG_GETARG_BYTEA_PP(0);
    int side = PG_GETARG_INT32(1), w, h;
    if (side < 1 || side > 4096)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("size must be between 1 and 4096, not %d", side)));
    /* the output is an image too: it obeys the same pixel limit */
    if ((int64)side * side > cxr_max_image_pixels)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a %dx%d result exceeds cxr_attn.max_image_pixels (%d)", side, side,
                               cxr_max_image_pixels)));
    float *gray = cxr_pg_decode(b, &w, &h);
    float *out = palloc(sizeof(float) * side * side);
    cxr_pg_resize(gray, w, h, out, side);
    pfree(gray);
    *side_out = side;
    return out;
}

PG_FUNCTION_INFO_V1(cxr_image_gray);
Datum
cxr_image_gray(PG_FUNCTION_ARGS)
{
    int side;
    float *out = resized_arg(fcinfo, &side);
    PG_RETURN_ARRAYTYPE_P(cxr_pg_grid_array(out, side));
}

/* The 8-bit levels of cxr_image_gray: a random forest's features (cxr_gray_level), so that
 * a forest fitted elsewhere (scikit-learn) on these values scores here as it did there. */
PG_FUNCTION_INFO_V1(cxr_image_pixels);
Datum
cxr_image_pixels(PG_FUNCTION_ARGS)
{
    int side;
    float *out = resized_arg(fcinfo, &side);
    Datum *elems = palloc(sizeof(Datum) * side * side);
    for (int i = 0; i < side * side; i++)
        elems[i] = Int16GetDatum((int16)cxr_gray_level(out[i]));
    int dims[2] = {side, side}, lbs[2] = {1, 1};
    PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, NULL, 2, dims, lbs, INT2OID, 2, true,
                                             TYPALIGN_SHORT));
}

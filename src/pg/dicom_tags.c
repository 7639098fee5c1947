/* cxr_dicom_tags(image, extra): the DICOM attributes a screening query filters on, as jsonb.
 * Patient identifiers are left out unless the caller names them in extra. */
#include "postgres.h"

#include <math.h>

#include "cxr_dicom.h"
#include "cxr_pg.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/pg_type.h"

typedef struct {
    const char *keyword;
    uint32 tag;
} dicom_keyword;

/* Always returned (Rows and Columns come from the parsed pixel module instead). */
static const dicom_keyword screening_tags[] = {
    {"Modality", CXR_DICOM_TAG(0x0008, 0x0060)},
    {"BodyPartExamined", CXR_DICOM_TAG(0x0018, 0x0015)},
    {"ViewPosition", CXR_DICOM_TAG(0x0018, 0x5101)},
    {"PhotometricInterpretation", CXR_DICOM_TAG(0x0028, 0x0004)},
    {"TransferSyntaxUID", CXR_DICOM_TAG(0x0002, 0x0010)},
    {"StudyInstanceUID", CXR_DICOM_TAG(0x0020, 0x000D)},
    {"SeriesInstanceUID", CXR_DICOM_TAG(0x0020, 0x000E)},
    {"SOPInstanceUID", CXR_DICOM_TAG(0x0008, 0x0018)},
};

/* What extra may name: identifiers and descriptions a site may need, each asked for by name. */
static const dicom_keyword extra_tags[] = {
    {"PatientName", CXR_DICOM_TAG(0x0010, 0x0010)},
    {"PatientID", CXR_DICOM_TAG(0x0010, 0x0020)},
    {"PatientBirthDate", CXR_DICOM_TAG(0x0010, 0x0030)},
    {"PatientSex", CXR_DICOM_TAG(0x0010, 0x0040)},
    {"PatientAge", CXR_DICOM_TAG(0x0010, 0x1010)},
    {"AccessionNumber", CXR_DICOM_TAG(0x0008, 0x0050)},
    {"StudyDate", CXR_DICOM_TAG(0x0008, 0x0020)},
    {"StudyTime", CXR_DICOM_TAG(0x0008, 0x0030)},
    {"StudyID", CXR_DICOM_TAG(0x0020, 0x0010)},
    {"StudyDescription", CXR_DICOM_TAG(0x0008, 0x1030)},
    {"SeriesDescription", CXR_DICOM_TAG(0x0008, 0x103E)},
    {"SeriesNumber", CXR_DICOM_TAG(0x0020, 0x0011)},
    {"InstanceNumber", CXR_DICOM_TAG(0x0020, 0x0013)},
    {"SOPClassUID", CXR_DICOM_TAG(0x0008, 0x0016)},
    {"InstitutionName", CXR_DICOM_TAG(0x0008, 0x0080)},
    {"Manufacturer", CXR_DICOM_TAG(0x0008, 0x0070)},
    {"ReferringPhysicianName", CXR_DICOM_TAG(0x0008, 0x0090)},
    {"Laterality", CXR_DICOM_TAG(0x0020, 0x0060)},
    {"ImageLaterality", CXR_DICOM_TAG(0x0020, 0x0062)},
    {"PatientOrientation", CXR_DICOM_TAG(0x0020, 0x0020)},
};

/* A string value as text in the database encoding: padding (spaces, NULs) trimmed, stopped at
 * an embedded NUL; bytes that are not valid in the database encoding become '?' (the file's
 * SpecificCharacterSet is not interpreted). */
static char *
value_text(const uint8 *value, uint32 len)
{
    uint32 n = 0;
    while (n < len && value[n] != 0)
        n++;
    while (n > 0 && value[n - 1] == ' ')
        n--;
    char *s = palloc(n + 1);
    memcpy(s, value, n);
    s[n] = '\0';
    if (!pg_verifymbstr(s, (int)n, true))
        for (uint32 i = 0; i < n; i++)
            if ((unsigned char)s[i] >= 0x80 || s[i] < 0x20)
                s[i] = '?';
    return s;
}

static void
put_tag(cxr_jsonb *j, const cxr_dicom *d, const dicom_keyword *k)
{
    const uint8_t *value;
    uint32_t len;
    char vr[3];
    if (!cxr_dicom_element(d, k->tag, &value, &len, vr) || len == 0) {
        cxr_jsonb_put_string(j, k->keyword, NULL);
        return;
    }
    cxr_jsonb_put_string(j, k->keyword, value_text(value, len));
}

/* PixelSpacing: "row\column" as two numbers (null when absent or unreadable). */
static void
put_pixel_spacing(cxr_jsonb *j, const cxr_dicom *d)
{
    const uint8_t *value;
    uint32_t len;
    char vr[3];
    if (!cxr_dicom_element(d, CXR_DICOM_TAG(0x0028, 0x0030), &value, &len, vr) || len == 0) {
        cxr_jsonb_put_string(j, "PixelSpacing", NULL);
        return;
    }
    char *s = value_text(value, len), *end;
    double v[2];
    v[0] = strtod(s, &end);
    bool ok = end != s && *end == '\\';
    if (ok) {
        char *second = end + 1;
        v[1] = strtod(second, &end);
        ok = end != second && (*end == '\0' || *end == ' ');
    }
    if (ok && isfinite(v[0]) && isfinite(v[1]))
        cxr_jsonb_put_numbers(j, "PixelSpacing", v, 2);
    else
        cxr_jsonb_put_string(j, "PixelSpacing", NULL);
}

static const dicom_keyword *
find_extra(const char *name)
{
    for (size_t i = 0; i < lengthof(extra_tags); i++)
        if (strcmp(extra_tags[i].keyword, name) == 0)
            return &extra_tags[i];
    for (size_t i = 0; i < lengthof(screening_tags); i++)
        if (strcmp(screening_tags[i].keyword, name) == 0)
            return &screening_tags[i];
    return NULL;
}

PG_FUNCTION_INFO_V1(cxr_dicom_tags);
Datum
cxr_dicom_tags(PG_FUNCTION_ARGS)
{
    bytea *b = PG_GETARG_BYTEA_PP(0);
    ArrayType *extra = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
    Datum *names = NULL;
    bool *name_nulls = NULL;
    int n_names = 0;
    /* the names are checked before the image is parsed: a typo is the caller's first error */
    if (extra) {
        if (ARR_NDIM(extra) > 1)
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                            errmsg("extra must be a one-dimensional array of DICOM keywords")));
        deconstruct_array(extra, TEXTOID, -1, false, TYPALIGN_INT, &names, &name_nulls,
                          &n_names);
        for (int i = 0; i < n_names; i++) {
            if (name_nulls[i])
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                errmsg("extra must not contain NULL")));
            char *name = TextDatumGetCString(names[i]);
            if (!find_extra(name)) {
                StringInfoData known;
                initStringInfo(&known);
                for (size_t k = 0; k < lengthof(extra_tags); k++)
                    appendStringInfo(&known, "%s%s", k ? ", " : "", extra_tags[k].keyword);
                ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                                errmsg("unknown DICOM keyword \"%s\" in extra", name),
                                errhint("extra may name: %s.", known.data)));
            }
        }
    }
    const uint8 *buf = (const uint8 *)VARDATA_ANY(b);
    size_t len = VARSIZE_ANY_EXHDR(b);
    cxr_image_format f = cxr_image_detect(buf, len);
    if (f == CXR_FMT_PNG || f == CXR_FMT_JPEG)
        PG_RETURN_NULL(); /* an image, but without DICOM attributes */
    char err[256];
    cxr_dicom *d = NULL;
    cxr_img_status st = f == CXR_FMT_DICOM ? cxr_dicom_open(buf, len, &d, err, sizeof err)
                                           : CXR_IMG_UNKNOWN_FORMAT;
    if (st == CXR_IMG_UNKNOWN_FORMAT)
        snprintf(err, sizeof err, "not an image of a supported format (%zu bytes that are "
                 "neither PNG, JPEG nor DICOM)", len);
    cxr_pg_image_error(st, err);

    /* from here on nothing raises an ERROR before cxr_dicom_close but palloc's out of memory,
     * which ends the statement: the parser's malloc'd index is freed in a PG_FINALLY */
    cxr_jsonb j = {0};
    Jsonb *result = NULL;
    PG_TRY();
    {
        const cxr_dicom_info *info = cxr_dicom_info_of(d);
        cxr_jsonb_begin(&j, false);
        for (size_t i = 0; i < lengthof(screening_tags); i++)
            put_tag(&j, d, &screening_tags[i]);
        cxr_jsonb_put_int(&j, "Rows", info->rows);
        cxr_jsonb_put_int(&j, "Columns", info->columns);
        put_pixel_spacing(&j, d);
        for (int i = 0; i < n_names; i++) {
            const dicom_keyword *k = find_extra(TextDatumGetCString(names[i]));
            put_tag(&j, d, k);
        }
        cxr_jsonb_end(&j);
        result = cxr_jsonb_finish(&j);
    }
    PG_FINALLY();
    {
        cxr_dicom_close(d);
    }
    PG_END_TRY();
    PG_RETURN_JSONB_P(result);
}

/* The DICOM reader and the JPEG codec against an independent decoder (issue 13): every file of
 * test/ref/dicom_reference.py's manifest (pydicom's own test files, DICOM made from X-rays with
 * DCMTK, plain JPEG files made with PIL) decodes to the gray image that pydicom / GDCM / DCMTK
 * and the rules of docs/decisions.md ("DICOM pixels (0.8.0)") applied in numpy give, every
 * pixel within the entry's tolerance (1e-6 lossless, one grey level lossy); the files the rules
 * refuse fail with the expected class and a message; the files of one group (the same X-ray as
 * PNG, DICOM, JPEG Lossless and 16-bit DICOM) decode to the same image.
 *
 *   /usr/bin/python3 test/ref/dicom_reference.py --out DIR
 *   CXR_DICOM_FIXTURES=DIR test/bin/test_dicom_reference
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_codec.h"
#include "cxr_dicom.h"
#include "cxr_image.h"
#include "harness.h"

#define MAX_PIXELS ((size_t)1 << 26)
#define MAX_GROUP_MEMBERS 8
#define MAX_GROUPS 8

typedef struct {
    char file[256], kind[16], expected[256], status[32], group[64], desc[512];
    unsigned rows, columns;
    int frames;
    double tol;
} entry;

typedef struct {
    char name[64];
    char files[MAX_GROUP_MEMBERS][256];
    float *gray[MAX_GROUP_MEMBERS];
    unsigned rows, columns;
    int n;
} group;

static group groups[MAX_GROUPS];
static int n_groups;
static int n_files, n_passed;

static const char *
status_name(cxr_img_status s)
{
    switch (s) {
    case CXR_IMG_OK: return "OK";
    case CXR_IMG_NOT_PNG: return "NOT_PNG";
    case CXR_IMG_CORRUPT: return "CORRUPT";
    case CXR_IMG_TOO_LARGE: return "TOO_LARGE";
    case CXR_IMG_NO_MEMORY: return "NO_MEMORY";
    case CXR_IMG_INTERRUPTED: return "INTERRUPTED";
    case CXR_IMG_UNSUPPORTED: return "UNSUPPORTED";
    case CXR_IMG_UNKNOWN_FORMAT: return "UNKNOWN_FORMAT";
    }
    return "?";
}

static char *
join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static float *
read_expected(const char *dir, const entry *e)
{
    char *path = join(dir, e->expected);
    size_t len = 0, n = (size_t)e->rows * e->columns;
    uint8_t *buf = path ? read_file(path, &len) : NULL;
    free(path);
    if (!buf || len != n * 4) {
        free(buf);
        return NULL;
    }
    float *v = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; v && i < n; i++) {
        uint32_t u = (uint32_t)buf[4 * i] | (uint32_t)buf[4 * i + 1] << 8 |
                     (uint32_t)buf[4 * i + 2] << 16 | (uint32_t)buf[4 * i + 3] << 24;
        memcpy(&v[i], &u, 4);
    }
    free(buf);
    return v;
}

/* Compares every pixel; prints the worst difference. Returns 1 when all are within tol. */
static int
compare(const entry *e, const float *got, const float *want)
{
    size_t n = (size_t)e->rows * e->columns, worst_at = 0, over = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            worst_at = i;
        }
        if (!(d <= e->tol))
            over++;
    }
    int ok = worst <= e->tol;
    printf("  %-48s worst |diff| %.3g (%.3f grey levels) at row %zu col %zu: got %.6f want "
           "%.6f; tolerance %.3g; %zu of %zu pixels over\n",
           e->file, worst, worst * 255.0, worst_at / e->columns, worst_at % e->columns,
           n ? got[worst_at] : 0.0, n ? want[worst_at] : 0.0, e->tol, over, n);
    CHECK(ok, "%s: worst |diff| %.6g > tolerance %.3g at row %zu col %zu (got %.6f, want %.6f; "
              "%s)",
          e->file, worst, e->tol, worst_at / e->columns, worst_at % e->columns,
          n ? got[worst_at] : 0.0, n ? want[worst_at] : 0.0, e->desc);
    return ok;
}

/* Checks a failed decode against the expected class. */
static int
check_error(const entry *e, cxr_img_status st, const char *err)
{
    int ok;
    if (!strcmp(e->status, "unsupported"))
        ok = st == CXR_IMG_UNSUPPORTED;
    else if (!strcmp(e->status, "corrupt"))
        ok = st == CXR_IMG_CORRUPT;
    else
        ok = st != CXR_IMG_OK; /* "error" and "lenient": any class */
    CHECK(ok, "%s: status %s, expected %s (%s)", e->file, status_name(st), e->status, e->desc);
    CHECK(st == CXR_IMG_OK || err[0] != '\0', "%s: status %s without a message", e->file,
          status_name(st));
    return ok && (st == CXR_IMG_OK || err[0] != '\0');
}

/* Decodes a DICOM entry; returns the gray image (malloc'd) when it decoded, else NULL. */
static float *
decode_dicom(const entry *e, const uint8_t *buf, size_t len, cxr_img_status *status, char *err,
             size_t errlen, int *frames_out, unsigned *rows_out, unsigned *cols_out)
{
    cxr_dicom *d = NULL;
    float *out = NULL;
    *frames_out = 0;
    *rows_out = *cols_out = 0;
    CHECK(cxr_dicom_detect(buf, len), "%s: cxr_dicom_detect says no", e->file);
    cxr_img_status st = cxr_dicom_open(buf, len, &d, err, errlen);
    if (st == CXR_IMG_OK) {
        const cxr_dicom_info *info = cxr_dicom_info_of(d);
        size_t n = info ? (size_t)info->rows * info->columns : 0;
        if (info) {
            *rows_out = info->rows;
            *cols_out = info->columns;
        }
        if (n > MAX_PIXELS) {
            snprintf(err, errlen, "test: %zu pixels is more than this test allows", n);
            st = CXR_IMG_TOO_LARGE;
        } else {
            out = malloc((n ? n : 1) * sizeof(float));
            st = out ? cxr_dicom_decode_gray(d, MAX_PIXELS, out, n, frames_out, err, errlen)
                     : CXR_IMG_NO_MEMORY;
        }
    }
    if (d)
        cxr_dicom_close(d);
    *status = st;
    if (st != CXR_IMG_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static float *
decode_jpeg(const entry *e, const uint8_t *buf, size_t len, cxr_img_status *status, char *err,
            size_t errlen, unsigned *rows_out, unsigned *cols_out)
{
    cxr_frame_info info;
    memset(&info, 0, sizeof info);
    *rows_out = *cols_out = 0;
    cxr_img_status st = cxr_jpeg_read_header(buf, len, &info, err, errlen);
    if (st != CXR_IMG_OK) {
        *status = st;
        return NULL;
    }
    size_t n = (size_t)info.width * info.height, ns = n * (info.components > 0 ? info.components : 1);
    if (ns > MAX_PIXELS || info.width <= 0 || info.height <= 0) {
        snprintf(err, errlen, "test: header says %dx%dx%d", info.width, info.height,
                 info.components);
        *status = CXR_IMG_CORRUPT;
        return NULL;
    }
    int32_t *samples = malloc(ns * sizeof(int32_t));
    float *out = malloc(n * sizeof(float));
    st = samples && out ? cxr_jpeg_decode(buf, len, MAX_PIXELS, samples, ns, &info, err, errlen)
                        : CXR_IMG_NO_MEMORY;
    if (st == CXR_IMG_OK) {
        CHECK(info.precision == 8, "%s: precision %d, the fixture is 8-bit", e->file,
              info.precision);
        if (info.components == 3) {
            for (size_t i = 0; i < n; i++)
                out[i] = (float)((0.299 * samples[3 * i] + 0.587 * samples[3 * i + 1] +
                                  0.114 * samples[3 * i + 2]) /
                                 255.0);
        } else if (info.components == 1) {
            for (size_t i = 0; i < n; i++)
                out[i] = (float)(samples[i] / 255.0);
        } else {
            snprintf(err, errlen, "test: %d components", info.components);
            st = CXR_IMG_UNSUPPORTED;
        }
        *rows_out = (unsigned)info.height;
        *cols_out = (unsigned)info.width;
    }
    free(samples);
    *status = st;
    if (st != CXR_IMG_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static float *
decode_png(const uint8_t *buf, size_t len, cxr_img_status *status, char *err, size_t errlen,
           unsigned *rows_out, unsigned *cols_out)
{
    cxr_png_info info;
    *rows_out = *cols_out = 0;
    cxr_img_status st = cxr_png_read_info(buf, len, &info, err, errlen);
    float *out = NULL;
    if (st == CXR_IMG_OK) {
        size_t n = (size_t)info.width * info.height;
        out = malloc((n ? n : 1) * sizeof(float));
        st = out ? cxr_png_decode_gray(buf, len, MAX_PIXELS, out, n, err, errlen)
                 : CXR_IMG_NO_MEMORY;
        *rows_out = info.height;
        *cols_out = info.width;
    }
    *status = st;
    if (st != CXR_IMG_OK) {
        free(out);
        return NULL;
    }
    return out;
}

static void
add_to_group(const entry *e, float *gray)
{
    group *g = NULL;
    for (int i = 0; i < n_groups; i++)
        if (!strcmp(groups[i].name, e->group))
            g = &groups[i];
    if (!g) {
        if (n_groups == MAX_GROUPS) {
            CHECK(0, "too many groups in the manifest");
            free(gray);
            return;
        }
        g = &groups[n_groups++];
        snprintf(g->name, sizeof g->name, "%s", e->group);
        g->rows = e->rows;
        g->columns = e->columns;
    }
    if (g->n == MAX_GROUP_MEMBERS || g->rows != e->rows || g->columns != e->columns) {
        CHECK(0, "group %s: %s does not fit (%ux%u vs %ux%u)", g->name, e->file, e->rows,
              e->columns, g->rows, g->columns);
        free(gray);
        return;
    }
    snprintf(g->files[g->n], sizeof g->files[0], "%s", e->file);
    g->gray[g->n++] = gray;
}

static void
run_entry(const char *dir, const entry *e)
{
    char err[512] = "";
    size_t len = 0;
    char *path = join(dir, e->file);
    uint8_t *buf = path ? read_file(path, &len) : NULL;
    free(path);
    n_files++;
    if (!buf) {
        CHECK(0, "%s: cannot read the fixture", e->file);
        printf("FAIL %s: unreadable\n", e->file);
        return;
    }
    cxr_img_status st = CXR_IMG_OK;
    int frames = 1;
    unsigned rows = 0, cols = 0;
    float *gray;
    if (!strcmp(e->kind, "dicom"))
        gray = decode_dicom(e, buf, len, &st, err, sizeof err, &frames, &rows, &cols);
    else if (!strcmp(e->kind, "jpeg"))
        gray = decode_jpeg(e, buf, len, &st, err, sizeof err, &rows, &cols);
    else
        gray = decode_png(buf, len, &st, err, sizeof err, &rows, &cols);
    free(buf);

    int pass;
    int want_ok = !strcmp(e->status, "ok");
    int lenient = !strcmp(e->status, "lenient");
    if (want_ok || (lenient && st == CXR_IMG_OK)) {
        pass = st == CXR_IMG_OK;
        CHECK(pass, "%s: status %s (%s), expected OK (%s)", e->file, status_name(st), err,
              e->desc);
        if (pass) {
            CHECK(rows == e->rows && cols == e->columns, "%s: %ux%u, expected %ux%u", e->file,
                  rows, cols, e->rows, e->columns);
            CHECK(frames == e->frames, "%s: %d frames, expected %d", e->file, frames, e->frames);
            pass = rows == e->rows && cols == e->columns && frames == e->frames;
        }
        if (pass && !strcmp(e->expected, "-")) {
            printf("  %-48s no pixel reference (damaged file): size and frames only\n", e->file);
        } else if (pass) {
            float *want = read_expected(dir, e);
            CHECK(want != NULL, "%s: cannot read %s", e->file, e->expected);
            pass = want && compare(e, gray, want);
            free(want);
        }
        printf("%s %-48s %s %s, %ux%u, %d frame(s): %s\n", pass ? "ok  " : "FAIL", e->file,
               e->kind, status_name(st), cols, rows, frames, e->desc);
        if (pass && strcmp(e->group, "-")) {
            add_to_group(e, gray);
            gray = NULL;
        }
    } else {
        pass = check_error(e, st, err);
        printf("%s %-48s %s %s (expected %s): \"%s\": %s\n", pass ? "ok  " : "FAIL", e->file,
               e->kind, status_name(st), e->status, err, e->desc);
    }
    free(gray);
    n_passed += pass;
}

int
main(void)
{
    const char *dir = getenv("CXR_DICOM_FIXTURES");
    if (!dir || !*dir) {
        fprintf(stderr,
                "test_dicom_reference: CXR_DICOM_FIXTURES is not set. Make the fixtures with\n"
                "  /usr/bin/python3 test/ref/dicom_reference.py --out DIR\n"
                "and run CXR_DICOM_FIXTURES=DIR %s\n",
                "test/bin/test_dicom_reference");
        CHECK(0, "CXR_DICOM_FIXTURES is not set");
        return harness_finish("test_dicom_reference");
    }
    char *mpath = join(dir, "manifest.txt");
    FILE *m = mpath ? fopen(mpath, "r") : NULL;
    if (!m) {
        fprintf(stderr, "test_dicom_reference: cannot open %s\n", mpath ? mpath : dir);
        free(mpath);
        CHECK(0, "no manifest in CXR_DICOM_FIXTURES");
        return harness_finish("test_dicom_reference");
    }
    free(mpath);
    char line[2048];
    int n_entries = 0;
    while (fgets(line, sizeof line, m)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        entry e;
        int used = 0;
        memset(&e, 0, sizeof e);
        if (sscanf(line, "%255s %15s %255s %u %u %d %lf %31s %63s %n", e.file, e.kind,
                   e.expected, &e.rows, &e.columns, &e.frames, &e.tol, e.status, e.group,
                   &used) < 9) {
            CHECK(0, "manifest line not understood: %s", line);
            continue;
        }
        snprintf(e.desc, sizeof e.desc, "%s", line + used);
        e.desc[strcspn(e.desc, "\n")] = '\0';
        n_entries++;
        run_entry(dir, &e);
    }
    fclose(m);
    CHECK(n_entries > 0, "the manifest lists no files");

    /* the same X-ray scores the same: one image whatever the file */
    for (int g = 0; g < n_groups; g++) {
        size_t n = (size_t)groups[g].rows * groups[g].columns;
        for (int k = 1; k < groups[g].n; k++) {
            double worst = 0.0;
            for (size_t i = 0; i < n; i++) {
                double d = fabs((double)groups[g].gray[k][i] - (double)groups[g].gray[0][i]);
                if (!(d <= worst))
                    worst = isnan(d) ? INFINITY : d;
            }
            printf("group %s: %s vs %s: worst |diff| %.3g\n", groups[g].name, groups[g].files[k],
                   groups[g].files[0], worst);
            CHECK(worst <= 1e-6, "group %s: %s and %s differ by %.6g", groups[g].name,
                  groups[g].files[k], groups[g].files[0], worst);
        }
        for (int k = 0; k < groups[g].n; k++)
            free(groups[g].gray[k]);
    }
    printf("test_dicom_reference: %d of %d files as the independent decoders say\n", n_passed,
           n_files);
    return harness_finish("test_dicom_reference");
}

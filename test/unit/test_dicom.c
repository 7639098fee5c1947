/* The DICOM reader (src/core/dicom.c, dicom_pixels.c, rle.c): files written here by a small
 * writer, decoded and compared with values worked out by hand from docs/decisions.md,
 * "DICOM pixels"; then hostile files, each of which must end in the right status with a
 * message. Optionally every file of pydicom's test set must open or fail cleanly. */
#include <dirent.h>
#include <string.h>
#include <zlib.h>

#include "cxr_codec.h"
#include "cxr_dicom.h"
#include "cxr_interrupt.h"
#include "harness.h"

#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"
#define TS_DEFLATED "1.2.840.10008.1.2.1.99"
#define TS_BIG "1.2.840.10008.1.2.2"
#define TS_RLE "1.2.840.10008.1.2.5"

/* ---- a small DICOM writer ---- */

typedef struct {
    uint8_t *b;
    size_t n, cap;
    int be, expl;
} wbuf;

static void
wput(wbuf *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n)
            cap *= 2;
        w->b = realloc(w->b, cap);
        if (!w->b)
            abort();
        w->cap = cap;
    }
    if (n)
        memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void
w16(wbuf *w, unsigned v)
{
    uint8_t b[2] = {(uint8_t)(w->be ? v >> 8 : v), (uint8_t)(w->be ? v : v >> 8)};
    wput(w, b, 2);
}

static void
w32(wbuf *w, uint32_t v)
{
    if (w->be) {
        w16(w, v >> 16);
        w16(w, v & 0xFFFF);
    } else {
        w16(w, v & 0xFFFF);
        w16(w, v >> 16);
    }
}

static int
long_vr(const char *vr)
{
    static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ",
                                    "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        if (strcmp(vr, l[i]) == 0)
            return 1;
    return 0;
}

static void
whead(wbuf *w, unsigned g, unsigned e, const char *vr, uint32_t len)
{
    w16(w, g);
    w16(w, e);
    if (w->expl && g != 0xFFFE) {
        wput(w, vr, 2);
        if (long_vr(vr)) {
            w16(w, 0);
            w32(w, len);
        } else {
            w16(w, len);
        }
    } else {
        w32(w, len);
    }
}

static void
welem(wbuf *w, unsigned g, unsigned e, const char *vr, const void *v, uint32_t len)
{
    whead(w, g, e, vr, len);
    wput(w, v, len);
}

static void
wstr(wbuf *w, unsigned g, unsigned e, const char *vr, const char *s)
{
    size_t n = strlen(s);
    whead(w, g, e, vr, (uint32_t)(n + n % 2));
    wput(w, s, n);
    if (n % 2)
        wput(w, strcmp(vr, "UI") == 0 ? "\0" : " ", 1);
}

static void
wus(wbuf *w, unsigned g, unsigned e, unsigned v)
{
    whead(w, g, e, "US", 2);
    w16(w, v);
}

static void
witem(wbuf *w, uint32_t len)
{
    w16(w, 0xFFFE);
    w16(w, 0xE000);
    w32(w, len);
}

static void
wdelim(wbuf *w, unsigned e) /* 0xE00D item, 0xE0DD sequence */
{
    w16(w, 0xFFFE);
    w16(w, e);
    w32(w, 0);
}

typedef struct {
    const char *ts;    /* NULL: no file meta */
    int no_preamble;
    int rows, cols, spp, ba, bs, hb, pr, planar;
    const char *photo, *frames, *slope, *intercept, *wc, *ww, *fn;
    const uint32_t *px; /* samples in stored order */
    size_t npx;
    const uint8_t *encap; /* encapsulated: the items after Pixel Data's header */
    size_t encap_len;
    void (*extra)(wbuf *); /* elements of group 0028 after the pixel module, before 7FE0 */
    int no_pixel_data;
} spec;

static int
syntax_be(const char *ts)
{
    return ts && strcmp(ts, TS_BIG) == 0;
}

static int
syntax_expl(const char *ts)
{
    return !ts || strcmp(ts, TS_IMPLICIT) != 0;
}

static void
write_dataset(wbuf *w, const spec *s)
{
    wstr(w, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.1.1");
    wstr(w, 0x0008, 0x0060, "CS", "DX");
    wstr(w, 0x0010, 0x0010, "PN", "Doe^Jane");
    wus(w, 0x0028, 0x0002, (unsigned)s->spp);
    wstr(w, 0x0028, 0x0004, "CS", s->photo);
    if (s->spp == 3)
        wus(w, 0x0028, 0x0006, (unsigned)s->planar);
    if (s->frames)
        wstr(w, 0x0028, 0x0008, "IS", s->frames);
    wus(w, 0x0028, 0x0010, (unsigned)s->rows);
    wus(w, 0x0028, 0x0011, (unsigned)s->cols);
    wus(w, 0x0028, 0x0100, (unsigned)s->ba);
    wus(w, 0x0028, 0x0101, (unsigned)s->bs);
    wus(w, 0x0028, 0x0102, (unsigned)s->hb);
    wus(w, 0x0028, 0x0103, (unsigned)s->pr);
    if (s->wc)
        wstr(w, 0x0028, 0x1050, "DS", s->wc);
    if (s->ww)
        wstr(w, 0x0028, 0x1051, "DS", s->ww);
    if (s->intercept)
        wstr(w, 0x0028, 0x1052, "DS", s->intercept);
    if (s->slope)
        wstr(w, 0x0028, 0x1053, "DS", s->slope);
    if (s->fn)
        wstr(w, 0x0028, 0x1056, "CS", s->fn);
    if (s->extra)
        s->extra(w);
    if (s->no_pixel_data)
        return;
    if (s->encap) {
        whead(w, 0x7FE0, 0x0010, "OB", 0xFFFFFFFFu);
        wput(w, s->encap, s->encap_len);
        return;
    }
    size_t bytes = s->ba < 8 ? (s->npx + 7) / 8 : s->npx * (size_t)(s->ba / 8);
    whead(w, 0x7FE0, 0x0010, s->ba == 8 ? "OB" : "OW", (uint32_t)(bytes + bytes % 2));
    for (size_t i = 0; i < (s->ba < 8 ? bytes : s->npx); i++) {
        if (s->ba < 8) { /* bitmaps: zeros, only their size matters here */
            wput(w, "", 1);
            continue;
        }
        if (s->ba == 8) {
            uint8_t b = (uint8_t)s->px[i];
            wput(w, &b, 1);
        } else if (s->ba == 16) {
            w16(w, s->px[i] & 0xFFFF);
        } else {
            w32(w, s->px[i]);
        }
    }
    if (bytes % 2)
        wput(w, "", 1);
}

static uint8_t *
deflate_raw(const uint8_t *src, size_t n, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, n) + 16;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void
write_meta(wbuf *w, const char *ts)
{
    wbuf m = {0};
    m.expl = 1;
    static const uint8_t version[2] = {0, 1};
    welem(&m, 0x0002, 0x0001, "OB", version, 2);
    wstr(&m, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.1.1");
    wstr(&m, 0x0002, 0x0003, "UI", "1.2.3.4.5.6.7");
    wstr(&m, 0x0002, 0x0010, "UI", ts);
    wbuf g = {0};
    g.expl = 1;
    whead(&g, 0x0002, 0x0000, "UL", 4);
    w32(&g, (uint32_t)m.n);
    wput(w, g.b, g.n);
    wput(w, m.b, m.n);
    free(g.b);
    free(m.b);
}

static uint8_t *
build(const spec *s, size_t *len)
{
    wbuf w = {0};
    if (!s->no_preamble) {
        uint8_t pre[128] = {0};
        wput(&w, pre, 128);
        wput(&w, "DICM", 4);
    }
    if (s->ts)
        write_meta(&w, s->ts);
    wbuf ds = {0};
    ds.be = syntax_be(s->ts);
    ds.expl = syntax_expl(s->ts);
    write_dataset(&ds, s);
    if (s->ts && strcmp(s->ts, TS_DEFLATED) == 0) {
        size_t zl;
        uint8_t *z = deflate_raw(ds.b, ds.n, &zl);
        wput(&w, z, zl);
        free(z);
    } else {
        wput(&w, ds.b, ds.n);
    }
    free(ds.b);
    *len = w.n;
    return w.b;
}

/* Opens and decodes; out holds cap floats. */
static cxr_img_status
decode(const uint8_t *b, size_t len, size_t max_pixels, float *out, size_t cap, int *frames,
       char *err)
{
    cxr_dicom *d;
    err[0] = '\0';
    cxr_img_status st = cxr_dicom_open(b, len, &d, err, 256);
    if (st != CXR_IMG_OK)
        return st;
    st = cxr_dicom_decode_gray(d, max_pixels, out, cap, frames, err, 256);
    cxr_dicom_close(d);
    return st;
}

/* Builds s, decodes it and compares with want (n values). */
static void
check_image(const char *name, const spec *s, const float *want, size_t n, int want_frames)
{
    size_t len;
    uint8_t *b = build(s, &len);
    float out[64];
    char err[256];
    int frames = 0;
    cxr_img_status st = decode(b, len, 1 << 20, out, 64, &frames, err);
    CHECK(st == CXR_IMG_OK, "%s: status %d (%s)", name, st, err);
    if (st == CXR_IMG_OK) {
        for (size_t i = 0; i < n; i++)
            CHECK(fabsf(out[i] - want[i]) < 1e-5f, "%s: pixel %zu is %.6f, want %.6f", name, i,
                  out[i], want[i]);
        CHECK(frames == want_frames, "%s: %d frames, want %d", name, frames, want_frames);
    }
    free(b);
}

/* Builds s and checks that it fails with want and a message. */
static void
check_fails(const char *name, const spec *s, cxr_img_status want, const char *needle)
{
    size_t len;
    uint8_t *b = build(s, &len);
    float out[64];
    char err[256];
    int frames;
    cxr_img_status st = decode(b, len, 1 << 20, out, 64, &frames, err);
    CHECK(st == want, "%s: status %d, want %d (%s)", name, st, want, err);
    CHECK(err[0] != '\0' && (!needle || strstr(err, needle)), "%s: message \"%s\" lacks \"%s\"",
          name, err, needle ? needle : "");
    free(b);
}

static void
check_bytes_fail(const char *name, const uint8_t *b, size_t len, cxr_img_status want,
                 const char *needle)
{
    float out[64];
    char err[256];
    int frames;
    cxr_img_status st = decode(b, len, 1 << 20, out, 64, &frames, err);
    CHECK(st == want, "%s: status %d, want %d (%s)", name, st, want, err);
    CHECK(err[0] != '\0' && (!needle || strstr(err, needle)), "%s: message \"%s\" lacks \"%s\"",
          name, err, needle ? needle : "");
}

static spec
gray8(const char *ts, const uint32_t *px, int rows, int cols)
{
    spec s = {0};
    s.ts = ts;
    s.rows = rows;
    s.cols = cols;
    s.spp = 1;
    s.ba = s.bs = 8;
    s.hb = 7;
    s.photo = "MONOCHROME2";
    s.px = px;
    s.npx = (size_t)rows * cols;
    return s;
}

/* ---- uncompressed syntaxes ---- */

static void
test_syntaxes(void)
{
    static const uint32_t px8[4] = {0, 51, 102, 255};
    static const float want8[4] = {0.0f, 0.2f, 0.4f, 1.0f};
    const char *const ts[4] = {TS_EXPLICIT, TS_IMPLICIT, TS_BIG, TS_DEFLATED};
    for (int i = 0; i < 4; i++) {
        spec s = gray8(ts[i], px8, 2, 2);
        check_image(ts[i], &s, want8, 4, 1);
        /* 16-bit: v * 257 is v / 255 again */
        uint32_t px16[4] = {0, 51 * 257, 65535, 1000};
        float want16[4] = {0.0f, 0.2f, 1.0f, 1000.0f / 65535.0f};
        s.px = px16;
        s.ba = s.bs = 16;
        s.hb = 15;
        check_image(ts[i], &s, want16, 4, 1);
    }
    /* no meta, with and without preamble: explicit and implicit little endian, explicit big */
    const char *const guessed[3] = {TS_EXPLICIT, TS_IMPLICIT, TS_BIG};
    for (int i = 0; i < 3; i++) {
        spec s = gray8(NULL, px8, 2, 2);
        wbuf w = {0};
        w.expl = syntax_expl(guessed[i]);
        w.be = syntax_be(guessed[i]);
        write_dataset(&w, &s);
        CHECK(cxr_dicom_detect(w.b, w.n), "dataset without preamble %s is detected", guessed[i]);
        float out[4];
        char err[256];
        int frames;
        cxr_img_status st = decode(w.b, w.n, 1 << 20, out, 4, &frames, err);
        CHECK(st == CXR_IMG_OK, "no preamble %s: %d %s", guessed[i], st, err);
        for (int k = 0; k < 4 && st == CXR_IMG_OK; k++)
            CHECK(fabsf(out[k] - want8[k]) < 1e-6f, "no preamble %s: pixel %d", guessed[i], k);
        cxr_dicom *d;
        if (cxr_dicom_open(w.b, w.n, &d, err, sizeof err) == CXR_IMG_OK) {
            const cxr_dicom_info *in = cxr_dicom_info_of(d);
            CHECK(strcmp(in->transfer_syntax, guessed[i]) == 0 && !in->has_preamble,
                  "no preamble: syntax %s, want %s", in->transfer_syntax, guessed[i]);
            cxr_dicom_close(d);
        }
        free(w.b);
    }
    /* a file whose meta has no transfer syntax: implicit little endian */
    {
        wbuf w = {0};
        uint8_t pre[128] = {0};
        wput(&w, pre, 128);
        wput(&w, "DICM", 4);
        w.expl = 1;
        wstr(&w, 0x0002, 0x0003, "UI", "1.2.3");
        w.expl = 0;
        spec s = gray8(NULL, px8, 2, 2);
        write_dataset(&w, &s);
        float out[4];
        char err[256];
        int frames;
        cxr_img_status st = decode(w.b, w.n, 1 << 20, out, 4, &frames, err);
        CHECK(st == CXR_IMG_OK && fabsf(out[1] - 0.2f) < 1e-6f, "meta without syntax: %d %s", st,
              err);
        free(w.b);
    }
    /* detection */
    static const uint8_t junk[64] = "GIF89a and some other bytes that are not a DICOM file.....";
    CHECK(!cxr_dicom_detect(junk, sizeof junk), "junk is not DICOM");
    CHECK(!cxr_dicom_detect(junk, 4), "4 bytes are never DICOM");
    static const uint8_t implicit_prefix[8] = {0x08, 0x00, 0x05, 0x00, 0x0A, 0x00, 0x00, 0x00};
    CHECK(!cxr_dicom_detect(implicit_prefix, 8), "one element header is not enough");
}

/* ---- pixel semantics ---- */

static void
test_signed_and_rescale(void)
{
    /* 12 bits stored in 16, signed: 0x800 is -2048, 0x7FF 2047; bits above HighBit ignored */
    static const uint32_t px[4] = {0x0800, 0x07FF, 0x0000, 0xF005};
    spec s = gray8(TS_EXPLICIT, px, 2, 2);
    s.ba = 16;
    s.bs = 12;
    s.hb = 11;
    s.pr = 1;
    float want[4] = {0.0f, 1.0f, 2048.0f / 4095.0f, 2053.0f / 4095.0f};
    check_image("signed 12-bit", &s, want, 4, 1);
    /* the same unsigned: 0xF005 masked is 5 */
    s.pr = 0;
    float want_u[4] = {2048.0f / 4095.0f, 2047.0f / 4095.0f, 0.0f, 5.0f / 4095.0f};
    check_image("unsigned 12-bit", &s, want_u, 4, 1);

    /* a positive rescale leaves the no-VOI map alone; a negative slope flips it */
    static const uint32_t px8[4] = {0, 51, 102, 255};
    spec r = gray8(TS_EXPLICIT, px8, 2, 2);
    r.slope = "2";
    r.intercept = "-100";
    float same[4] = {0.0f, 0.2f, 0.4f, 1.0f};
    check_image("rescale 2, -100", &r, same, 4, 1);
    r.slope = "-1";
    r.intercept = "0";
    float flipped[4] = {1.0f, 0.8f, 0.6f, 0.0f};
    check_image("rescale -1", &r, flipped, 4, 1);

    /* 32 bits */
    static const uint32_t px32[2] = {0, 0xFFFFFFFFu};
    spec t = gray8(TS_EXPLICIT, px32, 1, 2);
    t.ba = t.bs = 32;
    t.hb = 31;
    float want32[2] = {0.0f, 1.0f};
    check_image("32-bit", &t, want32, 2, 1);
}

static void
test_windows(void)
{
    static const uint32_t px[4] = {0, 50, 75, 100};
    spec s = gray8(TS_EXPLICIT, px, 2, 2);
    /* LINEAR with rescale x = 2v - 100, c 50, w 101: y = (x - 49.5) / 100 + 0.5 inside
     * (-0.5, 99.5] */
    s.slope = "2";
    s.intercept = "-100";
    s.wc = "50";
    s.ww = "101\\200"; /* first values count */
    float lin[4] = {0.0f, 0.005f, 0.505f, 1.0f};
    check_image("window LINEAR", &s, lin, 4, 1);
    s.fn = "LINEAR";
    check_image("window LINEAR named", &s, lin, 4, 1);

    static const uint32_t px2[4] = {75, 100, 110, 125};
    spec e = gray8(TS_EXPLICIT, px2, 2, 2);
    e.wc = "100";
    e.ww = "50";
    e.fn = "LINEAR_EXACT";
    float exact[4] = {0.0f, 0.5f, 0.7f, 1.0f};
    check_image("window LINEAR_EXACT", &e, exact, 4, 1);
    e.fn = "SIGMOID";
    /* 1 / (1 + exp(-4 (x - 100) / 50)) */
    float sig[4] = {0.11920292f, 0.5f, 0.68997448f, 0.88079708f};
    check_image("window SIGMOID", &e, sig, 4, 1);
    /* MONOCHROME1: inverted after the window */
    e.photo = "MONOCHROME1";
    float sig_inv[4] = {1 - 0.11920292f, 0.5f, 1 - 0.68997448f, 1 - 0.88079708f};
    check_image("window SIGMOID, MONOCHROME1", &e, sig_inv, 4, 1);
    e.wc = e.ww = e.fn = NULL;
    float inv[4] = {1 - 75 / 255.0f, 1 - 100 / 255.0f, 1 - 110 / 255.0f, 1 - 125 / 255.0f};
    check_image("MONOCHROME1", &e, inv, 4, 1);

    /* widths that the functions refuse */
    e.photo = "MONOCHROME2";
    e.wc = "100";
    e.ww = "0.5";
    check_fails("LINEAR width below 1", &e, CXR_IMG_CORRUPT, "WindowWidth");
    e.ww = "0";
    e.fn = "SIGMOID";
    check_fails("SIGMOID width 0", &e, CXR_IMG_CORRUPT, "WindowWidth");
    e.ww = "50";
    e.fn = "CUBIC";
    check_fails("unknown VOI function", &e, CXR_IMG_UNSUPPORTED, "CUBIC");
}

/* A VOI LUT Sequence: descriptor 4 entries from 10, 8 bits; data 0, 51, 204, 255. Written with
 * undefined lengths (sequence and item) to walk the delimiters. */
static void
voi_lut_undefined(wbuf *w)
{
    whead(w, 0x0028, 0x3010, "SQ", 0xFFFFFFFFu);
    witem(w, 0xFFFFFFFFu);
    whead(w, 0x0028, 0x3002, "US", 6);
    w16(w, 4);
    w16(w, 10);
    w16(w, 8);
    whead(w, 0x0028, 0x3003, "LO", 4);
    wput(w, "TEST", 4);
    whead(w, 0x0028, 0x3006, "OW", 8);
    w16(w, 0);
    w16(w, 51);
    w16(w, 204);
    w16(w, 255);
    wdelim(w, 0xE00D);
    witem(w, 0); /* a second, empty item: ignored */
    wdelim(w, 0xE0DD);
}

/* The same with defined lengths, the first mapped value -2 as SS. */
static void
voi_lut_defined_ss(wbuf *w)
{
    uint32_t desc = 8 + 6, data = (w->expl ? 12 : 8) + 8; /* OW has the long header */
    whead(w, 0x0028, 0x3010, "SQ", 8 + desc + data);
    witem(w, desc + data);
    whead(w, 0x0028, 0x3002, "SS", 6);
    w16(w, 4);
    w16(w, 0xFFFE);
    w16(w, 8);
    whead(w, 0x0028, 0x3006, "OW", 8);
    w16(w, 0);
    w16(w, 51);
    w16(w, 204);
    w16(w, 255);
}

static void
test_voi_lut(void)
{
    static const uint32_t px[4] = {5, 11, 12, 200};
    float want[4] = {0.0f, 0.2f, 0.8f, 1.0f};
    const char *const ts[3] = {TS_EXPLICIT, TS_IMPLICIT, TS_BIG};
    for (int i = 0; i < 3; i++) {
        spec s = gray8(ts[i], px, 2, 2);
        s.extra = voi_lut_undefined;
        s.wc = "0"; /* the LUT comes first */
        s.ww = "1";
        check_image("VOI LUT", &s, want, 4, 1);
        size_t len;
        uint8_t *b = build(&s, &len);
        cxr_dicom *d;
        char err[256];
        if (cxr_dicom_open(b, len, &d, err, sizeof err) == CXR_IMG_OK) {
            const cxr_dicom_info *in = cxr_dicom_info_of(d);
            CHECK(in->voi == CXR_VOI_LUT && in->lut_entries == 4 && in->lut_first_mapped == 10 &&
                      in->lut_bits == 8,
                  "VOI LUT info: %d %d %d %d", in->voi, in->lut_entries, in->lut_first_mapped,
                  in->lut_bits);
            cxr_dicom_close(d);
        }
        free(b);
    }
    /* signed pixels, first mapped -2 (SS): x = -3 -> entry 0, -1 -> 1, 0 -> 2, 5 -> 3 */
    static const uint32_t spx[4] = {0xFD, 0xFF, 0x00, 0x05};
    spec s = gray8(TS_EXPLICIT, spx, 2, 2);
    s.pr = 1;
    s.extra = voi_lut_defined_ss;
    check_image("VOI LUT signed", &s, want, 4, 1);
}

static void
test_color(void)
{
    /* RGB, two pixels: pure red, pure blue */
    static const uint32_t rgb[6] = {255, 0, 0, 0, 0, 255};
    spec s = gray8(TS_EXPLICIT, rgb, 1, 2);
    s.spp = 3;
    s.npx = 6;
    s.photo = "RGB";
    float want[2] = {0.299f, 0.114f};
    check_image("RGB interleaved", &s, want, 2, 1);
    static const uint32_t planar[6] = {255, 0, 0, 0, 0, 255};
    s.px = planar; /* R R G G B B */
    s.planar = 1;
    check_image("RGB planar", &s, want, 2, 1);
    /* the same pixels, 16-bit */
    static const uint32_t rgb16[6] = {65535, 0, 0, 0, 0, 65535};
    s.px = rgb16;
    s.planar = 0;
    s.ba = s.bs = 16;
    s.hb = 15;
    check_image("RGB 16-bit", &s, want, 2, 1);

    /* YBR_FULL: (100, 128, 128) is gray 100; (76, 85, 255) is R 254.054, G 0.1025, B < 0 */
    static const uint32_t ybr[6] = {100, 128, 128, 76, 85, 255};
    spec y = gray8(TS_EXPLICIT, ybr, 1, 2);
    y.spp = 3;
    y.npx = 6;
    y.photo = "YBR_FULL";
    double r = 76 + 1.402 * 127, g = 76 - 0.344136 * -43 - 0.714136 * 127;
    float wy[2] = {100 / 255.0f, (float)((0.299 * r + 0.587 * g) / 255)};
    check_image("YBR_FULL", &y, wy, 2, 1);
    /* native YBR_FULL_422: Y1 Y2 Cb Cr */
    static const uint32_t y422[4] = {100, 200, 128, 128};
    spec h = gray8(TS_EXPLICIT, y422, 1, 2);
    h.spp = 3;
    h.photo = "YBR_FULL_422";
    h.npx = 4;
    float w422[2] = {100 / 255.0f, 200 / 255.0f};
    check_image("YBR_FULL_422", &h, w422, 2, 1);

    /* photometric interpretations that are refused */
    s.px = rgb;
    s.ba = s.bs = 8;
    s.hb = 7;
    s.photo = "PALETTE COLOR";
    check_fails("PALETTE COLOR", &s, CXR_IMG_UNSUPPORTED, "PALETTE COLOR");
    s.photo = "MONOCHROME2";
    check_fails("MONOCHROME2 with 3 samples", &s, CXR_IMG_CORRUPT, "SamplesPerPixel");
}

static void
test_multiframe(void)
{
    static const uint32_t px[4] = {10, 20, 30, 40};
    spec s = gray8(TS_EXPLICIT, px, 1, 2);
    s.frames = "2";
    s.npx = 4;
    float want[2] = {10 / 255.0f, 20 / 255.0f};
    check_image("two frames", &s, want, 2, 2);
}

/* ---- RLE ---- */

/* PackBits: literal runs and replicate runs (enough to exercise both). */
static void
packbits(wbuf *w, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t run = 1;
        while (i + run < n && run < 128 && p[i + run] == p[i])
            run++;
        if (run >= 3) {
            uint8_t h = (uint8_t)(int8_t)(1 - (int)run), v = p[i];
            wput(w, &h, 1);
            wput(w, &v, 1);
            i += run;
            continue;
        }
        size_t lit = 1;
        while (i + lit < n && lit < 128 &&
               !(i + lit + 2 < n && p[i + lit] == p[i + lit + 1] && p[i + lit] == p[i + lit + 2]))
            lit++;
        uint8_t h = (uint8_t)(lit - 1);
        wput(w, &h, 1);
        wput(w, p + i, lit);
        i += lit;
    }
    if (w->n % 2)
        wput(w, "\x80", 1); /* segments are padded to even lengths; -128 is a no-op */
}

/* One RLE frame of n pixels with spp samples of bytes bytes (value order as stored). */
static uint8_t *
rle_frame(const uint32_t *px, size_t n, int spp, int bytes, size_t *len)
{
    int nseg = spp * bytes;
    wbuf w = {0};
    uint8_t header[64] = {0};
    wput(&w, header, 64);
    uint8_t *plane = malloc(n);
    uint32_t offsets[15];
    for (int s = 0; s < nseg; s++) {
        int c = s / bytes, shift = 8 * (bytes - 1 - s % bytes);
        for (size_t i = 0; i < n; i++)
            plane[i] = (uint8_t)(px[i * (size_t)spp + (size_t)c] >> shift);
        offsets[s] = (uint32_t)w.n;
        packbits(&w, plane, n);
    }
    free(plane);
    w.b[0] = (uint8_t)nseg;
    for (int s = 0; s < nseg; s++)
        for (int k = 0; k < 4; k++)
            w.b[4 + 4 * s + k] = (uint8_t)(offsets[s] >> (8 * k));
    *len = w.n;
    return w.b;
}

/* The encapsulated items: offset table (entries, or none), fragments, delimiter. */
static uint8_t *
encapsulate(const uint8_t *const *frags, const size_t *lens, int n, int with_table,
            size_t *len)
{
    wbuf w = {0};
    witem(&w, with_table ? 4u * (uint32_t)n : 0);
    uint32_t off = 0;
    for (int i = 0; with_table && i < n; i++) {
        w32(&w, off);
        off += 8 + (uint32_t)lens[i];
    }
    for (int i = 0; i < n; i++) {
        witem(&w, (uint32_t)lens[i]);
        wput(&w, frags[i], lens[i]);
    }
    wdelim(&w, 0xE0DD);
    *len = w.n;
    return w.b;
}

static void
test_rle(void)
{
    /* 8-bit, 2x4 with runs and literals */
    static const uint32_t px8[8] = {0, 0, 0, 0, 51, 102, 255, 255};
    size_t flen, elen;
    uint8_t *frame = rle_frame(px8, 8, 1, 1, &flen);
    const uint8_t *frags[2] = {frame, frame};
    size_t lens[2] = {flen, flen};
    uint8_t *enc = encapsulate(frags, lens, 1, 0, &elen);
    spec s = gray8(TS_RLE, px8, 2, 4);
    s.encap = enc;
    s.encap_len = elen;
    float want8[8] = {0, 0, 0, 0, 0.2f, 0.4f, 1, 1};
    check_image("RLE 8-bit", &s, want8, 8, 1);
    free(enc);
    /* two frames with an offset table: frame 1 is the first fragment */
    static const uint32_t other[8] = {255, 255, 255, 255, 255, 255, 255, 255};
    size_t olen;
    uint8_t *oframe = rle_frame(other, 8, 1, 1, &olen);
    frags[1] = oframe;
    lens[1] = olen;
    enc = encapsulate(frags, lens, 2, 1, &elen);
    s.encap = enc;
    s.encap_len = elen;
    s.frames = "2";
    check_image("RLE two frames, offset table", &s, want8, 8, 2);
    free(enc);
    enc = encapsulate(frags, lens, 2, 0, &elen);
    s.encap = enc;
    s.encap_len = elen;
    check_image("RLE two frames, no offset table", &s, want8, 8, 2);
    free(enc);
    free(oframe);
    free(frame);

    /* 16-bit signed (two byte planes, most significant first) */
    static const uint32_t px16[4] = {0x8000, 0x7FFF, 0x0000, 0xFFFF};
    frame = rle_frame(px16, 4, 1, 2, &flen);
    frags[0] = frame;
    lens[0] = flen;
    enc = encapsulate(frags, lens, 1, 0, &elen);
    spec t = gray8(TS_RLE, px16, 2, 2);
    t.ba = t.bs = 16;
    t.hb = 15;
    t.pr = 1;
    t.encap = enc;
    t.encap_len = elen;
    float want16[4] = {0.0f, 1.0f, 32768 / 65535.0f, 32767 / 65535.0f};
    check_image("RLE 16-bit signed", &t, want16, 4, 1);
    free(enc);
    free(frame);

    /* RGB (three segments) */
    static const uint32_t rgb[6] = {255, 0, 0, 0, 0, 255};
    frame = rle_frame(rgb, 2, 3, 1, &flen);
    frags[0] = frame;
    lens[0] = flen;
    enc = encapsulate(frags, lens, 1, 0, &elen);
    spec c = gray8(TS_RLE, rgb, 1, 2);
    c.spp = 3;
    c.photo = "RGB";
    c.encap = enc;
    c.encap_len = elen;
    float wantc[2] = {0.299f, 0.114f};
    check_image("RLE RGB", &c, wantc, 2, 1);
    free(enc);
    free(frame);

    /* the codec alone on hand-written bytes: replicate 3 x 7, literal 1 2, then -128 */
    uint8_t raw[64 + 6] = {1};
    raw[4] = 64;
    const uint8_t seg[6] = {0xFE, 7, 0x01, 1, 2, 0x80};
    memcpy(raw + 64, seg, 6);
    int32_t out[6];
    char err[256];
    cxr_img_status st = cxr_rle_decode(raw, sizeof raw, 5, 1, 1, 8, out, 5, err, sizeof err);
    CHECK(st == CXR_IMG_OK && out[0] == 7 && out[2] == 7 && out[3] == 1 && out[4] == 2,
          "RLE by hand: %d %s", st, err);
    /* hostile headers */
    st = cxr_rle_decode(raw, sizeof raw, 6, 1, 1, 8, out, 6, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "RLE segment too short: %d", st);
    st = cxr_rle_decode(raw, sizeof raw, 5, 1, 1, 16, out, 5, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT && strstr(err, "segments"), "RLE segment count: %s", err);
    raw[4] = 200;
    st = cxr_rle_decode(raw, sizeof raw, 5, 1, 1, 8, out, 5, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "RLE offset past the end: %d", st);
    raw[4] = 64;
    raw[0] = 16;
    st = cxr_rle_decode(raw, sizeof raw, 5, 1, 1, 8, out, 5, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "RLE 16 segments: %d", st);
    st = cxr_rle_decode(raw, 10, 5, 1, 1, 8, out, 5, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "RLE short header: %d", st);
    raw[0] = 1;
    st = cxr_rle_decode(raw, sizeof raw, 5, 1, 1, 8, out, 4, err, sizeof err);
    CHECK(st == CXR_IMG_TOO_LARGE, "RLE output capacity: %d", st);
}

/* ---- the element index ---- */

static int
count_tags(uint32_t tag, const char *vr, const uint8_t *value, uint32_t len, void *arg)
{
    (void)vr, (void)value, (void)len;
    uint32_t *a = arg;
    if (a[0] == 0)
        a[1] = tag;
    a[0]++;
    return tag == CXR_DICOM_TAG(0x0028, 0x0010); /* stop at Rows */
}

static void
test_elements(void)
{
    static const uint32_t px[4] = {0, 51, 102, 255};
    const char *const ts[2] = {TS_EXPLICIT, TS_IMPLICIT};
    for (int i = 0; i < 2; i++) {
        spec s = gray8(ts[i], px, 2, 2);
        size_t len;
        uint8_t *b = build(&s, &len);
        cxr_dicom *d;
        char err[256];
        cxr_img_status st = cxr_dicom_open(b, len, &d, err, sizeof err);
        CHECK(st == CXR_IMG_OK, "elements %s: %s", ts[i], err);
        if (st != CXR_IMG_OK) {
            free(b);
            continue;
        }
        const uint8_t *v;
        uint32_t vl;
        char vr[3];
        CHECK(cxr_dicom_element(d, CXR_DICOM_TAG(0x0008, 0x0060), &v, &vl, vr) && vl == 2 &&
                  memcmp(v, "DX", 2) == 0 && strcmp(vr, "CS") == 0,
              "Modality %s", ts[i]);
        CHECK(cxr_dicom_element(d, CXR_DICOM_TAG(0x0010, 0x0010), &v, &vl, vr) && vl == 8 &&
                  strcmp(vr, i == 0 ? "PN" : "UN") == 0,
              "PatientName %s: vr %s", ts[i], vr);
        CHECK(cxr_dicom_element(d, CXR_DICOM_TAG(0x0002, 0x0010), &v, &vl, vr) &&
                  strcmp(vr, "UI") == 0 && memcmp(v, ts[i], strlen(ts[i])) == 0,
              "TransferSyntaxUID %s", ts[i]);
        CHECK(cxr_dicom_element(d, CXR_DICOM_TAG(0x0028, 0x0010), &v, &vl, vr) &&
                  strcmp(vr, "US") == 0 && vl == 2 && v[0] == 2,
              "Rows %s", ts[i]);
        CHECK(!cxr_dicom_element(d, CXR_DICOM_TAG(0x0010, 0x0020), &v, &vl, vr),
              "no PatientID %s", ts[i]);
        uint32_t a[2] = {0, 0};
        cxr_dicom_each(d, count_tags, a);
        /* meta: group length, 0001, 0002, 0003, 0010; then 0016, 0060, 0010, 0002, 0004, 0010 */
        CHECK(a[0] == 11 && a[1] == CXR_DICOM_TAG(0x0002, 0x0000), "each %s: %u elements, first "
              "%08X", ts[i], a[0], a[1]);
        cxr_dicom_close(d);
        free(b);
    }
}

/* ---- hostile files ---- */

/* Sequences nested n deep, undefined or defined lengths (explicit VR little endian). */
static uint8_t *
nested(int n, int undefined, size_t *len)
{
    wbuf w = {0};
    w.expl = 1;
    wstr(&w, 0x0008, 0x0060, "CS", "DX");
    for (int i = 0; i < n; i++) {
        uint32_t l = undefined ? 0xFFFFFFFFu : 20u * (uint32_t)(n - 1 - i);
        whead(&w, 0x0040, 0xA730, "SQ", l);
        if (i < n - 1)
            witem(&w, undefined ? 0xFFFFFFFFu : l - 8);
    }
    for (int i = 0; undefined && i < n; i++) {
        wdelim(&w, 0xE0DD);
        if (i < n - 1)
            wdelim(&w, 0xE00D);
    }
    *len = w.n;
    return w.b;
}

static void
test_hostile(void)
{
    static const uint32_t px[4] = {0, 51, 102, 255};
    spec s = gray8(TS_EXPLICIT, px, 2, 2);
    size_t len;
    uint8_t *b = build(&s, &len);
    /* every truncation ends in an error with a message */
    int clean = 1;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, b, cut);
        float out[4];
        char err[256];
        int frames;
        cxr_img_status st = decode(t, cut, 1 << 20, out, 4, &frames, err);
        if (st == CXR_IMG_OK || err[0] == '\0')
            clean = 0;
        free(t);
    }
    CHECK(clean, "every truncation fails with a message");
    /* a length past the end: Pixel Data claims 0x7FFF bytes */
    {
        uint8_t *t = malloc(len);
        memcpy(t, b, len);
        /* the Pixel Data length field is the last header's 4 bytes before the 4 samples */
        t[len - 8] = 0xFF;
        t[len - 7] = 0x7F;
        check_bytes_fail("length past the end", t, len, CXR_IMG_CORRUPT, "past the end");
        free(t);
    }
    free(b);

    /* native pixel data shorter than the frame */
    spec shortpx = gray8(TS_EXPLICIT, px, 2, 3);
    shortpx.npx = 4;
    check_fails("short native Pixel Data", &shortpx, CXR_IMG_CORRUPT, "needs");

    /* undefined lengths without delimiters: a sequence, an item, encapsulated pixel data */
    {
        wbuf w = {0};
        w.expl = 1;
        wstr(&w, 0x0008, 0x0060, "CS", "DX");
        whead(&w, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
        witem(&w, 0xFFFFFFFFu);
        wstr(&w, 0x0008, 0x0100, "SH", "CODE");
        check_bytes_fail("undefined item without delimiter", w.b, w.n, CXR_IMG_CORRUPT,
                         "delimiter");
        wdelim(&w, 0xE00D);
        check_bytes_fail("undefined sequence without delimiter", w.b, w.n, CXR_IMG_CORRUPT,
                         "delimiter");
        free(w.b);
        static const uint8_t frag_items[] = {0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
                                             0xFE, 0xFF, 0x00, 0xE0, 2, 0, 0, 0, 1, 2};
        spec e = gray8(TS_RLE, px, 2, 2);
        e.encap = frag_items;
        e.encap_len = sizeof frag_items;
        check_fails("fragments without delimiter", &e, CXR_IMG_CORRUPT, "delimiter");
        /* undefined length on a text VR */
        wbuf u = {0};
        u.expl = 1;
        wstr(&u, 0x0008, 0x0060, "CS", "DX");
        whead(&u, 0x0008, 0x0070, "UT", 0xFFFFFFFFu);
        check_bytes_fail("undefined length on UT", u.b, u.n, CXR_IMG_CORRUPT, "undefined");
        free(u.b);
        /* a VR that is not one */
        wbuf v = {0};
        v.expl = 1;
        wstr(&v, 0x0008, 0x0060, "CS", "DX");
        wstr(&v, 0x0008, 0x0070, "zz", "ACME");
        check_bytes_fail("invalid VR", v.b, v.n, CXR_IMG_CORRUPT, "value representation");
        free(v.b);
    }

    /* sequences nested 10,000 deep, both length kinds; 16 deep is still read */
    for (int undefined = 0; undefined < 2; undefined++) {
        uint8_t *n = nested(10000, undefined, &len);
        check_bytes_fail(undefined ? "nested 10000, undefined" : "nested 10000, defined", n, len,
                         CXR_IMG_CORRUPT, "nested deeper");
        free(n);
        n = nested(CXR_DICOM_MAX_DEPTH, undefined, &len);
        cxr_dicom *d;
        char err[256];
        cxr_img_status st = cxr_dicom_open(n, len, &d, err, sizeof err);
        CHECK(st == CXR_IMG_OK, "nested %d: %s", CXR_DICOM_MAX_DEPTH, err);
        if (st == CXR_IMG_OK)
            cxr_dicom_close(d);
        free(n);
        n = nested(CXR_DICOM_MAX_DEPTH + 1, undefined, &len);
        check_bytes_fail("nested one too deep", n, len, CXR_IMG_CORRUPT, "nested deeper");
        free(n);
    }

    /* 65535 x 65535 declared: refused before any allocation (the pixel data is 4 bytes; a
     * 16 GiB malloc would trip AddressSanitizer) */
    spec big = gray8(TS_EXPLICIT, px, 65535, 65535);
    big.npx = 4;
    check_fails("65535 x 65535", &big, CXR_IMG_TOO_LARGE, "65535x65535");
    {
        size_t bl;
        uint8_t *bb = build(&big, &bl);
        cxr_dicom *d;
        char err[256];
        if (cxr_dicom_open(bb, bl, &d, err, sizeof err) == CXR_IMG_OK) {
            float out[4];
            int frames;
            cxr_img_status st = cxr_dicom_decode_gray(d, SIZE_MAX, out, 4, &frames, err,
                                                      sizeof err);
            CHECK(st == CXR_IMG_TOO_LARGE, "65535 x 65535 into 4 floats: %d %s", st, err);
            cxr_dicom_close(d);
        }
        free(bb);
    }

    /* wrong BitsStored / HighBit */
    spec bits = gray8(TS_EXPLICIT, px, 2, 2);
    bits.bs = 9;
    check_fails("BitsStored above BitsAllocated", &bits, CXR_IMG_CORRUPT, "BitsStored");
    bits.bs = 0;
    check_fails("BitsStored 0", &bits, CXR_IMG_CORRUPT, "BitsStored");
    bits.bs = 8;
    bits.hb = 11;
    check_fails("HighBit", &bits, CXR_IMG_CORRUPT, "HighBit");
    bits.hb = 7;
    bits.ba = 1;
    check_fails("1-bit", &bits, CXR_IMG_UNSUPPORTED, "BitsAllocated 1");

    /* encapsulated Pixel Data without fragments, or with a defined length */
    static const uint8_t empty_items[] = {0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0,
                                          0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0};
    spec e = gray8(TS_RLE, px, 2, 2);
    e.encap = empty_items;
    e.encap_len = sizeof empty_items;
    check_fails("no fragments", &e, CXR_IMG_CORRUPT, "without fragments");
    spec ed = gray8(TS_RLE, px, 2, 2);
    check_fails("encapsulated with a defined length", &ed, CXR_IMG_CORRUPT, "defined length");
    /* an RLE fragment with a bad segment count */
    static const uint8_t bad_rle[] = {
        0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 64, 0, 0, 0,
        3, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0};
    e.encap = bad_rle;
    e.encap_len = sizeof bad_rle;
    check_fails("RLE segment count", &e, CXR_IMG_CORRUPT, "segments");

    /* unsupported transfer syntaxes name the UID (and the name when known) */
    spec ls = gray8("1.2.840.10008.1.2.4.80", px, 2, 2);
    ls.encap = empty_items;
    ls.encap_len = sizeof empty_items;
    check_fails("JPEG-LS", &ls, CXR_IMG_UNSUPPORTED, "1.2.840.10008.1.2.4.80 (JPEG-LS Lossless)");
    spec unk = gray8("1.2.3.4.5", px, 2, 2);
    check_fails("unknown syntax", &unk, CXR_IMG_UNSUPPORTED, "1.2.3.4.5");

    /* no Pixel Data */
    spec nopx = gray8(TS_EXPLICIT, px, 2, 2);
    nopx.no_pixel_data = 1;
    check_fails("no Pixel Data", &nopx, CXR_IMG_CORRUPT, "Pixel Data");
}

/* A deflated dataset of 64 MiB of zeros (about 64 KiB compressed): the ratio bound stops it
 * long before CXR_DICOM_MAX_INFLATED. */
static void
test_deflate_bomb(void)
{
    wbuf w = {0};
    uint8_t pre[128] = {0};
    wput(&w, pre, 128);
    wput(&w, "DICM", 4);
    write_meta(&w, TS_DEFLATED);
    wbuf ds = {0};
    ds.expl = 1;
    wstr(&ds, 0x0008, 0x0060, "CS", "DX");
    whead(&ds, 0x7FE0, 0x0010, "OB", 64u << 20);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    uint8_t *zeros = calloc(1, 1 << 20), *obuf = malloc(1 << 20);
    wbuf comp = {0};
    z.next_in = ds.b;
    z.avail_in = (uInt)ds.n;
    for (int i = 0; i <= 64; i++) {
        if (i > 0) {
            z.next_in = zeros;
            z.avail_in = 1 << 20;
        }
        do {
            z.next_out = obuf;
            z.avail_out = 1 << 20;
            deflate(&z, i == 64 ? Z_FINISH : Z_NO_FLUSH);
            wput(&comp, obuf, (1u << 20) - z.avail_out);
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    size_t head = w.n;
    wput(&w, comp.b, comp.n);
    check_bytes_fail("deflate bomb", w.b, w.n, CXR_IMG_TOO_LARGE, "inflates past");
    /* truncated and garbled streams */
    {
        static const uint32_t px[4] = {0, 51, 102, 255};
        spec s = gray8(TS_DEFLATED, px, 2, 2);
        size_t len;
        uint8_t *b = build(&s, &len);
        check_bytes_fail("truncated deflate", b, len - 6, CXR_IMG_CORRUPT, "truncated");
        free(b);
    }
    memset(w.b + head, 0xFF, comp.n < 64 ? comp.n : 64);
    check_bytes_fail("garbled deflate", w.b, w.n, CXR_IMG_CORRUPT, "deflated");
    free(zeros);
    free(obuf);
    free(comp.b);
    free(ds.b);
    free(w.b);
}

static int
stop_now(void)
{
    return 1;
}

static void
test_interrupt(void)
{
    static const uint32_t px[4] = {0, 51, 102, 255};
    spec s = gray8(TS_EXPLICIT, px, 2, 2);
    size_t len;
    uint8_t *b = build(&s, &len);
    cxr_set_interrupt_hook(stop_now);
    float out[4];
    char err[256];
    int frames;
    cxr_img_status st = decode(b, len, 1 << 20, out, 4, &frames, err);
    CHECK(st == CXR_IMG_INTERRUPTED, "interrupted decode: %d %s", st, err);
    cxr_set_interrupt_hook(NULL);
    cxr_interrupt_clear();
    free(b);
}

/* pydicom's test files, when installed: each opens and decodes or fails with a status and a
 * message (a codec this build lacks is fine). */
static void
test_pydicom_files(void)
{
    const char *dir = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
    DIR *dp = opendir(dir);
    if (!dp) {
        printf("test_dicom: %s absent, skipped\n", dir);
        return;
    }
    struct dirent *de;
    int files = 0, decoded = 0;
    while ((de = readdir(dp))) {
        size_t nl = strlen(de->d_name);
        if (nl < 4 || strcmp(de->d_name + nl - 4, ".dcm") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        uint8_t *b = read_file(path, &len);
        if (!b)
            continue;
        files++;
        cxr_dicom *d;
        char err[256] = "";
        cxr_img_status st = cxr_dicom_open(b, len, &d, err, sizeof err);
        if (st == CXR_IMG_OK) {
            const cxr_dicom_info *in = cxr_dicom_info_of(d);
            size_t px = (size_t)in->rows * in->columns;
            float *out = px && px <= (1u << 22) ? malloc(px * sizeof *out) : NULL;
            int frames;
            err[0] = '\0';
            st = cxr_dicom_decode_gray(d, 1u << 22, out, out ? px : 0, &frames, err, sizeof err);
            if (st == CXR_IMG_OK) {
                decoded++;
                for (size_t i = 0; i < px; i++)
                    if (!(out[i] >= 0.0f && out[i] <= 1.0f)) {
                        CHECK(0, "%s: pixel %zu out of [0, 1]", de->d_name, i);
                        break;
                    }
            }
            free(out);
            cxr_dicom_close(d);
        }
        CHECK(st == CXR_IMG_OK || err[0] != '\0', "%s: status %d without a message", de->d_name,
              st);
        free(b);
    }
    closedir(dp);
    printf("test_dicom: %d pydicom files, %d decoded\n", files, decoded);
    CHECK(files > 0 && decoded > 0, "pydicom files: %d, decoded %d", files, decoded);
}

int
main(void)
{
    test_syntaxes();
    test_signed_and_rescale();
    test_windows();
    test_voi_lut();
    test_color();
    test_multiframe();
    test_rle();
    test_elements();
    test_hostile();
    test_deflate_bomb();
    test_interrupt();
    test_pydicom_files();
    return harness_finish("test_dicom");
}

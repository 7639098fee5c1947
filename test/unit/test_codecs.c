/* The compressed-pixel codecs (cxr_codec.h) against streams from independent encoders, with the
 * samples an independent decoder or the original pixels give (test/ref/codec_fixtures.py writes
 * them into $CXR_CODEC_FIXTURES), and against hostile input built here: truncation at every
 * length, bad Huffman tables and predictors, forged sizes, thousands of scans, random damage.
 * Whatever the input, a decode ends in a status (never a crash, hang or read past the buffer:
 * run under ASan/UBSan); a decode that says OK has the right pixels. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cxr_codec.h"
#include "harness.h"
#include "interrupt_hook.h"

#define ERRLEN 256
#define MAX_FIXTURES 64

typedef struct {
    char name[64], codec[8], status[16];
    int w, h, c, precision, is_signed, process, ct, maxdiff; /* -1: not checked */
    uint8_t *data;
    size_t len;
    int32_t *expected;
} fixture;

static fixture fixtures[MAX_FIXTURES];
static int nfixtures;

typedef cxr_img_status (*decode_fn)(const uint8_t *, size_t, size_t, int32_t *, size_t,
                                    cxr_frame_info *, char *, size_t);

static decode_fn
decoder_of(const fixture *f)
{
    return strcmp(f->codec, "j2k") == 0 ? cxr_j2k_decode : cxr_jpeg_decode;
}

static int
field(const char *s)
{
    return strcmp(s, "-") == 0 ? -1 : atoi(s);
}

static int
load_fixtures(const char *dir)
{
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/codecs.txt", dir);
    FILE *m = fopen(path, "r");
    if (!m)
        return 0;
    while (nfixtures < MAX_FIXTURES && fgets(line, sizeof line, m)) {
        fixture *f = &fixtures[nfixtures];
        char p[8][16];
        if (sscanf(line, "%63s %7s %15s %15s %15s %15s %15s %15s %15s %15s %15s", f->name,
                   f->codec, f->status, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]) != 11)
            continue;
        f->w = field(p[0]);
        f->h = field(p[1]);
        f->c = field(p[2]);
        f->precision = field(p[3]);
        f->is_signed = field(p[4]);
        f->process = field(p[5]);
        f->ct = field(p[6]);
        f->maxdiff = field(p[7]);
        snprintf(path, sizeof path, "%s/%s.bin", dir, f->name);
        f->data = read_file(path, &f->len);
        CHECK(f->data != NULL, "fixture %s missing", path);
        if (!f->data)
            continue;
        if (strcmp(f->status, "ok") == 0) {
            size_t n = 0;
            snprintf(path, sizeof path, "%s/%s.i32", dir, f->name);
            f->expected = (int32_t *)read_file(path, &n);
            CHECK(f->expected && n == (size_t)f->w * f->h * f->c * 4,
                  "expected samples of %s: %zu bytes", f->name, f->expected ? n : 0);
            if (!f->expected || n != (size_t)f->w * f->h * f->c * 4) {
                free(f->data);
                free(f->expected);
                continue;
            }
        }
        nfixtures++;
    }
    fclose(m);
    return nfixtures;
}

static const fixture *
find(const char *name)
{
    for (int i = 0; i < nfixtures; i++)
        if (strcmp(fixtures[i].name, name) == 0)
            return &fixtures[i];
    CHECK(0, "fixture %s not found", name);
    return NULL;
}

static size_t
nsamples(const fixture *f)
{
    return (size_t)f->w * f->h * f->c;
}

/* largest |got - want| */
static long
max_diff(const int32_t *got, const int32_t *want, size_t n)
{
    long d = 0;
    for (size_t i = 0; i < n; i++) {
        long e = labs((long)got[i] - want[i]);
        if (e > d)
            d = e;
    }
    return d;
}

static int
valid_status(cxr_img_status st)
{
    return st == CXR_IMG_OK || st == CXR_IMG_CORRUPT || st == CXR_IMG_TOO_LARGE ||
           st == CXR_IMG_NO_MEMORY || st == CXR_IMG_UNSUPPORTED || st == CXR_IMG_INTERRUPTED;
}

static void
test_fixture(const fixture *f)
{
    char err[ERRLEN] = "";
    cxr_frame_info info;
    size_t n = nsamples(f);
    int32_t *out = malloc((n + 1) * sizeof *out);
    decode_fn dec = decoder_of(f);
    int is_jpeg = strcmp(f->codec, "jpeg") == 0;
    if (is_jpeg) {
        cxr_img_status st = cxr_jpeg_read_header(f->data, f->len, &info, err, sizeof err);
        CHECK(st == CXR_IMG_OK && info.width == f->w && info.height == f->h &&
                  info.components == f->c && (f->process < 0 || info.process == f->process) &&
                  (f->precision < 0 || info.precision == f->precision),
              "%s header: status %d %dx%dx%d p%d process %d: %s", f->name, st, info.width,
              info.height, info.components, info.precision, info.process, err);
        CHECK(f->ct < 0 || info.color_transformed == f->ct, "%s header colour transform %d",
              f->name, info.color_transformed);
    }
    out[n] = 0x5A5A5A5A; /* nothing written past the image */
    cxr_img_status st = dec(f->data, f->len, n, out, n, &info, err, sizeof err);
    if (strcmp(f->status, "unsupported") == 0) {
        CHECK(st == CXR_IMG_UNSUPPORTED, "%s: status %d (%s), unsupported expected", f->name, st,
              err);
        free(out);
        return;
    }
    CHECK(st == CXR_IMG_OK, "%s: status %d: %s", f->name, st, err);
    if (st == CXR_IMG_OK) {
        long d = max_diff(out, f->expected, n);
        CHECK(d <= f->maxdiff, "%s: samples differ by up to %ld (allowed %d)", f->name, d,
              f->maxdiff);
        CHECK(info.width == f->w && info.height == f->h && info.components == f->c,
              "%s: info %dx%dx%d", f->name, info.width, info.height, info.components);
        CHECK(f->precision < 0 || info.precision == f->precision, "%s: precision %d", f->name,
              info.precision);
        CHECK(f->is_signed < 0 || info.is_signed == f->is_signed, "%s: signed %d", f->name,
              info.is_signed);
        CHECK(f->process < 0 || info.process == f->process, "%s: process %d", f->name,
              info.process);
        CHECK(f->ct < 0 || info.color_transformed == f->ct, "%s: colour transform %d", f->name,
              info.color_transformed);
    }
    CHECK(out[n] == 0x5A5A5A5A, "%s: wrote past the image", f->name);
    /* limits come before any decoding */
    st = dec(f->data, f->len, n - 1, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_TOO_LARGE, "%s with max_samples one short: status %d", f->name, st);
    st = dec(f->data, f->len, n, out, n - 1, &info, err, sizeof err);
    CHECK(st == CXR_IMG_NO_MEMORY, "%s with a short buffer: status %d", f->name, st);
    st = dec(f->data, f->len, n, NULL, 0, &info, err, sizeof err);
    CHECK(st == CXR_IMG_NO_MEMORY, "%s without a buffer: status %d", f->name, st);
    /* a stop request ends the decode, and leaves the next one unharmed */
    arm(0);
    st = dec(f->data, f->len, n, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_INTERRUPTED && calls >= 1, "%s interrupted: status %d after %ld polls",
          f->name, st, calls);
    disarm();
    st = dec(f->data, f->len, n, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_OK && max_diff(out, f->expected, n) <= f->maxdiff,
          "%s after an interrupt: status %d", f->name, st);
    free(out);
}

/* Every proper prefix: fails, or (a stream whose end held nothing but EOI) gives the right
 * pixels. A lossy JPEG without its end is always an error (libjpeg would fill it with gray). */
static void
test_truncation(const char *name, int lossy)
{
    const fixture *f = find(name);
    if (!f)
        return;
    char err[ERRLEN];
    cxr_frame_info info;
    size_t n = nsamples(f);
    int32_t *out = malloc(n * sizeof *out);
    int bad = 0, ok = 0;
    for (size_t len = 0; len < f->len; len++) {
        /* a copy of exactly len bytes, so ASan sees any read past it */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, f->data, len);
        cxr_img_status st = decoder_of(f)(cut, len, n, out, n, &info, err, sizeof err);
        free(cut);
        if (st == CXR_IMG_OK) {
            ok++;
            if ((lossy || max_diff(out, f->expected, n) != 0) && !bad++)
                CHECK(0, "%s cut to %zu of %zu bytes decodes%s", name, len, f->len,
                      lossy ? "" : " to wrong pixels");
        } else if (!valid_status(st) && !bad++) {
            CHECK(0, "%s cut to %zu bytes: status %d", name, len, st);
        }
    }
    CHECK(bad == 0, "%s: %d bad truncations", name, bad);
    CHECK(ok <= 2, "%s: %d truncations decode", name, ok);
    free(out);
}

/* Deterministic random damage: a few bytes overwritten, away from the SOI/SOC. */
static void
test_damage(const char *name, int rounds)
{
    const fixture *f = find(name);
    if (!f)
        return;
    char err[ERRLEN];
    cxr_frame_info info;
    size_t n = nsamples(f);
    int32_t *out = malloc(n * sizeof *out);
    uint8_t *buf = malloc(f->len);
    uint32_t seed = 12345;
    int invalid = 0, decoded = 0;
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, f->data, f->len);
        int k = 1 + r % 4;
        for (int i = 0; i < k; i++) {
            seed = seed * 1664525u + 1013904223u;
            size_t pos = 2 + (seed >> 8) % (f->len - 2);
            seed = seed * 1664525u + 1013904223u;
            buf[pos] = (r & 8) ? (uint8_t)(seed >> 24) : (uint8_t)(buf[pos] ^ (1u << (seed >> 29)));
        }
        cxr_img_status st = decoder_of(f)(buf, f->len, n, out, n, &info, err, sizeof err);
        invalid += !valid_status(st);
        decoded += st == CXR_IMG_OK;
        CHECK(err[0] != '\0' || st == CXR_IMG_OK, "%s damaged: no message", name);
    }
    CHECK(invalid == 0, "%s damaged: %d invalid statuses", name, invalid);
    printf("  %s: %d of %d damaged copies still decode\n", name, decoded, rounds);
    free(buf);
    free(out);
}

/* ---- hand-built JPEG headers ---- */
static size_t
put_sof(uint8_t *b, int marker, int prec, int h, int w, int nc)
{
    size_t p = 0;
    b[p++] = 0xFF;
    b[p++] = 0xD8;
    b[p++] = 0xFF;
    b[p++] = (uint8_t)marker;
    size_t l = 8 + 3 * (size_t)nc;
    b[p++] = (uint8_t)(l >> 8);
    b[p++] = (uint8_t)l;
    b[p++] = (uint8_t)prec;
    b[p++] = (uint8_t)(h >> 8);
    b[p++] = (uint8_t)h;
    b[p++] = (uint8_t)(w >> 8);
    b[p++] = (uint8_t)w;
    b[p++] = (uint8_t)nc;
    for (int c = 0; c < nc; c++) {
        b[p++] = (uint8_t)(c + 1);
        b[p++] = 0x11;
        b[p++] = 0;
    }
    b[p++] = 0xFF;
    b[p++] = 0xD9;
    return p;
}

static void
test_jpeg_headers(void)
{
    uint8_t b[64];
    char err[ERRLEN];
    cxr_frame_info info;
    int32_t out[16];
    size_t n = put_sof(b, 0xC0, 8, 65535, 65535, 1);
    cxr_img_status st = cxr_jpeg_read_header(b, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_OK && info.width == 65535 && info.height == 65535 && info.process == 0,
          "65535x65535 header: %d %s", st, err);
    st = cxr_jpeg_decode(b, n, 1u << 20, out, 16, &info, err, sizeof err);
    CHECK(st == CXR_IMG_TOO_LARGE, "65535x65535 baseline: status %d: %s", st, err);
    n = put_sof(b, 0xC3, 16, 65535, 65535, 3);
    st = cxr_jpeg_decode(b, n, 1u << 20, out, 16, &info, err, sizeof err);
    CHECK(st == CXR_IMG_TOO_LARGE, "65535x65535x3 lossless: status %d: %s", st, err);
    n = put_sof(b, 0xC2, 8, 65535, 65535, 3);
    st = cxr_jpeg_decode(b, n, SIZE_MAX, out, 16, &info, err, sizeof err);
    CHECK(st == CXR_IMG_NO_MEMORY, "65535x65535 progressive, short buffer: %d: %s", st, err);

    static const struct {
        int marker, prec, h, w, nc;
        cxr_img_status want;
    } cases[] = {
        {0xC5, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED}, {0xC6, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED},
        {0xC7, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED}, {0xC9, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED},
        {0xCA, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED}, {0xCB, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED},
        {0xCD, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED}, {0xCE, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED},
        {0xCF, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED}, {0xF7, 8, 8, 8, 1, CXR_IMG_UNSUPPORTED},
        {0xC0, 8, 8, 8, 4, CXR_IMG_UNSUPPORTED}, {0xC0, 8, 8, 8, 2, CXR_IMG_UNSUPPORTED},
        {0xC0, 8, 8, 8, 0, CXR_IMG_CORRUPT},     {0xC0, 8, 0, 8, 1, CXR_IMG_CORRUPT},
        {0xC0, 8, 8, 0, 1, CXR_IMG_CORRUPT},     {0xC0, 12, 8, 8, 1, CXR_IMG_CORRUPT},
        {0xC3, 1, 8, 8, 1, CXR_IMG_CORRUPT},     {0xC3, 17, 8, 8, 1, CXR_IMG_CORRUPT},
        {0xC1, 12, 8, 8, 1, CXR_IMG_OK},         {0xC3, 2, 8, 8, 1, CXR_IMG_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = put_sof(b, cases[i].marker, cases[i].prec, cases[i].h, cases[i].w, cases[i].nc);
        st = cxr_jpeg_read_header(b, n, &info, err, sizeof err);
        CHECK(st == cases[i].want, "SOF 0x%02X P%d %dx%dx%d: status %d (%s)", cases[i].marker,
              cases[i].prec, cases[i].w, cases[i].h, cases[i].nc, st, err);
    }
    n = put_sof(b, 0xC1, 12, 8, 8, 1);
    st = cxr_jpeg_decode(b, n, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_UNSUPPORTED && strstr(err, "12-bit"), "12-bit lossy: %d %s", st, err);
    /* segment lengths that overrun, fall short, or a marker where none belongs */
    static const uint8_t bad1[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x01, 0x00, 0, 0};
    static const uint8_t bad2[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01, 0, 0};
    static const uint8_t bad3[] = {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02};
    static const uint8_t bad4[] = {0xFF, 0xD8, 0x12, 0x34};
    static const uint8_t bad5[] = {0xFF, 0xD8, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t bad6[] = {0x89, 'P', 'N', 'G'};
    static const uint8_t bad7[] = {0xFF, 0xD8, 0xFF, 0xDE, 0x00, 0x02}; /* DHP */
    const struct {
        const uint8_t *b;
        size_t n;
        cxr_img_status want;
    } raw[] = {{bad1, sizeof bad1, CXR_IMG_CORRUPT}, {bad2, sizeof bad2, CXR_IMG_CORRUPT},
               {bad3, sizeof bad3, CXR_IMG_CORRUPT}, {bad4, sizeof bad4, CXR_IMG_CORRUPT},
               {bad5, sizeof bad5, CXR_IMG_CORRUPT}, {bad6, sizeof bad6, CXR_IMG_CORRUPT},
               {bad7, sizeof bad7, CXR_IMG_UNSUPPORTED}, {NULL, 0, CXR_IMG_CORRUPT}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        st = cxr_jpeg_decode(raw[i].b, raw[i].n, 1u << 20, out, 16, &info, err, sizeof err);
        CHECK(st == raw[i].want, "bad header %zu: status %d (%s)", i, st, err);
    }
}

/* Offset of the first marker m after the SOI, by walking segments; 0 if none. */
static size_t
find_marker(const uint8_t *b, size_t len, int m)
{
    size_t p = 2;
    while (p + 4 <= len && b[p] == 0xFF) {
        if (b[p + 1] == m)
            return p;
        if (b[p + 1] == 0xDA)
            return 0;
        p += 2 + ((size_t)b[p + 2] << 8 | b[p + 3]);
    }
    return 0;
}

static cxr_img_status
decode_copy(const fixture *f, const uint8_t *buf, size_t len, char *err)
{
    size_t n = nsamples(f);
    int32_t *out = malloc(n * sizeof *out);
    cxr_frame_info info;
    cxr_img_status st = decoder_of(f)(buf, len, n, out, n, &info, err, ERRLEN);
    free(out);
    return st;
}

static void
test_bad_tables(void)
{
    char err[ERRLEN];
    const char *names[] = {"jpeg_gray_baseline", "ljpeg_sv1_16bit"};
    for (int k = 0; k < 2; k++) {
        const fixture *f = find(names[k]);
        if (!f)
            continue;
        size_t dht = find_marker(f->data, f->len, 0xC4);
        CHECK(dht > 0, "%s: no DHT", f->name);
        if (!dht)
            continue;
        uint8_t *b = malloc(f->len);
        /* three codes of length 1: over-subscribed */
        memcpy(b, f->data, f->len);
        b[dht + 5 + 0] = 3;
        cxr_img_status st = decode_copy(f, b, f->len, err);
        CHECK(st == CXR_IMG_CORRUPT, "%s with 3 one-bit codes: %d (%s)", f->name, st, err);
        /* more values announced than the segment holds */
        memcpy(b, f->data, f->len);
        b[dht + 5 + 15] = 255;
        st = decode_copy(f, b, f->len, err);
        CHECK(st == CXR_IMG_CORRUPT, "%s with 255 16-bit codes: %d (%s)", f->name, st, err);
        /* table class 7 */
        memcpy(b, f->data, f->len);
        b[dht + 4] = 0x70;
        st = decode_copy(f, b, f->len, err);
        CHECK(st == CXR_IMG_CORRUPT, "%s with table class 7: %d (%s)", f->name, st, err);
        free(b);
    }
}

/* Offset of the scan header's Ss byte in the first SOS. */
static size_t
sos_params(const uint8_t *b, size_t len)
{
    for (size_t p = 2; p + 4 < len; p++)
        if (b[p] == 0xFF && b[p + 1] == 0xDA)
            return p + 5 + 2 * (size_t)b[p + 4];
    return 0;
}

static void
test_bad_lossless(void)
{
    char err[ERRLEN];
    const fixture *f = find("ljpeg_sv1_8bit");
    if (!f)
        return;
    size_t ss = sos_params(f->data, f->len);
    CHECK(ss > 0, "no SOS");
    if (!ss)
        return;
    uint8_t *b = malloc(f->len);
    static const struct {
        int off, value;
        cxr_img_status want;
    } cases[] = {
        {0, 0, CXR_IMG_CORRUPT},  {0, 8, CXR_IMG_CORRUPT},   {0, 255, CXR_IMG_CORRUPT},
        {2, 8, CXR_IMG_CORRUPT},  {2, 0x10, CXR_IMG_CORRUPT}, /* Pt = P, Ah != 0 */
        {-1, 0x30, CXR_IMG_CORRUPT},                          /* table 3, not defined */
        {-2, 9, CXR_IMG_CORRUPT},                             /* unknown component */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, f->data, f->len);
        b[ss + (size_t)cases[i].off] = (uint8_t)cases[i].value;
        err[0] = '\0';
        cxr_img_status st = decode_copy(f, b, f->len, err);
        CHECK(st == cases[i].want, "lossless scan byte %+d = %d: status %d (%s)", cases[i].off,
              cases[i].value, st, err);
    }
    /* other predictors over data coded with predictor 1: wrong pixels or an error, in bounds */
    for (int sv = 2; sv <= 7; sv++) {
        memcpy(b, f->data, f->len);
        b[ss] = (uint8_t)sv;
        cxr_img_status st = decode_copy(f, b, f->len, err);
        CHECK(valid_status(st), "predictor %d: status %d", sv, st);
    }
    /* the scan's data cut out: EOI right after the scan header */
    size_t sos_end = ss + 3;
    memcpy(b, f->data, sos_end);
    b[sos_end] = 0xFF;
    b[sos_end + 1] = 0xD9;
    cxr_img_status st = decode_copy(f, b, sos_end + 2, err);
    CHECK(st == CXR_IMG_CORRUPT, "lossless scan without data: %d (%s)", st, err);
    free(b);
    /* a restart marker out of sequence */
    const fixture *r = find("ljpeg_restart_16bit");
    if (r) {
        b = malloc(r->len);
        memcpy(b, r->data, r->len);
        size_t first = 0;
        for (size_t p = 2; p + 1 < r->len; p++)
            if (b[p] == 0xFF && b[p + 1] == 0xD0) {
                first = p;
                break;
            }
        CHECK(first > 0, "no RST0 in %s", r->name);
        if (first) {
            b[first + 1] = 0xD3;
            st = decode_copy(r, b, r->len, err);
            CHECK(st == CXR_IMG_CORRUPT, "RST3 for RST0: %d (%s)", st, err);
        }
        free(b);
    }
}

/* A progressive JPEG whose scans repeat hundreds of times: refused before any decoding. */
static void
test_scan_bomb(void)
{
    const fixture *f = find("jpeg_gray_progressive");
    if (!f)
        return;
    size_t first = find_marker(f->data, f->len, 0xDA);
    /* the first scan starts after the tables; find_marker stops at SOS, so walk by hand */
    first = 0;
    for (size_t p = 2; p + 4 <= f->len && f->data[p] == 0xFF;
         p += 2 + ((size_t)f->data[p + 2] << 8 | f->data[p + 3]))
        if (f->data[p + 1] == 0xDA) {
            first = p;
            break;
        }
    CHECK(first > 0 && f->len > first + 2, "no scan in %s", f->name);
    if (!first)
        return;
    size_t scans_len = f->len - 2 - first, reps = 1000;
    size_t len = first + scans_len * reps + 2;
    uint8_t *b = malloc(len);
    memcpy(b, f->data, first);
    for (size_t r = 0; r < reps; r++)
        memcpy(b + first + r * scans_len, f->data + first, scans_len);
    b[len - 2] = 0xFF;
    b[len - 1] = 0xD9;
    char err[ERRLEN];
    clock_t t0 = clock();
    cxr_img_status st = decode_copy(f, b, len, err);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(st == CXR_IMG_UNSUPPORTED && strstr(err, "scans"),
          "progressive JPEG of %zu scan sets: status %d (%s)", reps, st, err);
    CHECK(secs < 1.0, "scan bomb took %.2f s", secs);
    /* two sets of scans (about 12): within the bound, decodes (with a warning) or fails */
    len = first + scans_len * 2 + 2;
    memcpy(b + first + scans_len * 2, "\xFF\xD9", 2);
    st = decode_copy(f, b, len, err);
    CHECK(valid_status(st), "scans twice: status %d", st);
    free(b);
}

/* ---- JPEG 2000 ---- */
static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
test_j2k_hostile(void)
{
    const fixture *f = find("j2k_lossless_12bit");
    if (!f)
        return;
    char err[ERRLEN];
    cxr_frame_info info;
    int32_t out[64];
    uint8_t *b = malloc(f->len + 256);
    /* SIZ at 4: Lsiz(2) Rsiz(2) Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz ... */
    uint8_t *siz = b + 4;
    memcpy(b, f->data, f->len);
    put32(siz + 4, 0xFFFFFFF0u);
    put32(siz + 8, 0xFFFFFFF0u);
    put32(siz + 20, 0xFFFFFFF0u);
    put32(siz + 24, 0xFFFFFFF0u);
    cxr_img_status st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_TOO_LARGE, "J2K of 2^32 x 2^32: status %d (%s)", st, err);
    st = cxr_j2k_decode(b, f->len, SIZE_MAX, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_NO_MEMORY, "J2K of 2^32 x 2^32, no limit, short buffer: %d (%s)", st,
          err);
    /* a legal size cut into a million 1x1 tiles */
    memcpy(b, f->data, f->len);
    put32(siz + 4, 1000);
    put32(siz + 8, 1000);
    put32(siz + 20, 1);
    put32(siz + 24, 1);
    st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_UNSUPPORTED && strstr(err, "tiles"), "J2K of 10^6 tiles: %d (%s)", st,
          err);
    /* subsampled component, 4 components, 20-bit samples, zero tile */
    memcpy(b, f->data, f->len);
    siz[38 + 1] = 2;
    st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_UNSUPPORTED, "J2K subsampled: %d (%s)", st, err);
    memcpy(b, f->data, f->len);
    siz[38] = 19;
    st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_UNSUPPORTED, "J2K 20-bit: %d (%s)", st, err);
    memcpy(b, f->data, f->len);
    siz[37] = 4;
    st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "J2K 4 components in a 1-component SIZ: %d (%s)", st, err);
    memcpy(b, f->data, f->len);
    put32(siz + 20, 0);
    st = cxr_j2k_decode(b, f->len, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "J2K zero tile width: %d (%s)", st, err);
    static const uint8_t junk[] = {0xFF, 0x4F, 0xFF, 0x51, 0, 0};
    st = cxr_j2k_decode(junk, sizeof junk, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "J2K of 6 bytes: %d (%s)", st, err);
    st = cxr_j2k_decode(f->data, 3, 1u << 20, out, 64, &info, err, sizeof err);
    CHECK(st == CXR_IMG_CORRUPT, "J2K of 3 bytes: %d (%s)", st, err);
    free(b);
}

/* The same codestream in a JP2 file: signature, ftyp, jp2h (ihdr, colr), jp2c. */
static void
test_jp2(void)
{
    const fixture *f = find("j2k_lossless_rgb");
    if (!f)
        return;
    uint8_t *b = malloc(f->len + 128), *p = b;
    static const uint8_t sig[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
    memcpy(p, sig, 12);
    p += 12;
    put32(p, 20);
    memcpy(p + 4, "ftypjp2 \0\0\0\0jp2 ", 16);
    p += 20;
    put32(p, 8 + 22 + 15);
    memcpy(p + 4, "jp2h", 4);
    p += 8;
    put32(p, 22);
    memcpy(p + 4, "ihdr", 4);
    put32(p + 8, (uint32_t)f->h);
    put32(p + 12, (uint32_t)f->w);
    p[16] = 0;
    p[17] = 3;
    p[18] = 7; /* 8 bits */
    p[19] = 7; /* wavelet */
    p[20] = 0;
    p[21] = 0;
    p += 22;
    put32(p, 15);
    memcpy(p + 4, "colr", 4);
    p[8] = 1;
    p[9] = 0;
    p[10] = 0;
    put32(p + 11, 16); /* sRGB */
    p += 15;
    put32(p, (uint32_t)f->len + 8);
    memcpy(p + 4, "jp2c", 4);
    p += 8;
    memcpy(p, f->data, f->len);
    p += f->len;
    size_t len = (size_t)(p - b), n = nsamples(f);
    int32_t *out = malloc(n * sizeof *out);
    char err[ERRLEN];
    cxr_frame_info info;
    cxr_img_status st = cxr_j2k_decode(b, len, n, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_OK && max_diff(out, f->expected, n) == 0, "JP2 file: %d (%s)", st, err);
    /* a palette box is refused before OpenJPEG expands it */
    memcpy(b + 32 + 8 + 4, "pclr", 4);
    st = cxr_j2k_decode(b, len, n, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_UNSUPPORTED, "JP2 with a palette: %d (%s)", st, err);
    free(out);
    free(b);
}

/* A decode interrupted part way (512x512: several polls) stops at the poll that said so. */
static void
test_interrupt_midway(void)
{
    const fixture *f = find("j2k_lossy_693");
    if (!f)
        return;
    size_t n = nsamples(f);
    int32_t *out = malloc(n * sizeof *out);
    char err[ERRLEN];
    cxr_frame_info info;
    arm(-1);
    cxr_img_status st = cxr_j2k_decode(f->data, f->len, n, out, n, &info, err, sizeof err);
    long polls = calls;
    CHECK(st == CXR_IMG_OK && polls >= 4, "silent hook: status %d, %ld polls", st, polls);
    arm(polls - 1);
    st = cxr_j2k_decode(f->data, f->len, n, out, n, &info, err, sizeof err);
    CHECK(st == CXR_IMG_INTERRUPTED && calls == polls, "stop at the last poll: %d after %ld",
          st, calls);
    disarm();
    free(out);
}

int
main(void)
{
    const char *dir = getenv("CXR_CODEC_FIXTURES");
    CHECK(dir != NULL, "CXR_CODEC_FIXTURES is not set: run test/ref/codec_fixtures.py --out DIR");
    test_jpeg_headers();
    if (!dir || !load_fixtures(dir)) {
        CHECK(0, "no codec fixtures in %s", dir ? dir : "(unset)");
        return harness_finish("test_codecs");
    }
    for (int i = 0; i < nfixtures; i++)
        test_fixture(&fixtures[i]);
    test_truncation("jpeg_gray_baseline", 1);
    test_truncation("jpeg_rgb_progressive", 1);
    test_truncation("ljpeg_sv1_8bit", 0);
    test_truncation("ljpeg_rgb_restart", 0);
    test_truncation("ljpeg_rgb_planar_scans", 0);
    test_truncation("j2k_lossless_12bit", 0);
    test_bad_tables();
    test_bad_lossless();
    test_scan_bomb();
    test_j2k_hostile();
    test_jp2();
    test_interrupt_midway();
    test_damage("jpeg_rgb_420", 400);
    test_damage("jpeg_gray_progressive", 400);
    test_damage("ljpeg_sv7_16bit", 400);
    test_damage("ljpeg_rgb_restart", 400);
    test_damage("j2k_lossless_16bit", 200);
    for (int i = 0; i < nfixtures; i++) {
        free(fixtures[i].data);
        free(fixtures[i].expected);
    }
    return harness_finish("test_codecs");
}

/* libFuzzer target: the drawing core (cxr_draw.h) with sizes, coordinates, values and text taken
 * from the input. Every canvas lies between poisoned guard bytes (a write past its w*h*3 bytes
 * is reported where it happens, and the guards are compared afterwards too), every scratch
 * buffer is exactly what the *_scratch_floats function reports and every fitted string exactly
 * as many bytes as cxr_canvas_text_fit promises to read, so ASan catches any access beyond
 * what the API promises. Cheap checks of the documented behaviour abort() when it is broken.
 *
 * Input: one byte picks the mode (below), the rest is read as it comes; past the end every
 * byte reads as 0, so any input is complete.
 *   0  canvas of 1..256 x 1..256, then up to 48 operations: fill, rect, line, text, text_fit
 *      (rarely of a 5.6 MB string, wider than INT_MAX at scale 64), colour map, primitives
 *      on canvases without pixels and cxr_canvas_bytes of any sides
 *   1  cxr_overlay_size / _scratch_floats / _draw (gray image up to 256 x 256, or up to 1100
 *      wide and 32 high for text scales 2 and 3; attention grid 1..64 a side; 0..7 captions;
 *      sometimes sizes of any kind as well)
 *   2  cxr_figure_size / _scratch_floats / _draw (1..4 x 1..4 panels, sides up to ~250, or
 *      one panel up to 400 for text scales 2 and 3; panels with NULL gray or map, or invalid;
 *      sometimes layouts of any kind as well)
 *   3  cxr_plot_history (0..63 points, or 0..599; epochs and values of any kind)
 * Sizes are kept small (a canvas is at most a few hundred pixels a side, bar the plot's fixed
 * 960 x 420) so that a run takes a few milliseconds at most. Integers, floats and doubles are
 * often the extremes (INT_MIN, INT_MAX, NaN, infinities, subnormals, FLT_MAX, DBL_MAX). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "cxr_draw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reading the input ---- */

typedef struct {
    const uint8_t *p;
    size_t n, at;
} reader;

static unsigned
u8(reader *r)
{
    return r->at < r->n ? r->p[r->at++] : 0;
}

static unsigned
u16(reader *r)
{
    unsigned lo = u8(r);
    return lo | u8(r) << 8;
}

static uint32_t
u32(reader *r)
{
    uint32_t lo = u16(r);
    return lo | (uint32_t)u16(r) << 16;
}

static uint64_t
u64(reader *r)
{
    uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}

static int
side(reader *r, int most)
{
    return 1 + (int)(u8(r) % (unsigned)most);
}

/* Any int: mostly small ones near the canvas, often the extremes. */
static int
pick_int(reader *r)
{
    static const int special[] = {INT_MIN,     INT_MAX,      INT_MIN + 1, INT_MAX - 1,
                                  0,           -1,           1,           INT_MAX / 2,
                                  INT_MIN / 2, 1 << 28,      -(1 << 28),  (1 << 28) + 1,
                                  65535,       -65536,       INT_MAX / 6, INT_MAX / 3};
    unsigned b = u8(r);
    switch (b % 8) {
    case 0:
    case 1:
    case 2:
        return (int8_t)u8(r);
    case 3:
        return (int)u8(r) - 32; /* 0..255 shifted: most of a small canvas */
    case 4:
        return (int16_t)u16(r);
    case 5:
        return (int)u32(r);
    default:
        return special[u8(r) % (sizeof special / sizeof special[0])];
    }
}

static float
pick_float(reader *r)
{
    static const float special[] = {NAN,     INFINITY, -INFINITY, -0.0f,  FLT_MAX, -FLT_MAX,
                                    FLT_MIN, 1e-45f,   1.0f,      0.0f,   0.1f,    0.1000001f,
                                    0.5f,    1e30f,    -1e30f,    -1.0f};
    unsigned b = u8(r);
    switch (b % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        return (float)u8(r) / 255.0f;
    case 4: {
        uint32_t bits = u32(r);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f; /* anything: NaNs with payloads, denormals, huge */
    }
    case 5:
        return (float)(int8_t)u8(r) * 0.1f;
    default:
        return special[u8(r) % (sizeof special / sizeof special[0])];
    }
}

static double
pick_double(reader *r)
{
    static const double special[] = {NAN,      INFINITY, -INFINITY, -0.0,   DBL_MAX, -DBL_MAX,
                                     DBL_MIN,  5e-324,   1.0,       0.0,    0.5,     1e300,
                                     -1e300,   1e-300,   8e307,     -8e307};
    unsigned b = u8(r);
    switch (b % 8) {
    case 0:
    case 1:
    case 2:
        return (double)u8(r) / 255.0;
    case 3:
        return (double)(int16_t)u16(r) * 0.01;
    case 4: {
        uint64_t bits = u64(r);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    default:
        return special[u8(r) % (sizeof special / sizeof special[0])];
    }
}

/* n floats: a table of 1..16 values from the input, cycled, or a gradient, or both mixed. */
static float *
pick_floats(reader *r, size_t n)
{
    float table[16];
    unsigned mode = u8(r) % 4, len = 1 + u8(r) % 16;
    for (unsigned i = 0; i < len; i++)
        table[i] = pick_float(r);
    unsigned stride = 1 + u8(r) % 7;
    float *v = malloc(sizeof(float) * (n ? n : 1));
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++) {
        float g = n > 1 ? (float)i / (float)(n - 1) : 0.5f;
        switch (mode) {
        case 0:
            v[i] = table[(i * stride) % len];
            break;
        case 1:
            v[i] = g;
            break;
        case 2: /* gradient with the table's values sprinkled in */
            v[i] = i % (len * stride + 1) == 0 ? table[(i / (len * stride + 1)) % len] : g;
            break;
        default:
            v[i] = table[0] * g;
        }
    }
    return v;
}

/* A NUL-terminated string of arbitrary bytes (NULs in the input end it early), or NULL. */
static char *
pick_str(reader *r, size_t *len)
{
    unsigned b = u8(r);
    if (b == 0xff) {
        *len = 0;
        return NULL;
    }
    size_t n = b % 200;
    char *s = malloc(n + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < n; i++)
        s[i] = (char)u8(r);
    s[n] = '\0';
    *len = strlen(s);
    return s;
}

static void
pick_rgb(reader *r, uint8_t rgb[3])
{
    rgb[0] = (uint8_t)u8(r);
    rgb[1] = (uint8_t)u8(r);
    rgb[2] = (uint8_t)u8(r);
}

/* The checks scan every pixel: left out of the coverage instrumentation, they run several
 * times faster, and the fuzzer's feedback is then the drawing code's alone. */
#define NO_COV __attribute__((no_sanitize("coverage")))

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            abort();                                                                           \
    } while (0)

/* ---- canvases between guard bytes ---- */

#define GUARD_BYTE 0xa5

typedef struct {
    uint8_t *base;
    size_t guard, bytes;
    cxr_canvas c;
} guarded;

static void
guarded_new(guarded *g, int w, int h)
{
    g->bytes = cxr_canvas_bytes(w, h);
    CHECK(g->bytes == (size_t)w * (size_t)h * 3);
    /* more than a row each side, and a multiple of 8 so that the canvas starts on a shadow
     * granule and the left guard is poisoned whole */
    g->guard = ((size_t)w * 3 + 64 + 7) & ~(size_t)7;
    g->base = malloc(g->bytes + 2 * g->guard);
    CHECK(g->base);
    memset(g->base, GUARD_BYTE, g->guard);
    memset(g->base + g->guard + g->bytes, GUARD_BYTE, g->guard);
    memset(g->base + g->guard, 0x5a, g->bytes); /* drawn over (or not) by what follows */
    g->c.w = w;
    g->c.h = h;
    g->c.rgb = g->base + g->guard;
    ASAN_POISON_MEMORY_REGION(g->base, g->guard);
    ASAN_POISON_MEMORY_REGION(g->base + g->guard + g->bytes, g->guard);
}

static void
guarded_check(guarded *g)
{
    ASAN_UNPOISON_MEMORY_REGION(g->base, g->guard);
    ASAN_UNPOISON_MEMORY_REGION(g->base + g->guard + g->bytes, g->guard);
    for (size_t i = 0; i < g->guard; i++)
        CHECK(g->base[i] == GUARD_BYTE && g->base[g->guard + g->bytes + i] == GUARD_BYTE);
    ASAN_POISON_MEMORY_REGION(g->base, g->guard);
    ASAN_POISON_MEMORY_REGION(g->base + g->guard + g->bytes, g->guard);
}

static void
guarded_free(guarded *g)
{
    guarded_check(g);
    ASAN_UNPOISON_MEMORY_REGION(g->base, g->bytes + 2 * g->guard);
    free(g->base);
}

NO_COV static const uint8_t *
px(const cxr_canvas *c, int64_t x, int64_t y)
{
    return c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
}

NO_COV static int
is_rgb(const uint8_t *p, const uint8_t rgb[3])
{
    return p[0] == rgb[0] && p[1] == rgb[1] && p[2] == rgb[2];
}

/* Every pixel that differs from before lies in [x0, x1) x [y0, y1). */
NO_COV static void
changed_within(const cxr_canvas *c, const uint8_t *before, int64_t x0, int64_t y0, int64_t x1,
               int64_t y1)
{
    for (int64_t y = 0; y < c->h; y++)
        for (int64_t x = 0; x < c->w; x++) {
            size_t i = ((size_t)y * (size_t)c->w + (size_t)x) * 3;
            if (memcmp(c->rgb + i, before + i, 3) != 0)
                CHECK(x >= x0 && x < x1 && y >= y0 && y < y1);
        }
}

static int
clamp_scale(int s)
{
    return s < 1 ? 1 : s > CXR_TEXT_MAX_SCALE ? CXR_TEXT_MAX_SCALE : s;
}

/* (6n - 1) * s, 0 for n = 0 (n is small here: no overflow) */
static int64_t
text_w(size_t n, int s)
{
    return n ? ((int64_t)n * 6 - 1) * s : 0;
}

static const uint8_t white[3] = {255, 255, 255};

/* Rows y0 .. y1 - 1 are all of the colour. */
NO_COV static void
rows_are(const cxr_canvas *c, int y0, int y1, const uint8_t rgb[3])
{
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < c->w; x++)
            CHECK(is_rgb(px(c, x, y), rgb));
}

/* ---- mode 0: primitives, text, colour map ---- */

static double
luma(const uint8_t c[3])
{
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

static void
op_colormap(reader *r)
{
    static const uint8_t stops[5][3] = {
        {0, 0, 4}, {70, 12, 120}, {170, 35, 90}, {235, 110, 25}, {255, 235, 70}};
    float v = pick_float(r), u = pick_float(r);
    uint8_t cv[3], cu[3], c0[3], c1[3];
    cxr_colormap(v, cv);
    cxr_colormap(u, cu);
    cxr_colormap(0.0f, c0);
    cxr_colormap(1.0f, c1);
    CHECK(is_rgb(c0, stops[0]) && is_rgb(c1, stops[4]));
    for (int i = 0; i < 5; i++) {
        uint8_t c[3];
        cxr_colormap((float)i / 4.0f, c);
        CHECK(is_rgb(c, stops[i]));
    }
    if (!(v > 0.0f)) /* negative, -0, NaN */
        CHECK(is_rgb(cv, c0));
    else if (v >= 1.0f)
        CHECK(is_rgb(cv, c1));
    else {
        /* the documented interpolation, to within rounding */
        double pos = (double)v * 4;
        int i = pos >= 4 ? 3 : (int)pos;
        double f = pos - i;
        for (int k = 0; k < 3; k++) {
            double want = stops[i][k] + f * (stops[i + 1][k] - stops[i][k]);
            CHECK(fabs(cv[k] - want) <= 0.5 + 1e-3);
        }
    }
    /* luma rises with v: exactly along the map, so within the channels' rounding here */
    float lo = v, hi = u;
    uint8_t *clo = cv, *chi = cu;
    if (!(v > 0.0f))
        lo = 0.0f;
    if (!(u > 0.0f))
        hi = 0.0f;
    if (lo > hi) {
        float t = lo;
        lo = hi;
        hi = t;
        clo = cu;
        chi = cv;
    }
    CHECK(luma(clo) <= luma(chi) + 0.5);
}

/* Exactly the clipped rectangle has the colour; everything else is as before. */
NO_COV static void
rect_check(const cxr_canvas *c, const uint8_t *before, int x, int y, int w, int h,
           const uint8_t rgb[3])
{
    int64_t x1 = (int64_t)x + w, y1 = (int64_t)y + h;
    for (int64_t yy = 0; yy < c->h; yy++)
        for (int64_t xx = 0; xx < c->w; xx++) {
            size_t i = ((size_t)yy * (size_t)c->w + (size_t)xx) * 3;
            if (w >= 1 && h >= 1 && xx >= x && xx < x1 && yy >= y && yy < y1)
                CHECK(is_rgb(c->rgb + i, rgb));
            else
                CHECK(memcmp(c->rgb + i, before + i, 3) == 0);
        }
}

static void
op_rect(reader *r, guarded *g, uint8_t *before)
{
    cxr_canvas *c = &g->c;
    int x = pick_int(r), y = pick_int(r), w = pick_int(r), h = pick_int(r);
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    memcpy(before, c->rgb, g->bytes);
    cxr_canvas_rect(c, x, y, w, h, rgb);
    rect_check(c, before, x, y, w, h, rgb);
}

static void
op_fill(reader *r, guarded *g)
{
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    cxr_canvas_fill(&g->c, rgb);
    rows_are(&g->c, 0, g->c.h, rgb);
}

/* Every pixel of the thin line is in the thick one, and every pixel of the thick one is a
 * thin one's offset by -(t-1)/2 .. t/2 across the major axis. */
NO_COV static void
thin_in_thick(const cxr_canvas *ct, const cxr_canvas *ck, int x_major, int tc)
{
    for (size_t i = 0; i < (size_t)ct->w * ct->h * 3; i++)
        CHECK(!ct->rgb[i] || ck->rgb[i]);
    for (int64_t y = 0; y < ck->h; y++)
        for (int64_t x = 0; x < ck->w; x++) {
            if (!*px(ck, x, y))
                continue;
            int found = 0;
            for (int o = -(tc - 1) / 2; o <= tc / 2 && !found; o++) {
                int64_t sx = x_major ? x : x - o, sy = x_major ? y - o : y;
                found = sx >= 0 && sy >= 0 && sx < ct->w && sy < ct->h && *px(ct, sx, sy);
            }
            CHECK(found);
        }
}

static void
op_line(reader *r, guarded *g, uint8_t *before)
{
    cxr_canvas *c = &g->c;
    int x0 = pick_int(r), y0 = pick_int(r), x1 = pick_int(r), y1 = pick_int(r);
    int t = (int8_t)u8(r); /* -128..127: below 1 and above the cap too */
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    memcpy(before, c->rgb, g->bytes);
    cxr_canvas_line(c, x0, y0, x1, y1, t, rgb);
    int tc = t < 1 ? 1 : t > CXR_LINE_MAX_THICKNESS ? CXR_LINE_MAX_THICKNESS : t;
    /* the segment's bounding box widened by the thickness (and a pixel of rounding where the
     * ends were clipped) */
    int64_t lx = x0 < x1 ? x0 : x1, hx = x0 < x1 ? x1 : x0;
    int64_t ly = y0 < y1 ? y0 : y1, hy = y0 < y1 ? y1 : y0;
    changed_within(c, before, lx - tc - 1, ly - tc - 1, hx + tc + 2, hy + tc + 2);
    int inside = x0 >= 0 && x0 < c->w && x1 >= 0 && x1 < c->w && y0 >= 0 && y0 < c->h &&
                 y1 >= 0 && y1 < c->h;
    if (!inside)
        return;
    /* both ends included; and the thin line is part of the thick one */
    CHECK(is_rgb(px(c, x0, y0), rgb) && is_rgb(px(c, x1, y1), rgb));
    uint8_t *thin = calloc(g->bytes, 1), *thick = calloc(g->bytes, 1);
    CHECK(thin && thick);
    static const uint8_t on[3] = {1, 1, 1};
    cxr_canvas ct = {c->w, c->h, thin}, ck = {c->w, c->h, thick};
    cxr_canvas_line(&ct, x0, y0, x1, y1, 1, on);
    cxr_canvas_line(&ck, x0, y0, x1, y1, t, on);
    thin_in_thick(&ct, &ck, llabs((int64_t)x1 - x0) >= llabs((int64_t)y1 - y0), tc);
    free(thin);
    free(thick);
}

static void
op_text(reader *r, guarded *g, uint8_t *before)
{
    cxr_canvas *c = &g->c;
    int x = pick_int(r), y = pick_int(r), scale = (int8_t)u8(r);
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    size_t len;
    char *s = pick_str(r, &len);
    int sc = clamp_scale(scale);
    CHECK(cxr_text_height(scale) == 9 * sc);
    CHECK(cxr_text_width(s, scale) == text_w(len, sc));
    memcpy(before, c->rgb, g->bytes);
    cxr_canvas_text(c, x, y, s, scale, rgb);
    changed_within(c, before, x, y, (int64_t)x + text_w(len, sc), (int64_t)y + 9 * sc);
    free(s);
}

static void
op_text_fit(reader *r, guarded *g, uint8_t *before)
{
    cxr_canvas *c = &g->c;
    int x = pick_int(r), y = pick_int(r), max_w = pick_int(r), align = (int8_t)u8(r) % 4;
    int scale = (int8_t)u8(r);
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    size_t len;
    char *src = pick_str(r, &len);
    int sc = clamp_scale(scale);
    /* exactly the bytes it may read: max_w / (6 * scale) + 2, NUL-less when the string is
     * longer (none at all for max_w below 1) */
    char *s = NULL;
    if (src) {
        size_t bound = max_w < 1 ? 0 : (size_t)max_w / (6 * (size_t)sc) + 2;
        size_t n = len + 1 < bound ? len + 1 : bound;
        s = malloc(n); /* under ASan malloc(0) is a valid pointer to nothing */
        CHECK(s);
        memcpy(s, src, n);
    }
    memcpy(before, c->rgb, g->bytes);
    int w = cxr_canvas_text_fit(c, x, y, max_w, align, s, scale, rgb);
    if (!s || max_w < 1) {
        CHECK(w == 0);
        CHECK(memcmp(before, c->rgb, g->bytes) == 0);
    } else {
        /* the longest prefix (with "..." when cut, if there is room) that fits */
        int64_t fit = ((int64_t)max_w + sc) / (6 * (int64_t)sc);
        CHECK(w == text_w(len < (size_t)fit ? len : (size_t)fit, sc));
        CHECK(w <= max_w);
        int64_t left = x;
        if (align == 1)
            left += (max_w - w) / 2;
        else if (align == 2)
            left += max_w - w;
        changed_within(c, before, left, y, left + w, (int64_t)y + 9 * sc);
    }
    free(s);
    free(src);
}

/* Primitives on canvases with no pixels to draw on: their "pixels" point into a poisoned guard,
 * so any write is reported. */
static void
op_empty(reader *r, guarded *g)
{
    uint8_t *poisoned = g->base;
    int w = pick_int(r), h = pick_int(r);
    cxr_canvas bad[] = {{0, h, poisoned},     {w, 0, poisoned}, {-1, -1, poisoned},
                        {INT_MIN, h, poisoned}, {w, INT_MIN, poisoned}, {w, h, NULL}};
    uint8_t rgb[3] = {1, 2, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cxr_canvas *c = &bad[i];
        if (c->rgb && c->w >= 1 && c->h >= 1)
            continue; /* w or h drawn from the input made it a real size */
        cxr_canvas_fill(c, rgb);
        cxr_canvas_rect(c, 0, 0, INT_MAX, INT_MAX, rgb);
        cxr_canvas_line(c, INT_MIN, INT_MIN, INT_MAX, INT_MAX, 64, rgb);
        cxr_canvas_line(c, 0, 0, 0, 0, 1, rgb);
        cxr_canvas_text(c, 0, 0, "Abc", 1, rgb);
        cxr_canvas_text_fit(c, 0, 0, 100, 1, "Abc", 1, rgb);
    }
    cxr_canvas_fill(NULL, rgb);
    cxr_canvas_rect(NULL, 0, 0, 1, 1, rgb);
    cxr_canvas_line(NULL, 0, 0, 1, 1, 1, rgb);
    cxr_canvas_text(NULL, 0, 0, "x", 1, rgb);
    cxr_canvas_text_fit(NULL, 0, 0, 10, 0, "x", 1, rgb);
    CHECK(cxr_text_width(NULL, 3) == 0 && cxr_text_width("", 3) == 0);
    size_t bytes = cxr_canvas_bytes(w, h);
    CHECK(w < 1 || h < 1 ? bytes == 0 : bytes == (size_t)w * (size_t)h * 3);
}

/* A string whose width overflows an int at the largest scale: the width saturates, and
 * fitting it reads no more than its promise (the rest of the string is poisoned). */
static void
op_huge_text(reader *r, guarded *g, uint8_t *before)
{
    static char *huge;
    const size_t n = (size_t)INT_MAX / 6 / CXR_TEXT_MAX_SCALE + 1;
    if (!huge) {
        huge = malloc(n + 1);
        CHECK(huge);
        memset(huge, 'm', n);
        huge[n] = '\0';
        /* once: it scans megabytes */
        CHECK(cxr_text_width(huge, CXR_TEXT_MAX_SCALE) == INT_MAX);
        CHECK(cxr_text_width(huge, 1) == (int)(n * 6 - 1));
    }
    int x = pick_int(r), y = pick_int(r), max_w = pick_int(r), align = (int)(u8(r) % 3);
    int scale = (int8_t)u8(r), sc = clamp_scale(scale);
    uint8_t rgb[3];
    pick_rgb(r, rgb);
    size_t bound = max_w < 1 ? 0 : (size_t)max_w / (6 * (size_t)sc) + 2;
    if (bound > n + 1)
        bound = n + 1; /* then it may read up to the NUL */
    ASAN_POISON_MEMORY_REGION(huge + bound, n + 1 - bound);
    memcpy(before, g->c.rgb, g->bytes);
    int w = cxr_canvas_text_fit(&g->c, x, y, max_w, align, huge, scale, rgb);
    ASAN_UNPOISON_MEMORY_REGION(huge, n + 1);
    if (max_w < 1)
        CHECK(w == 0);
    else {
        int64_t fit = ((int64_t)max_w + sc) / (6 * (int64_t)sc);
        CHECK(w == text_w((size_t)fit < n ? (size_t)fit : n, sc) && w <= max_w);
        int64_t left = x;
        left += align == 1 ? (max_w - w) / 2 : align == 2 ? max_w - w : 0;
        changed_within(&g->c, before, left, y, left + w, (int64_t)y + 9 * sc);
    }
}

static void
mode_canvas(reader *r)
{
    int w = side(r, 256), h = side(r, 256);
    guarded g;
    guarded_new(&g, w, h);
    uint8_t *before = malloc(g.bytes);
    CHECK(before);
    for (int k = 0; k < 48 && r->at < r->n; k++) {
        switch (u8(r) % 8) {
        case 0:
            op_fill(r, &g);
            break;
        case 1:
            op_rect(r, &g, before);
            break;
        case 2:
            op_line(r, &g, before);
            break;
        case 3:
            if (u8(r) % 8 == 0) /* rarely: it touches megabytes */
                op_huge_text(r, &g, before);
            else
                op_line(r, &g, before);
            break;
        case 4:
            op_text(r, &g, before);
            break;
        case 5:
            op_text_fit(r, &g, before);
            break;
        case 6:
            op_colormap(r);
            break;
        default:
            op_empty(r, &g);
        }
        guarded_check(&g);
    }
    free(before);
    guarded_free(&g);
}

/* ---- mode 1: overlay ---- */

NO_COV static int
all_zero_grid(const float *map, int side)
{
    for (size_t i = 0; i < (size_t)side * side; i++)
        if (isfinite(map[i]) && map[i] > 0.0f)
            return 0;
    return 1;
}

NO_COV static uint8_t
gray_byte(float g)
{
    g = g > 0.0f ? (g < 1.0f ? g : 1.0f) : 0.0f;
    return (uint8_t)lrintf(255.0f * g);
}

/* The w x h image at the canvas's top-left is the gray image exactly. */
NO_COV static void
plain_check(const cxr_canvas *c, const float *gray, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t v = gray_byte(gray[(size_t)y * w + x]);
            const uint8_t want[3] = {v, v, v};
            CHECK(is_rgb(px(c, x, y), want));
        }
}

static void
mode_overlay(reader *r)
{
    unsigned flags = u8(r);
    int w = side(r, 256), h = side(r, 256), grid = side(r, 64);
    if (flags & 1) { /* wide: text scales 2 and 3 */
        w = 1 + (int)(u16(r) % 1100);
        h = 1 + h % 32;
    }
    int n_lines = (int)(u8(r) % 8);
    char *lines[8] = {0};
    for (int i = 0; i < n_lines; i++) {
        size_t len;
        lines[i] = pick_str(r, &len);
    }
    const char *const *lp = flags & 2 ? NULL : (const char *const *)lines;

    if (flags & 4) {
        /* sizes of any kind: a bad or huge layout reports 0 x 0 (or SIZE_MAX of scratch), and
         * drawing it onto a canvas that cannot match fails before reading anything */
        int aw = pick_int(r), ah = pick_int(r), an = pick_int(r), as = pick_int(r);
        int ow, oh;
        cxr_overlay_size(aw, ah, an, &ow, &oh);
        CHECK((ow == 0) == (oh == 0));
        if (aw < 1 || ah < 1 || an < 0 || aw > CXR_DRAW_MAX_SIDE)
            CHECK(ow == 0);
        size_t sf = cxr_overlay_scratch_floats(aw, ah, as);
        if (aw < 1 || ah < 1 || as < 1)
            CHECK(sf == 0);
        float one = 0.5f;
        uint8_t rgb[3];
        cxr_canvas tiny = {1, 1, rgb};
        cxr_img_status st = cxr_overlay_draw(&one, aw, ah, &one, as, NULL, an, &tiny, &one);
        CHECK(st == CXR_IMG_CORRUPT || st == CXR_IMG_TOO_LARGE);
    }

    int s = (w + 200) / 400;
    s = s < 1 ? 1 : s > 16 ? 16 : s;
    int ow, oh;
    cxr_overlay_size(w, h, n_lines, &ow, &oh);
    CHECK(ow == w && oh == h + 25 * s + 12 * s * n_lines);
    size_t sf = cxr_overlay_scratch_floats(w, h, grid);
    CHECK(sf == (size_t)grid * grid + (size_t)w * h + cxr_resize_scratch_floats(grid, grid, w, h));
    float *gray = pick_floats(r, (size_t)w * h), *map = pick_floats(r, (size_t)grid * grid);
    if (sf && sf != SIZE_MAX) {
        float *scratch = malloc(sizeof(float) * sf);
        CHECK(scratch);
        guarded g;
        guarded_new(&g, ow, oh);
        /* the wrong size of canvas is refused before anything is drawn */
        cxr_canvas wrong = {ow, oh - 1, g.c.rgb};
        CHECK(cxr_overlay_draw(gray, w, h, map, grid, lp, n_lines, &wrong, scratch) ==
              CXR_IMG_CORRUPT);
        CHECK(cxr_overlay_draw(gray, w, h, map, grid, lp, n_lines, &g.c, scratch) == CXR_IMG_OK);
        guarded_check(&g);
        /* a grid with nothing positive leaves the X-ray exactly as it is */
        if (all_zero_grid(map, grid))
            plain_check(&g.c, gray, w, h);
        /* the band starts and ends with white space */
        rows_are(&g.c, h, h + 4 * s, white);
        rows_are(&g.c, oh - 4 * s, oh, white);
        guarded_free(&g);
        free(scratch);
    }
    free(gray);
    free(map);
    for (int i = 0; i < n_lines; i++)
        free(lines[i]);
}

/* ---- mode 2: figure ---- */

static void
fit_rect(int w, int h, int panel, int *pw, int *ph)
{
    int64_t lng = w >= h ? w : h, shrt = w >= h ? h : w;
    double other = floor((double)panel * (double)shrt / (double)lng + 0.5);
    if (other < 1)
        other = 1;
    *pw = w >= h ? panel : (int)other;
    *ph = w >= h ? (int)other : panel;
}

/* The panel square at (x0, y0): letterboxing around the centred pw x ph image, which is
 * gray when plain. */
NO_COV static void
panel_check(const cxr_canvas *c, int x0, int y0, int panel, int pw, int ph, int plain)
{
    static const uint8_t box[3] = {32, 32, 32};
    int ox = x0 + (panel - pw) / 2, oy = y0 + (panel - ph) / 2;
    for (int y = y0; y < y0 + panel; y++)
        for (int x = x0; x < x0 + panel; x++) {
            const uint8_t *q = px(c, x, y);
            if (x < ox || x >= ox + pw || y < oy || y >= oy + ph)
                CHECK(is_rgb(q, box));
            else if (plain)
                CHECK(q[0] == q[1] && q[1] == q[2]);
        }
}

static size_t
max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void
mode_figure(reader *r)
{
    unsigned flags = u8(r);
    int rows = side(r, 4), cols = side(r, 4), most = rows > cols ? rows : cols;
    int maxp = rows * cols == 1 && (flags & 1) ? 400 : 250 / most;
    int panel = 1 + (int)(u16(r) % (unsigned)maxp);
    size_t tlen;
    char *title = flags & 2 ? pick_str(r, &tlen) : NULL;
    int n = rows * cols, img_most = 256 / most;
    cxr_figure_panel *p = calloc((size_t)n, sizeof *p);
    char **caps = calloc((size_t)n, sizeof *caps);
    CHECK(p && caps);
    int expect_corrupt = 0;
    size_t want_scratch = 0;
    for (int i = 0; i < n; i++) {
        unsigned pf = u8(r);
        size_t len;
        caps[i] = pick_str(r, &len);
        p[i].caption = caps[i];
        if (pf & 1)
            continue; /* no gray: an empty panel (a map alone is ignored) */
        p[i].w = side(r, img_most);
        p[i].h = side(r, img_most);
        p[i].gray = pick_floats(r, (size_t)p[i].w * p[i].h);
        if (!(pf & 2)) {
            p[i].side = side(r, 32);
            p[i].map = pick_floats(r, (size_t)p[i].side * p[i].side);
        }
        if ((pf & 0x1c) == 0x1c) { /* rarely: sides below 1 */
            int which = (int)(u8(r) % 3);
            if (which == 0)
                p[i].w = -p[i].w + 1;
            else if (which == 1)
                p[i].h = 0;
            else if (p[i].map)
                p[i].side = INT_MIN;
            expect_corrupt |= p[i].w < 1 || p[i].h < 1 || (p[i].map && p[i].side < 1);
        }
        if (p[i].w < 1 || p[i].h < 1 || (p[i].map && p[i].side < 1))
            continue;
        int pw, ph;
        fit_rect(p[i].w, p[i].h, panel, &pw, &ph);
        size_t img = (size_t)pw * ph, rs = cxr_resize_scratch_floats(p[i].w, p[i].h, pw, ph);
        size_t need = img + rs;
        if (p[i].map)
            need = (size_t)p[i].side * p[i].side + 2 * img +
                   max_sz(rs, cxr_resize_scratch_floats(p[i].side, p[i].side, pw, ph));
        want_scratch = max_sz(want_scratch, need);
    }
    if (flags & 4) {
        /* layouts of any kind: 0 x 0 when invalid or too large, and drawing one onto a canvas
         * that cannot match fails before reading anything */
        int ar = pick_int(r), ac = pick_int(r), ap = pick_int(r), aw, ah;
        cxr_figure_size(ar, ac, ap, (int)(flags >> 7), &aw, &ah);
        CHECK((aw == 0) == (ah == 0));
        if (ar < 1 || ac < 1 || ap < 1 || ap > CXR_DRAW_MAX_SIDE)
            CHECK(aw == 0);
        if (aw)
            CHECK(aw <= CXR_DRAW_MAX_SIDE && ah <= CXR_DRAW_MAX_SIDE);
        CHECK(cxr_figure_scratch_floats(NULL, ac, ap) == 0);
        uint8_t rgb[3];
        float one = 0.5f;
        cxr_canvas tiny = {1, 1, rgb};
        cxr_figure_panel none = {0};
        cxr_img_status st = cxr_figure_draw(&none, ar, ac, ap, NULL, &tiny, &one);
        CHECK(st == CXR_IMG_CORRUPT || st == CXR_IMG_TOO_LARGE);
        CHECK(cxr_figure_draw(NULL, rows, cols, panel, NULL, &tiny, &one) == CXR_IMG_CORRUPT);
    }
    /* the documented layout */
    int s = panel / 128 < 1 ? 1 : panel / 128 > 8 ? 8 : panel / 128;
    int m = 4 * s, gap = 4 * s, cap = 11 * s, trow = title ? 13 * s : 0;
    int fw, fh;
    cxr_figure_size(rows, cols, panel, title != NULL, &fw, &fh);
    CHECK(fw == 2 * m + cols * panel + (cols - 1) * gap);
    CHECK(fh == m + trow + rows * (cap + panel) + (rows - 1) * gap + 25 * s);
    size_t sf = cxr_figure_scratch_floats(p, n, panel);
    CHECK(sf == want_scratch);
    if (sf != SIZE_MAX) {
        float *scratch = sf ? malloc(sizeof(float) * sf) : NULL; /* NULL: no panel has gray */
        CHECK(scratch || !sf);
        guarded g;
        guarded_new(&g, fw, fh);
        cxr_canvas wrong = {fw - 1, fh, g.c.rgb};
        CHECK(cxr_figure_draw(p, rows, cols, panel, title, &wrong, scratch) == CXR_IMG_CORRUPT);
        cxr_img_status st = cxr_figure_draw(p, rows, cols, panel, title, &g.c, scratch);
        guarded_check(&g);
        if (expect_corrupt)
            CHECK(st == CXR_IMG_CORRUPT);
        else {
            CHECK(st == CXR_IMG_OK);
            /* white margins */
            rows_are(&g.c, 0, 1, white);
            rows_are(&g.c, fh - 4 * s, fh, white);
            for (int y = 0; y < fh; y++)
                CHECK(is_rgb(px(&g.c, 0, y), white) && is_rgb(px(&g.c, fw - 1, y), white));
            for (int i = 0; i < n; i++) {
                if (!p[i].gray)
                    continue;
                int r0 = i / cols, k = i % cols, pw, ph;
                fit_rect(p[i].w, p[i].h, panel, &pw, &ph);
                panel_check(&g.c, m + k * (panel + gap),
                            m + trow + r0 * (cap + panel + gap) + cap, panel, pw, ph,
                            !p[i].map || all_zero_grid(p[i].map, p[i].side));
            }
        }
        guarded_free(&g);
        free(scratch);
    }
    for (int i = 0; i < n; i++) {
        free((void *)p[i].gray);
        free((void *)p[i].map);
        free(caps[i]);
    }
    free(p);
    free(caps);
    free(title);
}

/* ---- mode 3: training curves ---- */

static double *
pick_series(reader *r, int n)
{
    unsigned mode = u8(r) % 4;
    if (mode == 0)
        return NULL;
    double table[16];
    unsigned len = 1 + u8(r) % 16;
    for (unsigned i = 0; i < len; i++)
        table[i] = pick_double(r);
    double *v = malloc(sizeof(double) * (n ? (size_t)n : 1));
    CHECK(v);
    for (int i = 0; i < n; i++) {
        if (mode == 1)
            v[i] = table[i % len];
        else if (mode == 2) /* a curve, with the table's values as holes and outliers */
            v[i] = i % 7 == 3 ? table[(i / 7) % len]
                              : table[0] + (table[1 % len] - table[0]) * i / (n + 1);
        else
            v[i] = table[0] * exp(-0.05 * i) + table[len - 1];
    }
    return v;
}

NO_COV static int
has_finite(const double *v, int n)
{
    for (int i = 0; v && i < n; i++)
        if (isfinite(v[i]))
            return 1;
    return 0;
}

/* The series' colours: in the legend (above y = 30; validation only when there is some) or
 * within a plot area, widened by the thick line's extra pixel to the right and below. A finite
 * training loss shows in the loss panel (its range is the losses', and train is drawn last). */
NO_COV static void
series_colours_check(const cxr_canvas *c, int any_train, int any_val, int train_loss)
{
    int loss_shown = 0;
    static const uint8_t train[3] = CXR_PLOT_TRAIN_RGB, val[3] = CXR_PLOT_VAL_RGB;
    const uint8_t *q = c->rgb;
    for (int y = 0; y < c->h; y++)
        for (int x = 0; x < c->w; x++, q += 3) {
            if (q[0] != train[0] && q[0] != val[0])
                continue;
            int is_t = is_rgb(q, train), is_v = is_rgb(q, val);
            if (!is_t && !is_v)
                continue;
            CHECK(!is_v || any_val);
            if (y < 30)
                continue;
            CHECK(is_t ? any_train : any_val);
            CHECK(y >= 62 && y <= 361 && ((x >= 88 && x <= 461) || (x >= 568 && x <= 941)));
            loss_shown |= is_t && x <= 461;
        }
    CHECK(loss_shown || !train_loss);
}

/* A 3 x 3 block of the colour with its left column in x0 .. x1, within the plot area's rows:
 * what a marker (5 x 5, clipped to the area; 7 x 7 alone) leaves at least, and a line of
 * thickness 2 never does. */
NO_COV static int
has_block(const cxr_canvas *c, int x0, int x1, const uint8_t rgb[3])
{
    for (int y = 62; y + 2 <= 360; y++)
        for (int x = x0; x <= x1; x++) {
            int all = 1;
            for (int dy = 0; dy < 3 && all; dy++)
                for (int dx = 0; dx < 3 && all; dx++)
                    all = is_rgb(px(c, x + dx, y + dy), rgb);
            if (all)
                return 1;
        }
    return 0;
}

static int
n_finite(const double *v, int n)
{
    int k = 0;
    for (int i = 0; v && i < n; i++)
        k += isfinite(v[i]) != 0;
    return k;
}

static void
mode_plot(reader *r)
{
    unsigned flags = u8(r);
    /* mostly short histories (each point can draw a line across the panel) */
    int n = flags & 2 ? (int)(u16(r) % 600) : (int)(u8(r) % 64);
    int *epoch = NULL;
    unsigned emode = u8(r) % 3;
    if (emode) {
        int table[16], start = pick_int(r), stride = pick_int(r);
        unsigned len = 1 + u8(r) % 16;
        for (unsigned i = 0; i < len; i++)
            table[i] = pick_int(r);
        epoch = malloc(sizeof(int) * (n ? (size_t)n : 1));
        CHECK(epoch);
        for (int i = 0; i < n; i++)
            epoch[i] = emode == 1 ? (int)((uint32_t)start + (uint32_t)stride * (uint32_t)i)
                                  : table[i % len];
    }
    double *tl = pick_series(r, n), *vl = pick_series(r, n), *ta = pick_series(r, n),
           *va = pick_series(r, n);
    size_t len;
    char *title = flags & 1 ? NULL : pick_str(r, &len);
    cxr_history hist = {n, epoch, tl, vl, ta, va};
    int w, h;
    cxr_plot_size(&w, &h);
    CHECK(w == CXR_PLOT_W && h == CXR_PLOT_H);
    guarded g;
    guarded_new(&g, w, h);
    cxr_history neg = hist;
    neg.n = -1 - (int)(flags >> 1);
    CHECK(cxr_plot_history(&neg, title, &g.c) == CXR_IMG_CORRUPT);
    cxr_canvas wrong = {w - 1, h, g.c.rgb};
    CHECK(cxr_plot_history(&hist, title, &wrong) == CXR_IMG_CORRUPT);
    CHECK(cxr_plot_history(&hist, title, &g.c) == CXR_IMG_OK);
    guarded_check(&g);
    series_colours_check(&g.c, has_finite(tl, n) || has_finite(ta, n),
                         has_finite(vl, n) || has_finite(va, n), has_finite(tl, n));
    /* with epochs 1..n the first and last epochs are the loss area's left and right edges,
     * and the loss range holds every loss: their points get markers when there are few */
    static const uint8_t train[3] = CXR_PLOT_TRAIN_RGB;
    if (tl && !epoch && n >= 2 && n_finite(tl, n) <= 40) {
        if (isfinite(tl[0]))
            CHECK(has_block(&g.c, 88, 88, train));
        if (isfinite(tl[n - 1]))
            CHECK(has_block(&g.c, 458, 458, train));
    }
    guarded_free(&g);
    free(epoch);
    free(tl);
    free(vl);
    free(ta);
    free(va);
    free(title);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    switch (u8(&r) % 4) {
    case 0:
        mode_canvas(&r);
        break;
    case 1:
        mode_overlay(&r);
        break;
    case 2:
        mode_figure(&r);
        break;
    default:
        mode_plot(&r);
    }
    return 0;
}

/* Drawing: clipped primitives, the bitmap font, the colour map, attention overlays, figures
 * and training curves. Expected pixels come from the layouts and formulas documented in
 * cxr_draw.h, worked out by hand here (control points, the blend, panel positions, plot
 * areas), and from properties (scaling, clipping, monotone luma), never from a previous run. */
#include <limits.h>
#include <string.h>

#include "cxr_draw.h"
#include "cxr_interrupt.h"
#include "harness.h"
#include "interrupt_hook.h"

static const uint8_t red[3] = {255, 0, 0};

static cxr_canvas
canvas(int w, int h)
{
    cxr_canvas c = {w, h, calloc(cxr_canvas_bytes(w, h), 1)};
    return c;
}

static const uint8_t *
px(const cxr_canvas *c, int x, int y)
{
    return c->rgb + ((size_t)y * c->w + x) * 3;
}

static int
is(const uint8_t *p, int r, int g, int b)
{
    return p[0] == r && p[1] == g && p[2] == b;
}

static size_t
count(const cxr_canvas *c, const uint8_t rgb[3])
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)c->w * c->h; i++)
        n += memcmp(c->rgb + i * 3, rgb, 3) == 0;
    return n;
}

/* pixels that are not black, i.e. drawn on a zeroed canvas */
static size_t
inked(const cxr_canvas *c)
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)c->w * c->h * 3; i += 3)
        n += c->rgb[i] || c->rgb[i + 1] || c->rgb[i + 2];
    return n;
}

static void
clear(cxr_canvas *c)
{
    memset(c->rgb, 0, (size_t)c->w * c->h * 3);
}

static void
test_canvas(void)
{
    CHECK(cxr_canvas_bytes(3, 2) == 18 && cxr_canvas_bytes(0, 5) == 0 &&
              cxr_canvas_bytes(4, -1) == 0,
          "canvas bytes");
    cxr_canvas c = canvas(10, 10);
    cxr_canvas_fill(&c, red);
    CHECK(count(&c, red) == 100, "fill");

    /* rectangles reaching far outside keep to the canvas */
    clear(&c);
    cxr_canvas_rect(&c, -5, -5, 8, 8, red);
    CHECK(count(&c, red) == 9 && is(px(&c, 2, 2), 255, 0, 0) && is(px(&c, 3, 2), 0, 0, 0),
          "rect over the corner: %zu pixels", count(&c, red));
    clear(&c);
    cxr_canvas_rect(&c, INT_MIN, 5, INT_MAX, 1, red); /* ends at x = -1 */
    cxr_canvas_rect(&c, INT_MAX, INT_MAX, INT_MAX, INT_MAX, red);
    cxr_canvas_rect(&c, 2, 2, 0, 5, red);
    cxr_canvas_rect(&c, 2, 2, 5, -5, red);
    CHECK(count(&c, red) == 0, "empty or outside rects drew %zu pixels", count(&c, red));
    cxr_canvas_rect(&c, -1000000000, 5, INT_MAX, 1, red);
    CHECK(count(&c, red) == 10 && is(px(&c, 0, 5), 255, 0, 0) && is(px(&c, 9, 5), 255, 0, 0),
          "row-wide rect");

    /* lines: exact pixels for axis-parallel and diagonal ones; thickness across the major axis
     * at offsets -(t-1)/2 .. t/2 */
    struct {
        int x0, y0, x1, y1, t;
        size_t n;
    } lines[] = {
        {2, 3, 7, 3, 1, 6},   {7, 3, 2, 3, 2, 12}, {2, 3, 7, 3, 3, 18},
        {4, 1, 4, 8, 1, 8},   {4, 1, 4, 8, 3, 24}, {0, 0, 9, 9, 1, 10},
        {9, 0, 0, 9, 1, 10},  {5, 5, 5, 5, 1, 1},  {5, 5, 5, 5, 4, 4},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        clear(&c);
        cxr_canvas_line(&c, lines[i].x0, lines[i].y0, lines[i].x1, lines[i].y1, lines[i].t, red);
        CHECK(count(&c, red) == lines[i].n, "line %zu: %zu pixels, want %zu", i, count(&c, red),
              lines[i].n);
    }
    clear(&c);
    cxr_canvas_line(&c, 2, 3, 7, 3, 3, red);
    CHECK(is(px(&c, 2, 2), 255, 0, 0) && is(px(&c, 7, 4), 255, 0, 0) &&
              !is(px(&c, 1, 3), 255, 0, 0) && !is(px(&c, 2, 5), 255, 0, 0),
          "thick horizontal line's extent");
    clear(&c);
    cxr_canvas_line(&c, 4, 1, 4, 8, 2, red); /* offsets 0 and +1: columns 4 and 5 */
    CHECK(is(px(&c, 4, 1), 255, 0, 0) && is(px(&c, 5, 8), 255, 0, 0) &&
              !is(px(&c, 3, 4), 255, 0, 0),
          "even thickness grows right of a vertical line");
    /* far-away ends: y = x from INT_MIN to INT_MAX is the canvas's diagonal */
    clear(&c);
    cxr_canvas_line(&c, INT_MIN, INT_MIN, INT_MAX, INT_MAX, 1, red);
    int diagonal = 1;
    for (int i = 0; i < 10; i++)
        diagonal &= is(px(&c, i, i), 255, 0, 0);
    CHECK(diagonal && count(&c, red) == 10, "far-away diagonal: %zu pixels", count(&c, red));
    clear(&c);
    cxr_canvas_line(&c, -1000000000, 4, 1000000000, 4, 1, red);
    CHECK(count(&c, red) == 10 && is(px(&c, 0, 4), 255, 0, 0), "far-away horizontal");
    clear(&c);
    cxr_canvas_line(&c, -100, -100, -50, 200, 5, red);
    cxr_canvas_line(&c, INT_MIN, INT_MAX, INT_MAX, INT_MAX, CXR_LINE_MAX_THICKNESS, red);
    cxr_canvas_line(&c, 20, -3, 20, 30, 1, red);
    CHECK(count(&c, red) == 0, "lines outside drew %zu pixels", count(&c, red));
    cxr_canvas_line(&c, 0, 0, 9, 0, 1000, red); /* clamped to 64: the whole canvas */
    CHECK(count(&c, red) == 100, "huge thickness");
    /* nothing to draw on */
    cxr_canvas none = {0, 0, NULL};
    cxr_canvas_fill(&none, red);
    cxr_canvas_rect(&none, 0, 0, 5, 5, red);
    cxr_canvas_line(&none, 0, 0, 5, 5, 3, red);
    cxr_canvas_text(&none, 0, 0, "x", 1, red);
    cxr_canvas_fill(NULL, red);
    free(c.rgb);
}

static void
test_font(void)
{
    CHECK(cxr_text_width("", 1) == 0 && cxr_text_width(NULL, 3) == 0, "empty width");
    CHECK(cxr_text_width("a", 1) == 5 && cxr_text_width("abc", 2) == 34 &&
              cxr_text_width("hello world", 3) == (6 * 11 - 1) * 3,
          "width (6n - 1) * scale");
    CHECK(cxr_text_width("ab", 0) == 11 && cxr_text_width("ab", -4) == 11, "scale below 1 is 1");
    CHECK(cxr_text_height(1) == 9 && cxr_text_height(3) == 27, "height 9 * scale");

    /* each glyph at scales 1..3: s*s times the pixels, inside its 5s x 9s box */
    cxr_canvas c = canvas(40, 40);
    uint8_t glyphs[95][5 * 9];
    int ok_scale = 1, ok_box = 1, blank = 0;
    for (int ch = 0x20; ch <= 0x7e; ch++) {
        char s[2] = {(char)ch, 0};
        size_t n1 = 0;
        for (int sc = 1; sc <= 3; sc++) {
            clear(&c);
            cxr_canvas_text(&c, 2, 3, s, sc, red);
            size_t n = count(&c, red);
            if (sc == 1) {
                n1 = n;
                for (int y = 0; y < 9; y++)
                    for (int x = 0; x < 5; x++)
                        glyphs[ch - 0x20][y * 5 + x] = is(px(&c, 2 + x, 3 + y), 255, 0, 0);
            }
            ok_scale &= n == n1 * sc * sc;
            ok_box &= n == 0 || inked(&c) == n;
            for (int y = 0; y < 40; y++)
                for (int x = 0; x < 40; x++)
                    if (is(px(&c, x, y), 255, 0, 0))
                        ok_box &= x >= 2 && x < 2 + 5 * sc && y >= 3 && y < 3 + 9 * sc;
        }
        blank += n1 == 0;
    }
    CHECK(ok_scale, "a glyph at scale s does not cover s*s times its scale-1 pixels");
    CHECK(ok_box, "a glyph drew outside its 5s x 9s box");
    CHECK(blank == 1 && glyphs[0][22] == 0, "only the space is blank (%d blank)", blank);
    int same = 0;
    for (int a = 0; a < 95; a++)
        for (int b = a + 1; b < 95; b++)
            same += memcmp(glyphs[a], glyphs[b], sizeof glyphs[a]) == 0;
    CHECK(same == 0, "%d pairs of printable characters share a glyph", same);

    /* every byte outside 0x20..0x7E draws exactly like '?' */
    cxr_canvas q = canvas(40, 40);
    cxr_canvas_text(&q, 2, 3, "?", 2, red);
    int unlike = 0;
    for (int b = 1; b < 256; b++) {
        if (b >= 0x20 && b <= 0x7e)
            continue;
        char s[2] = {(char)b, 0};
        clear(&c);
        cxr_canvas_text(&c, 2, 3, s, 2, red);
        unlike += memcmp(c.rgb, q.rgb, 40 * 40 * 3) != 0;
    }
    CHECK(unlike == 0, "%d non-printable bytes draw unlike '?'", unlike);
    clear(&c);
    clear(&q);
    cxr_canvas_text(&c, 1, 1, "caf\xc3\xa9", 1, red);
    cxr_canvas_text(&q, 1, 1, "caf??", 1, red);
    CHECK(memcmp(c.rgb, q.rgb, 40 * 40 * 3) == 0, "UTF-8 draws one '?' per byte");

    /* clipping: a glyph half off the left edge is the unclipped glyph's right part */
    clear(&c);
    clear(&q);
    cxr_canvas_text(&c, -3, -4, "M", 1, red);
    cxr_canvas_text(&q, 0, 0, "M", 1, red);
    int shifted = 1;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 2; x++)
            shifted &= memcmp(px(&c, x, y), px(&q, x + 3, y + 4), 3) == 0;
    CHECK(shifted && inked(&c) > 0, "clipped glyph");
    /* any position, any length: 8 MB of text costs what fits, draws what fits */
    size_t big = (size_t)1 << 23;
    char *longs = malloc(big + 1);
    memset(longs, 'W', big);
    longs[big] = 0;
    clear(&c);
    clear(&q);
    cxr_canvas_text(&c, 1, 1, longs, 1, red);
    cxr_canvas_text(&q, 1, 1, "WWWWWWW", 1, red); /* 7 cells reach x = 43 > 40 */
    CHECK(memcmp(c.rgb, q.rgb, 40 * 40 * 3) == 0, "long text clipped at the edge");
    cxr_canvas_text(&c, INT_MIN, INT_MIN, longs, 64, red);
    cxr_canvas_text(&c, INT_MAX, INT_MAX, longs, 64, red);
    cxr_canvas_text(&c, -1000, 1, longs, 1, red);
    cxr_canvas_text(&c, INT_MIN + 1, 0, longs, CXR_TEXT_MAX_SCALE + 10, red);
    CHECK(cxr_text_width(longs, 1) == (int)(6 * big - 1), "width of a long string");
    CHECK(cxr_text_width(longs, 64) == INT_MAX, "width saturates at INT_MAX");

    /* fitting: whole when it fits, else a prefix and "..." within max_w */
    cxr_canvas f = canvas(80, 12), g = canvas(80, 12);
    CHECK(cxr_canvas_text_fit(&f, 0, 0, 60, 0, "abc", 1, red) == 17, "fit, short");
    cxr_canvas_text(&g, 0, 0, "abc", 1, red);
    CHECK(memcmp(f.rgb, g.rgb, 80 * 12 * 3) == 0, "fit draws a short text unchanged");
    clear(&f);
    clear(&g);
    /* 60 px hold 10 cells ((6 * 10 - 1) = 59): 7 bytes and "..." */
    CHECK(cxr_canvas_text_fit(&f, 0, 0, 60, 0, "abcdefghijklmnop", 1, red) == 59, "fit width");
    cxr_canvas_text(&g, 0, 0, "abcdefg...", 1, red);
    CHECK(memcmp(f.rgb, g.rgb, 80 * 12 * 3) == 0, "fit: prefix and dots");
    clear(&f);
    clear(&g);
    CHECK(cxr_canvas_text_fit(&f, 10, 0, 40, 2, "xy", 1, red) == 11, "right-aligned width");
    cxr_canvas_text(&g, 39, 0, "xy", 1, red); /* ends at x = 10 + 40 */
    CHECK(memcmp(f.rgb, g.rgb, 80 * 12 * 3) == 0, "right-aligned");
    clear(&f);
    clear(&g);
    cxr_canvas_text_fit(&f, 10, 0, 40, 1, "xy", 1, red);
    cxr_canvas_text(&g, 24, 0, "xy", 1, red); /* 10 + (40 - 11) / 2 */
    CHECK(memcmp(f.rgb, g.rgb, 80 * 12 * 3) == 0, "centred");
    CHECK(cxr_canvas_text_fit(&f, 0, 0, 60, 0, longs, 1, red) == 59, "fit of a long string");
    free(longs);
    free(f.rgb);
    free(g.rgb);
    free(c.rgb);
    free(q.rgb);
}

static double
luma(const uint8_t c[3])
{
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

static void
test_colormap(void)
{
    uint8_t c[3], d[3];
    /* the control points documented in cxr_draw.h */
    const struct {
        float v;
        int r, g, b;
    } pts[] = {
        {0.0f, 0, 0, 4},      {0.25f, 70, 12, 120},  {0.5f, 170, 35, 90},
        {0.75f, 235, 110, 25}, {1.0f, 255, 235, 70},
        /* a quarter of the way from 0.5 to 0.75: 170 + 65/4, 35 + 75/4, 90 - 65/4 */
        {0.5625f, 186, 54, 74},
    };
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        cxr_colormap(pts[i].v, c);
        CHECK(is(c, pts[i].r, pts[i].g, pts[i].b), "colormap(%g) = %d %d %d", pts[i].v, c[0],
              c[1], c[2]);
    }
    /* clamping */
    float low[] = {-1.0f, -INFINITY, NAN, -0.0f}, high[] = {1.5f, 1e30f, INFINITY};
    for (size_t i = 0; i < 4; i++) {
        cxr_colormap(low[i], c);
        CHECK(is(c, 0, 0, 4), "colormap(%g) is not the low end", low[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        cxr_colormap(high[i], c);
        CHECK(is(c, 255, 235, 70), "colormap(%g) is not the high end", high[i]);
    }
    /* luma (ITU-R 601) strictly increasing in steps of 0.01, after rounding to bytes */
    int rising = 1;
    cxr_colormap(0.0f, d);
    for (int i = 1; i <= 100; i++) {
        cxr_colormap(i / 100.0f, c);
        if (!(luma(c) > luma(d))) {
            rising = 0;
            fprintf(stderr, "  luma %g at %d%% after %g\n", luma(c), i, luma(d));
        }
        memcpy(d, c, 3);
    }
    CHECK(rising, "colormap luma not strictly increasing");
}

/* (x * 7 + y * 13) mod 256 as gray: 255 * gray rounds to that byte */
static int
pattern(int x, int y)
{
    return (x * 7 + y * 13) % 256;
}

static void
test_overlay(void)
{
    int ow, oh;
    /* s = (w + 200) / 400 clamped to 1..16; band 25s + 12s * lines */
    cxr_overlay_size(300, 200, 2, &ow, &oh);
    CHECK(ow == 300 && oh == 200 + 49, "overlay size %dx%d", ow, oh);
    cxr_overlay_size(3000, 100, 1, &ow, &oh); /* s = 8 */
    CHECK(ow == 3000 && oh == 100 + 200 + 96, "overlay size at 3000: %dx%d", ow, oh);
    cxr_overlay_size(256, 256, 0, &ow, &oh);
    CHECK(ow == 256 && oh == 281, "overlay size at 256: %dx%d", ow, oh);
    cxr_overlay_size(0, 5, 0, &ow, &oh);
    CHECK(ow == 0 && oh == 0, "zero width");
    cxr_overlay_size(5, 5, -1, &ow, &oh);
    CHECK(ow == 0 && oh == 0, "negative lines");
    cxr_overlay_size(5, CXR_DRAW_MAX_SIDE, 0, &ow, &oh);
    CHECK(ow == 0 && oh == 0, "too tall with its band");
    cxr_overlay_size(5, 5, INT_MAX, &ow, &oh);
    CHECK(ow == 0 && oh == 0, "too many lines");
    CHECK(cxr_overlay_scratch_floats(300, 200, 4) ==
              16 + 60000 + cxr_resize_scratch_floats(4, 4, 300, 200),
          "overlay scratch");
    CHECK(cxr_overlay_scratch_floats(300, 0, 4) == 0, "scratch of nothing");

    /* a non-square 300x200 image, the map zero but for cell (0, 0) of 4x4 */
    enum { W = 300, H = 200, S = 4 };
    float *gray = malloc(sizeof(float) * W * H), map[S * S] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            gray[y * W + x] = pattern(x, y) / 255.0f;
    gray[0] = 0.4f;
    map[0] = 0.5f; /* normalised by the maximum: t = 1 at the corner */
    const char *lines[2] = {"xray.png p=0.998", NULL};
    cxr_overlay_size(W, H, 2, &ow, &oh);
    cxr_canvas c = canvas(ow, oh);
    size_t ns = cxr_overlay_scratch_floats(W, H, S);
    float *scratch = malloc(sizeof(float) * ns);
    CHECK(cxr_overlay_draw(gray, W, H, map, S, lines, 2, &c, scratch) == CXR_IMG_OK, "overlay");
    /* the corner pixel's upsampled value is the cell's exactly (only that tap reaches it):
     * alpha 0.65 over 255 * 0.4 = 102 with (255, 235, 70):
     * 0.35 * 102 + 0.65 * (255, 235, 70) = (201.45, 188.45, 81.2) */
    CHECK(is(px(&c, 0, 0), 201, 188, 81), "peak pixel %d %d %d", px(&c, 0, 0)[0],
          px(&c, 0, 0)[1], px(&c, 0, 0)[2]);
    /* cell 0's taps reach x < 112 and y < 75 only: beyond, the X-ray exactly */
    int plain = 1, coloured = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = px(&c, x, y);
            int g = pattern(x, y);
            if (x >= 112 || y >= 75)
                plain &= is(p, g, g, g);
            else
                coloured += !(p[0] == p[1] && p[1] == p[2]);
        }
    CHECK(plain, "pixels away from the attended cell are not the X-ray's gray");
    CHECK(coloured > 1000, "only %d coloured pixels near the attended cell", coloured);
    /* the band: white, the colour map across columns p .. w - p - 1 (p = 4) at rows
     * h + 4 .. h + 9, labels at h + 12, captions at h + 24 and h + 36, 4 white rows last */
    CHECK(is(px(&c, 4, H + 4), 0, 0, 4) && is(px(&c, W - 5, H + 9), 255, 235, 70),
          "colour bar ends");
    CHECK(is(px(&c, 3, H + 4), 255, 255, 255) && is(px(&c, W - 4, H + 4), 255, 255, 255) &&
              is(px(&c, 100, H + 3), 255, 255, 255) && is(px(&c, 100, H + 10), 255, 255, 255),
          "colour bar extent");
    cxr_canvas band = {W, oh - H, c.rgb + (size_t)W * H * 3};
    size_t ink_rows[5] = {0};
    int ranges[5][2] = {{12, 21}, {24, 33}, {36, 45}, {45, 49}, {21, 24}};
    for (int r = 0; r < 5; r++)
        for (int y = ranges[r][0]; y < ranges[r][1]; y++)
            for (int x = 0; x < W; x++)
                ink_rows[r] += px(&band, x, y)[0] == 24;
    CHECK(ink_rows[0] > 0 && ink_rows[1] > 0, "labels and the first caption are drawn");
    CHECK(ink_rows[2] == 0 && ink_rows[3] == 0 && ink_rows[4] == 0,
          "a NULL caption, the gaps and the bottom pad stay white");

    /* hand-computed blends at exact cell centres: a 3x3 grid over 9x9 pixels, gray 0.6 (153);
     * centre cell 1 (the maximum), cell (0, 0) 0.1 (t = threshold: plain), cell (2, 2) 0.2:
     *   peak:   0.35 * 153 + 0.65 * (255, 235, 70) = (219.3, 206.3, 99.05)
     *   t 0.2:  alpha = 0.65 * 0.1 / 0.9 = 0.0722, colour at 0.2 = 0.8 of the way to the
     *           second stop = (56, 9.6 -> 10, 96.8 -> 97);
     *           0.9278 * 153 + 0.0722 * (56, 10, 97) = (145.99, 142.67, 148.96) */
    {
        float g9[81], m9[9] = {0.1f, 0, 0, 0, 1.0f, 0, 0, 0, 0.2f};
        for (int i = 0; i < 81; i++)
            g9[i] = 0.6f;
        cxr_overlay_size(9, 9, 0, &ow, &oh);
        cxr_canvas c9 = canvas(ow, oh);
        float *s9 = malloc(sizeof(float) * cxr_overlay_scratch_floats(9, 9, 3));
        CHECK(cxr_overlay_draw(g9, 9, 9, m9, 3, NULL, 0, &c9, s9) == CXR_IMG_OK, "9x9");
        CHECK(is(px(&c9, 4, 4), 219, 206, 99), "9x9 peak %d %d %d", px(&c9, 4, 4)[0],
              px(&c9, 4, 4)[1], px(&c9, 4, 4)[2]);
        CHECK(is(px(&c9, 1, 1), 153, 153, 153), "at the threshold: plain gray");
        CHECK(is(px(&c9, 7, 7), 146, 143, 149), "t = 0.2: %d %d %d", px(&c9, 7, 7)[0],
              px(&c9, 7, 7)[1], px(&c9, 7, 7)[2]);
        /* a map of zeros, negatives and NaN is no attention at all */
        float bad[9] = {0, -1.0f, NAN, 0, -INFINITY, 0, 0, 0, 0};
        CHECK(cxr_overlay_draw(g9, 9, 9, bad, 3, NULL, 0, &c9, s9) == CXR_IMG_OK, "bad map");
        int gray_only = 1;
        for (int i = 0; i < 81; i++)
            gray_only &= is(c9.rgb + i * 3, 153, 153, 153);
        CHECK(gray_only, "a map without positive cells colours the X-ray");
        /* NaN and infinity cells count as 0 beside a real peak */
        float mixed[9] = {NAN, 0, 0, 0, 1.0f, 0, 0, 0, INFINITY};
        CHECK(cxr_overlay_draw(g9, 9, 9, mixed, 3, NULL, 0, &c9, s9) == CXR_IMG_OK, "mixed");
        CHECK(is(px(&c9, 4, 4), 219, 206, 99) && is(px(&c9, 0, 0), 153, 153, 153) &&
                  is(px(&c9, 8, 8), 153, 153, 153),
              "non-finite cells");
        /* errors */
        cxr_canvas small = {9, oh - 1, c9.rgb};
        CHECK(cxr_overlay_draw(g9, 9, 9, m9, 3, NULL, 0, &small, s9) == CXR_IMG_CORRUPT,
              "wrong canvas size");
        CHECK(cxr_overlay_draw(NULL, 9, 9, m9, 3, NULL, 0, &c9, s9) == CXR_IMG_CORRUPT &&
                  cxr_overlay_draw(g9, 9, 9, m9, 0, NULL, 0, &c9, s9) == CXR_IMG_CORRUPT &&
                  cxr_overlay_draw(g9, 9, 9, m9, 3, NULL, 0, &c9, NULL) == CXR_IMG_CORRUPT,
              "missing inputs");
        free(c9.rgb);
        free(s9);
    }
    /* interrupts: stopping at any of its polls stops it */
    arm(-1);
    CHECK(cxr_overlay_draw(gray, W, H, map, S, lines, 2, &c, scratch) == CXR_IMG_OK, "armed");
    long polls = calls;
    CHECK(polls >= 3, "overlay of %dx%d polled %ld times", W, H, polls);
    int stopped = 1;
    for (long k = 0; k < polls; k++) {
        arm(k);
        stopped &= cxr_overlay_draw(gray, W, H, map, S, lines, 2, &c, scratch) ==
                       CXR_IMG_INTERRUPTED &&
                   calls == k + 1;
    }
    CHECK(stopped, "overlay not interrupted at every poll");
    /* with a map of zeros nothing is resized: every poll is the drawing's own, one at the
     * start, then one per 64k pixels of rows */
    {
        enum { BW = 600, BH = 600 };
        float *bg = calloc((size_t)BW * BH, sizeof(float)), zero[S * S] = {0};
        int bw, bh;
        cxr_overlay_size(BW, BH, 0, &bw, &bh);
        cxr_canvas bc = canvas(bw, bh);
        float *bs = malloc(sizeof(float) * cxr_overlay_scratch_floats(BW, BH, S));
        arm(-1);
        CHECK(cxr_overlay_draw(bg, BW, BH, zero, S, NULL, 0, &bc, bs) == CXR_IMG_OK, "zeros");
        CHECK(calls >= 1 + (long)BW * BH / 65536, "overlay of %dx%d: %ld polls", BW, BH, calls);
        free(bg);
        free(bc.rgb);
        free(bs);
    }
    disarm();
    free(c.rgb);
    free(scratch);
    free(gray);
}

static void
test_figure(void)
{
    int fw, fh;
    /* panel 64: s = 1, m = g = 4, caption row 11, band 25 */
    cxr_figure_size(1, 2, 64, 0, &fw, &fh);
    CHECK(fw == 8 + 128 + 4 && fh == 4 + 75 + 25, "figure size %dx%d", fw, fh);
    cxr_figure_size(1, 2, 64, 1, &fw, &fh);
    CHECK(fw == 140 && fh == 104 + 13, "with a title: %dx%d", fw, fh);
    /* panel 299: s = 2, m = g = 8, caption 22, title 26, band 50 */
    cxr_figure_size(2, 3, 299, 1, &fw, &fh);
    CHECK(fw == 16 + 3 * 299 + 2 * 8 && fh == 8 + 26 + 2 * (22 + 299) + 8 + 50,
          "2x3 figure size %dx%d", fw, fh);
    cxr_figure_size(0, 3, 299, 1, &fw, &fh);
    CHECK(fw == 0 && fh == 0, "no rows");
    cxr_figure_size(INT_MAX, INT_MAX, 299, 1, &fw, &fh);
    CHECK(fw == 0 && fh == 0, "too large");

    /* a black 64x64 X-ray, white ones of 64x32, 32x64 and 100x37; no maps */
    static float black_img[64 * 64], white_img[100 * 37];
    for (int i = 0; i < 100 * 37; i++)
        white_img[i] = 1.0f;
    cxr_figure_panel p[4] = {
        {black_img, 64, 64, NULL, 0, NULL},
        {white_img, 64, 32, NULL, 0, NULL},
        {white_img, 32, 64, NULL, 0, NULL},
        {white_img, 100, 37, NULL, 0, NULL},
    };
    cxr_figure_size(1, 4, 64, 0, &fw, &fh);
    CHECK(fw == 8 + 256 + 12 && fh == 104, "1x4 size");
    cxr_canvas c = canvas(fw, fh);
    size_t ns = cxr_figure_scratch_floats(p, 4, 64);
    CHECK(ns == 64 * 64 + cxr_resize_scratch_floats(64, 64, 64, 64), "plain scratch %zu", ns);
    float *scratch = malloc(sizeof(float) * ns);
    CHECK(cxr_figure_draw(p, 1, 4, 64, NULL, &c, scratch) == CXR_IMG_OK, "figure");
    /* panel k at x = 4 + 68k, y = 15; the 64x32 image at rows 16..47 of its panel, the 32x64
     * one at columns 16..47, the 100x37 one 64 x round(23.68) = 24 at rows 20..43;
     * letterboxing (32, 32, 32), background white */
    int ok0 = 1, ok1 = 1, ok2 = 1, ok3 = 1;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++) {
            ok0 &= is(px(&c, 4 + x, 15 + y), 0, 0, 0);
            int in1 = y >= 16 && y < 48, in2 = x >= 16 && x < 48, in3 = y >= 20 && y < 44;
            ok1 &= in1 ? is(px(&c, 72 + x, 15 + y), 255, 255, 255)
                       : is(px(&c, 72 + x, 15 + y), 32, 32, 32);
            ok2 &= in2 ? is(px(&c, 140 + x, 15 + y), 255, 255, 255)
                       : is(px(&c, 140 + x, 15 + y), 32, 32, 32);
            ok3 &= in3 ? is(px(&c, 208 + x, 15 + y), 255, 255, 255)
                       : is(px(&c, 208 + x, 15 + y), 32, 32, 32);
        }
    CHECK(ok0, "black X-ray panel rectangle");
    CHECK(ok1, "wide X-ray letterboxed");
    CHECK(ok2, "tall X-ray pillarboxed");
    CHECK(ok3, "100x37 X-ray: 24 rows, centred");
    int around = 1;
    for (int y = 0; y < 83; y++) {
        around &= is(px(&c, 3, y), 255, 255, 255) && is(px(&c, 68, y), 255, 255, 255) &&
                  is(px(&c, 71, y), 255, 255, 255) && is(px(&c, 272, y), 255, 255, 255);
    }
    for (int x = 0; x < fw; x++)
        around &= is(px(&c, x, 14), 255, 255, 255) && is(px(&c, x, 79), 255, 255, 255);
    CHECK(around, "margins, gaps and empty caption rows stay white");
    /* one colour scale below the grid: rows 83..88, columns m .. w - m - 1 */
    CHECK(is(px(&c, 4, 83), 0, 0, 4) && is(px(&c, fw - 5, 88), 255, 235, 70) &&
              is(px(&c, 3, 83), 255, 255, 255) && is(px(&c, fw - 4, 83), 255, 255, 255),
          "figure colour scale");

    /* captions above panels, a title on top; an empty panel is background */
    cxr_figure_panel q[2] = {
        {NULL, 0, 0, NULL, 0, "nothing here"},
        {black_img, 64, 64, NULL, 0, "layer 3"},
    };
    cxr_figure_size(1, 2, 64, 1, &fw, &fh);
    cxr_canvas t = canvas(fw, fh);
    CHECK(cxr_figure_draw(q, 1, 2, 64, "title", &t, scratch) == CXR_IMG_OK, "titled figure");
    size_t title_ink = 0, cap0 = 0, cap1 = 0, panel0 = 0;
    for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++) {
            int inked_px = px(&t, x, y)[0] == 24;
            title_ink += inked_px && y >= 4 && y < 13;
            cap0 += inked_px && y >= 17 && y < 26 && x >= 4 && x < 68;
            cap1 += inked_px && y >= 17 && y < 26 && x >= 72 && x < 136;
            panel0 += !is(px(&t, x, y), 255, 255, 255) && y >= 28 && y < 92 && x >= 4 &&
                      x < 68;
        }
    CHECK(title_ink > 0 && cap0 > 0 && cap1 > 0, "title and captions drawn");
    CHECK(panel0 == 0, "an empty panel drew %zu pixels", panel0);
    CHECK(is(px(&t, 72, 28), 0, 0, 0) && is(px(&t, 135, 91), 0, 0, 0), "titled panel at y 28");
    cxr_canvas wrong = {fw, fh, t.rgb};
    CHECK(cxr_figure_draw(q, 1, 2, 64, NULL, &wrong, scratch) == CXR_IMG_CORRUPT,
          "a canvas sized with a title, drawn without one");
    free(t.rgb);

    /* an attention panel: gray 0.6 at 63x63 in a 63 panel, a 3x3 map, so cell centres fall
     * on pixels 10, 31, 52 exactly; the same blends as the 9x9 overlay */
    float *g63 = malloc(sizeof(float) * 63 * 63), m9[9] = {0.1f, 0, 0, 0, 1.0f, 0, 0, 0, 0.2f};
    for (int i = 0; i < 63 * 63; i++)
        g63[i] = 0.6f;
    cxr_figure_panel a = {g63, 63, 63, m9, 3, "layer 1"};
    size_t na = cxr_figure_scratch_floats(&a, 1, 63);
    CHECK(na == 9 + 2 * 63 * 63 + cxr_resize_scratch_floats(63, 63, 63, 63), "map scratch %zu",
          na);
    float *sa = malloc(sizeof(float) * na);
    cxr_figure_size(1, 1, 63, 0, &fw, &fh);
    cxr_canvas ca = canvas(fw, fh);
    CHECK(cxr_figure_draw(&a, 1, 1, 63, NULL, &ca, sa) == CXR_IMG_OK, "attention figure");
    CHECK(is(px(&ca, 4 + 31, 15 + 31), 219, 206, 99) &&
              is(px(&ca, 4 + 10, 15 + 10), 153, 153, 153) &&
              is(px(&ca, 4 + 52, 15 + 52), 146, 143, 149),
          "attention panel blends");
    cxr_figure_panel bad = {g63, 63, 63, m9, 0, NULL};
    CHECK(cxr_figure_draw(&bad, 1, 1, 63, NULL, &ca, sa) == CXR_IMG_CORRUPT, "map of side 0");

    /* interrupts */
    cxr_figure_panel big[2] = {{g63, 63, 63, NULL, 0, "x"}, {g63, 63, 63, m9, 3, "y"}};
    cxr_figure_size(1, 2, 300, 1, &fw, &fh);
    cxr_canvas cb = canvas(fw, fh);
    float *sb = malloc(sizeof(float) * cxr_figure_scratch_floats(big, 2, 300));
    arm(-1);
    CHECK(cxr_figure_draw(big, 1, 2, 300, "t", &cb, sb) == CXR_IMG_OK, "armed figure");
    long polls = calls;
    CHECK(polls >= 3, "figure polled %ld times", polls);
    int stopped = 1;
    for (long k = 0; k < polls; k++) {
        arm(k);
        stopped &= cxr_figure_draw(big, 1, 2, 300, "t", &cb, sb) == CXR_IMG_INTERRUPTED &&
                   calls == k + 1;
    }
    CHECK(stopped, "figure not interrupted at every poll");
    /* images at the panel's size are copied, not resized: every poll is the drawing's own,
     * one at the start, one before the background, then one per 64k pixels of panel rows */
    {
        float *g300 = calloc(300 * 300, sizeof(float));
        cxr_figure_panel same[2] = {{g300, 300, 300, NULL, 0, NULL},
                                    {g300, 300, 300, NULL, 0, NULL}};
        float *ss = malloc(sizeof(float) * cxr_figure_scratch_floats(same, 2, 300));
        arm(-1);
        CHECK(cxr_figure_draw(same, 1, 2, 300, "t", &cb, ss) == CXR_IMG_OK, "same size");
        long want = 2 + 2 * 300 * 300 / 65536;
        CHECK(calls >= want, "figure: %ld polls, want at least %ld", calls, want);
        free(g300);
        free(ss);
    }
    disarm();
    free(cb.rgb);
    free(sb);
    free(ca.rgb);
    free(sa);
    free(g63);
    free(c.rgb);
    free(scratch);
}

static const uint8_t train_rgb[3] = CXR_PLOT_TRAIN_RGB, val_rgb[3] = CXR_PLOT_VAL_RGB;

static int
is_rgb(const uint8_t *p, const uint8_t rgb[3])
{
    return memcmp(p, rgb, 3) == 0;
}

static void
test_plot(void)
{
    int w, h;
    cxr_plot_size(&w, &h);
    CHECK(w == 960 && h == 420, "plot size %dx%d", w, h);
    cxr_canvas c = canvas(w, h);

    /* two epochs, loss 1 then 0, accuracy 0.5 then 1, no validation: the loss range is
     * [0, 1] (step 0.2), so the curve runs corner to corner of the loss area
     * (88, 62)-(460, 360), through its centre (274, 211); accuracy from (568, 211) to
     * (940, 62) */
    int ep[2] = {1, 2};
    double tl[2] = {1.0, 0.0}, ta[2] = {0.5, 1.0}, nan2[2] = {NAN, NAN};
    cxr_history hist = {2, ep, tl, nan2, ta, nan2};
    CHECK(cxr_plot_history(&hist, "two epochs", &c) == CXR_IMG_OK, "plot");
    CHECK(is_rgb(px(&c, 88, 62), train_rgb) && is_rgb(px(&c, 460, 360), train_rgb) &&
              is_rgb(px(&c, 274, 211), train_rgb),
          "train loss through the area's corners and centre");
    CHECK(is_rgb(px(&c, 568, 211), train_rgb) && is_rgb(px(&c, 940, 62), train_rgb),
          "train accuracy ends");
    CHECK(count(&c, val_rgb) == 0, "NaN validation drew %zu validation pixels",
          count(&c, val_rgb));
    /* the curve stays in its area (thickness 2 may reach one pixel past it) */
    size_t outside = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (is_rgb(px(&c, x, y), train_rgb) && y > 36) /* below the legend */
                outside += !((x >= 88 && x <= 461 && y >= 62 && y <= 361) ||
                             (x >= 568 && x <= 941 && y >= 62 && y <= 361));
    CHECK(outside == 0, "%zu train pixels outside the plot areas", outside);

    /* a non-finite loss in the middle is skipped: first to last point in one line */
    int ep3[3] = {1, 2, 3};
    double tl3[3] = {1.0, NAN, 0.0}, va3[3] = {0.25, 0.5, 0.75};
    cxr_history h3 = {3, ep3, tl3, NULL, NULL, va3};
    CHECK(cxr_plot_history(&h3, NULL, &c) == CXR_IMG_OK, "plot with a gap");
    CHECK(is_rgb(px(&c, 88, 62), train_rgb) && is_rgb(px(&c, 274, 211), train_rgb) &&
              is_rgb(px(&c, 460, 360), train_rgb),
          "line across the NaN");
    /* validation accuracy 0.25 .. 0.75: (568, 285.5 -> 286) to (940, 136.5 -> 137) */
    CHECK(count(&c, val_rgb) > 0 && is_rgb(px(&c, 754, 211), val_rgb), "validation drawn");
    size_t legend_val = 0;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < w; x++)
            legend_val += is_rgb(px(&c, x, y), val_rgb);
    CHECK(legend_val > 0, "validation in the legend");

    /* one epoch: a marker in the middle column of each area, and no line */
    int e1 = 7;
    double l1 = 0.4, a1 = 0.8;
    cxr_history h1 = {1, &e1, &l1, NULL, &a1, NULL};
    CHECK(cxr_plot_history(&h1, "one", &c) == CXR_IMG_OK, "plot of one epoch");
    size_t in_loss = 0, stray = 0;
    for (int y = 40; y < h; y++)
        for (int x = 0; x < w; x++)
            if (is_rgb(px(&c, x, y), train_rgb)) {
                in_loss += x < 480;
                stray += !(abs(x - 274) <= 3 || abs(x - 754) <= 3);
            }
    CHECK(in_loss > 0 && stray == 0, "single point: %zu pixels, %zu astray", in_loss, stray);
    /* accuracy 0.8 -> y = 360 - 0.8 * 298 = 121.6 */
    CHECK(is_rgb(px(&c, 754, 122), train_rgb), "single accuracy marker");

    /* thousands of epochs, epochs 1..n by default, huge and non-finite values */
    enum { N = 5000 };
    double *big = malloc(sizeof(double) * N), *acc = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) {
        big[i] = i == 17 ? INFINITY : i == 18 ? 1e300 : 1.0 / (1 + i);
        acc[i] = i == 40 ? -1e300 : (double)i / N;
    }
    cxr_history hb = {N, NULL, big, NULL, acc, NULL};
    CHECK(cxr_plot_history(&hb, NULL, &c) == CXR_IMG_OK, "long plot");
    int left = 0, right = 0;
    for (int y = 62; y <= 361; y++) {
        left |= is_rgb(px(&c, 568, y), train_rgb) || is_rgb(px(&c, 569, y), train_rgb);
        right |= is_rgb(px(&c, 940, y), train_rgb) || is_rgb(px(&c, 939, y), train_rgb);
    }
    CHECK(left && right, "long accuracy curve spans the area");
    cxr_history none = {0, NULL, NULL, NULL, NULL, NULL};
    CHECK(cxr_plot_history(&none, "empty", &c) == CXR_IMG_OK && count(&c, train_rgb) > 0 &&
              count(&c, val_rgb) == 0,
          "no epochs: axes and the legend's train entry");

    /* errors */
    cxr_canvas wrong = {w - 1, h, c.rgb};
    cxr_history neg = {-1, NULL, NULL, NULL, NULL, NULL};
    CHECK(cxr_plot_history(&hist, NULL, &wrong) == CXR_IMG_CORRUPT &&
              cxr_plot_history(&neg, NULL, &c) == CXR_IMG_CORRUPT &&
              cxr_plot_history(NULL, NULL, &c) == CXR_IMG_CORRUPT,
          "plot errors");

    /* interrupts */
    arm(-1);
    CHECK(cxr_plot_history(&hb, "t", &c) == CXR_IMG_OK, "armed plot");
    long polls = calls;
    CHECK(polls >= 4, "plot of %d epochs polled %ld times", N, polls);
    int stopped = 1;
    for (long k = 0; k < polls; k++) {
        arm(k);
        stopped &= cxr_plot_history(&hb, "t", &c) == CXR_IMG_INTERRUPTED && calls == k + 1;
    }
    CHECK(stopped, "plot not interrupted at every poll");
    /* one poll at the start, one before the background, then one per 64k of work: 16 per
     * point (two series of N) plus each segment's pixels */
    CHECK(polls >= 2 + 16L * 2 * N / 65536, "plot: %ld polls", polls);
    arm(0);
    CHECK(cxr_plot_history(&hist, "t", &c) == CXR_IMG_INTERRUPTED, "short plot interrupted");
    disarm();
    free(big);
    free(acc);
    free(c.rgb);
}

int
main(void)
{
    test_canvas();
    test_font();
    test_colormap();
    test_overlay();
    test_figure();
    test_plot();
    return harness_finish("test_draw");
}

/* Figures of several X-rays side by side, each row one image: the plain X-ray and its
 * attention maps, every panel the same square, one colour scale for all. Images keep their
 * aspect ratio (letterboxed), and the map is stretched over exactly the image's rectangle,
 * as the network saw it. */
#include "cxr_draw_internal.h"
#include "cxr_interrupt.h"

static const uint8_t white[3] = {255, 255, 255}, ink[3] = {24, 24, 24},
                     letterbox[3] = {32, 32, 32};

typedef struct {
    int s, m, g, cap, title; /* text scale, margin, gap, caption row, title row */
} layout;

static layout
figure_layout(int panel, int has_title)
{
    layout l;
    l.s = panel / 128 < 1 ? 1 : panel / 128 > 8 ? 8 : panel / 128;
    l.m = 4 * l.s;
    l.g = 4 * l.s;
    l.cap = 11 * l.s;
    l.title = has_title ? 13 * l.s : 0;
    return l;
}

void
cxr_figure_size(int rows, int cols, int panel, int has_title, int *out_w, int *out_h)
{
    *out_w = *out_h = 0;
    if (rows < 1 || cols < 1 || panel < 1 || panel > CXR_DRAW_MAX_SIDE)
        return;
    layout l = figure_layout(panel, has_title);
    int64_t w = 2 * (int64_t)l.m + (int64_t)cols * panel + (int64_t)(cols - 1) * l.g;
    int64_t h = (int64_t)l.m + l.title + (int64_t)rows * (l.cap + (int64_t)panel) +
                (int64_t)(rows - 1) * l.g + 25 * (int64_t)l.s;
    if (w > CXR_DRAW_MAX_SIDE || h > CXR_DRAW_MAX_SIDE)
        return;
    *out_w = (int)w;
    *out_h = (int)h;
}

/* The rectangle a w x h image fills in the panel: the longer side is the panel's, the other
 * rounded to nearest (at least 1). panel <= CXR_DRAW_MAX_SIDE keeps the products in range. */
static void
fit(int w, int h, int panel, int *pw, int *ph)
{
    int64_t lng = w >= h ? w : h, shrt = w >= h ? h : w;
    int64_t other = (2 * (int64_t)panel * shrt + lng) / (2 * lng);
    if (other < 1)
        other = 1;
    *pw = w >= h ? panel : (int)other;
    *ph = w >= h ? (int)other : panel;
}

static int
panel_ok(const cxr_figure_panel *p)
{
    return p->w >= 1 && p->h >= 1 && (!p->map || p->side >= 1);
}

static size_t
panel_scratch(const cxr_figure_panel *p, int panel)
{
    if (!p->gray || !panel_ok(p))
        return 0;
    int pw, ph;
    fit(p->w, p->h, panel, &pw, &ph);
    size_t img = (size_t)pw * (size_t)ph, rs = cxr_resize_scratch_floats(p->w, p->h, pw, ph);
    if (!p->map)
        return cxr_size_add(img, rs);
    size_t rm = cxr_resize_scratch_floats(p->side, p->side, pw, ph);
    size_t grid = cxr_size_mul((size_t)p->side, (size_t)p->side);
    return cxr_size_add(cxr_size_add(grid, cxr_size_mul(2, img)), rs > rm ? rs : rm);
}

size_t
cxr_figure_scratch_floats(const cxr_figure_panel *p, int n, int panel)
{
    size_t most = 0;
    if (!p || panel < 1 || panel > CXR_DRAW_MAX_SIDE)
        return 0;
    for (int i = 0; i < n; i++) {
        size_t need = panel_scratch(&p[i], panel);
        most = need > most ? need : most;
    }
    return most;
}

/* One panel's image into the panel square at (x, y). */
static cxr_img_status
draw_panel(const cxr_figure_panel *p, int panel, int x, int y, cxr_canvas *out, float *scratch,
           size_t *work)
{
    int pw, ph;
    fit(p->w, p->h, panel, &pw, &ph);
    if (pw < panel || ph < panel)
        cxr_canvas_rect(out, x, y, panel, panel, letterbox);
    int ox = x + (panel - pw) / 2, oy = y + (panel - ph) / 2;
    size_t img = (size_t)pw * ph;
    float *gray = scratch, *clean = scratch + img, *up = NULL, *rs = scratch + img;
    float max = 0.0f;
    if (p->map) {
        up = clean + (size_t)p->side * p->side;
        rs = up + img;
        max = cxr_attention_clean(p->map, p->side, clean);
    }
    cxr_img_status st = cxr_resize_bilinear(p->gray, p->w, p->h, gray, pw, ph, rs);
    if (st == CXR_IMG_OK && max > 0.0f)
        st = cxr_resize_bilinear(clean, p->side, p->side, up, pw, ph, rs);
    if (st != CXR_IMG_OK)
        return st;
    for (int r = 0; r < ph; r++) {
        if (cxr_draw_poll(work, (size_t)pw))
            return CXR_IMG_INTERRUPTED;
        size_t row = (size_t)r * pw;
        cxr_attention_blend_row(gray + row, max > 0.0f ? up + row : NULL, pw, max,
                                out->rgb + ((size_t)(oy + r) * out->w + ox) * 3);
    }
    return CXR_IMG_OK;
}

cxr_img_status
cxr_figure_draw(const cxr_figure_panel *panels, int rows, int cols, int panel,
                const char *title, cxr_canvas *out, float *scratch)
{
    if (!panels || !cxr_canvas_ok(out) || rows < 1 || cols < 1 || panel < 1)
        return CXR_IMG_CORRUPT;
    int fw, fh;
    cxr_figure_size(rows, cols, panel, title != NULL, &fw, &fh);
    if (fw == 0)
        return CXR_IMG_TOO_LARGE;
    if (out->w != fw || out->h != fh)
        return CXR_IMG_CORRUPT;
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (panels[i].gray && (!panel_ok(&panels[i]) || !scratch))
            return CXR_IMG_CORRUPT;
    size_t work = CXR_DRAW_POLL_PIXELS; /* poll before anything is drawn */
    if (cxr_draw_poll(&work, 0) || cxr_draw_poll(&work, (size_t)fw * fh))
        return CXR_IMG_INTERRUPTED;

    layout l = figure_layout(panel, title != NULL);
    cxr_canvas_fill(out, white);
    if (title)
        cxr_canvas_text_fit(out, l.m, l.m, fw - 2 * l.m, 1, title, l.s, ink);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            const cxr_figure_panel *p = &panels[(size_t)r * cols + k];
            int x = l.m + k * (panel + l.g);
            int y = l.m + l.title + r * (l.cap + panel + l.g) + l.cap;
            cxr_canvas_text_fit(out, x, y - l.cap, panel, 1, p->caption, l.s, ink);
            if (!p->gray)
                continue;
            cxr_img_status st = draw_panel(p, panel, x, y, out, scratch, &work);
            if (st != CXR_IMG_OK)
                return st;
        }

    int by = l.m + l.title + rows * (l.cap + panel) + (rows - 1) * l.g + 4 * l.s;
    int bw = fw - 2 * l.m, ly = by + 8 * l.s, gap = 6 * l.s;
    if (cxr_draw_poll(&work, (size_t)bw * (size_t)(6 * l.s)))
        return CXR_IMG_INTERRUPTED;
    cxr_draw_colorbar(out, l.m, by, bw, 6 * l.s);
    int wl = cxr_canvas_text_fit(out, l.m, ly, bw, 0, "low", l.s, ink);
    int wr = cxr_text_width("high", l.s), wc = cxr_text_width("relative attention", l.s);
    if (wl + gap + wr <= bw)
        cxr_canvas_text_fit(out, l.m, ly, bw, 2, "high", l.s, ink);
    if (wl + wc + wr + 2 * gap <= bw)
        cxr_canvas_text_fit(out, l.m, ly, bw, 1, "relative attention", l.s, ink);
    return CXR_IMG_OK;
}

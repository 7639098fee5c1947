/* Training curves: loss and accuracy against epoch, train and validation, on a fixed canvas
 * whose layout cxr_draw.h documents (so a test can find the plot area). Missing validation
 * (NaN) is simply not drawn, and nothing else uses the series' colours. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cxr_draw_internal.h"
#include "cxr_interrupt.h"

#define PANEL_W 480
#define AREA_L 88 /* from the panel's left edge */
#define AREA_R 460
#define AREA_T 62
#define AREA_B 360
#define LABEL_SCALE 2
#define MAX_TICKS 64
#define MARKER_MAX_POINTS 40
/* mapped coordinates are kept within this: far beyond the canvas, so a clamped end changes a
 * visible segment by less than 1e-6 px, and the clipping arithmetic cannot overflow */
#define FAR 1e12

static const uint8_t white[3] = {255, 255, 255}, ink[3] = {24, 24, 24},
                     axis_rgb[3] = {60, 60, 60}, grid_rgb[3] = {225, 225, 225},
                     train_rgb[3] = CXR_PLOT_TRAIN_RGB, val_rgb[3] = CXR_PLOT_VAL_RGB;

typedef struct {
    double lo, hi;   /* the range mapped edge to edge */
    double step;     /* between ticks; 0: no ticks */
    double k0, k1;   /* ticks at k * step for k0 <= k <= k1 */
    int decimals;    /* of the tick labels */
} axis;

typedef struct {
    int l, r, t, b; /* plot area, inclusive pixels */
} area;

void
cxr_plot_size(int *w, int *h)
{
    *w = CXR_PLOT_W;
    *h = CXR_PLOT_H;
}

/* The smallest 1, 2 or 5 times a power of ten at least raw (0 when there is none). The
 * tolerance keeps 0.2 / 0.1 = 2.0000000000000004 a 2. */
static double
nice_step(double raw)
{
    if (!(raw > 0.0) || !isfinite(raw))
        return 0.0;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    double m = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
    double step = m * mag;
    return step > 0.0 && isfinite(step) ? step : 0.0;
}

/* Ticks every step within [lo, hi], when step gives a sane count. */
static void
set_ticks(axis *a, double step)
{
    a->step = 0.0;
    if (!(step > 0.0))
        return;
    double k0 = ceil(a->lo / step - 1e-9), k1 = floor(a->hi / step + 1e-9);
    if (!isfinite(k0) || !isfinite(k1) || k1 < k0 || k1 - k0 > MAX_TICKS)
        return;
    a->step = step;
    a->k0 = k0;
    a->k1 = k1;
    int d = step >= 1.0 - 1e-9 ? 0 : (int)ceil(-log10(step) - 1e-9);
    a->decimals = step >= 1.0 - 1e-9 ? 0 : d < 2 ? 2 : d > 10 ? 10 : d;
}

/* A value axis over [vmin, vmax], rounded out to about five 1-2-5 steps. */
static void
value_axis(double vmin, double vmax, axis *a)
{
    if (!(vmin <= vmax)) { /* no finite values */
        vmin = 0.0;
        vmax = 1.0;
    }
    /* All values equal, or so close that frac's halves meet (subnormals a step apart): widen
     * by a tenth of the value, or 0.5 when that tenth is 0 or subnormal, within the finite
     * doubles (-DBL_MAX less a tenth is -inf). Else frac would be 0/0 or inf/inf, NaN, and
     * not a point of the series would be drawn. */
    if (!(vmax / 2 - vmin / 2 > 0.0)) {
        double d = fmax(fabs(vmin), fabs(vmax)) * 0.1;
        if (!(d >= DBL_MIN))
            d = 0.5;
        vmin = fmax(vmin - d, -DBL_MAX);
        vmax = fmin(vmax + d, DBL_MAX);
    }
    a->lo = vmin;
    a->hi = vmax;
    double step = isfinite(vmax - vmin) ? nice_step((vmax - vmin) / 5) : 0.0;
    if (step > 0.0) {
        double k0 = floor(vmin / step + 1e-9), k1 = ceil(vmax / step - 1e-9);
        if (isfinite(k0 * step) && isfinite(k1 * step) && k1 > k0) {
            /* the tolerance that keeps 0.6 / 0.2 = 2.9999999999999996 a 3 makes k0 * step
             * 0.6000000000000001, above the smallest value: keep the extremes inside, or
             * their points fall a hair outside the area and lose their markers */
            a->lo = fmin(k0 * step, vmin);
            a->hi = fmax(k1 * step, vmax);
        }
    }
    set_ticks(a, step);
}

static void
format_tick(const axis *a, double v, char *buf, size_t len)
{
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (big >= 1e6 || (a->step > 0.0 && a->step < 1e-6))
        snprintf(buf, len, "%.3g", v);
    else
        snprintf(buf, len, "%.*f", a->decimals, v == 0.0 ? 0.0 : v); /* no "-0.00" */
}

/* Position of v between lo (0) and hi (1); halved first so that no difference overflows. */
static double
frac(const axis *a, double v)
{
    return (v / 2 - a->lo / 2) / (a->hi / 2 - a->lo / 2);
}

static double
clamp_far(double v)
{
    return v < -FAR ? -FAR : v > FAR ? FAR : v;
}

static double
map_x(const area *ar, const axis *x, double e)
{
    return clamp_far(ar->l + frac(x, e) * (ar->r - ar->l));
}

static double
map_y(const area *ar, const axis *y, double v)
{
    return clamp_far(ar->b - frac(y, v) * (ar->b - ar->t));
}

static double
epoch_at(const cxr_history *h, int i)
{
    return h->epoch ? (double)h->epoch[i] : (double)i + 1.0;
}

static int
any_finite(const double *v, int n)
{
    for (int i = 0; v && i < n; i++)
        if (isfinite(v[i]))
            return 1;
    return 0;
}

/* Epochs from the first to the last; integer ticks spaced so their labels do not collide. */
static void
epoch_axis(const cxr_history *h, const area *ar, axis *a)
{
    double lo = 0.0, hi = 1.0;
    for (int i = 0; i < h->n; i++) {
        double e = epoch_at(h, i);
        if (i == 0 || e < lo)
            lo = e;
        if (i == 0 || e > hi)
            hi = e;
    }
    if (lo == hi) {
        lo -= 1.0;
        hi += 1.0;
    }
    a->lo = lo;
    a->hi = hi;
    a->decimals = 0;
    char b1[32], b2[32];
    snprintf(b1, sizeof b1, "%.0f", lo);
    snprintf(b2, sizeof b2, "%.0f", hi);
    int lw = cxr_text_width(b1, LABEL_SCALE), hw = cxr_text_width(b2, LABEL_SCALE);
    int most = (ar->r - ar->l) / ((lw > hw ? lw : hw) + 24);
    if (most < 2)
        most = 2;
    double step = nice_step((hi - lo) / (most - 1));
    set_ticks(a, step < 1.0 ? 1.0 : step);
}

/* Grid lines, axes, tick marks and labels of one panel. */
static void
draw_axes(cxr_canvas *out, const area *ar, const axis *x, const axis *y, const char *name)
{
    int th = cxr_text_height(LABEL_SCALE);
    char buf[48];
    cxr_canvas_text(out, ar->l, 36, name, LABEL_SCALE, ink);
    /* y labels at scale 2 when the widest fits left of the axis, else at scale 1 */
    int ls = LABEL_SCALE, room = AREA_L - 12;
    for (double k = y->k0; y->step > 0.0 && k <= y->k1; k++) {
        format_tick(y, k * y->step, buf, sizeof buf);
        if (cxr_text_width(buf, LABEL_SCALE) > room)
            ls = 1;
    }
    for (double k = y->k0; y->step > 0.0 && k <= y->k1; k++) {
        double v = k * y->step;
        int py = (int)floor(map_y(ar, y, v) + 0.5);
        if (py < ar->t || py > ar->b)
            continue;
        cxr_canvas_line(out, ar->l, py, ar->r, py, 1, grid_rgb);
        cxr_canvas_line(out, ar->l - 4, py, ar->l - 1, py, 1, axis_rgb);
        format_tick(y, v, buf, sizeof buf);
        cxr_canvas_text_fit(out, ar->l - 8 - room, py - cxr_text_height(ls) / 2, room, 2, buf,
                            ls, ink);
    }
    for (double k = x->k0; x->step > 0.0 && k <= x->k1; k++) {
        double e = k * x->step;
        int px = (int)floor(map_x(ar, x, e) + 0.5);
        if (px < ar->l || px > ar->r)
            continue;
        cxr_canvas_line(out, px, ar->t, px, ar->b, 1, grid_rgb);
        cxr_canvas_line(out, px, ar->b + 1, px, ar->b + 4, 1, axis_rgb);
        snprintf(buf, sizeof buf, "%.0f", e);
        /* centred on the tick, but kept within the panel (the last tick sits on its edge) */
        int w = cxr_text_width(buf, LABEL_SCALE), lx = px - w / 2;
        int panel_r = ar->l - AREA_L + PANEL_W - 2;
        lx = lx + w > panel_r ? panel_r - w : lx;
        cxr_canvas_text(out, lx, ar->b + 8, buf, LABEL_SCALE, ink);
    }
    cxr_canvas_line(out, ar->l, ar->t, ar->l, ar->b, 1, axis_rgb);
    cxr_canvas_line(out, ar->l, ar->b, ar->r, ar->b, 1, axis_rgb);
    int ew = cxr_text_width("epoch", LABEL_SCALE);
    cxr_canvas_text(out, (ar->l + ar->r - ew) / 2, ar->b + 10 + th + 8, "epoch", LABEL_SCALE,
                    ink);
}

/* A (2r + 1)-pixel square marker centred on (x, y), kept inside the plot area. */
static void
marker(cxr_canvas *out, const area *ar, int x, int y, int r, const uint8_t rgb[3])
{
    int x0 = x - r > ar->l ? x - r : ar->l, x1 = x + r < ar->r ? x + r : ar->r;
    int y0 = y - r > ar->t ? y - r : ar->t, y1 = y + r < ar->b ? y + r : ar->b;
    cxr_canvas_rect(out, x0, y0, x1 - x0 + 1, y1 - y0 + 1, rgb);
}

/* One series: consecutive finite points joined, clipped to the area. */
static int
draw_series(cxr_canvas *out, const area *ar, const axis *x, const axis *y, const cxr_history *h,
            const double *v, const uint8_t rgb[3], size_t *work)
{
    if (!v)
        return 0;
    int finite = 0;
    for (int i = 0; i < h->n; i++)
        finite += isfinite(v[i]) != 0;
    double px = 0.0, py = 0.0;
    int have = 0;
    for (int i = 0; i < h->n; i++) {
        /* every 4096 points even when they draw nothing */
        if (cxr_draw_poll(work, 16))
            return -1;
        if (!isfinite(v[i]))
            continue;
        double qx = map_x(ar, x, epoch_at(h, i)), qy = map_y(ar, y, v[i]);
        if (have) {
            double ax = px, ay = py, bx = qx, by = qy;
            if (cxr_clip_segment(&ax, &ay, &bx, &by, ar->l, ar->t, ar->r, ar->b)) {
                int x0 = (int)floor(ax + 0.5), y0 = (int)floor(ay + 0.5);
                int x1 = (int)floor(bx + 0.5), y1 = (int)floor(by + 0.5);
                cxr_canvas_line(out, x0, y0, x1, y1, 2, rgb);
                if (cxr_draw_poll(work, 2 * (size_t)(abs(x1 - x0) + abs(y1 - y0) + 1)))
                    return -1;
            }
        }
        px = qx;
        py = qy;
        have = 1;
    }
    if (finite > MARKER_MAX_POINTS)
        return 0;
    for (int i = 0; i < h->n; i++) {
        if (!isfinite(v[i]))
            continue;
        double qx = map_x(ar, x, epoch_at(h, i)), qy = map_y(ar, y, v[i]);
        if (qx >= ar->l && qx <= ar->r && qy >= ar->t && qy <= ar->b)
            marker(out, ar, (int)floor(qx + 0.5), (int)floor(qy + 0.5), finite == 1 ? 3 : 2,
                   rgb);
    }
    return 0;
}

/* Legend entries right-aligned on the title row; returns the legend's left edge. */
static int
draw_legend(cxr_canvas *out, int with_val)
{
    const char *names[2] = {"train", "validation"};
    const uint8_t *colours[2] = {train_rgb, val_rgb};
    int n = with_val ? 2 : 1, total = 0;
    for (int i = 0; i < n; i++)
        total += (i ? 16 : 0) + 24 + 6 + cxr_text_width(names[i], LABEL_SCALE);
    int x = CXR_PLOT_W - 16 - total, left = x, mid = 8 + cxr_text_height(LABEL_SCALE) / 2;
    for (int i = 0; i < n; i++) {
        cxr_canvas_line(out, x, mid - 1, x + 23, mid - 1, 3, colours[i]);
        x += 30;
        cxr_canvas_text(out, x, 8, names[i], LABEL_SCALE, ink);
        x += cxr_text_width(names[i], LABEL_SCALE) + 16;
    }
    return left;
}

cxr_img_status
cxr_plot_history(const cxr_history *h, const char *title, cxr_canvas *out)
{
    if (!h || h->n < 0 || !cxr_canvas_ok(out) || out->w != CXR_PLOT_W || out->h != CXR_PLOT_H)
        return CXR_IMG_CORRUPT;
    size_t work = CXR_DRAW_POLL_PIXELS; /* poll before anything is drawn */
    if (cxr_draw_poll(&work, 0) || cxr_draw_poll(&work, (size_t)CXR_PLOT_W * CXR_PLOT_H))
        return CXR_IMG_INTERRUPTED;
    cxr_canvas_fill(out, white);

    int with_val = any_finite(h->val_loss, h->n) || any_finite(h->val_acc, h->n);
    int legend = draw_legend(out, with_val);
    if (title)
        cxr_canvas_text_fit(out, 16, 8, legend - 32, 0, title, LABEL_SCALE, ink);

    area loss_area = {AREA_L, AREA_R, AREA_T, AREA_B};
    area acc_area = {PANEL_W + AREA_L, PANEL_W + AREA_R, AREA_T, AREA_B};
    axis ex, ly, ay;
    epoch_axis(h, &loss_area, &ex);
    /* the loss range: every finite loss drawn */
    double lo = INFINITY, hi = -INFINITY;
    const double *losses[2] = {h->train_loss, h->val_loss};
    for (int s = 0; s < 2; s++)
        for (int i = 0; losses[s] && i < h->n; i++)
            if (isfinite(losses[s][i])) {
                lo = fmin(lo, losses[s][i]);
                hi = fmax(hi, losses[s][i]);
            }
    value_axis(lo, hi, &ly);
    ay.lo = 0.0;
    ay.hi = 1.0;
    set_ticks(&ay, 0.2);

    draw_axes(out, &loss_area, &ex, &ly, "loss");
    draw_axes(out, &acc_area, &ex, &ay, "accuracy");
    /* validation first, so train stays on top where they overlap */
    if (draw_series(out, &loss_area, &ex, &ly, h, h->val_loss, val_rgb, &work) ||
        draw_series(out, &loss_area, &ex, &ly, h, h->train_loss, train_rgb, &work) ||
        draw_series(out, &acc_area, &ex, &ay, h, h->val_acc, val_rgb, &work) ||
        draw_series(out, &acc_area, &ex, &ay, h, h->train_acc, train_rgb, &work))
        return CXR_IMG_INTERRUPTED;
    return CXR_IMG_OK;
}

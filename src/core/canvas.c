/* The RGB canvas and its clipped primitives: fill, rectangle, thick Bresenham line. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cxr_draw_internal.h"
#include "cxr_interrupt.h"

size_t
cxr_canvas_bytes(int w, int h)
{
    if (w < 1 || h < 1)
        return 0;
    if ((size_t)w > SIZE_MAX / 3 / (size_t)h)
        return SIZE_MAX;
    return (size_t)w * (size_t)h * 3;
}

int
cxr_canvas_ok(const cxr_canvas *c)
{
    return c && c->rgb && c->w > 0 && c->h > 0;
}

int
cxr_draw_poll(size_t *work, size_t done)
{
    *work += done;
    if (*work < CXR_DRAW_POLL_PIXELS)
        return 0;
    *work = 0;
    return cxr_interrupt_poll();
}

/* One row segment [x0, x1) of row y, already clipped. */
static void
span(cxr_canvas *c, int64_t x0, int64_t x1, int64_t y, const uint8_t rgb[3])
{
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x0) * 3;
    for (int64_t x = x0; x < x1; x++, p += 3) {
        p[0] = rgb[0];
        p[1] = rgb[1];
        p[2] = rgb[2];
    }
}

void
cxr_canvas_fill(cxr_canvas *c, const uint8_t rgb[3])
{
    cxr_canvas_rect(c, 0, 0, c ? c->w : 0, c ? c->h : 0, rgb);
}

void
cxr_canvas_rect(cxr_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3])
{
    if (!cxr_canvas_ok(c) || w < 1 || h < 1)
        return;
    /* in 64 bits: x + w cannot overflow */
    int64_t x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int64_t x1 = (int64_t)x + w, y1 = (int64_t)y + h;
    if (x1 > c->w)
        x1 = c->w;
    if (y1 > c->h)
        y1 = c->h;
    if (x0 >= x1 || y0 >= y1)
        return;
    /* the first row by pixels, the others copied from it */
    span(c, x0, x1, y0, rgb);
    size_t row = (size_t)c->w * 3, len = (size_t)(x1 - x0) * 3;
    const uint8_t *first = c->rgb + (size_t)y0 * row + (size_t)x0 * 3;
    for (int64_t yy = y0 + 1; yy < y1; yy++)
        memcpy(c->rgb + (size_t)yy * row + (size_t)x0 * 3, first, len);
}

static void
put(cxr_canvas *c, int64_t x, int64_t y, const uint8_t rgb[3])
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = rgb[0];
    p[1] = rgb[1];
    p[2] = rgb[2];
}

/* Liang-Barsky. An end already inside keeps its exact value (its t stays 0 or 1). */
int
cxr_clip_segment(double *x0, double *y0, double *x1, double *y1, double lo_x, double lo_y,
                 double hi_x, double hi_y)
{
    if (!isfinite(*x0) || !isfinite(*y0) || !isfinite(*x1) || !isfinite(*y1))
        return 0;
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0.0, t1 = 1.0;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - lo_x, hi_x - *x0, *y0 - lo_y, hi_y - *y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0.0) {
            if (q[i] < 0.0)
                return 0; /* parallel to this edge and outside it */
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0.0) {
            if (r > t1)
                return 0;
            if (r > t0)
                t0 = r;
        } else {
            if (r < t0)
                return 0;
            if (r < t1)
                t1 = r;
        }
    }
    double ax = *x0, ay = *y0;
    if (t1 < 1.0) {
        *x1 = ax + t1 * dx;
        *y1 = ay + t1 * dy;
    }
    if (t0 > 0.0) {
        *x0 = ax + t0 * dx;
        *y0 = ay + t0 * dy;
    }
    return 1;
}

void
cxr_canvas_line(cxr_canvas *c, int x0, int y0, int x1, int y1, int thickness,
                const uint8_t rgb[3])
{
    if (!cxr_canvas_ok(c))
        return;
    int t = thickness < 1 ? 1 : thickness > CXR_LINE_MAX_THICKNESS ? CXR_LINE_MAX_THICKNESS
                                                                     : thickness;
    /* Clip to the canvas widened by the thickness, so that the part of a thick line whose
     * centre runs just outside still shows; the loop below then runs at most
     * w + h + 4t steps, however far away the ends were. */
    double ax = x0, ay = y0, bx = x1, by = y1;
    if (!cxr_clip_segment(&ax, &ay, &bx, &by, -t, -t, (double)c->w - 1 + t, (double)c->h - 1 + t))
        return;
    int64_t px = (int64_t)floor(ax + 0.5), py = (int64_t)floor(ay + 0.5);
    int64_t qx = (int64_t)floor(bx + 0.5), qy = (int64_t)floor(by + 0.5);
    int64_t dx = qx > px ? qx - px : px - qx, dy = qy > py ? qy - py : py - qy;
    int64_t sx = px < qx ? 1 : -1, sy = py < qy ? 1 : -1;
    int x_major = dx >= dy;
    int lo = -(t - 1) / 2, hi = t / 2;
    int64_t err = dx - dy;
    for (;;) {
        for (int o = lo; o <= hi; o++) {
            if (x_major)
                put(c, px, py + o, rgb);
            else
                put(c, px + o, py, rgb);
        }
        if (px == qx && py == qy)
            break;
        int64_t e2 = 2 * err;
        if (e2 > -dy) {
            err -= dy;
            px += sx;
        }
        if (e2 < dx) {
            err += dx;
            py += sy;
        }
    }
}

/* Drawing for people: attention overlays at an image's own resolution, figures of several
 * X-rays and their attention maps, and training curves. Everything draws into a caller-owned
 * RGB canvas (8 bits per channel, rows top to bottom, no padding), so the glue allocates it
 * where it likes after checking the size the *_size functions report. Nothing here mallocs
 * except cxr_resize_bilinear's filter taps (bounded in cxr_image.h). All coordinates are
 * clipped: any int is safe. */
#ifndef CXR_DRAW_H
#define CXR_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_image.h"

typedef struct {
    int w, h;
    uint8_t *rgb; /* w*h*3 bytes, caller-owned */
} cxr_canvas;

/* Largest side any *_size function reports: larger layouts come back as 0 x 0. */
#define CXR_DRAW_MAX_SIDE (1 << 28)

/* Bytes of a w x h canvas: w*h*3; 0 when a side is below 1, SIZE_MAX when it overflows. */
size_t cxr_canvas_bytes(int w, int h);

/* ---- primitives (canvas.c). A canvas with a side below 1 or no pixels draws nothing. They
 * do not poll for interrupts: each touches at most the canvas's pixels (a line at most
 * thickness * (w + h + 2 * thickness)). */
void cxr_canvas_fill(cxr_canvas *c, const uint8_t rgb[3]);
/* The w x h rectangle whose top-left pixel is (x, y); w or h below 1 draws nothing. */
void cxr_canvas_rect(cxr_canvas *c, int x, int y, int w, int h, const uint8_t rgb[3]);
/* Bresenham from (x0, y0) to (x1, y1), both ends included. thickness (clamped to
 * 1..CXR_LINE_MAX_THICKNESS) widens it across its major axis: offsets -(t-1)/2 .. t/2, so the
 * pixels of the thin line are always part of a thick one. The segment is clipped to the canvas
 * first, so far-away ends cost nothing; a segment inside the canvas is drawn unchanged. */
#define CXR_LINE_MAX_THICKNESS 64
void cxr_canvas_line(cxr_canvas *c, int x0, int y0, int x1, int y1, int thickness,
                     const uint8_t rgb[3]);

/* ---- text (font.c): a 5x7 bitmap font with 2 rows of descenders, one glyph per printable
 * ASCII byte 0x20..0x7E; any other byte (control, UTF-8) draws as '?'. A glyph is 5 x 9 font
 * pixels (7 above the baseline, 2 below), advanced by 6. At scale s each font pixel is s x s,
 * so a string of n bytes is (6n - 1) * s wide (0 when empty) and 9 * s high, its top-left at
 * (x, y). Scales are clamped to 1..CXR_TEXT_MAX_SCALE. */
#define CXR_TEXT_MAX_SCALE 64
/* (6 * strlen(s) - 1) * scale, or INT_MAX when that overflows; 0 for "" or NULL. */
int cxr_text_width(const char *s, int scale);
int cxr_text_height(int scale);
/* Clipped to the canvas; stops at the first byte past its right edge, so the cost is bounded
 * by the visible part whatever the string's length. NULL draws nothing. */
void cxr_canvas_text(cxr_canvas *c, int x, int y, const char *s, int scale, const uint8_t rgb[3]);
/* s fitted into the max_w pixels from x: whole when it fits, else the longest prefix followed
 * by "..." (or, when not even that fits, the longest prefix alone). align: 0 left, 1 centred,
 * 2 right-aligned within [x, x + max_w). Reads at most max_w / (6 * scale) + 2 bytes of s.
 * Returns the width drawn. */
int cxr_canvas_text_fit(cxr_canvas *c, int x, int y, int max_w, int align, const char *s,
                        int scale, const uint8_t rgb[3]);

/* ---- colour map (colormap.c): piecewise linear through five control points, dark purple to
 * red to yellow, with luma (0.299 R + 0.587 G + 0.114 B) strictly increasing:
 *   v = 0: (0, 0, 4)   0.25: (70, 12, 120)   0.5: (170, 35, 90)   0.75: (235, 110, 25)
 *   v = 1: (255, 235, 70)
 * v is clamped to [0, 1]; NaN maps as 0. Channels are rounded to nearest. */
void cxr_colormap(float v, uint8_t rgb[3]);

/* ---- attention overlay at the image's own resolution (overlay.c) ----
 * The attention grid (side x side, from the network's input, a plain stretch of the whole
 * image) is upsampled bilinearly to w x h. With t = attention / (the grid's maximum):
 *   t <= CXR_OVERLAY_THRESHOLD: the pixel is the X-ray's gray, round(255 * gray), exactly;
 *   above: colour cxr_colormap(t) blended in with
 *          alpha = CXR_OVERLAY_ALPHA_MAX * (t - threshold) / (1 - threshold),
 *          pixel = round((1 - alpha) * 255 * gray + alpha * colour), per channel.
 * Gray values are clamped to [0, 1] (NaN as 0); grid cells that are negative or not finite
 * count as 0, and a grid whose maximum is 0 leaves the X-ray plain.
 * Below the image (rows h..) a white band at text scale s = clamp((w + 200) / 400, 1, 16),
 * with pad p = 4s:
 *   rows h + p .. + 6s:       the colour map from 0 (left) to the grid's maximum (right),
 *                             across columns p .. w - p - 1 (all columns when w <= 2p);
 *   rows h + 12s .. + 9s:     labels "0" (left), the maximum as %.3g (right) and
 *                             "attention" (centre), each when there is room;
 *   then per caption line:    3s of space and 9s of text (NULL lines are empty; text longer
 *                             than w - 2p ends in "...");
 *   then p of space.
 * So the band is 25s + 12s * n_lines rows high. */
#define CXR_OVERLAY_THRESHOLD 0.1f
#define CXR_OVERLAY_ALPHA_MAX 0.65f
/* Canvas size for a w x h image: w x (h + band). 0 x 0 for a side below 1, n_lines < 0, or a
 * result above CXR_DRAW_MAX_SIDE. */
void cxr_overlay_size(int w, int h, int n_lines, int *out_w, int *out_h);
/* Floats of scratch cxr_overlay_draw needs: side*side (the cleaned grid) + w*h (the upsampled
 * map) + cxr_resize_scratch_floats(side, side, w, h) (at most max(side*side, w*h)). 0 for a side below 1,
 * SIZE_MAX when it overflows. */
size_t cxr_overlay_scratch_floats(int w, int h, int side);
/* gray: w*h floats in [0, 1], the decoded image; map: side*side floats. out must be exactly
 * cxr_overlay_size(w, h, n_lines); scratch holds cxr_overlay_scratch_floats(w, h, side)
 * floats. Polls cxr_interrupt_poll every ~64k pixels (and within the resize). Returns
 * CXR_IMG_OK; CXR_IMG_CORRUPT for missing buffers, sides below 1 or a canvas of the wrong
 * size; CXR_IMG_TOO_LARGE when the layout is above CXR_DRAW_MAX_SIDE; CXR_IMG_NO_MEMORY when
 * the resize's taps cannot be allocated; CXR_IMG_INTERRUPTED (out incomplete). */
cxr_img_status cxr_overlay_draw(const float *gray, int w, int h, const float *map, int side,
                                const char *const *lines, int n_lines, cxr_canvas *out,
                                float *scratch);
/* The same with the colour scale named scale_label instead of "attention". */
cxr_img_status cxr_overlay_draw_scaled(const float *gray, int w, int h, const float *map,
                                       int side, const char *scale_label,
                                       const char *const *lines, int n_lines, cxr_canvas *out,
                                       float *scratch);

/* ---- figure: rows x cols panels, row-major (figure.c) ----
 * Each X-ray is resized into its panel keeping its aspect ratio (the longer side fills the
 * panel: round(panel * short / long) for the other, at least 1), centred, on dark gray
 * (32, 32, 32) letterboxing; its attention map (if any) is upsampled to the same rectangle
 * (the network saw the whole image stretched, so the map covers exactly that rectangle) and
 * blended as in the overlay, normalised to that panel's own maximum. gray NULL leaves the
 * panel empty (background); map NULL draws the plain X-ray.
 * Layout, with text scale s = clamp(panel / 128, 1, 8), margin m = 4s, gap g = 4s, caption
 * row c = 11s (9s of text, 2s of space), title row t = 13s when there is a title, else 0:
 *   width  = 2m + cols * panel + (cols - 1) * g
 *   height = m + t + rows * (c + panel) + (rows - 1) * g + 25s
 *   panel (r, k) top-left: x = m + k * (panel + g), y = m + t + r * (c + panel + g) + c
 *   the caption is centred above its panel (ending in "..." when wider than it), the title
 *   centred on row m; under the grid, after 4s, one colour scale (6s) for the whole figure
 *   across columns m .. width - m - 1, with "low", "relative attention" and "high" 2s below.
 * Background white. */
typedef struct {
    const float *gray; /* w*h floats in [0, 1], native size; NULL: empty panel */
    int w, h;
    const float *map; /* side*side attention weights; NULL: the plain X-ray */
    int side;
    const char *caption; /* NULL: none */
} cxr_figure_panel;

/* 0 x 0 for rows, cols or panel below 1, or a result above CXR_DRAW_MAX_SIDE. */
void cxr_figure_size(int rows, int cols, int panel, int has_title, int *out_w, int *out_h);
/* The most scratch any one of the n panels needs (they are drawn one at a time):
 *   with a map:    side*side + 2*pw*ph + max(cxr_resize_scratch_floats(w, h, pw, ph),
 *                                            cxr_resize_scratch_floats(side, side, pw, ph))
 *   without:       pw*ph + cxr_resize_scratch_floats(w, h, pw, ph)
 * where pw x ph is the panel's fitted rectangle (pw, ph <= panel). Panels with no gray or
 * invalid sides count 0; SIZE_MAX on overflow. */
size_t cxr_figure_scratch_floats(const cxr_figure_panel *p, int n, int panel);
/* panels: rows*cols entries; title NULL: no title row (cxr_figure_size's has_title must be
 * title != NULL). out must be exactly cxr_figure_size's; scratch holds
 * cxr_figure_scratch_floats(panels, rows * cols, panel) floats (NULL only when no panel has
 * gray). Polls every ~64k pixels (and within the resizes). Statuses as cxr_overlay_draw's
 * (CXR_IMG_CORRUPT also for a panel with sides below 1, or a map with side below 1). */
cxr_img_status cxr_figure_draw(const cxr_figure_panel *panels, int rows, int cols, int panel,
                               const char *title, cxr_canvas *out, float *scratch);

/* ---- training curves (plot.c) ----
 * A fixed 960 x 420 canvas, white: the title (scale 2, left, at (16, 8), fitted before the
 * legend) and the legend (right, same row: a line per series drawn and its name, "train",
 * and "validation" when any validation value is finite); two panels, loss (k = 0) and
 * accuracy (k = 1), each titled at (88 + 480k, 36). The plot area of panel k spans pixels
 * x = 88 + 480k .. 460 + 480k and y = 62 .. 360 inclusive: the epochs' range, smallest to
 * largest ([e - 1, e + 1] when all are e; [0, 1] for none), maps onto it edge to edge,
 * as does the y range: accuracy [0, 1], loss from the smallest to the largest finite loss
 * rounded out to a multiple of a 1-2-5 tick step (about 5 steps). Axes, grid lines at the
 * ticks, tick labels (epochs as integers, values with 2 or more decimals), "epoch" below.
 * Series connect their consecutive finite points (thickness 2), and get 5x5 markers when a
 * series has at most 40 finite points (7x7 for a single point, which has no line). Train is
 * drawn in CXR_PLOT_TRAIN_RGB, validation in CXR_PLOT_VAL_RGB; nothing else uses those
 * colours. */
#define CXR_PLOT_W 960
#define CXR_PLOT_H 420
#define CXR_PLOT_TRAIN_RGB {30, 90, 200}
#define CXR_PLOT_VAL_RGB {230, 110, 20}
typedef struct {
    int n;
    const int *epoch; /* NULL: epochs 1..n */
    /* n values each; NULL or non-finite entries are not drawn */
    const double *train_loss, *val_loss, *train_acc, *val_acc;
} cxr_history;

void cxr_plot_size(int *w, int *h);
/* out must be CXR_PLOT_W x CXR_PLOT_H; title NULL: none. n = 0 draws empty axes. Polls every
 * ~64k pixels and every 4096 points. CXR_IMG_CORRUPT for missing h, out, pixels, n < 0 or a
 * canvas of the wrong size; CXR_IMG_INTERRUPTED (out incomplete). */
cxr_img_status cxr_plot_history(const cxr_history *h, const char *title, cxr_canvas *out);

#endif

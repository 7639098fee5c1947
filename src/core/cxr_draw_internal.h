/* Shared between the drawing files (canvas.c, colormap.c, overlay.c, figure.c, plot.c); not
 * part of the API the glue calls. */
#ifndef CXR_DRAW_INTERNAL_H
#define CXR_DRAW_INTERNAL_H

#include "cxr_draw.h"

/* Polls cxr_interrupt_poll once about this many pixels have been drawn since the last poll. */
#define CXR_DRAW_POLL_PIXELS ((size_t)1 << 16)

/* Adds done to *work and polls once it reaches CXR_DRAW_POLL_PIXELS; start *work at
 * CXR_DRAW_POLL_PIXELS to poll before the first step. Returns nonzero: stop. */
int cxr_draw_poll(size_t *work, size_t done);

/* Clips the segment (x0, y0)-(x1, y1) to [lo_x, hi_x] x [lo_y, hi_y] in place; 0 when
 * nothing is left or a coordinate is not finite. */
int cxr_clip_segment(double *x0, double *y0, double *x1, double *y1, double lo_x, double lo_y,
                     double hi_x, double hi_y);

/* Saturating size arithmetic: SIZE_MAX stays SIZE_MAX, so a too-large need is never wrapped
 * into a small one. */
static inline size_t
cxr_size_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static inline size_t
cxr_size_mul(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

/* The canvas has pixels to draw on. */
int cxr_canvas_ok(const cxr_canvas *c);

/* The colour map across the w x h rectangle at (x, y), 0 at its left column, 1 at its right. */
void cxr_draw_colorbar(cxr_canvas *c, int x, int y, int w, int h);

/* Copies the grid into clean with negative and non-finite cells as 0; returns its maximum. */
float cxr_attention_clean(const float *map, int side, float *clean);
/* One row of n pixels: the gray row blended with the upsampled attention row up (NULL: plain
 * gray) normalised by max (<= 0: plain gray), as cxr_overlay_draw documents; writes n*3 bytes. */
void cxr_attention_blend_row(const float *gray, const float *up, int n, float max, uint8_t *rgb);

#endif

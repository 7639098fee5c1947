/* Attention over an X-ray at the image's own resolution, with a colour scale and captions
 * below. Low attention leaves the X-ray exactly as it is, and even the peak is only partly
 * opaque, so the anatomy under the colour can still be read. */
#include <math.h>
#include <stdio.h>

#include "cxr_draw_internal.h"
#include "cxr_interrupt.h"

static const uint8_t white[3] = {255, 255, 255}, ink[3] = {24, 24, 24};

float
cxr_attention_clean(const float *map, int side, float *clean)
{
    size_t n = (size_t)side * (size_t)side;
    float max = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float v = map[i];
        clean[i] = isfinite(v) && v > 0.0f ? v : 0.0f;
        if (clean[i] > max)
            max = clean[i];
    }
    return max;
}

void
cxr_attention_blend_row(const float *gray, const float *up, int n, float max, uint8_t *rgb)
{
    for (int i = 0; i < n; i++, rgb += 3) {
        float g = gray[i];
        g = g > 0.0f ? (g < 1.0f ? g : 1.0f) : 0.0f; /* NaN as 0 */
        float base = 255.0f * g;
        float t = up && max > 0.0f ? up[i] / max : 0.0f;
        if (!(t > CXR_OVERLAY_THRESHOLD)) {
            rgb[0] = rgb[1] = rgb[2] = (uint8_t)lrintf(base);
            continue;
        }
        if (t > 1.0f)
            t = 1.0f;
        /* t = 1 gives exactly the cap: (1 - T) / (1 - T) is computed from the same floats */
        float a = CXR_OVERLAY_ALPHA_MAX * (t - CXR_OVERLAY_THRESHOLD) /
                  (1.0f - CXR_OVERLAY_THRESHOLD);
        uint8_t c[3];
        cxr_colormap(t, c);
        for (int k = 0; k < 3; k++) {
            float v = (1.0f - a) * base + a * c[k];
            rgb[k] = (uint8_t)lrintf(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    }
}

/* Text scale for a w-pixel-wide image: 1 up to 599 px, 8 at 3000 (documented in cxr_draw.h). */
static int
band_scale(int w)
{
    int64_t s = ((int64_t)w + 200) / 400;
    return s < 1 ? 1 : s > 16 ? 16 : (int)s;
}

void
cxr_overlay_size(int w, int h, int n_lines, int *out_w, int *out_h)
{
    *out_w = *out_h = 0;
    if (w < 1 || h < 1 || n_lines < 0)
        return;
    int64_t s = band_scale(w);
    int64_t total = (int64_t)h + 25 * s + 12 * s * (int64_t)n_lines;
    if (w > CXR_DRAW_MAX_SIDE || total > CXR_DRAW_MAX_SIDE)
        return;
    *out_w = w;
    *out_h = (int)total;
}

size_t
cxr_overlay_scratch_floats(int w, int h, int side)
{
    if (w < 1 || h < 1 || side < 1)
        return 0;
    size_t grid = cxr_size_mul((size_t)side, (size_t)side);
    size_t up = cxr_size_mul((size_t)w, (size_t)h);
    return cxr_size_add(cxr_size_add(grid, up), cxr_resize_scratch_floats(side, side, w, h));
}

/* The band under the image: colour scale, its labels, the caption lines. */
static void
draw_band(cxr_canvas *out, int w, int h, float max, const char *scale_label,
          const char *const *lines, int n_lines)
{
    int s = band_scale(w), p = 4 * s;
    cxr_canvas_rect(out, 0, h, w, out->h - h, white);
    int bx = p, bw = w - 2 * p;
    if (bw < 1) {
        bx = 0;
        bw = w;
    }
    cxr_draw_colorbar(out, bx, h + p, bw, 6 * s);

    char hi[32];
    snprintf(hi, sizeof hi, "%.3g", (double)max);
    int ly = h + 12 * s, gap = 6 * s;
    int wl = cxr_canvas_text_fit(out, bx, ly, bw, 0, "0", s, ink);
    int wr = cxr_text_width(hi, s), wc = cxr_text_width(scale_label, s);
    if (wl + gap + wr <= bw)
        cxr_canvas_text_fit(out, bx, ly, bw, 2, hi, s, ink);
    if (wl + wc + wr + 2 * gap <= bw)
        cxr_canvas_text_fit(out, bx, ly, bw, 1, scale_label, s, ink);

    for (int i = 0; i < n_lines; i++) {
        const char *line = lines ? lines[i] : NULL;
        cxr_canvas_text_fit(out, bx, ly + 12 * s + 12 * s * i, bw, 0, line, s, ink);
    }
}

cxr_img_status
cxr_overlay_draw(const float *gray, int w, int h, const float *map, int side,
                 const char *const *lines, int n_lines, cxr_canvas *out, float *scratch)
{
    return cxr_overlay_draw_scaled(gray, w, h, map, side, "attention", lines, n_lines, out,
                                   scratch);
}

cxr_img_status
cxr_overlay_draw_scaled(const float *gray, int w, int h, const float *map, int side,
                        const char *scale_label, const char *const *lines, int n_lines,
                        cxr_canvas *out, float *scratch)
{
    if (!gray || !map || !scratch || !cxr_canvas_ok(out) || w < 1 || h < 1 || side < 1 ||
        n_lines < 0)
        return CXR_IMG_CORRUPT;
    int ow, oh;
    cxr_overlay_size(w, h, n_lines, &ow, &oh);
    if (ow == 0)
        return CXR_IMG_TOO_LARGE;
    if (out->w != ow || out->h != oh)
        return CXR_IMG_CORRUPT;
    size_t work = CXR_DRAW_POLL_PIXELS; /* poll before anything is drawn */
    if (cxr_draw_poll(&work, 0))
        return CXR_IMG_INTERRUPTED;

    float *clean = scratch, *up = clean + (size_t)side * side;
    float max = cxr_attention_clean(map, side, clean);
    if (max > 0.0f) {
        cxr_img_status st =
            cxr_resize_bilinear(clean, side, side, up, w, h, up + (size_t)w * h);
        if (st != CXR_IMG_OK)
            return st;
    }
    for (int y = 0; y < h; y++) {
        if (cxr_draw_poll(&work, (size_t)w))
            return CXR_IMG_INTERRUPTED;
        size_t row = (size_t)y * w;
        cxr_attention_blend_row(gray + row, max > 0.0f ? up + row : NULL, w, max,
                                out->rgb + row * 3);
    }
    if (cxr_draw_poll(&work, (size_t)w * (size_t)(oh - h)))
        return CXR_IMG_INTERRUPTED;
    draw_band(out, w, h, max, scale_label, lines, n_lines);
    return CXR_IMG_OK;
}

/* The colour map for attention, and its scale bar. Dark purple through red to yellow, so that
 * order reads from brightness alone (luma rises strictly along it, which the unit tests
 * check), and the hot end stays saturated enough to show over white bone. */
#include <math.h>

#include "cxr_draw_internal.h"

#define N_STOPS 5

/* at v = 0, 1/4, 1/2, 3/4, 1; luma 0.5, 41.7, 81.6, 137.7, 222.2 */
static const float stops[N_STOPS][3] = {
    {0, 0, 4}, {70, 12, 120}, {170, 35, 90}, {235, 110, 25}, {255, 235, 70},
};

void
cxr_colormap(float v, uint8_t rgb[3])
{
    if (!(v > 0.0f)) /* negative or NaN */
        v = 0.0f;
    if (v > 1.0f)
        v = 1.0f;
    float pos = v * (N_STOPS - 1);
    int i = (int)pos;
    if (i > N_STOPS - 2)
        i = N_STOPS - 2;
    float f = pos - (float)i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (uint8_t)lrintf(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
}

void
cxr_draw_colorbar(cxr_canvas *c, int x, int y, int w, int h)
{
    for (int i = 0; i < w; i++) {
        uint8_t rgb[3];
        cxr_colormap(w > 1 ? (float)i / (float)(w - 1) : 1.0f, rgb);
        cxr_canvas_rect(c, x + i, y, 1, h, rgb);
    }
}

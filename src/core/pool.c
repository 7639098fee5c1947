#include <string.h>

#include "cxr_layers.h"

int
cxr_maxpool_out_size(int in, int k, int stride, int pad)
{
    int span = in + 2 * pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

void
cxr_maxpool_forward(const float *x, int c, int h, int w, int k, int stride, int pad, float *y,
                    int32_t *argmax)
{
    int oh = cxr_maxpool_out_size(h, k, stride, pad), ow = cxr_maxpool_out_size(w, k, stride, pad);
    for (int ci = 0; ci < c; ci++) {
        const float *plane = x + (size_t)ci * h * w;
        for (int oy = 0; oy < oh; oy++) {
            /* the window clipped to the image: padding never wins, as in PyTorch */
            int y0 = oy * stride - pad, y1 = y0 + k;
            y0 = y0 < 0 ? 0 : y0;
            y1 = y1 > h ? h : y1;
            for (int ox = 0; ox < ow; ox++) {
                int x0 = ox * stride - pad, x1 = x0 + k;
                x0 = x0 < 0 ? 0 : x0;
                x1 = x1 > w ? w : x1;
                int best = y0 * w + x0;
                float bv = plane[best];
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) {
                        int idx = yy * w + xx;
                        /* strict '>' keeps the first maximum, as PyTorch does */
                        if (plane[idx] > bv) {
                            bv = plane[idx];
                            best = idx;
                        }
                    }
                size_t o = ((size_t)ci * oh + oy) * ow + ox;
                y[o] = bv;
                if (argmax)
                    argmax[o] = best;
            }
        }
    }
}

void
cxr_maxpool_backward(const float *dy, const int32_t *argmax, int c, int h, int w, int oh, int ow,
                     float *dx)
{
    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < oh * ow; i++) {
            size_t o = (size_t)ci * oh * ow + i;
            dx[(size_t)ci * h * w + argmax[o]] += dy[o];
        }
}

/* PyTorch's adaptive window for output index i: [floor(i*in/out), ceil((i+1)*in/out)). */
static void
adaptive_window(int i, int in, int out, int *start, int *end)
{
    *start = (i * in) / out;
    *end = ((i + 1) * in + out - 1) / out;
}

void
cxr_avgpool_adaptive_forward(const float *x, int c, int h, int w, int oh, int ow, float *y)
{
    for (int ci = 0; ci < c; ci++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                adaptive_window(oy, h, oh, &y0, &y1);
                adaptive_window(ox, w, ow, &x0, &x1);
                float acc = 0.0f;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        acc += x[((size_t)ci * h + yy) * w + xx];
                y[((size_t)ci * oh + oy) * ow + ox] = acc / (float)((y1 - y0) * (x1 - x0));
            }
}

void
cxr_avgpool_adaptive_backward(const float *dy, int c, int h, int w, int oh, int ow, float *dx)
{
    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
    for (int ci = 0; ci < c; ci++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int y0, y1, x0, x1;
                adaptive_window(oy, h, oh, &y0, &y1);
                adaptive_window(ox, w, ow, &x0, &x1);
                float g = dy[((size_t)ci * oh + oy) * ow + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++)
                        dx[((size_t)ci * h + yy) * w + xx] += g;
            }
}

#include "cxr_blas.h"
#include "cxr_layers.h"

void
cxr_linear_forward(const float *x, int n, int in, int out, const float *weight, const float *bias,
                   float *y)
{
    if (bias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < out; o++)
                y[(size_t)b * out + o] = bias[o];
    cxr_sgemm(0, 1, n, out, in, 1.0f, x, in, weight, in, bias ? 1.0f : 0.0f, y, out);
}

void
cxr_linear_backward(const float *x, const float *dy, int n, int in, int out, const float *weight,
                    float *dweight, float *dbias, float *dx)
{
    cxr_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dweight, in);
    if (dbias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < out; o++)
                dbias[o] += dy[(size_t)b * out + o];
    if (dx)
        cxr_sgemm(0, 0, n, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in);
}

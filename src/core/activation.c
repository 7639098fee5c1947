#include <math.h>

#include "cxr_layers.h"

void
cxr_relu_forward(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
cxr_relu_backward(const float *y, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void
cxr_dropout_mask(uint64_t seed, float p, float *mask, size_t n)
{
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++)
        mask[i] = cxr_uniform(seed, i) < p ? 0.0f : keep_scale;
}

void
cxr_dropout_forward(const float *x, const float *mask, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * mask[i];
}

void
cxr_dropout_backward(const float *dy, const float *mask, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * mask[i];
}

float
cxr_sigmoid(float z)
{
    /* Split by sign so exp never overflows. */
    if (z >= 0.0f)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

double
cxr_bce_with_logits(const float *logit, const float *label, int n, float *dlogit)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        double z = logit[i], y = label[i];
        /* max(z,0) - z*y + log(1 + exp(-|z|)): stable for large |z|. */
        total += (z > 0 ? z : 0) - z * y + log1p(exp(-fabs(z)));
        if (dlogit)
            dlogit[i] = (cxr_sigmoid(logit[i]) - label[i]) / (float)n;
    }
    return n > 0 ? total / n : 0.0;
}

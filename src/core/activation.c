#include <math.h>

#include "cxr_layers.h"

/* Elementwise passes in explicit 4-float vectors: GCC's -O2 cost model leaves loops of unknown
 * length scalar. Each lane computes what the scalar loop would (x > 0 ? x : +0, NaN to +0). */
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f
relu4(v4f v)
{
    return (v4f)((v4i)v & (v > (v4f){0}));
}

void
cxr_relu_forward(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        __builtin_memcpy(&v, x + i, sizeof v);
        v = relu4(v);
        __builtin_memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void
cxr_affine(const float *p, float *q, size_t n, float k, float t, int relu)
{
    v4f k4 = {k, k, k, k}, t4 = {t, t, t, t};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        __builtin_memcpy(&v, p + i, sizeof v);
        v = v * k4 + t4;
        if (relu)
            v = relu4(v);
        __builtin_memcpy(q + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        float v = p[i] * k + t;
        q[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

void
cxr_add_forward(const float *x0, const float *x1, float *y, size_t n, int relu)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f a, b;
        __builtin_memcpy(&a, x0 + i, sizeof a);
        __builtin_memcpy(&b, x1 + i, sizeof b);
        a = a + b;
        if (relu)
            a = relu4(a);
        __builtin_memcpy(y + i, &a, sizeof a);
    }
    for (; i < n; i++) {
        float v = x0[i] + x1[i];
        y[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
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

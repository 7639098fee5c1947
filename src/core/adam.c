#include <math.h>

#include "cxr_layers.h"

void
cxr_adam_step(const cxr_adam_config *cfg, long t, float *param, const float *grad, float *m,
              float *v, size_t n)
{
    /* PyTorch 1.13 (non-fused): p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
    double bc1 = 1.0 - pow(cfg->beta1, (double)t), bc2 = 1.0 - pow(cfg->beta2, (double)t);
    float step = (float)(cfg->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        m[i] = cfg->beta1 * m[i] + (1.0f - cfg->beta1) * grad[i];
        v[i] = cfg->beta2 * v[i] + (1.0f - cfg->beta2) * grad[i] * grad[i];
        param[i] -= step * m[i] / (sqrtf(v[i]) / bc2_sqrt + cfg->eps);
    }
}

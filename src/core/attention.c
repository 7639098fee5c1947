#include <math.h>

#include "cxr_blas.h"
#include "cxr_layers.h"

void
cxr_attention_forward(const float *f, const float *g, int d, int p, float scale, float *alpha,
                      float *out)
{
    /* scores s = scale * F^T g, computed into alpha then softmaxed in place */
    cxr_sgemm(1, 0, p, 1, d, scale, f, p, g, 1, 0.0f, alpha, 1);
    float mx = alpha[0];
    for (int i = 1; i < p; i++)
        if (alpha[i] > mx)
            mx = alpha[i];
    double total = 0.0;
    for (int i = 0; i < p; i++) {
        alpha[i] = expf(alpha[i] - mx);
        total += alpha[i];
    }
    float inv = (float)(1.0 / total);
    for (int i = 0; i < p; i++)
        alpha[i] *= inv;
    cxr_sgemm(0, 0, d, 1, p, 1.0f, f, p, alpha, 1, 0.0f, out, 1);
}

void
cxr_attention_backward(const float *f, const float *g, const float *alpha, const float *dout,
                       int d, int p, float scale, float *df, float *dg)
{
    /* dalpha_i = <dout, f_i>; ds_i = alpha_i (dalpha_i - sum_j alpha_j dalpha_j).
     * ds is kept in df's last row, which is written last (element by element, in place). */
    float *dscore = df + (size_t)(d - 1) * p;
    cxr_sgemm(1, 0, p, 1, d, 1.0f, f, p, dout, 1, 0.0f, dscore, 1);
    double dot = 0.0;
    for (int i = 0; i < p; i++)
        dot += (double)alpha[i] * dscore[i];
    for (int i = 0; i < p; i++)
        dscore[i] = alpha[i] * (dscore[i] - (float)dot) * scale;
    cxr_sgemm(0, 0, d, 1, p, 1.0f, f, p, dscore, 1, 1.0f, dg, 1);
    /* df = dout alpha^T + g ds^T (scale already folded into ds) */
    for (int c = 0; c < d; c++) {
        float *row = df + (size_t)c * p;
        float a = dout[c], b = g[c];
        for (int i = 0; i < p; i++)
            row[i] = a * alpha[i] + b * dscore[i];
    }
}

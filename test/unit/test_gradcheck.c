/* Finite-difference check of every backward kernel, composed into a small network:
 *   x (3 x 1x10x10) -> conv 1->4 k3 p1 -> maxpool 3/2 -> ReLU -> BatchNorm (batch stats)
 *   -> dropout (fixed mask) -> conv 4->6 k4 (1x1: the global vector g)
 *   attention over the first conv's output projected 4->6 by a 1x1 conv, scaled dot score
 *   -> adaptive avg pool of the attended vector's 6x1 map to 3x1 and the vector itself
 *   -> linear 9->1 -> BCE with logits.
 * Analytic gradients come from the *_backward kernels; each is compared with central
 * differences of the loss. A wrong backward in any kernel moves some gradient by far more than
 * the tolerance. */
#include <string.h>

#include "cxr_layers.h"
#include "harness.h"

enum { N = 3, S = 10, C1 = 4, K1 = 3, PS = 4, C2 = 6, K2 = 4, D = 6, P = S * S, H = 9 };

typedef struct {
    float w1[C1 * K1 * K1], b1[C1], gamma[C1], beta[C1], w2[C2 * C1 * K2 * K2], b2[C2],
        proj[D * C1], wf[H], bf[1];
} params;

static const size_t sizes[] = {C1 * K1 * K1, C1, C1, C1, C2 * C1 * K2 * K2, C2, D * C1, H, 1};
static const char *names[] = {"conv1.w", "conv1.b", "bn.gamma", "bn.beta", "conv2.w",
                              "conv2.b", "proj",    "fc.w",     "fc.b"};

static float x[N * S * S], labels[N] = {1, 0, 1}, mask[N * C1 * PS * PS];

typedef struct {
    float a[N * C1 * P], pool[N * C1 * PS * PS], bn[N * C1 * PS * PS], drop[N * C1 * PS * PS];
    int32_t arg[N * C1 * PS * PS];
    float mean[C1], invstd[C1], g[N * C2], f[N * D * P], alpha[N * P], o[N * D], head[N * H],
        logit[N];
    float col[C1 * K2 * K2 * P];
} acts;

static const cxr_conv_shape conv1 = {1, C1, K1, 1, 1}, conv2 = {C1, C2, K2, 1, 0},
                            proj = {C1, D, 1, 1, 0};
static const cxr_bn_config bn = {1e-5f, 0.1f};
static const float scale = 0.408248f; /* 1/sqrt(6) */

static double
forward(const params *p, acts *t)
{
    float rm[C1] = {0}, rv[C1] = {1, 1, 1, 1};
    for (int n = 0; n < N; n++) {
        cxr_conv_forward(&conv1, x + n * S * S, S, S, p->w1, p->b1, t->a + n * C1 * P, t->col);
        cxr_maxpool_forward(t->a + n * C1 * P, C1, S, S, 3, 2, 0, t->pool + n * C1 * PS * PS,
                            t->arg + n * C1 * PS * PS);
    }
    cxr_relu_forward(t->pool, t->pool, sizeof t->pool / 4);
    cxr_batchnorm_forward_train(&bn, t->pool, N, C1, PS * PS, p->gamma, p->beta, rm, rv, t->bn,
                                t->mean, t->invstd);
    cxr_dropout_forward(t->bn, mask, t->drop, sizeof t->drop / 4);
    for (int n = 0; n < N; n++) {
        cxr_conv_forward(&conv2, t->drop + n * C1 * PS * PS, PS, PS, p->w2, p->b2, t->g + n * C2,
                         t->col);
        cxr_conv_forward(&proj, t->a + n * C1 * P, S, S, p->proj, NULL, t->f + n * D * P, NULL);
        cxr_attention_forward(t->f + n * D * P, t->g + n * C2, D, P, scale, t->alpha + n * P,
                              t->o + n * D);
        /* head input: the attended vector and its 6x1 map average-pooled to 3x1 */
        memcpy(t->head + n * H, t->o + n * D, sizeof(float) * D);
        cxr_avgpool_adaptive_forward(t->o + n * D, 1, D, 1, 3, 1, t->head + n * H + D);
    }
    cxr_linear_forward(t->head, N, H, 1, p->wf, p->bf, t->logit);
    return cxr_bce_with_logits(t->logit, labels, N, NULL);
}

static void
backward(const params *p, acts *t, params *g)
{
    float dlogit[N], dhead[N * H], dout[N * D], dg[N * C2], df[D * P], da[N * C1 * P],
        dtmp[C1 * P], ddrop[N * C1 * PS * PS], dbn[N * C1 * PS * PS], dpool[N * C1 * PS * PS];
    memset(g, 0, sizeof *g);
    cxr_bce_with_logits(t->logit, labels, N, dlogit);
    cxr_linear_backward(t->head, dlogit, N, H, 1, p->wf, g->wf, g->bf, dhead);
    memset(dg, 0, sizeof dg);
    for (int n = 0; n < N; n++) {
        cxr_avgpool_adaptive_backward(dhead + n * H + D, 1, D, 1, 3, 1, dout + n * D);
        for (int i = 0; i < D; i++)
            dout[n * D + i] += dhead[n * H + i];
        cxr_attention_backward(t->f + n * D * P, t->g + n * C2, t->alpha + n * P, dout + n * D,
                               D, P, scale, df, dg + n * C2);
        cxr_conv_backward(&proj, t->a + n * C1 * P, S, S, p->proj, df, g->proj, NULL, dtmp, NULL);
        memcpy(da + n * C1 * P, dtmp, sizeof dtmp);
        cxr_conv_backward(&conv2, t->drop + n * C1 * PS * PS, PS, PS, p->w2, dg + n * C2, g->w2,
                          g->b2, ddrop + n * C1 * PS * PS, t->col);
    }
    cxr_dropout_backward(ddrop, mask, dbn, sizeof dbn / 4);
    cxr_batchnorm_backward_train(t->pool, dbn, N, C1, PS * PS, p->gamma, t->mean, t->invstd,
                                 dpool, g->gamma, g->beta);
    cxr_relu_backward(t->pool, dpool, dpool, sizeof dpool / 4);
    for (int n = 0; n < N; n++) {
        float dconv[C1 * P];
        cxr_maxpool_backward(dpool + n * C1 * PS * PS, t->arg + n * C1 * PS * PS, C1, S, S, PS,
                             PS, dconv);
        for (int i = 0; i < C1 * P; i++)
            dconv[i] += da[n * C1 * P + i];
        cxr_conv_backward(&conv1, x + n * S * S, S, S, p->w1, dconv, g->w1, g->b1, NULL, t->col);
    }
}

int
main(void)
{
    static params p, grad;
    static acts t;
    float *pp = (float *)&p;
    for (size_t i = 0; i < sizeof p / 4; i++)
        pp[i] = (cxr_uniform(11, i) * 2 - 1) * 0.5f;
    for (int i = 0; i < C1; i++)
        p.gamma[i] = 1.0f + 0.1f * i;
    for (size_t i = 0; i < sizeof x / 4; i++)
        x[i] = cxr_uniform(12, i) * 2 - 1;
    cxr_dropout_mask(13, 0.25f, mask, sizeof mask / 4);

    forward(&p, &t);
    backward(&p, &t, &grad);

    const float eps = 5e-4f;
    size_t off = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        float *an = (float *)&grad + off;
        double worst = 0.0, scale_k = 0.0;
        for (size_t i = 0; i < sizes[k]; i++)
            scale_k = fmax(scale_k, fabs(an[i]));
        for (size_t i = 0; i < sizes[k]; i++) {
            float keep = pp[off + i];
            pp[off + i] = keep + eps;
            double up = forward(&p, &t);
            pp[off + i] = keep - eps;
            double down = forward(&p, &t);
            pp[off + i] = keep;
            double fd = (up - down) / (2 * eps);
            worst = fmax(worst, fabs(fd - an[i]) / fmax(scale_k, 1e-6));
        }
        printf("  %-9s max |finite difference - backward| / max|grad| = %.2e (max|grad| %.2e)\n",
               names[k], worst, scale_k);
        CHECK(worst < 2e-2, "%s: backward disagrees with finite differences (%.3g)", names[k],
              worst);
        CHECK(scale_k > 1e-4, "%s: gradient vanishes, the check would be vacuous", names[k]);
        off += sizes[k];
    }
    /* inference's max pooling (no winners kept: rows' maximum, then the window's) gives the
     * bits of training's direct window scan, with and without padding, on partial windows */
    static const int pools[][5] = {{3, 2, 0, 73, 73}, {3, 2, 1, 38, 38}, {3, 2, 0, 17, 16},
                                   {2, 2, 0, 9, 11},  {3, 1, 1, 7, 5},   {5, 3, 2, 13, 10}};
    for (size_t p = 0; p < sizeof pools / sizeof pools[0]; p++) {
        int k = pools[p][0], st = pools[p][1], pad = pools[p][2], h = pools[p][3], w = pools[p][4];
        int oh = cxr_maxpool_out_size(h, k, st, pad), ow = cxr_maxpool_out_size(w, k, st, pad);
        float *px = malloc(sizeof(float) * 3 * h * w), *y1 = malloc(sizeof(float) * 3 * oh * ow),
              *y2 = malloc(sizeof(float) * 3 * oh * ow);
        int32_t *am = malloc(sizeof(int32_t) * 3 * oh * ow);
        harness_fill(px, (size_t)3 * h * w, 90 + (uint32_t)p);
        cxr_maxpool_forward(px, 3, h, w, k, st, pad, y1, am);
        cxr_maxpool_forward(px, 3, h, w, k, st, pad, y2, NULL);
        CHECK(memcmp(y1, y2, sizeof(float) * 3 * oh * ow) == 0,
              "max pool k%d s%d p%d on %dx%d: inference equals the window scan", k, st, pad, h, w);
        free(px), free(y1), free(y2), free(am);
    }
    return harness_finish("test_gradcheck");
}

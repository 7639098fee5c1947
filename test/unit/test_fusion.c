/* Prepared models fold a BatchNorm that only follows a conv, and the in-place ReLU after it or
 * after an add, into that layer's epilogue. The epilogue must compute what the separate layers
 * computed, bit for bit: checked on the layer itself against cxr_batchnorm_forward_infer and a
 * ReLU, and on resnet50 (random BatchNorm statistics, 64 px, convolutions direct so that only
 * the fusion differs) between the unprepared and the prepared model, one image and a batch.
 * Its error against PyTorch is test_reference's (resnet50 fixtures, prepared). */
#include <stdlib.h>
#include <string.h>

#include "cxr_graph.h"
#include "cxr_layers.h"
#include "cxr_model.h"
#include "harness.h"

enum { C = 7, HW = 53, BATCH = 3, SIZE = 64 }; /* HW odd: vector body and scalar tail */

static void
epilogue_matches_layers(void)
{
    const cxr_bn_config cfg = {1e-5f, 0.1f};
    float gamma[C], beta[C], mean[C], var[C], scale[C], shift[C];
    for (int c = 0; c < C; c++) {
        gamma[c] = 2 * cxr_uniform(1, c) - 1;
        beta[c] = 2 * cxr_uniform(2, c) - 1;
        mean[c] = 2 * cxr_uniform(3, c) - 1;
        var[c] = 0.01f + 3 * cxr_uniform(4, c);
    }
    float x[C * HW], want[C * HW], got[C * HW];
    for (int i = 0; i < C * HW; i++)
        x[i] = 4 * cxr_uniform(5, i) - 2;
    cxr_batchnorm_affine(&cfg, C, gamma, beta, mean, var, scale, shift);
    for (int relu = 0; relu < 2; relu++) {
        cxr_batchnorm_forward_infer(&cfg, x, 1, C, HW, gamma, beta, mean, var, want);
        if (relu)
            cxr_relu_forward(want, want, C * HW);
        memcpy(got, x, sizeof got);
        cxr_channel_epilogue(got, C, HW, scale, shift, relu);
        CHECK(!memcmp(got, want, sizeof got), "epilogue = BatchNorm%s, bit for bit",
              relu ? " + ReLU" : "");
    }
    /* and against the definition, element by element (this file is ISO C: no contraction) */
    int same = 1;
    memcpy(got, x, sizeof got);
    cxr_channel_epilogue(got, C, HW, scale, shift, 1);
    for (int i = 0; i < C * HW; i++) {
        float v = x[i] * scale[i / HW] + shift[i / HW];
        same &= got[i] == (v > 0.0f ? v : 0.0f);
    }
    CHECK(same, "epilogue = x * scale + shift, then max(0, .), for every element");
    cxr_relu_forward(x, want, C * HW);
    memcpy(got, x, sizeof got);
    cxr_channel_epilogue(got, C, HW, NULL, NULL, 1);
    CHECK(!memcmp(got, want, sizeof got), "epilogue without BatchNorm = ReLU, bit for bit");
}

static void
resnet50_unchanged(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("resnet50", 1, SIZE, 3, err);
    CHECK(m != NULL, "create resnet50: %s", err);
    if (!m)
        return;
    /* BatchNorm statistics far from the fresh model's identity */
    for (int t = 0; t < m->n_tensors; t++) {
        const cxr_param_info *p = &m->tensors[t];
        const char *dot = strrchr(p->name, '.');
        if (p->ndim != 1 || !(strstr(p->name, "bn") || strstr(p->name, "downsample.1")))
            continue;
        float *v = m->params + p->offset;
        for (size_t i = 0; i < p->numel; i++)
            v[i] = !strcmp(dot, ".running_var") ? 0.2f + cxr_uniform(10 + t, i)
                   : !strcmp(dot, ".weight")    ? 0.5f + cxr_uniform(10 + t, i)
                                                : 0.4f * cxr_uniform(10 + t, i) - 0.2f;
    }
    size_t img = (size_t)SIZE * SIZE;
    float *x = malloc(sizeof(float) * img * BATCH), want[BATCH], got[BATCH];
    for (size_t i = 0; i < img * BATCH; i++)
        x[i] = cxr_uniform(20, i);
    CHECK(cxr_model_forward_batch(m, x, BATCH, want) == 0, "unprepared batch");
    float want1 = cxr_model_forward(m, x + img);

    CHECK(cxr_model_prepare_inference(m) == 0, "prepare");
    int folded = 0, relus = 0, bns = 0;
    for (int i = 0; i < m->graph->n; i++) {
        const cxr_node *nd = &m->graph->nodes[i];
        bns += nd->op == CXR_OP_BATCHNORM;
        folded += nd->op == CXR_OP_CONV && nd->fold_to >= 0;
        relus += nd->op == CXR_OP_RELU && nd->infer_skip;
    }
    /* every BatchNorm of resnet50 follows a conv; each of its 49 ReLUs is in place after one */
    CHECK(bns == 53 && folded == 53 && relus == 49, "fused: %d of %d BatchNorms, %d ReLUs",
          folded, bns, relus);
    CHECK(cxr_model_forward_batch(m, x, BATCH, got) == 0, "prepared batch");
    CHECK(!memcmp(got, want, sizeof got), "prepared batch = unprepared, bit for bit (%.9g %.9g)",
          got[0], want[0]);
    float got1 = cxr_model_forward(m, x + img);
    CHECK(got1 == want1 && got1 == want[1], "prepared single image = unprepared (%.9g %.9g)",
          got1, want1);
    /* training never runs folded: a prepared model unprepares to the plain graph */
    cxr_model_unprepare(m);
    folded = 0;
    for (int i = 0; i < m->graph->n; i++)
        folded += m->graph->nodes[i].fold_to >= 0 || m->graph->nodes[i].infer_skip;
    CHECK(folded == 0, "unprepare clears every fusion (%d left)", folded);
    free(x);
    cxr_model_free(m);
}

int
main(void)
{
    /* direct convolutions: the prepared model then differs from the plain one by the fusion */
    setenv("CXR_CONV_PATH", "direct", 1);
    epilogue_matches_layers();
    resnet50_unchanged();
    return harness_finish("test_fusion");
}

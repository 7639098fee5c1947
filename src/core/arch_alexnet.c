/* The AlexNet family of docs/models.md: alexnet (Table I) and alexnet_attn1..3 (Tables II-IV),
 * as graphs. */
#include "cxr_archs.h"

/* conv1..conv5: cout, kernel, stride, pad (conv5's pad depends on the network) */
static const int convs[5][4] = {
    {64, 11, 4, 2}, {192, 5, 1, 2}, {384, 5, 1, 2}, {256, 3, 1, 1}, {256, 3, 1, -1},
};
#define ATTN_DIM 256

static int
build(cxr_graph *g, int n_taps, const int *taps)
{
    char name[16];
    int raw[5], x = cxr_graph_input(g);
    for (int l = 0; l < 4; l++) {
        snprintf(name, sizeof name, "conv%d", l + 1);
        raw[l] = cxr_graph_conv(g, name, x, convs[l][0], convs[l][1], convs[l][2], convs[l][3], 1);
        /* the block after each of conv1..conv4, in the paper's order: pool, ReLU, BN */
        x = cxr_graph_relu(g, cxr_graph_maxpool(g, raw[l], 3, 2, 0));
        snprintf(name, sizeof name, "bn%d", l + 1);
        x = cxr_graph_batchnorm(g, name, x);
    }
    x = cxr_graph_dropout(g, x, 0.5f);
    /* with attention, conv5 has no padding: on the 3x3 map it gives the global vector g */
    int g5 = cxr_graph_conv(g, "conv5", x, 256, 3, 1, n_taps ? 0 : 1, 1);
    if (!n_taps) {
        x = cxr_graph_flatten(g, cxr_graph_avgpool(g, g5, 6, 6));
        x = cxr_graph_relu(g, cxr_graph_linear(g, "fc1", x, 4096));
        x = cxr_graph_relu(g, cxr_graph_linear(g, "fc2", x, 4096));
        return cxr_graph_linear(g, "fc3", x, 1);
    }
    int outs[3];
    for (int t = 0; t < n_taps; t++) {
        int l = taps[t];
        /* layers 2 and 3 have 192 and 384 channels: projected to 256 by proj2, proj3 */
        snprintf(name, sizeof name, "proj%d", l);
        outs[t] = cxr_graph_attention(g, raw[l - 1], g5, ATTN_DIM, l,
                                      convs[l - 1][0] != ATTN_DIM ? name : NULL);
    }
    x = cxr_graph_concat(g, outs, n_taps);
    x = cxr_graph_relu(g, cxr_graph_linear(g, "fc1", x, 128));
    return cxr_graph_linear(g, "fc2", x, 1);
}

static int
alexnet(cxr_graph *g, const cxr_model *m, char *err)
{
    (void)m;
    (void)err;
    return build(g, 0, NULL);
}

static int
alexnet_attn1(cxr_graph *g, const cxr_model *m, char *err)
{
    (void)m;
    (void)err;
    static const int taps[] = {4};
    return build(g, 1, taps);
}

static int
alexnet_attn2(cxr_graph *g, const cxr_model *m, char *err)
{
    (void)m;
    (void)err;
    static const int taps[] = {3, 4};
    return build(g, 2, taps);
}

static int
alexnet_attn3(cxr_graph *g, const cxr_model *m, char *err)
{
    (void)m;
    (void)err;
    static const int taps[] = {2, 3, 4};
    return build(g, 3, taps);
}

#define GRAY_HALF {0.5f, 0.5f, 0.5f}
const cxr_arch cxr_arch_alexnet = {"alexnet", 299, GRAY_HALF, GRAY_HALF, alexnet, 299, NULL};
const cxr_arch cxr_arch_alexnet_attn1 = {"alexnet_attn1", 299, GRAY_HALF, GRAY_HALF, alexnet_attn1, 299, NULL};
const cxr_arch cxr_arch_alexnet_attn2 = {"alexnet_attn2", 299, GRAY_HALF, GRAY_HALF, alexnet_attn2, 299, NULL};
const cxr_arch cxr_arch_alexnet_attn3 = {"alexnet_attn3", 299, GRAY_HALF, GRAY_HALF, alexnet_attn3, 299, NULL};

/* ResNet50 in torchvision's layout and tensor names (bottleneck blocks, the stride on the 3x3
 * conv, a 1-logit fc), as a graph. */
#include "cxr_archs.h"

static int
conv_bn(cxr_graph *g, const char *prefix, const char *conv, const char *bn, int x, int cout,
        int k, int stride, int pad)
{
    char cname[64], bname[64];
    snprintf(cname, sizeof cname, "%s%s", prefix, conv);
    snprintf(bname, sizeof bname, "%s%s", prefix, bn);
    return cxr_graph_batchnorm(g, bname, cxr_graph_conv(g, cname, x, cout, k, stride, pad, 0));
}

static int
bottleneck(cxr_graph *g, const char *prefix, int x, int in_c, int planes, int stride)
{
    int o = cxr_graph_relu(g, conv_bn(g, prefix, "conv1", "bn1", x, planes, 1, 1, 0));
    o = cxr_graph_relu(g, conv_bn(g, prefix, "conv2", "bn2", o, planes, 3, stride, 1));
    o = conv_bn(g, prefix, "conv3", "bn3", o, planes * 4, 1, 1, 0);
    int identity = x;
    if (stride != 1 || in_c != planes * 4)
        identity = conv_bn(g, prefix, "downsample.0", "downsample.1", x, planes * 4, 1, stride, 0);
    return cxr_graph_relu(g, cxr_graph_add(g, o, identity));
}

static int
resnet50(cxr_graph *g, const cxr_model *m, char *err)
{
    (void)m;
    (void)err;
    static const int blocks[4] = {3, 4, 6, 3};
    int x = cxr_graph_relu(g, conv_bn(g, "", "conv1", "bn1", cxr_graph_input(g), 64, 7, 2, 3));
    x = cxr_graph_maxpool(g, x, 3, 2, 1);
    int in_c = 64;
    for (int s = 0; s < 4; s++) {
        int planes = 64 << s;
        for (int b = 0; b < blocks[s]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d.", s + 1, b);
            x = bottleneck(g, prefix, x, in_c, planes, b == 0 && s > 0 ? 2 : 1);
            in_c = planes * 4;
        }
    }
    x = cxr_graph_flatten(g, cxr_graph_avgpool(g, x, 1, 1));
    return cxr_graph_linear(g, "fc", x, 1);
}

/* ImageNet's normalisation, as torchvision's weights expect */
const cxr_arch cxr_arch_resnet50 = {"resnet50", 224, {0.485f, 0.456f, 0.406f},
                                    {0.229f, 0.224f, 0.225f}, resnet50, 299, NULL};

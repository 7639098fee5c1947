/* Internal: a network as data. A graph is an ordered list of named nodes (each node's inputs come
 * before it); an op table (ops.c) gives every op its shape rule, forward and backward; generic
 * passes (graph.c) infer shapes, lay out parameters and activations, and run forward and
 * backward. Architecture builders (arch_*.c) are the only code that knows a network. */
#ifndef CXR_GRAPH_H
#define CXR_GRAPH_H

#include "cxr_model.h"

typedef enum {
    CXR_OP_INPUT,     /* the gray image, normalised into the model's channels */
    CXR_OP_CONV,      /* cout, k, stride, pad, bias */
    CXR_OP_BATCHNORM, /* eps 1e-5, momentum 0.1, affine, running statistics */
    CXR_OP_RELU,
    CXR_OP_MAXPOOL,   /* k, stride, pad */
    CXR_OP_AVGPOOL,   /* adaptive average pool to oh x ow (1 x 1: global) */
    CXR_OP_ADD,       /* residual sum of its inputs */
    CXR_OP_CONCAT,    /* along channels */
    CXR_OP_FLATTEN,
    CXR_OP_LINEAR,    /* cout, bias */
    CXR_OP_DROPOUT,   /* p; off in inference */
    CXR_OP_ATTENTION, /* inputs: local features, global vector; dim, scaled, optional projection */
    CXR_N_OPS
} cxr_op;

typedef struct {
    char *name;
    cxr_op op;
    int n_in, *in; /* producers, earlier in the graph */
    /* attributes */
    int cout, k, stride, pad, bias; /* conv and linear (cout, bias); pooling (k, stride, pad) */
    int oh, ow;                     /* adaptive pool */
    int dim, layer;                 /* attention: feature size; the layer number it explains */
    float p;                        /* dropout */
    /* one image's output shape, set by shape inference */
    int c, h, w;
    /* parameter tensors (indices into the model's tensor table, -1 for none): conv and linear
     * weight/bias; batchnorm weight/bias/mean/var; attention's projection in weight */
    int t_weight, t_bias, t_mean, t_var;
    /* set when the graph is finalised */
    int consumers;  /* nodes reading this one's output */
    int alias;      /* output and gradient are its first input's buffers (in-place relu, flatten) */
    int folded;     /* conv reading the gray input once for all its identical channels */
    long wino;      /* conv in inference: offset of its Winograd weights in m->wino, or -1 */
    /* prepared models, inference only (cxr_model_prepare_inference): a BatchNorm that only
     * follows a conv is that conv's per-channel affine epilogue, and a ReLU that follows a conv
     * or an add in place is their epilogue too */
    int fold_to;     /* conv: the BatchNorm whose output buffer it writes, or -1 */
    long fold_st;    /* conv: offset of that BatchNorm's scale and shift in m->bn_fold, or -1 */
    int infer_relu;  /* conv, add: applies the ReLU that follows */
    int infer_skip;  /* batchnorm, relu: its work is done by the node before it */
    int needs_grad; /* training: the gradient of this node's output is wanted */
    int trainable;  /* training: this node's parameters are updated */
} cxr_node;

struct cxr_graph {
    int n, cap;
    cxr_node *nodes;
    cxr_model *model; /* whose tensor table the builders fill */
};

/* Builders' API: each returns the new node's index, or -1 (out of memory; err filled). Node
 * names are the module names of the model file: a conv "layer1.0.conv1" owns the tensors
 * "layer1.0.conv1.weight" (and ".bias"). */
int cxr_graph_input(cxr_graph *g);
int cxr_graph_conv(cxr_graph *g, const char *name, int in, int cout, int k, int stride, int pad,
                   int bias);
int cxr_graph_batchnorm(cxr_graph *g, const char *name, int in);
int cxr_graph_relu(cxr_graph *g, int in);
int cxr_graph_maxpool(cxr_graph *g, int in, int k, int stride, int pad);
int cxr_graph_avgpool(cxr_graph *g, int in, int oh, int ow);
int cxr_graph_add(cxr_graph *g, int a, int b);
int cxr_graph_concat(cxr_graph *g, const int *in, int n_in);
int cxr_graph_flatten(cxr_graph *g, int in);
int cxr_graph_linear(cxr_graph *g, const char *name, int in, int cout);
int cxr_graph_dropout(cxr_graph *g, int in, float p);
/* proj_name: the 1x1 bias-free projection to dim, when the features have another width */
int cxr_graph_attention(cxr_graph *g, int features, int global, int dim, int layer,
                        const char *proj_name);

/* Per-node buffers of one workspace: outputs, gradients and what backward keeps. */
struct cxr_acts {
    int n, training;
    const float *gray; /* the forward pass's input images */
    float *arena;
    size_t floats;
    float **out, **grad;
    float **aux;      /* maxpool argmax (int32), batchnorm mean and inverse std, attention alpha,
                       * dropout mask */
    float **feat;     /* attention: projected features */
    float *col;       /* im2col scratch for one image, per lane */
    float *scratch;   /* one image's input gradient, for inputs read by several nodes, per lane */
    /* Training runs a conv layer's images in fixed shares (lanes: CXR_TRAIN_LANES, or the
     * batch capacity when smaller), up to that many at once on threads: each lane has its own col and scratch, col_stride and
     * scratch_stride floats apart, and its own weight and bias gradient (partial, partial_stride
     * floats apart), added up in lane order. Inference has one lane. */
    int lanes;
    size_t col_stride, scratch_stride, partial_stride;
    float *partial;
    float *prep; /* training: an op's transformed weights (prep_floats) */
};

#define CXR_TRAIN_LANES 4

/* The op table: one row per op (ops.c). */
typedef struct {
    const char *name;
    /* output shape from the inputs' shapes; declares parameter tensors. 0, or -1 with err */
    int (*shape)(cxr_graph *g, cxr_node *nd, char *err);
    /* floats per image of aux and feat buffers, and of one image's im2col scratch (for training,
     * or for inference) */
    size_t (*aux_floats)(const cxr_graph *g, const cxr_node *nd, int training);
    size_t (*feat_floats)(const cxr_graph *g, const cxr_node *nd);
    size_t (*col_floats)(const cxr_graph *g, const cxr_node *nd, int training);
    /* 0, or -1 when interrupted; dropout_seed only for dropout in training */
    int (*forward)(cxr_model *m, const cxr_node *nd, cxr_acts *a, uint64_t dropout_seed);
    /* grad: the model's gradient buffer (parameter layout); acc[i]: input i's gradient already
     * holds another consumer's contribution, so add to it */
    int (*backward)(cxr_model *m, const cxr_node *nd, cxr_acts *a, float *grad,
                    float *folded_grad, const int *acc);
    int kept_output; /* backward reads this op's own output (relu): it may not be aliased */
    /* training: floats of weights the op transforms once per pass (Winograd), shared by lanes */
    size_t (*prep_floats)(const cxr_graph *g, const cxr_node *nd);
} cxr_op_impl;

extern const cxr_op_impl cxr_ops[CXR_N_OPS];

/* Adds a parameter tensor to the model's table; returns its index or -1. */
int cxr_graph_tensor(cxr_graph *g, const char *module, const char *field, int trainable, int ndim,
                     int d0, int d1, int d2, int d3);
size_t cxr_node_floats(const cxr_node *nd);
static inline const float *
cxr_param(const cxr_model *m, int t)
{
    return t < 0 ? NULL : m->params + m->tensors[t].offset;
}
static inline float *
cxr_param_grad(const cxr_model *m, float *grad, int t)
{
    return t < 0 || !m->tensors[t].trainable ? NULL : grad + m->tensors[t].offset;
}

/* Passes. finalize: shapes, the tensor table's offsets (trainable first), consumers, aliases and
 * folding; 0 or -1 with err. */
int cxr_graph_finalize(cxr_graph *g, char *err);
void cxr_graph_free(cxr_graph *g);
/* From the tensors' frozen flags: which nodes train, and which outputs need a gradient. */
void cxr_graph_mark_trainable(cxr_graph *g);
cxr_acts *cxr_acts_create(const cxr_model *m, int n, int training);
size_t cxr_acts_bytes(const cxr_model *m, int n, int training);
void cxr_acts_free(cxr_acts *a);
/* 0, or -1 when interrupted */
int cxr_graph_forward(cxr_model *m, cxr_acts *a, const float *gray, int n, uint64_t dropout_seed);
int cxr_graph_backward(cxr_model *m, cxr_acts *a, float *grad, float *folded_grad);
/* The output node's values (one logit per image) after forward. */
const float *cxr_graph_output(const cxr_model *m, const cxr_acts *a);
/* Sums the first conv's weights over the identical gray channels (before each forward). */
void cxr_graph_fold(cxr_model *m);
/* Prepared models, inference only: folds BatchNorms and in-place ReLUs into the conv or add
 * before them (scales and shifts into buf; apply 0: counts only); returns buf's floats. */
size_t cxr_graph_fuse_inference(cxr_model *m, float *buf, int apply);
void cxr_graph_unfuse(cxr_graph *g);
/* Whether node i is a BatchNorm a prepared model may fold into the conv before it. */
int cxr_graph_bn_foldable(const cxr_graph *g, int i);

/* Polled once per image in every heavy op: between two polls at most one image runs through one
 * node, so a cancel is seen within milliseconds. */
#define CXR_STOP_IF_INTERRUPTED()                                                                  \
    do {                                                                                           \
        if (cxr_interrupt_poll())                                                                  \
            return -1;                                                                             \
    } while (0)

#endif

/* Networks of docs/models.md: description, parameters, file I/O, inference and training. */
#ifndef CXR_MODEL_H
#define CXR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_layers.h"

#define CXR_ERR_LEN 256
#define CXR_MAX_CHANNELS 4

typedef struct cxr_graph cxr_graph;
typedef struct cxr_model cxr_model;

/* One architecture: a name and a builder that adds its nodes to a graph (src/core/arch_*.c).
 * Nothing outside the builders knows a network's layers. */
typedef struct cxr_arch {
    const char *name;
    int default_input_size;
    float default_mean[3], default_std[3];
    int (*build)(cxr_graph *g, const cxr_model *m, char *err); /* graphs only */
    int train_input_size; /* what cxr_train creates a fresh model at; 0: default_input_size */
    const struct cxr_model_kind *kind; /* NULL: a CNN graph */
} cxr_arch;

const cxr_arch *cxr_arch_find(const char *name);
const char *cxr_arch_names(void); /* "alexnet, alexnet_attn1, ..." for error messages */
/* The input size cxr_train creates a fresh model of architecture a at. */
int cxr_arch_train_input_size(const cxr_arch *a);

typedef struct {
    char *name; /* as in the model file, e.g. "layer1.0.downsample.1.running_var" */
    int ndim;
    int shape[4];
    size_t offset, numel;
    int trainable; /* running statistics are stored but not trained */
    int frozen;    /* trainable, but left unchanged by this run (cxr_model_train_only) */
} cxr_param_info;

typedef struct cxr_acts cxr_acts;
typedef struct cxr_model_kind cxr_model_kind;

struct cxr_model {
    const cxr_model_kind *kind; /* how this model is loaded, saved, run and trained */
    const cxr_arch *arch;
    int attention_scaled; /* 1: scores / sqrt(d) ("scaled_dot"); 0: paper's "dot" */
    int input_size, in_channels;
    /* per input channel: the gray value v in [0, 1] enters channel c as (v - mean[c]) / std[c] */
    float mean[CXR_MAX_CHANNELS], std[CXR_MAX_CHANNELS];

    int n_tensors;
    cxr_param_info *tensors;
    size_t n_params, n_trainable; /* trainable parameters come first in params */
    float *params;

    /* the layers whose attention maps the model explains, ascending (none for plain CNNs) */
    int n_taps;
    int *taps;

    void *kind_state; /* what a kind other than graphs keeps (the forest's trees) */
    cxr_graph *graph;
    float *folded;   /* the first conv summed over identical gray channels (NULL if not folded) */
    cxr_acts *infer; /* one image's workspace, allocated once */
    float *wino;     /* Winograd weights of the convolutions that use them (prepared models) */
    float *bn_fold;  /* scale and shift of the BatchNorms folded into convs (prepared models) */
};

/* A fresh model with Xavier-uniform weights (zero biases, BN identity). */
cxr_model *cxr_model_create(const char *arch, int attention_scaled, int input_size,
                            uint64_t seed, char *err);
/* Parses and fully validates a safetensors file; NULL with err filled on any problem. */
cxr_model *cxr_model_load(const uint8_t *buf, size_t len, char *err);
/* malloc'd safetensors bytes in the layout of models.md. */
int cxr_model_save(const cxr_model *m, uint8_t **buf, size_t *len);
void cxr_model_free(cxr_model *m);
cxr_model *cxr_model_clone(const cxr_model *m, char *err);
/* Federated averaging (model_average.c): a new model whose every parameter is the weighted mean
 * of the models' (weights: sample counts, >= 0, not all 0). Networks of one layout only. */
cxr_model *cxr_model_average(cxr_model *const *models, const double *weights, int n, char *err);

const cxr_param_info *cxr_model_tensor(const cxr_model *m, const char *name);
/* The first BatchNorm running_var tensor holding a negative value in params (laid out as
 * m->params), or NULL. Loaders refuse such weights. */
const char *cxr_model_negative_variance(const cxr_model *m, const float *params);
/* Positions of the attention grid of conv layer L (0 if the model has no such tap). */
int cxr_model_attention_side(const cxr_model *m, int layer);
/* Bytes of the inference workspace (beyond the weights). */
size_t cxr_model_workspace_bytes(const cxr_model *m);

/* Inference on one gray image, input_size^2 floats in [0, 1] (the model normalises each of its
 * input channels with its own mean and std). Returns the logit.
 * Running statistics are used for BN, dropout is off. Not thread-safe per model.
 * Polls cxr_interrupt_poll (cxr_interrupt.h) once per layer; returns NAN when interrupted. */
float cxr_model_forward(cxr_model *m, const float *image);
/* After cxr_model_forward: the attention map of conv layer L (side x side floats), or NULL. */
const float *cxr_model_attention(const cxr_model *m, int layer);
/* Readies a model whose parameters will not change again for faster inference: the Winograd
 * weights of its stride-1 3x3 and 5x5 convolutions (cxr_winograd.h). The model then scores
 * through them; its results may differ from an unprepared model's in the last bits. Training
 * (cxr_trainer_create) undoes it. Returns 0, or -1 when out of memory (the model still scores,
 * unprepared). */
int cxr_model_prepare_inference(cxr_model *m);
void cxr_model_unprepare(cxr_model *m);
/* Bytes cxr_model_prepare_inference adds. */
size_t cxr_model_prepared_bytes(const cxr_model *m);

/* Batch inference: logits[i] for n images, bit for bit the single-image ones. A network with
 * large fully connected layers runs up to CXR_BATCH_IMAGES images through each layer at once
 * (those layers then read their weights once per batch), in a workspace of at most
 * CXR_BATCH_WORKSPACE_BYTES allocated for the call; others take the images one at a time in the
 * model's own workspace. Returns 0, -1 when interrupted (the logits not computed are NAN), or
 * -2 when that workspace could not be allocated. */
#define CXR_BATCH_IMAGES 64
#define CXR_BATCH_WORKSPACE_BYTES ((size_t)64 << 20)
int cxr_model_forward_batch(cxr_model *m, const float *images, int n, float *logits);
/* What cxr_model_forward_batch allocates for n images (at most the bound above; 0 one at a time). */
size_t cxr_model_batch_bytes(const cxr_model *m, int n);

/* ---- models fitted in one pass (a random forest) ---- */
typedef struct cxr_dataset cxr_dataset;

/* Whether architecture a (model m) is fitted in one pass over the data, with hyperparameters
 * given by name, rather than trained in epochs by cxr_trainer. */
int cxr_arch_one_pass(const cxr_arch *a);
int cxr_model_one_pass(const cxr_model *m);
/* One hyperparameter, named as scikit-learn names it, its value as text (null, true, false,
 * numbers as written). 0, or -1 with err filled (unknown name, bad value). */
int cxr_model_set_param(cxr_model *m, const char *key, const char *value, char *err);
/* The pieces a fit is made of (trees); the bytes fitting on n images allocates; fitting
 * pieces [first, first + count) on up to `threads` threads (each piece depends only on the
 * seed and its index). cxr_model_fit returns 0, or -1 with err ("interrupted" after a cancel
 * seen through cxr_interrupt_poll). */
int cxr_model_fit_units(const cxr_model *m);
size_t cxr_model_fit_bytes(const cxr_model *m, int n_images);
int cxr_model_fit(cxr_model *m, const cxr_dataset *d, int first, int count, uint64_t seed,
                  int threads, char *err);
/* What the model looks at: input_size^2 weights summing to 1 (a forest's impurity
 * importance), or NULL when the model has no such map. */
const float *cxr_model_importance(const cxr_model *m);

/* ---- training ---- */
typedef struct cxr_trainer {
    cxr_model *model;
    int max_batch;
    cxr_adam_config adam;
    long step;
    float *grads, *adam_m, *adam_v; /* n_trainable each, same layout as params */
    float *folded_grad;             /* the folded first conv's gradient */
    cxr_acts *acts;
} cxr_trainer;

/* Trains only the parameters whose names begin with one of the comma-separated prefixes, each
 * matching whole dotted components ("layer4" matches "layer4.0.conv1.weight", not
 * "layer40.x"); NULL or "" trains all. The others stay bit for bit as they are: their
 * BatchNorms keep and use their running statistics, and backward stops at the first node
 * with a trained parameter. Call before cxr_trainer_create/cxr_trainer_bytes. Returns the
 * number of tensors trained, or -1 with err filled (a prefix that matches nothing). */
int cxr_model_train_only(cxr_model *m, const char *prefixes, char *err);
cxr_trainer *cxr_trainer_create(cxr_model *m, int max_batch, const cxr_adam_config *adam);
/* Bytes cxr_trainer_create(m, max_batch, ...) allocates: gradients, Adam's two moments, the
 * folded conv1 gradient and the training activations of max_batch images. Lets a caller
 * refuse a batch size before allocating. */
size_t cxr_trainer_bytes(const cxr_model *m, int max_batch);
void cxr_trainer_free(cxr_trainer *t);
/* Forward in training mode (batch statistics, dropout drawn from dropout_seed), BCE loss,
 * backward. Gradients are left in t->grads; logits (may be NULL) receives n values.
 * Polls cxr_interrupt_poll once per image per layer; returns NAN when interrupted, and then
 * the gradients (and the BN running statistics of the layers reached) are not meaningful:
 * do not apply Adam. */
double cxr_trainer_forward_backward(cxr_trainer *t, const float *images, const float *labels,
                                    int n, uint64_t dropout_seed, float *logits);
void cxr_trainer_apply_adam(cxr_trainer *t);

#endif

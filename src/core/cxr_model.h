/* Networks of docs/models.md: description, parameters, file I/O, inference and training. */
#ifndef CXR_MODEL_H
#define CXR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_layers.h"

#define CXR_N_CONV 5   /* conv1..conv5 */
#define CXR_N_BLOCK 4  /* pool/ReLU/BN blocks after conv1..conv4 */
#define CXR_MAX_FC 3
#define CXR_MAX_TENSORS 40
#define CXR_ERR_LEN 256

/* One architecture, as data: which conv layers feed attention and what the head looks like.
 * The conv stack itself (conv1..conv5) is shared by all four networks. */
typedef struct {
    const char *name;
    int n_taps;
    int taps[3];       /* conv layer numbers (2..4) feeding attention, ascending */
    int conv5_pad;     /* 1: 3x3 map kept (alexnet); 0: collapses to the global vector g */
    int avgpool;       /* adaptive average pool side before the head, 0 for none */
    int n_fc;          /* fully connected layers; ReLU after all but the last */
    int fc_out[CXR_MAX_FC];
} cxr_arch;

const cxr_arch *cxr_arch_find(const char *name);
const char *cxr_arch_names(void); /* "alexnet, alexnet_attn1, ..." for error messages */

typedef struct {
    char name[32];
    int ndim;
    int shape[4];
    size_t offset, numel;
    int trainable; /* running statistics are stored but not trained */
} cxr_param_info;

typedef struct cxr_acts cxr_acts;

typedef struct cxr_model {
    const cxr_arch *arch;
    int attention_scaled; /* 1: scores / sqrt(256) ("scaled_dot"); 0: paper's "dot" */
    int input_size, in_channels;
    float mean, std;

    int n_tensors;
    cxr_param_info tensors[CXR_MAX_TENSORS];
    size_t n_params, n_trainable; /* trainable parameters come first in params */
    float *params;

    /* geometry: spatial side entering conv l, leaving conv l, leaving block l */
    int conv_in[CXR_N_CONV], conv_side[CXR_N_CONV], block_side[CXR_N_BLOCK];
    cxr_conv_shape conv[CXR_N_CONV];
    int fc_in[CXR_MAX_FC];

    /* offsets of named tensors in params (-1 when absent) */
    long conv_w[CXR_N_CONV], conv_b[CXR_N_CONV];
    long bn_w[CXR_N_BLOCK], bn_b[CXR_N_BLOCK], bn_mean[CXR_N_BLOCK], bn_var[CXR_N_BLOCK];
    long proj_w[CXR_N_CONV]; /* by conv index; only taps on layers 2 and 3 project */
    long fc_w[CXR_MAX_FC], fc_b[CXR_MAX_FC];

    /* conv1 folded over its identical gray input channels: 64 x (1*11*11) */
    float *conv1_folded;
    cxr_acts *infer; /* one image's workspace, allocated once */
} cxr_model;

/* A fresh model with Xavier-uniform weights (zero biases, BN identity). */
cxr_model *cxr_model_create(const char *arch, int attention_scaled, int input_size,
                            uint64_t seed, char *err);
/* Parses and fully validates a safetensors file; NULL with err filled on any problem. */
cxr_model *cxr_model_load(const uint8_t *buf, size_t len, char *err);
/* malloc'd safetensors bytes in the layout of models.md. */
int cxr_model_save(const cxr_model *m, uint8_t **buf, size_t *len);
void cxr_model_free(cxr_model *m);
cxr_model *cxr_model_clone(const cxr_model *m, char *err);

const cxr_param_info *cxr_model_tensor(const cxr_model *m, const char *name);
/* The first BatchNorm running_var tensor holding a negative value in params (laid out as
 * m->params), or NULL. Loaders refuse such weights. */
const char *cxr_model_negative_variance(const cxr_model *m, const float *params);
/* Positions of the attention grid of conv layer L (0 if the model has no such tap). */
int cxr_model_attention_side(const cxr_model *m, int layer);
/* Bytes of the inference workspace (beyond the weights). */
size_t cxr_model_workspace_bytes(const cxr_model *m);

/* Inference on one gray image, input_size^2 floats already normalised. Returns the logit.
 * Running statistics are used for BN, dropout is off. Not thread-safe per model.
 * Polls cxr_interrupt_poll (cxr_interrupt.h) once per layer; returns NAN when interrupted. */
float cxr_model_forward(cxr_model *m, const float *image);
/* After cxr_model_forward: the attention map of conv layer L (side x side floats), or NULL. */
const float *cxr_model_attention(const cxr_model *m, int layer);
/* Batch inference: logits[i] for n images; each result equals the single-image one.
 * Returns 0, or -1 when interrupted (the logits not computed are NAN). */
int cxr_model_forward_batch(cxr_model *m, const float *images, int n, float *logits);

/* ---- training ---- */
typedef struct cxr_trainer {
    cxr_model *model;
    int max_batch;
    cxr_adam_config adam;
    long step;
    float *grads, *adam_m, *adam_v; /* n_trainable each, same layout as params */
    float *conv1_dfolded;
    cxr_acts *acts;
} cxr_trainer;

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

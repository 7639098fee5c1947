/* Internal: activation workspaces for a batch of images (one arena each). */
#ifndef CXR_NET_H
#define CXR_NET_H

#include "cxr_model.h"

struct cxr_acts {
    int n, training;
    float *arena;
    size_t floats;

    float *conv[CXR_N_CONV];       /* raw conv outputs */
    int32_t *argmax[CXR_N_BLOCK];  /* max-pool winners */
    float *act[CXR_N_BLOCK];       /* pooled and ReLU'd: the BN input */
    float *bn[CXR_N_BLOCK];        /* BN output: next conv's input */
    float *bn_mean[CXR_N_BLOCK], *bn_invstd[CXR_N_BLOCK];
    float *mask, *drop;            /* dropout mask and output (conv5's input) */
    float *feat[CXR_N_CONV];       /* projected local features of taps on layers 2, 3 */
    float *alpha[CXR_N_CONV];      /* attention weights per tap */
    float *head;                   /* head input */
    float *fc[CXR_MAX_FC];         /* fc outputs (ReLU'd except the last: the logit) */
    float *col;                    /* im2col scratch for one image */

    /* gradients, training only */
    float *d_conv[CXR_N_CONV], *d_act[CXR_N_BLOCK], *d_bn[CXR_N_BLOCK], *d_drop;
    float *d_feat[CXR_N_CONV], *d_head, *d_fc[CXR_MAX_FC];
};

cxr_acts *cxr_acts_create(const cxr_model *m, int n, int training);
void cxr_acts_free(cxr_acts *a);

#endif

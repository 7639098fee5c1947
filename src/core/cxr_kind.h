/* Internal: a model kind is a table of functions. Every model dispatches through its kind what
 * depends on how it computes: building its structure for an architecture, inference,
 * explanation (attention maps), and training steps. The CNN-graph kind (kind_cnn.c) serves every
 * architecture today; the random forest will be the second kind. */
#ifndef CXR_KIND_H
#define CXR_KIND_H

#include "cxr_model.h"

struct cxr_model_kind {
    const char *name;
    int (*build)(cxr_model *m, char *err); /* structure, parameter table and buffers for m->arch */
    void (*release)(cxr_model *m);
    float (*forward)(cxr_model *m, const float *gray);
    const float *(*attention)(const cxr_model *m, int layer); /* NULL: none at that layer */
    int (*attention_side)(const cxr_model *m, int layer);     /* 0: none at that layer */
    size_t (*workspace_bytes)(const cxr_model *m);
    /* which parameters train changed (cxr_model_train_only): update what depends on it */
    void (*trainable_changed)(cxr_model *m);
    /* training: the kind's share of a trainer, counted and allocated; one step */
    size_t (*trainer_bytes)(const cxr_model *m, int max_batch);
    int (*trainer_init)(cxr_trainer *t);
    void (*trainer_release)(cxr_trainer *t);
    double (*train_step)(cxr_trainer *t, const float *images, const float *labels, int n,
                         uint64_t dropout_seed, float *logits);
};

extern const cxr_model_kind cxr_kind_cnn;

/* The kind that runs an architecture. */
const cxr_model_kind *cxr_kind_of(const cxr_arch *a);

#endif

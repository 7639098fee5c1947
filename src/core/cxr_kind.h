/* Internal: a model kind is a table of functions. Every model dispatches through its kind what
 * depends on how it computes: its file, building its structure for an architecture, inference,
 * explanation (attention maps, importance), and training (steps, or a one-pass fit). Two kinds:
 * CNN graphs (kind_cnn.c) for the networks, and random forests (kind_forest.c). */
#ifndef CXR_KIND_H
#define CXR_KIND_H

#include "cxr_model.h"
#include "cxr_safetensors.h"
#include "cxr_train.h"

struct cxr_model_kind {
    const char *name;
    /* the model file: a parsed file of architecture a, fully validated; the file's bytes;
     * a deep copy */
    cxr_model *(*load)(const cxr_st_file *f, const cxr_arch *a, char *err);
    int (*save)(const cxr_model *m, uint8_t **buf, size_t *len);
    cxr_model *(*clone)(const cxr_model *m, char *err);
    int (*build)(cxr_model *m, char *err); /* structure, parameter table and buffers for m->arch */
    void (*release)(cxr_model *m);
    float (*forward)(cxr_model *m, const float *gray);
    /* n images in one pass, each logit equal to forward's (NULL: one image at a time); 0, -1
     * when interrupted, -2 when out of memory. batch_bytes: what it allocates for n images */
    int (*forward_batch)(cxr_model *m, const float *gray, int n, float *logits);
    size_t (*batch_bytes)(const cxr_model *m, int n);
    /* faster inference for parameters that stay as they are (NULL: nothing to prepare); what
     * preparing adds; undo it */
    int (*prepare)(cxr_model *m);
    size_t (*prepared_bytes)(const cxr_model *m);
    void (*unprepare)(cxr_model *m);
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
    /* Kinds fitted in one pass over the data (no epochs, no optimiser); NULL for the others.
     * set_param: one hyperparameter from cxr_train's params (name as scikit-learn's);
     * fit_units: the pieces a fit is made of (trees), fitted in any order and in chunks by
     * fit, each piece depending only on the seed and its index; fit_bytes: what fitting on
     * n images allocates beyond the data set. */
    int (*set_param)(cxr_model *m, const char *key, const char *value, char *err);
    int (*fit_units)(const cxr_model *m);
    size_t (*fit_bytes)(const cxr_model *m, int n_images);
    int (*fit)(cxr_model *m, const cxr_dataset *d, int first, int count, uint64_t seed,
               int threads, char *err);
    /* a map of what the model looks at on its input grid (input_size^2 floats), or NULL */
    const float *(*importance)(const cxr_model *m);
};

extern const cxr_model_kind cxr_kind_cnn, cxr_kind_forest;

/* The parameter-table file layout of models.md, shared by every graph model (model.c). */
cxr_model *cxr_param_model_load(const cxr_st_file *f, const cxr_arch *a, char *err);
int cxr_param_model_save(const cxr_model *m, uint8_t **buf, size_t *len);
cxr_model *cxr_param_model_clone(const cxr_model *m, char *err);

/* The kind that runs an architecture. */
const cxr_model_kind *cxr_kind_of(const cxr_arch *a);

#endif

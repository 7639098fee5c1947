/* Federated averaging: the weighted mean of networks of one architecture, parameter by
 * parameter (weights, biases and BatchNorm running statistics alike, as averaging PyTorch state
 * dicts does). Sums run in double, model by model in the given order, so the result depends
 * only on the models, their weights and their order. */
#include <stdio.h>
#include <string.h>

#include "cxr_model.h"

static int
same_layout(const cxr_model *a, const cxr_model *b)
{
    if (a->kind != b->kind || a->arch != b->arch || a->input_size != b->input_size ||
        a->in_channels != b->in_channels || a->attention_scaled != b->attention_scaled ||
        a->n_params != b->n_params || a->n_tensors != b->n_tensors)
        return 0;
    for (int c = 0; c < a->in_channels; c++)
        if (a->mean[c] != b->mean[c] || a->std[c] != b->std[c])
            return 0;
    for (int t = 0; t < a->n_tensors; t++)
        if (strcmp(a->tensors[t].name, b->tensors[t].name) != 0 ||
            a->tensors[t].offset != b->tensors[t].offset || a->tensors[t].numel != b->tensors[t].numel)
            return 0;
    return 1;
}

cxr_model *
cxr_model_average(cxr_model *const *models, const double *weights, int n, char *err)
{
    if (n < 1) {
        snprintf(err, CXR_ERR_LEN, "no models to average");
        return NULL;
    }
    if (cxr_model_one_pass(models[0])) {
        snprintf(err, CXR_ERR_LEN, "a %s has no parameters to average", models[0]->arch->name);
        return NULL;
    }
    double total = 0.0;
    for (int k = 0; k < n; k++) {
        if (!(weights[k] >= 0.0) || weights[k] > 1e15) {
            snprintf(err, CXR_ERR_LEN, "weight %d is %g: weights are sample counts, 0 or more", k + 1,
                     weights[k]);
            return NULL;
        }
        if (!same_layout(models[0], models[k])) {
            snprintf(err, CXR_ERR_LEN,
                     "model %d is not laid out as model 1 (%s, %d px): only one architecture "
                     "with one input size and attention score can be averaged",
                     k + 1, models[0]->arch->name, models[0]->input_size);
            return NULL;
        }
        total += weights[k];
    }
    if (!(total > 0.0)) {
        snprintf(err, CXR_ERR_LEN, "the weights sum to 0");
        return NULL;
    }
    cxr_model *out = cxr_model_clone(models[0], err);
    if (!out)
        return NULL;
    for (size_t i = 0; i < out->n_params; i++) {
        double s = 0.0;
        for (int k = 0; k < n; k++)
            s += weights[k] * models[k]->params[i];
        out->params[i] = (float)(s / total);
    }
    return out;
}

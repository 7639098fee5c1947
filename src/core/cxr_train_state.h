/* A training run's resumable state: the last epoch's parameters (with BN running statistics),
 * Adam's moments and step count, and the run's progress. Stored beside a trained model so that a
 * later cxr_train call can continue the run exactly where it stopped, as one long run would. */
#ifndef CXR_TRAIN_STATE_H
#define CXR_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "cxr_model.h"

typedef struct {
    int epochs_done;          /* epochs of the run so far, over all resumed calls */
    int best_epoch;           /* the run's epoch whose weights the model row holds */
    double best_val_accuracy; /* of the run's best validation epoch; NAN without validation */
    double best_val_loss;
} cxr_run_progress;

/* malloc'd safetensors bytes: tensors "params", "adam_m", "adam_v"; progress in metadata. */
int cxr_train_state_save(const cxr_trainer *t, const cxr_run_progress *p, uint8_t **out,
                         size_t *out_len);
/* Restores params, moments and step into t (whose model must have the same arch and score).
 * Returns 0, or -1 with err filled and t untouched. */
int cxr_train_state_load(cxr_trainer *t, const uint8_t *buf, size_t len, cxr_run_progress *p,
                         char *err);

#endif

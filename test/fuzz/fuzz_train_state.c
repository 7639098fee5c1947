/* libFuzzer target: any bytes given to the training-state loader end in a restored trainer or
 * an error message that leaves the trainer as it was. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_train_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One trainer for the whole run (creating one per input would dominate the time): the model
 * whose states are seeded (make fuzz: cxr_cli state alexnet_attn1 dot ...), batch 1. */
static cxr_trainer *
trainer(void)
{
    static cxr_trainer *t;
    if (!t) {
        char err[CXR_ERR_LEN];
        cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
        cxr_model *m = cxr_model_create("alexnet_attn1", 0, 299, 1, err);
        t = m ? cxr_trainer_create(m, 1, &adam) : NULL;
        if (!t)
            abort();
    }
    return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cxr_trainer *t = trainer();
    const cxr_model *m = t->model;
    char err[CXR_ERR_LEN] = "";
    cxr_run_progress p;
    memset(&p, 0, sizeof p);
    float first = m->params[0];
    long step = t->step;
    if (cxr_train_state_load(t, data, size, &p, err) == 0) {
        /* what a loaded state promises the trainer: a usable step count and progress */
        if (t->step < 0 || p.epochs_done < 0 || p.best_epoch < 0 || p.best_epoch > p.epochs_done)
            abort();
    } else if (!err[0] || t->step != step || memcmp(&first, &m->params[0], sizeof first) != 0)
        abort(); /* refused: must say why and leave the trainer untouched */
    return 0;
}

/* libFuzzer target: any bytes given to the model loader end in a model or an error message. */
#include <stddef.h>
#include <stdint.h>

#include "cxr_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CXR_ERR_LEN];
    cxr_model_free(cxr_model_load(data, size, err));
    return 0;
}

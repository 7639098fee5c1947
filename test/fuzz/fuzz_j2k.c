/* libFuzzer target: any bytes given to the JPEG 2000 decoder (our SIZ and JP2 box checks, then
 * OpenJPEG) end in samples or an error status. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SAMPLES (1u << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cxr_frame_info info;
    /* the size is known only inside the decoder: a buffer as large as the limit */
    int32_t *out = malloc(MAX_SAMPLES * sizeof *out);
    if (out)
        cxr_j2k_decode(data, size, MAX_SAMPLES, out, MAX_SAMPLES, &info, err, sizeof err);
    free(out);
    return 0;
}

/* libFuzzer target: any bytes given to the JPEG decoders (libjpeg-turbo for lossy processes,
 * our own for lossless) end in samples or an error status. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cxr_frame_info info;
    if (cxr_jpeg_read_header(data, size, &info, err, sizeof err) != CXR_IMG_OK)
        return 0;
    size_t n = (size_t)info.width * info.height * info.components;
    if (n > (1u << 20))
        n = 1; /* still decoded: the limit must stop it before any allocation */
    int32_t *out = malloc(n * sizeof *out);
    if (out)
        cxr_jpeg_decode(data, size, 1u << 20, out, n, &info, err, sizeof err);
    free(out);
    return 0;
}

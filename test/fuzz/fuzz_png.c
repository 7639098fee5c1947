/* libFuzzer target: any bytes given to the PNG decoder end in pixels or an error code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cxr_png_info info;
    if (cxr_png_read_info(data, size, &info, err, sizeof err) != CXR_IMG_OK)
        return 0;
    size_t px = (size_t)info.width * info.height;
    if (px > (1u << 20))
        return 0; /* the pixel limit a caller would apply */
    float *out = malloc(px * sizeof(float));
    if (out)
        cxr_png_decode_gray(data, size, 1u << 20, out, px, err, sizeof err);
    free(out);
    return 0;
}

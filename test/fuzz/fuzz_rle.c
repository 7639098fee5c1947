/* libFuzzer target: any bytes given to the RLE Lossless decoder, for a frame whose geometry the
 * first 4 bytes choose (up to 64x64 pixels, 1 or 3 samples of 8, 16 or 32 bits), end in samples
 * or an error status, never a read or write outside the buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int width = 1 + data[0] % 64, height = 1 + data[1] % 64;
    int components = data[2] & 1 ? 3 : 1;
    static const int bits[3] = {8, 16, 32};
    int bits_allocated = bits[data[3] % 3];
    size_t n = (size_t)width * height * components;
    int32_t *out = malloc(n * sizeof *out);
    char err[256];
    if (out)
        cxr_rle_decode(data + 4, size - 4, width, height, components, bits_allocated, out, n,
                       err, sizeof err);
    free(out);
    return 0;
}

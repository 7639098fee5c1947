/* libFuzzer target: any bytes given to the format dispatcher (PNG, JPEG, DICOM with every
 * codec behind it) end in pixels or an error code, within the pixel limit a caller applies. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *
fuzz_alloc(size_t bytes, void *ctx)
{
    (void)ctx;
    return malloc(bytes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cxr_image_header info;
    cxr_image_read_info(data, size, &info, err, sizeof err);
    cxr_decoded_image d;
    cxr_image_decode(data, size, 1u << 20, fuzz_alloc, NULL, &d, err, sizeof err);
    free(d.gray);
    return 0;
}

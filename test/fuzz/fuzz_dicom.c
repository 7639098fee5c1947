/* libFuzzer target: any bytes given to the DICOM reader end in pixels or an error code, with
 * every length, nesting level and pixel count bounded (the codecs behind it included). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cxr_dicom.h"

#define MAX_PIXELS (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
touch(uint32_t tag, const char *vr, const uint8_t *value, uint32_t len, void *arg)
{
    /* reads every byte the index hands out, so that a value outside the input is caught */
    unsigned *sum = arg;
    *sum += tag + (unsigned char)vr[0];
    for (uint32_t i = 0; i < len; i++)
        *sum += value[i];
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cxr_dicom *d;
    (void)cxr_dicom_detect(data, size);
    if (cxr_dicom_open(data, size, &d, err, sizeof err) != CXR_IMG_OK)
        return 0;
    unsigned sum = 0;
    cxr_dicom_each(d, touch, &sum);
    const cxr_dicom_info *in = cxr_dicom_info_of(d);
    size_t px = (size_t)in->rows * in->columns;
    if (px > 0 && px <= MAX_PIXELS) {
        float *out = malloc(px * sizeof *out);
        int frames;
        if (out)
            cxr_dicom_decode_gray(d, MAX_PIXELS, out, px, &frames, err, sizeof err);
        free(out);
    } else {
        /* the size check must refuse without allocating */
        float one;
        int frames;
        cxr_dicom_decode_gray(d, MAX_PIXELS, &one, 1, &frames, err, sizeof err);
    }
    cxr_dicom_close(d);
    return sum == 0xFFFFFFFFu; /* keeps sum alive; libFuzzer ignores the value */
}

/* DICOM pixel semantics: stored samples to gray in [0, 1] (docs/decisions.md, "DICOM pixels":
 * PS3.3 C.7.6.3 Image Pixel, C.11.1 Modality LUT, C.11.2 VOI LUT), and native unpacking. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_dicom.h"
#include "cxr_dicom_internal.h"
#include "cxr_interrupt.h"

#define POLL_PIXELS 65536

typedef enum {
    PH_MONOCHROME1,
    PH_MONOCHROME2,
    PH_RGB,
    PH_YBR_FULL,
    PH_YBR_FULL_422,
    PH_YBR_JPEG2000, /* YBR_ICT / YBR_RCT: OpenJPEG hands back RGB */
    PH_KNOWN_OTHER,  /* valid DICOM, not implemented */
    PH_INVALID,
} photometric;

static photometric
photometric_of(const char *s)
{
    static const struct {
        const char *name;
        photometric p;
    } names[] = {
        {"MONOCHROME1", PH_MONOCHROME1}, {"MONOCHROME2", PH_MONOCHROME2},
        {"RGB", PH_RGB},                 {"YBR_FULL", PH_YBR_FULL},
        {"YBR_FULL_422", PH_YBR_FULL_422}, {"YBR_ICT", PH_YBR_JPEG2000},
        {"YBR_RCT", PH_YBR_JPEG2000},    {"PALETTE COLOR", PH_KNOWN_OTHER},
        {"YBR_PARTIAL_422", PH_KNOWN_OTHER}, {"YBR_PARTIAL_420", PH_KNOWN_OTHER},
        {"HSV", PH_KNOWN_OTHER},         {"ARGB", PH_KNOWN_OTHER},
        {"CMYK", PH_KNOWN_OTHER},        {"XYB", PH_KNOWN_OTHER},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].p;
    return PH_INVALID;
}

static int
lut_bytes_per_entry(const cxr_dicom_info *in)
{
    /* 16-bit words as the standard says; packed bytes (older 8-bit LUTs) when that is all the
     * value holds */
    if ((uint64_t)in->lut_data_len >= 2 * (uint64_t)in->lut_entries)
        return 2;
    if (in->lut_bits <= 8 && (uint64_t)in->lut_data_len >= (uint64_t)in->lut_entries)
        return 1;
    return 0;
}

cxr_img_status
cxr_dicom_check_pixels(const cxr_dicom_info *in, char *err, size_t errlen)
{
    if (in->rows == 0 || in->columns == 0) {
        snprintf(err, errlen, "DICOM image without pixels (Rows %u, Columns %u)", in->rows,
                 in->columns);
        return CXR_IMG_CORRUPT;
    }
    if (in->samples_per_pixel != 1 && in->samples_per_pixel != 3) {
        snprintf(err, errlen, "unsupported DICOM SamplesPerPixel %d (1 or 3 are read)",
                 in->samples_per_pixel);
        return in->samples_per_pixel < 1 ? CXR_IMG_CORRUPT : CXR_IMG_UNSUPPORTED;
    }
    int ba = in->bits_allocated, bs = in->bits_stored;
    if (ba == 1) {
        snprintf(err, errlen, "unsupported DICOM pixels: BitsAllocated 1 (bitmaps)");
        return CXR_IMG_UNSUPPORTED;
    }
    if (ba != 8 && ba != 16 && ba != 32) {
        snprintf(err, errlen, "corrupt DICOM image: BitsAllocated %d (8, 16 or 32 expected)", ba);
        return CXR_IMG_CORRUPT;
    }
    /* a wrong BitsStored or HighBit would read garbage as signal */
    if (bs < 1 || bs > ba) {
        snprintf(err, errlen, "corrupt DICOM image: BitsStored %d with BitsAllocated %d", bs, ba);
        return CXR_IMG_CORRUPT;
    }
    if (in->high_bit != bs - 1) {
        snprintf(err, errlen, "corrupt DICOM image: HighBit %d with BitsStored %d (HighBit must "
                 "be BitsStored - 1)", in->high_bit, bs);
        return CXR_IMG_CORRUPT;
    }
    if (in->pixel_representation != 0 && in->pixel_representation != 1) {
        snprintf(err, errlen, "corrupt DICOM image: PixelRepresentation %d",
                 in->pixel_representation);
        return CXR_IMG_CORRUPT;
    }
    photometric ph = photometric_of(in->photometric);
    if (ph == PH_KNOWN_OTHER) {
        snprintf(err, errlen, "unsupported DICOM PhotometricInterpretation %s", in->photometric);
        return CXR_IMG_UNSUPPORTED;
    }
    if (ph == PH_INVALID) {
        snprintf(err, errlen, "corrupt DICOM image: unknown PhotometricInterpretation \"%s\"",
                 in->photometric);
        return CXR_IMG_CORRUPT;
    }
    int mono = ph == PH_MONOCHROME1 || ph == PH_MONOCHROME2;
    if (mono != (in->samples_per_pixel == 1)) {
        snprintf(err, errlen, "corrupt DICOM image: PhotometricInterpretation %s with "
                 "SamplesPerPixel %d", in->photometric, in->samples_per_pixel);
        return CXR_IMG_CORRUPT;
    }
    if (in->samples_per_pixel == 3 && in->planar_configuration != 0 &&
        in->planar_configuration != 1) {
        snprintf(err, errlen, "corrupt DICOM image: PlanarConfiguration %d",
                 in->planar_configuration);
        return CXR_IMG_CORRUPT;
    }
    if (!mono)
        return CXR_IMG_OK; /* colour gets no modality or VOI transform */
    if (!isfinite(in->rescale_slope) || !isfinite(in->rescale_intercept) ||
        in->rescale_slope == 0.0) {
        snprintf(err, errlen, "corrupt DICOM image: RescaleSlope %g, RescaleIntercept %g",
                 in->rescale_slope, in->rescale_intercept);
        return CXR_IMG_CORRUPT;
    }
    if (in->voi == CXR_VOI_WINDOW) {
        double w = in->window_width;
        int ok = isfinite(in->window_center) && isfinite(w) &&
                 (in->voi_function == CXR_VOI_LINEAR ? w >= 1.0 : w > 0.0);
        if (!ok) {
            snprintf(err, errlen, "corrupt DICOM image: WindowCenter %g, WindowWidth %g (%s)",
                     in->window_center, w,
                     in->voi_function == CXR_VOI_LINEAR ? "LINEAR needs a width of at least 1"
                                                        : "the width must be positive");
            return CXR_IMG_CORRUPT;
        }
    } else if (in->voi == CXR_VOI_LUT) {
        if (in->lut_entries < 1 || in->lut_entries > 65536 || in->lut_bits < 1 ||
            in->lut_bits > 16 || !in->lut_data || lut_bytes_per_entry(in) == 0) {
            snprintf(err, errlen, "corrupt DICOM image: VOI LUT of %d entries of %d bits with "
                     "%u bytes of LUTData", in->lut_entries, in->lut_bits, in->lut_data_len);
            return CXR_IMG_CORRUPT;
        }
    }
    return CXR_IMG_OK;
}

/* A stored sample: the low BitsStored bits, sign-extended when PixelRepresentation is 1. */
static inline double
stored_value(int32_t s, uint32_t mask, int bits, int is_signed)
{
    uint32_t u = (uint32_t)s & mask;
    if (is_signed && (u >> (bits - 1)) & 1u)
        return (double)u - ldexp(1.0, bits);
    return (double)u;
}

static inline float
clamp01(double y)
{
    if (!(y > 0.0)) /* NaN too */
        return 0.0f;
    return y >= 1.0 ? 1.0f : (float)y;
}

static cxr_img_status
interrupted(char *err, size_t errlen)
{
    snprintf(err, errlen, "interrupted");
    return CXR_IMG_INTERRUPTED;
}

static cxr_img_status
color_to_gray(const cxr_dicom_info *in, const int32_t *s, int color_transformed, float *out,
              char *err, size_t errlen)
{
    int bs = in->bits_stored;
    uint32_t mask = bs == 32 ? 0xFFFFFFFFu : (1u << bs) - 1u;
    double maxv = ldexp(1.0, bs) - 1.0, half = ldexp(1.0, bs - 1);
    photometric ph = photometric_of(in->photometric);
    int ybr = (ph == PH_YBR_FULL || ph == PH_YBR_FULL_422) && !color_transformed;
    size_t n = (size_t)in->rows * in->columns;
    for (size_t i = 0; i < n; i++) {
        if (i % POLL_PIXELS == 0 && cxr_interrupt_poll())
            return interrupted(err, errlen);
        /* colour samples are read unsigned whatever PixelRepresentation says */
        double r = (uint32_t)s[3 * i] & mask, g = (uint32_t)s[3 * i + 1] & mask,
               b = (uint32_t)s[3 * i + 2] & mask;
        if (ybr) {
            /* PS3.3 C.7.6.3.1.2: full-range ITU-R BT.601 */
            double y = r, cb = g - half, cr = b - half;
            r = y + 1.402 * cr;
            g = y - 0.344136 * cb - 0.714136 * cr;
            b = y + 1.772 * cb;
            r = r < 0 ? 0 : r > maxv ? maxv : r;
            g = g < 0 ? 0 : g > maxv ? maxv : g;
            b = b < 0 ? 0 : b > maxv ? maxv : b;
        }
        out[i] = clamp01((0.299 * r + 0.587 * g + 0.114 * b) / maxv);
    }
    return CXR_IMG_OK;
}

/* The grayscale transforms (rescale, VOI, MONOCHROME1) of one image, for one stored code. */
typedef struct {
    const cxr_dicom_info *in;
    int bs, sgn, invert, lut_bpe;
    uint32_t mask;
    double slope, icpt, xmin, span, c, w, lut_scale, first;
} mono_map;

static void
mono_map_init(mono_map *mm, const cxr_dicom_info *in)
{
    mm->in = in;
    mm->bs = in->bits_stored;
    mm->sgn = in->pixel_representation == 1;
    mm->mask = mm->bs == 32 ? 0xFFFFFFFFu : (1u << mm->bs) - 1u;
    mm->slope = in->rescale_slope;
    mm->icpt = in->rescale_intercept;
    mm->invert = photometric_of(in->photometric) == PH_MONOCHROME1;
    /* no VOI: the whole range BitsStored allows, through the rescale, onto [0, 1] */
    double lo = mm->sgn ? -ldexp(1.0, mm->bs - 1) : 0.0;
    double hi = mm->sgn ? ldexp(1.0, mm->bs - 1) - 1.0 : ldexp(1.0, mm->bs) - 1.0;
    double xa = lo * mm->slope + mm->icpt, xb = hi * mm->slope + mm->icpt;
    mm->xmin = xa < xb ? xa : xb;
    mm->span = fabs(xb - xa);
    if (mm->span == 0.0)
        mm->span = 1.0; /* BitsStored 1 with a tiny slope: keep the map defined */
    mm->c = in->window_center;
    mm->w = in->window_width;
    mm->lut_scale = 0.0;
    mm->first = in->lut_first_mapped;
    mm->lut_bpe = 0;
    if (in->voi == CXR_VOI_LUT) {
        mm->lut_scale = 1.0 / (ldexp(1.0, in->lut_bits) - 1.0);
        mm->lut_bpe = lut_bytes_per_entry(in);
    }
}

static float
mono_gray(const mono_map *mm, int32_t sample)
{
    const cxr_dicom_info *in = mm->in;
    double x = stored_value(sample, mm->mask, mm->bs, mm->sgn) * mm->slope + mm->icpt, y;
    double c = mm->c, w = mm->w;
    switch (in->voi) {
    case CXR_VOI_LUT: {
        /* x clamped to the mapped range; a fractional x (a fractional rescale) takes the entry
         * below it */
        double k = floor(x) - mm->first;
        size_t idx = k <= 0.0 ? 0
                     : k >= in->lut_entries - 1 ? (size_t)in->lut_entries - 1
                                                : (size_t)k;
        const uint8_t *e = in->lut_data + idx * (size_t)mm->lut_bpe;
        unsigned v = mm->lut_bpe == 1      ? e[0]
                     : in->ts_big_endian ? (unsigned)e[0] << 8 | e[1]
                                         : (unsigned)e[1] << 8 | e[0];
        y = v * mm->lut_scale;
        break;
    }
    case CXR_VOI_WINDOW:
        if (in->voi_function == CXR_VOI_SIGMOID) {
            y = 1.0 / (1.0 + exp(-4.0 * (x - c) / w));
        } else if (in->voi_function == CXR_VOI_LINEAR_EXACT) {
            y = x <= c - w / 2 ? 0.0 : x > c + w / 2 ? 1.0 : (x - c) / w + 0.5;
        } else {
            /* with w = 1 the middle branch is empty: no division by zero */
            double low = c - 0.5 - (w - 1) / 2, high = c - 0.5 + (w - 1) / 2;
            y = x <= low ? 0.0 : x > high ? 1.0 : (x - (c - 0.5)) / (w - 1) + 0.5;
        }
        break;
    default:
        y = (x - mm->xmin) / mm->span;
        break;
    }
    float g = clamp01(y);
    return mm->invert ? 1.0f - g : g;
}

/* Up to 16 bits stored, every code's gray is computed once into a table (64k floats at most,
 * the same function as per pixel, so the same values) and each pixel is a lookup: a 2,500 px
 * square 12-bit X-ray has 6.25M pixels but 4,096 codes. */
#define MONO_TABLE_MAX_BITS 16

cxr_img_status
cxr_dicom_samples_to_gray(const cxr_dicom_info *in, const int32_t *s, int color_transformed,
                          float *out, char *err, size_t errlen)
{
    cxr_img_status st = cxr_dicom_check_pixels(in, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    if (in->samples_per_pixel == 3)
        return color_to_gray(in, s, color_transformed, out, err, errlen);
    mono_map mm;
    mono_map_init(&mm, in);
    size_t n = (size_t)in->rows * in->columns;
    float *table = NULL;
    if (mm.bs <= MONO_TABLE_MAX_BITS && n > ((size_t)1 << mm.bs)) {
        table = malloc(sizeof(float) << mm.bs);
        for (uint32_t u = 0; table && u <= mm.mask; u++)
            table[u] = mono_gray(&mm, (int32_t)u);
    }
    for (size_t i0 = 0; i0 < n; i0 += POLL_PIXELS) {
        if (cxr_interrupt_poll()) {
            free(table);
            return interrupted(err, errlen);
        }
        size_t i1 = n - i0 < POLL_PIXELS ? n : i0 + POLL_PIXELS;
        if (table)
            for (size_t i = i0; i < i1; i++)
                out[i] = table[(uint32_t)s[i] & mm.mask];
        else
            for (size_t i = i0; i < i1; i++)
                out[i] = mono_gray(&mm, s[i]);
    }
    free(table);
    return CXR_IMG_OK;
}

int
cxr_dicom_native_mono_direct(const cxr_dicom_info *in, int words_swapped)
{
    return in->samples_per_pixel == 1 && in->bits_allocated <= 16 && !words_swapped &&
           in->bits_stored <= MONO_TABLE_MAX_BITS;
}

cxr_img_status
cxr_dicom_native_mono_gray(const cxr_dicom_info *in, float *out, char *err, size_t errlen)
{
    size_t n = (size_t)in->rows * in->columns, need = cxr_dicom_native_frame_bytes(in);
    if (need == 0 || in->pixel_data_len < need) {
        snprintf(err, errlen, "corrupt DICOM image: native Pixel Data holds %zu bytes, frame 1 "
                 "of %ux%u needs %zu", in->pixel_data_len, in->columns, in->rows, need);
        return CXR_IMG_CORRUPT;
    }
    mono_map mm;
    mono_map_init(&mm, in);
    float *table = malloc(sizeof(float) << mm.bs);
    if (!table) {
        snprintf(err, errlen, "out of memory decoding a %ux%u DICOM image", in->columns,
                 in->rows);
        return CXR_IMG_NO_MEMORY;
    }
    for (uint32_t u = 0; u <= mm.mask; u++)
        table[u] = mono_gray(&mm, (int32_t)u);
    const uint8_t *d = in->pixel_data;
    int shift = in->high_bit + 1 - in->bits_stored, be = in->ts_big_endian;
    for (size_t i0 = 0; i0 < n; i0 += POLL_PIXELS) {
        if (cxr_interrupt_poll()) {
            free(table);
            return interrupted(err, errlen);
        }
        size_t i1 = n - i0 < POLL_PIXELS ? n : i0 + POLL_PIXELS;
        if (in->bits_allocated == 8)
            for (size_t i = i0; i < i1; i++)
                out[i] = table[((uint32_t)d[i] >> shift) & mm.mask];
        else if (be)
            for (size_t i = i0; i < i1; i++)
                out[i] = table[(((uint32_t)d[2 * i] << 8 | d[2 * i + 1]) >> shift) & mm.mask];
        else
            for (size_t i = i0; i < i1; i++)
                out[i] = table[(((uint32_t)d[2 * i + 1] << 8 | d[2 * i]) >> shift) & mm.mask];
    }
    free(table);
    return CXR_IMG_OK;
}

size_t
cxr_dicom_native_frame_bytes(const cxr_dicom_info *in)
{
    uint64_t per_pixel = photometric_of(in->photometric) == PH_YBR_FULL_422
                             ? 2 /* Y Y Cb Cr for each pair of pixels */
                             : (uint64_t)in->samples_per_pixel;
    uint64_t n = (uint64_t)in->rows * in->columns; /* below 2^32 * 2^32: no overflow */
    uint64_t bytes_per = (uint64_t)in->bits_allocated / 8;
    if (n > UINT64_MAX / 8 / per_pixel / (bytes_per ? bytes_per : 1))
        return 0;
    uint64_t total = n * per_pixel * bytes_per;
    return total > SIZE_MAX ? 0 : (size_t)total;
}

/* An unsigned word as int32, two's complement, without implementation-defined conversion. */
static inline int32_t
as_int32(uint32_t u)
{
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

cxr_img_status
cxr_dicom_unpack_native(const cxr_dicom_info *in, int words_swapped, int32_t *samples,
                        char *err, size_t errlen)
{
    size_t need = cxr_dicom_native_frame_bytes(in);
    if (need == 0 || in->pixel_data_len < need) {
        snprintf(err, errlen, "corrupt DICOM image: native Pixel Data holds %zu bytes, frame 1 "
                 "of %ux%u needs %zu", in->pixel_data_len, in->columns, in->rows, need);
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *d = in->pixel_data;
    int bytes = in->bits_allocated / 8, be = in->ts_big_endian;
    int shift = in->high_bit + 1 - in->bits_stored;
    size_t cols = in->columns, npix = (size_t)in->rows * cols;
    int spp = in->samples_per_pixel;
    int ybr422 = photometric_of(in->photometric) == PH_YBR_FULL_422;
    if (ybr422 && (cols % 2 != 0 || in->planar_configuration != 0)) {
        snprintf(err, errlen, "corrupt DICOM image: native YBR_FULL_422 needs an even number of "
                 "columns (%zu) and PlanarConfiguration 0", cols);
        return CXR_IMG_CORRUPT;
    }
    size_t total = ybr422 ? npix * 2 : npix * (size_t)spp;
    if (!ybr422 && !(spp == 3 && in->planar_configuration == 1) && !words_swapped &&
        bytes <= 2) {
        /* the common layouts (8 or 16 bits, pixel-interleaved): a plain loop per chunk */
        for (size_t k0 = 0; k0 < total; k0 += POLL_PIXELS) {
            if (cxr_interrupt_poll())
                return interrupted(err, errlen);
            size_t k1 = total - k0 < POLL_PIXELS ? total : k0 + POLL_PIXELS;
            if (bytes == 1)
                for (size_t k = k0; k < k1; k++)
                    samples[k] = (int32_t)(d[k] >> shift);
            else if (be)
                for (size_t k = k0; k < k1; k++)
                    samples[k] = (int32_t)(((uint32_t)d[2 * k] << 8 | d[2 * k + 1]) >> shift);
            else
                for (size_t k = k0; k < k1; k++)
                    samples[k] = (int32_t)(((uint32_t)d[2 * k + 1] << 8 | d[2 * k]) >> shift);
        }
        return CXR_IMG_OK;
    }
    for (size_t k = 0; k < total; k++) {
        if (k % POLL_PIXELS == 0 && cxr_interrupt_poll())
            return interrupted(err, errlen);
        const uint8_t *p = d + k * (size_t)bytes;
        uint32_t v;
        if (bytes == 1)
            v = words_swapped && (k ^ 1u) < in->pixel_data_len ? d[k ^ 1u] : p[0];
        else if (bytes == 2)
            v = be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
        else
            v = be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                   : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
        v >>= shift;
        size_t dst;
        if (ybr422) {
            /* k: Y1 Y2 Cb Cr of pixels 2j, 2j+1 */
            size_t j = k / 4, r = k % 4;
            if (r < 2) {
                samples[(2 * j + r) * 3] = as_int32(v);
            } else {
                samples[(2 * j) * 3 + (r - 1)] = as_int32(v);
                samples[(2 * j + 1) * 3 + (r - 1)] = as_int32(v);
            }
            continue;
        }
        if (spp == 3 && in->planar_configuration == 1)
            dst = (k % npix) * 3 + k / npix; /* plane by plane */
        else
            dst = k;
        samples[dst] = as_int32(v);
    }
    return CXR_IMG_OK;
}

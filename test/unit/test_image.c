/* PNG decoding, resizing and overlays: round trips through libpng's writer for gray/colour,
 * 8/16-bit, with and without alpha; every truncation and many corruptions of a valid file end
 * in an error code, never a crash; resizing against PyTorch's interpolate(antialias=True). */
#include <png.h>
#include <string.h>
#include <zlib.h>

#include "cxr_image.h"
#include "cxr_safetensors.h"
#include "harness.h"

static uint8_t *
encode(const void *pixels, int w, int h, png_uint_32 format, size_t *len)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = w;
    img.height = h;
    img.format = format;
    png_alloc_size_t size = 0;
    png_image_write_to_memory(&img, NULL, &size, 0, pixels, 0, NULL);
    uint8_t *buf = malloc(size);
    png_image_write_to_memory(&img, buf, &size, 0, pixels, 0, NULL);
    *len = size;
    return buf;
}

static void
test_formats(void)
{
    enum { W = 23, H = 17 };
    uint8_t g8[W * H], rgb[W * H * 3], rgba[W * H * 4];
    uint16_t g16[W * H];
    float want_gray[W * H], want_rgb[W * H], want16[W * H], out[W * H];
    char err[128];
    for (int i = 0; i < W * H; i++) {
        g8[i] = (uint8_t)(i * 37 % 256);
        want_gray[i] = g8[i] / 255.0f;
        g16[i] = (uint16_t)(i * 7919 % 65536);
        want16[i] = g16[i] / 65535.0f;
        uint8_t r = (uint8_t)(i * 3), g = (uint8_t)(i * 5 + 7), b = (uint8_t)(255 - i);
        rgb[i * 3] = rgba[i * 4] = r;
        rgb[i * 3 + 1] = rgba[i * 4 + 1] = g;
        rgb[i * 3 + 2] = rgba[i * 4 + 2] = b;
        rgba[i * 4 + 3] = (uint8_t)(i % 2 ? 255 : 128);
        want_rgb[i] = (0.299f * r + 0.587f * g + 0.114f * b) / 255.0f;
    }
    struct {
        const char *name;
        const void *px;
        png_uint_32 fmt;
        const float *want;
        int bit_depth, color_type;
    } cases[] = {
        {"gray8", g8, PNG_FORMAT_GRAY, want_gray, 8, 0},
        {"gray16", g16, PNG_FORMAT_LINEAR_Y, want16, 16, 0},
        {"rgb8", rgb, PNG_FORMAT_RGB, want_rgb, 8, 2},
        {"rgba8", rgba, PNG_FORMAT_RGBA, want_rgb, 8, 6},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t len;
        uint8_t *png = encode(cases[c].px, W, H, cases[c].fmt, &len);
        cxr_png_info info;
        CHECK(cxr_png_read_info(png, len, &info, err, sizeof err) == CXR_IMG_OK, "%s: %s",
              cases[c].name, err);
        CHECK(info.width == W && info.height == H, "%s dims", cases[c].name);
        CHECK(info.bit_depth == cases[c].bit_depth && info.color_type == cases[c].color_type,
              "%s: depth %d type %d", cases[c].name, info.bit_depth, info.color_type);
        CHECK(cxr_png_decode_gray(png, len, 1 << 20, out, W * H, err, sizeof err) == CXR_IMG_OK,
              "%s: %s", cases[c].name, err);
        double e = rel_error(out, cases[c].want, W * H);
        CHECK(e < 1e-5, "%s decoded values: error %.3g", cases[c].name, e);
        CHECK(cxr_png_decode_gray(png, len, W * H - 1, out, W * H, err, sizeof err) ==
                  CXR_IMG_TOO_LARGE,
              "%s: pixel limit not enforced", cases[c].name);
        free(png);
    }
}

static void
test_bad_inputs(void)
{
    enum { W = 31, H = 29 };
    uint8_t px[W * H];
    float out[W * H];
    char err[128];
    for (int i = 0; i < W * H; i++)
        px[i] = (uint8_t)(i * 13);
    size_t len;
    uint8_t *png = encode(px, W, H, PNG_FORMAT_GRAY, &len);
    CHECK(cxr_png_decode_gray(png, 0, 1 << 20, out, W * H, err, sizeof err) == CXR_IMG_NOT_PNG,
          "empty");
    CHECK(cxr_png_decode_gray((const uint8_t *)"GIF89a....", 10, 1 << 20, out, W * H, err,
                              sizeof err) == CXR_IMG_NOT_PNG,
          "not a png");
    /* every truncation fails cleanly */
    int truncation_failures = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, png, n);
        if (cxr_png_decode_gray(copy, n, 1 << 20, out, W * H, err, sizeof err) == CXR_IMG_OK)
            truncation_failures++;
        free(copy);
    }
    /* the last 12 bytes are IEND, which libpng does not need to return the pixels */
    CHECK(truncation_failures <= 12, "%d truncations decoded", truncation_failures);
    /* flipped bytes: an error or (rarely, in ancillary bytes) a clean decode, never a crash */
    int rejected = 0;
    for (size_t i = 8; i < len; i++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, png, len);
        copy[i] ^= 0x5a;
        if (cxr_png_decode_gray(copy, len, 1 << 20, out, W * H, err, sizeof err) != CXR_IMG_OK)
            rejected++;
        free(copy);
    }
    CHECK(rejected > (int)(len - 8) / 2, "only %d corruptions rejected", rejected);
    /* zero width, with a valid CRC */
    uint8_t *copy = malloc(len);
    memcpy(copy, png, len);
    memset(copy + 16, 0, 4);
    uint32_t crc = (uint32_t)crc32(0, copy + 12, 17);
    copy[29] = crc >> 24;
    copy[30] = crc >> 16;
    copy[31] = crc >> 8;
    copy[32] = crc;
    CHECK(cxr_png_decode_gray(copy, len, 1 << 20, out, W * H, err, sizeof err) == CXR_IMG_CORRUPT,
          "zero width accepted");
    /* absurd dimensions with a valid CRC: refused by the pixel limit before any allocation */
    memset(copy + 16, 0x7f, 8);
    crc = (uint32_t)crc32(0, copy + 12, 17);
    copy[29] = crc >> 24;
    copy[30] = crc >> 16;
    copy[31] = crc >> 8;
    copy[32] = crc;
    CHECK(cxr_png_decode_gray(copy, len, 1 << 20, out, W * H, err, sizeof err) ==
              CXR_IMG_TOO_LARGE,
          "absurd size not refused: %s", err);
    free(copy);
    free(png);
}

static void
test_resize(void)
{
    const char *dir = getenv("CXR_FIXTURES") ? getenv("CXR_FIXTURES") : "test/fixtures";
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/resize.safetensors", dir);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    CHECK(buf != NULL, "no resize fixture (run reference.py)");
    if (!buf)
        return;
    cxr_st_file f;
    CHECK(cxr_st_parse(buf, len, &f, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < f.n_tensors; i++) {
        const cxr_st_tensor *src = &f.tensors[i];
        if (strncmp(src->name, "src_", 4) != 0)
            continue;
        char dname[64];
        snprintf(dname, sizeof dname, "dst_%s", src->name + 4);
        const cxr_st_tensor *dst = cxr_st_find(&f, dname);
        int h = (int)src->shape[0], w = (int)src->shape[1];
        float *out = malloc(sizeof(float) * 299 * 299), *tmp = malloc(sizeof(float) * 299 * h);
        CHECK(cxr_resize_bilinear((const float *)(f.data + src->begin), w, h, out, 299, 299,
                                  tmp) == CXR_IMG_OK,
              "resize");
        double e = rel_error(out, (const float *)(f.data + dst->begin), 299 * 299);
        CHECK(e < 1e-5, "resize %dx%d: error %.3g against PyTorch", h, w, e);
        printf("  resize %4dx%-4d -> 299x299: max error vs PyTorch %.2e\n", h, w, e);
        free(out);
        free(tmp);
    }
    cxr_st_free(&f);
    free(buf);
}

/* A bare PNG header (signature + IHDR with a valid CRC, by zlib) with the given fields. */
static void
ihdr(uint8_t out[33], int bit_depth, int color_type, int compression, int filter, int interlace)
{
    static const uint8_t head[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                     0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    memcpy(out, head, 16);
    const uint8_t fields[13] = {0, 0, 0, 5, 0, 0, 0, 7, (uint8_t)bit_depth, (uint8_t)color_type,
                                (uint8_t)compression, (uint8_t)filter, (uint8_t)interlace};
    memcpy(out + 16, fields, 13);
    uint32_t crc = (uint32_t)crc32(0, out + 12, 17);
    out[29] = crc >> 24;
    out[30] = crc >> 16;
    out[31] = crc >> 8;
    out[32] = crc;
}

/* Each IHDR field is named in the message when it alone is wrong (PNG spec, 11.2.2). */
static void
test_header_fields(void)
{
    struct {
        int bd, ct, comp, filt, il;
        const char *want; /* NULL: valid */
    } cases[] = {
        {8, 0, 0, 0, 0, NULL},
        {16, 6, 0, 0, 1, NULL},
        {4, 3, 0, 0, 1, NULL},
        {8, 0, 0, 0, 2, "invalid interlace method 2"},
        {8, 2, 0, 0, 255, "invalid interlace method 255"},
        {8, 0, 1, 0, 0, "invalid compression method 1"},
        {8, 6, 0, 1, 0, "invalid filter method 1"},
        {8, 1, 0, 0, 0, "invalid color type 1"},
        {8, 7, 0, 0, 0, "invalid color type 7"},
        {4, 2, 0, 0, 0, "invalid bit depth 4 for color type 2"},
        {16, 3, 0, 0, 0, "invalid bit depth 16 for color type 3"},
        {3, 0, 0, 0, 0, "invalid bit depth 3 for color type 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t png[33];
        char err[128] = "";
        cxr_png_info info;
        ihdr(png, cases[i].bd, cases[i].ct, cases[i].comp, cases[i].filt, cases[i].il);
        cxr_img_status st = cxr_png_read_info(png, sizeof png, &info, err, sizeof err);
        if (!cases[i].want)
            CHECK(st == CXR_IMG_OK && info.width == 5 && info.height == 7,
                  "valid header %zu refused: %s", i, err);
        else
            CHECK(st == CXR_IMG_CORRUPT && strstr(err, cases[i].want),
                  "header %zu: status %d, message \"%s\", want \"%s\"", i, st, err,
                  cases[i].want);
    }
}

/* PyTorch's antialiased bilinear filter (upsample_bilinear2d_aa, align_corners=False) for one
 * output index, in double: taps[k] applies to input lo + k. Returns the tap count. */
static int
aa_taps(int in, int out, int i, int *lo, double *taps, int max_taps)
{
    double scale = (double)in / out, support = scale > 1 ? scale : 1;
    double center = scale * (i + 0.5);
    int a = (int)(center - support + 0.5), b = (int)(center + support + 0.5);
    a = a < 0 ? 0 : a;
    b = b > in ? in : b;
    double total = 0;
    int n = 0;
    for (int j = a; j < b && n < max_taps; j++, n++) {
        double x = fabs((j - center + 0.5) / support);
        taps[n] = x < 1 ? 1 - x : 0;
        total += taps[n];
    }
    for (int k = 0; k < n; k++)
        taps[k] /= total;
    *lo = a;
    return n;
}

/* The same filter as one direct 2D sum per output pixel, in double: no intermediate image, so
 * it cannot share the separable code's pass order. */
static double
direct_error(const float *src, int sw, int sh, const float *got, int dw, int dh)
{
    int max_taps = 2 * (sw / dw + sh / dh) + 8;
    double *tx = malloc(sizeof(double) * max_taps), *ty = malloc(sizeof(double) * max_taps);
    double worst = 0;
    for (int y = 0; y < dh; y++) {
        int y0, ny = aa_taps(sh, dh, y, &y0, ty, max_taps);
        for (int x = 0; x < dw; x++) {
            int x0, nx = aa_taps(sw, dw, x, &x0, tx, max_taps);
            double v = 0;
            for (int j = 0; j < ny; j++)
                for (int k = 0; k < nx; k++)
                    v += ty[j] * tx[k] * src[(size_t)(y0 + j) * sw + x0 + k];
            double e = fabs(v - got[(size_t)y * dw + x]);
            worst = e > worst ? e : worst;
        }
    }
    free(tx);
    free(ty);
    return worst;
}

/* Scratch bounded by the images, checked where it matters (tall thin sources, whose old
 * horizontal-first scratch was dw*sh) and on ordinary shapes. tmp is allocated at exactly the
 * advertised size, so an overrun shows under valgrind/ASan and usually as heap corruption. */
static void
test_resize_shapes(void)
{
    struct {
        int sw, sh, dw, dh;
        double tol;
    } cases[] = {
        {3, 20000, 64, 64, 1e-5},      /* vertical first */
        {40, 100000, 299, 299, 1e-5},  /* vertical first: 1.2 GB horizontal-first at 1M rows */
        {1, 5000, 300, 2, 1e-5},       /* vertical first, heavy on both axes */
        {37, 53, 299, 299, 1e-6},      /* ordinary: horizontal first */
        {400, 350, 299, 299, 1e-6},
        {1000, 240, 299, 299, 1e-6},
        {256, 256, 64, 64, 1e-6},
        {20000, 3, 64, 64, 1e-5},      /* wide: horizontal first is already small */
        {5, 9, 7, 3, 1e-6},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int sw = cases[c].sw, sh = cases[c].sh, dw = cases[c].dw, dh = cases[c].dh;
        size_t src_n = (size_t)sw * sh, dst_n = (size_t)dw * dh;
        size_t scratch = cxr_resize_scratch_floats(sw, sh, dw, dh);
        size_t bound = src_n > dst_n ? src_n : dst_n;
        CHECK(scratch <= bound, "%dx%d -> %dx%d: scratch %zu floats above max(src, dst) %zu", sw,
              sh, dw, dh, scratch, bound);
        /* ordinary shapes keep the horizontal-first pass and its dw*sh scratch */
        if ((size_t)dw * sh <= bound)
            CHECK(scratch == (size_t)dw * sh, "%dx%d -> %dx%d: scratch %zu, not dw*sh", sw, sh,
                  dw, dh, scratch);
        float *src = malloc(sizeof(float) * src_n), *dst = malloc(sizeof(float) * dst_n);
        float *tmp = malloc(sizeof(float) * scratch);
        uint32_t seed = (uint32_t)c + 1;
        for (size_t i = 0; i < src_n; i++) {
            seed = seed * 1664525u + 1013904223u;
            src[i] = (float)(seed >> 8) / (float)(1u << 24);
        }
        CHECK(cxr_resize_bilinear(src, sw, sh, dst, dw, dh, tmp) == CXR_IMG_OK, "resize");
        double e = direct_error(src, sw, sh, dst, dw, dh);
        CHECK(e <= cases[c].tol, "%dx%d -> %dx%d: max error %.3g against a direct 2D sum", sw,
              sh, dw, dh, e);
        printf("  resize %dx%d -> %dx%d: scratch %zu floats, max error vs direct 2D %.2e\n", sw,
               sh, dw, dh, scratch, e);
        free(src);
        free(dst);
        free(tmp);
    }
    /* sides outside 1..CXR_RESIZE_MAX_SIDE are refused before src or tmp is touched */
    float one = 0.5f, out1 = 0;
    CHECK(cxr_resize_bilinear(&one, 0, 1, &out1, 1, 1, NULL) == CXR_IMG_CORRUPT, "zero width");
    CHECK(cxr_resize_bilinear(&one, 1, 1, &out1, 1, -3, NULL) == CXR_IMG_CORRUPT,
          "negative height");
    CHECK(cxr_resize_bilinear(&one, CXR_RESIZE_MAX_SIDE + 1, 1, &out1, 1, 1, NULL) ==
              CXR_IMG_TOO_LARGE,
          "huge width");
    /* the bound over a grid of shapes, including degenerate sides */
    int sides[] = {1, 2, 3, 7, 64, 299, 1000, 100000};
    int n = sizeof sides / sizeof sides[0], bad = 0;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            for (int c = 0; c < n; c++)
                for (int d = 0; d < n; d++) {
                    size_t s = cxr_resize_scratch_floats(sides[a], sides[b], sides[c], sides[d]);
                    size_t src_n = (size_t)sides[a] * sides[b], dst_n = (size_t)sides[c] * sides[d];
                    bad += s > (src_n > dst_n ? src_n : dst_n) || s > (size_t)sides[c] * sides[b];
                }
    CHECK(bad == 0, "%d shapes whose scratch exceeds max(src, dst) or dw*sh", bad);
}

/* An RGB image survives PNG encoding: the independent reader sees its header. */
static void
test_encode(void)
{
    enum { W = 40, H = 30 };
    uint8_t rgb[W * H * 3], *png;
    size_t len;
    char err[128];
    for (int i = 0; i < W * H * 3; i++)
        rgb[i] = (uint8_t)(i * 7);
    CHECK(cxr_png_encode_rgb(rgb, W, H, &png, &len) == CXR_IMG_OK, "encode");
    cxr_png_info info;
    CHECK(cxr_png_read_info(png, len, &info, err, sizeof err) == CXR_IMG_OK &&
              info.width == W && info.height == H && info.color_type == 2,
          "encoded PNG header");
    free(png);
}

int
main(void)
{
    test_formats();
    test_bad_inputs();
    test_resize();
    test_resize_shapes();
    test_header_fields();
    test_encode();
    return harness_finish("test_image");
}

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

static void
test_overlay(void)
{
    enum { W = 40, H = 30, S = 4 };
    float gray[W * H], map[S * S], tmp[W * H + W * S];
    uint8_t rgb[W * H * 3], *png;
    size_t len;
    char err[128];
    for (int i = 0; i < W * H; i++)
        gray[i] = 0.5f;
    for (int i = 0; i < S * S; i++)
        map[i] = i == S * S - 1 ? 1.0f : 0.0f;
    cxr_heatmap_overlay(gray, W, H, map, S, rgb, tmp);
    /* the attended corner is red, the far corner blue-ish */
    const uint8_t *hot = rgb + ((H - 1) * W + W - 1) * 3, *cold = rgb;
    CHECK(hot[0] > hot[2] && cold[2] > cold[0], "heat map colours");
    CHECK(cxr_png_encode_rgb(rgb, W, H, &png, &len) == CXR_IMG_OK, "encode");
    cxr_png_info info;
    CHECK(cxr_png_read_info(png, len, &info, err, sizeof err) == CXR_IMG_OK &&
              info.width == W && info.height == H && info.color_type == 2,
          "overlay PNG header");
    free(png);
}

int
main(void)
{
    test_formats();
    test_bad_inputs();
    test_resize();
    test_overlay();
    return harness_finish("test_image");
}

/* Model files: a valid file round-trips; every kind of malformed file is refused with a message,
 * never a crash or an out-of-bounds read (run under valgrind or ASan to see the latter). */
#include <string.h>

#include "cxr_model.h"
#include "harness.h"

static uint8_t *valid;
static size_t valid_len, header_len;

/* Loads buf and expects failure whose message contains `want` (NULL: any message). */
static void
expect_refused(const char *what, const uint8_t *buf, size_t len, const char *want)
{
    char err[CXR_ERR_LEN] = "";
    cxr_model *m = cxr_model_load(buf, len, err);
    CHECK(m == NULL, "%s: accepted", what);
    CHECK(err[0] != '\0', "%s: no message", what);
    if (want)
        CHECK(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err, want);
    cxr_model_free(m);
}

/* The valid file with its header text replaced (data kept), header length recomputed. */
static uint8_t *
with_header(const char *header, size_t *len)
{
    size_t hl = strlen(header), data = valid_len - 8 - header_len;
    uint8_t *buf = malloc(8 + hl + data);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    memcpy(buf + 8 + hl, valid + 8 + header_len, data);
    *len = 8 + hl + data;
    return buf;
}

static char *
header_text(void)
{
    char *h = malloc(header_len + 1);
    memcpy(h, valid + 8, header_len);
    h[header_len] = '\0';
    return h;
}

/* Replaces the first occurrence of `from` in the header with `to` and checks refusal. */
static void
mutate(const char *what, const char *from, const char *to, const char *want)
{
    char *h = header_text(), *at = strstr(h, from);
    CHECK(at != NULL, "%s: pattern %s not in header", what, from);
    if (!at) {
        free(h);
        return;
    }
    size_t n = strlen(h) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - h), h, to, at + strlen(from));
    size_t len;
    uint8_t *buf = with_header(out, &len);
    expect_refused(what, buf, len, want);
    free(buf);
    free(out);
    free(h);
}

int
main(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("alexnet_attn2", 1, 299, 42, err);
    CHECK(m != NULL, "create: %s", err);
    CHECK(cxr_model_save(m, &valid, &valid_len) == 0, "save");
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | valid[i];
    cxr_model *again = cxr_model_load(valid, valid_len, err);
    CHECK(again && memcmp(again->params, m->params, m->n_params * 4) == 0, "round trip: %s", err);
    CHECK(again && again->attention_scaled == 1, "attention_score kept");
    cxr_model_free(again);

    /* truncated: every length through the header, then a spread through the data */
    for (size_t n = 0; n < 8 + header_len + 64; n++)
        expect_refused("truncated", valid, n, NULL);
    for (size_t n = 8 + header_len; n < valid_len; n += valid_len / 97 + 1)
        expect_refused("truncated data", valid, n, NULL);

    uint8_t *buf = malloc(valid_len);
    memcpy(buf, valid, valid_len);
    buf[7] = 0x40; /* header length past the end */
    expect_refused("header length past the end", buf, valid_len, "header length");
    free(buf);

    mutate("offsets outside", "\"data_offsets\":[0,", "\"data_offsets\":[999999999999,", "outside");
    mutate("overlap", "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[",
           "\"conv1.bias\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256],\"x\":[", NULL);
    mutate("wrong dtype", "\"dtype\":\"F32\"", "\"dtype\":\"F16\"", "dtype");
    mutate("wrong shape", "\"shape\":[64,3,11,11]", "\"shape\":[64,3,121,1]", "shape");
    mutate("missing tensor", "\"fc2.bias\"", "\"fc2.blas\"", "lacks tensor");
    mutate("unknown arch", "\"arch\":\"alexnet_attn2\"", "\"arch\":\"vgg16\"", "unknown architecture");
    mutate("no arch", "\"arch\":", "\"arc\":", "arch");
    mutate("bad score", "\"scaled_dot\"", "\"cosine\"", "attention_score");
    mutate("absurd shape", "\"shape\":[64,3,11,11]", "\"shape\":[9223372036854775807,3,11,11]", NULL);
    mutate("huge number", "\"shape\":[64,3,11,11]", "\"shape\":[99999999999999999999999,3]", "too large");
    mutate("negative", "\"shape\":[64,3,11,11]", "\"shape\":[-64,3,11,11]", "negative");
    mutate("bad input size", "\"input_size\":\"299\"", "\"input_size\":\"abc\"", "input_size");
    mutate("small input size", "\"input_size\":\"299\"", "\"input_size\":\"64\"", NULL);
    mutate("unterminated", "\"format\":\"pt\"", "\"format\":\"pt", NULL);
    mutate("trailing garbage", "\"format\":\"pt\"", "\"format\":\"pt\"}}", NULL);
    mutate("deep nesting", "\"format\":\"pt\"", "\"format\":[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]", NULL);

    /* duplicate tensor name */
    {
        char *h = header_text();
        char *dup = malloc(strlen(h) + 128);
        size_t l = strlen(h);
        memcpy(dup, h, l - 1);
        while (dup[l - 2] == ' ')
            l--;
        snprintf(dup + l - 2, 128, "},\"fc2.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        size_t len;
        uint8_t *b = with_header(dup, &len);
        expect_refused("duplicate", b, len, "twice");
        free(b);
        free(dup);
        free(h);
    }

    /* NaN weights */
    buf = malloc(valid_len);
    memcpy(buf, valid, valid_len);
    memset(buf + 8 + header_len + 40, 0xff, 4);
    expect_refused("NaN weights", buf, valid_len, "NaN");
    free(buf);

    /* BatchNorm running variance: zero is a valid (if degenerate) variance; a negative one
     * is impossible for a variance and would make every activation after it NaN */
    {
        const cxr_param_info *rv = cxr_model_tensor(m, "bn2.running_var");
        float *p = m->params + rv->offset + 5, keep = *p;
        uint8_t *file;
        size_t flen;
        *p = 0.0f;
        CHECK(cxr_model_save(m, &file, &flen) == 0, "save");
        cxr_model *z = cxr_model_load(file, flen, err);
        CHECK(z != NULL, "zero running variance refused: %s", err);
        cxr_model_free(z);
        free(file);
        *p = -1.0f;
        CHECK(cxr_model_save(m, &file, &flen) == 0, "save");
        expect_refused("negative running variance", file, flen,
                       "tensor \"bn2.running_var\" has a negative value");
        free(file);
        *p = keep;
    }

    /* random byte flips in the header: refused or loaded, never a crash */
    int loaded = 0;
    for (int r = 0; r < 3000; r++) {
        buf = malloc(valid_len);
        memcpy(buf, valid, valid_len);
        for (int k = 0; k < 3; k++) {
            size_t pos = 8 + (size_t)(cxr_uniform(99, r * 3 + k) * header_len);
            buf[pos] = (uint8_t)(cxr_uniform(98, r * 3 + k) * 256);
        }
        cxr_model *x = cxr_model_load(buf, valid_len, err);
        loaded += x != NULL;
        cxr_model_free(x);
        free(buf);
    }
    printf("  3000 header mutations: %d still loaded (harmless changes, e.g. in spaces)\n", loaded);

    cxr_model_free(m);
    free(valid);
    return harness_finish("test_model_file");
}

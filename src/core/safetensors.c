#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxr_safetensors.h"

typedef struct {
    const char *p, *end;
    char *err;
    size_t errlen;
    int failed;
} json_cursor;

static int fail(json_cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(json_cursor *c, const char *fmt, ...)
{
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
        c->failed = 1;
    }
    return -1;
}

static void
skip_ws(json_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int
expect(json_cursor *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return fail(c, "malformed safetensors header: expected '%c'", ch);
    c->p++;
    return 0;
}

static int
peek(json_cursor *c, char ch)
{
    skip_ws(c);
    return c->p < c->end && *c->p == ch;
}

static int
hex_value(char h)
{
    if (h >= '0' && h <= '9')
        return h - '0';
    if (h >= 'a' && h <= 'f')
        return h - 'a' + 10;
    if (h >= 'A' && h <= 'F')
        return h - 'A' + 10;
    return -1;
}

/* Reads a JSON string into out (NUL-terminated); out == NULL skips it. */
static int
parse_string(json_cursor *c, char *out, size_t cap)
{
    size_t n = 0;
    if (expect(c, '"'))
        return -1;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p++;
        unsigned code = ch;
        if (ch < 0x20)
            return fail(c, "malformed safetensors header: control character in string");
        if (ch == '\\') {
            if (c->p >= c->end)
                break;
            char e = *c->p++;
            switch (e) {
            case '"': code = '"'; break;
            case '\\': code = '\\'; break;
            case '/': code = '/'; break;
            case 'b': code = '\b'; break;
            case 'f': code = '\f'; break;
            case 'n': code = '\n'; break;
            case 'r': code = '\r'; break;
            case 't': code = '\t'; break;
            case 'u':
                if (c->end - c->p < 4)
                    return fail(c, "malformed safetensors header: bad \\u escape");
                code = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hex_value(c->p[i]);
                    if (h < 0)
                        return fail(c, "malformed safetensors header: bad \\u escape");
                    code = code * 16 + (unsigned)h;
                }
                c->p += 4;
                if (code == 0 || code > 0x7f)
                    code = '?'; /* names and metadata we use are ASCII */
                break;
            default:
                return fail(c, "malformed safetensors header: bad escape");
            }
        }
        if (out) {
            if (n + 1 >= cap)
                return fail(c, "safetensors header: string longer than %zu bytes", cap - 1);
            out[n++] = (char)code;
        }
    }
    if (c->p >= c->end)
        return fail(c, "malformed safetensors header: unterminated string");
    c->p++;
    if (out)
        out[n] = '\0';
    return 0;
}

static int
parse_int(json_cursor *c, int64_t *value)
{
    skip_ws(c);
    int64_t v = 0;
    int digits = 0;
    if (c->p < c->end && *c->p == '-')
        return fail(c, "safetensors header: negative size or offset");
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return fail(c, "safetensors header: number too large");
        v = v * 10 + (*c->p++ - '0');
        digits++;
    }
    if (!digits)
        return fail(c, "malformed safetensors header: expected an integer");
    *value = v;
    return 0;
}

static int
skip_value(json_cursor *c, int depth)
{
    if (depth > 16)
        return fail(c, "safetensors header nested too deeply");
    skip_ws(c);
    if (c->p >= c->end)
        return fail(c, "malformed safetensors header: truncated");
    char ch = *c->p;
    if (ch == '"')
        return parse_string(c, NULL, 0);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        if (peek(c, close)) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                if (parse_string(c, NULL, 0) || expect(c, ':'))
                    return -1;
            }
            if (skip_value(c, depth + 1))
                return -1;
            if (peek(c, ',')) {
                c->p++;
                continue;
            }
            return expect(c, close);
        }
    }
    /* number, true, false, null */
    const char *start = c->p;
    while (c->p < c->end && strchr("+-.0123456789eEtruefalsn", *c->p))
        c->p++;
    if (c->p == start)
        return fail(c, "malformed safetensors header: unexpected character");
    return 0;
}

static int
parse_metadata(json_cursor *c, cxr_st_file *f)
{
    if (expect(c, '{'))
        return -1;
    if (peek(c, '}')) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (f->n_meta >= 64)
            return fail(c, "safetensors header: too many metadata entries");
        cxr_st_meta *m = &f->meta[f->n_meta++];
        if (parse_string(c, m->key, sizeof m->key) || expect(c, ':') ||
            parse_string(c, m->value, sizeof m->value))
            return -1;
        if (peek(c, ',')) {
            c->p++;
            continue;
        }
        return expect(c, '}');
    }
}

static int
parse_tensor(json_cursor *c, cxr_st_tensor *t)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    if (expect(c, '{'))
        return -1;
    for (;;) {
        char key[32];
        if (parse_string(c, key, sizeof key) || expect(c, ':'))
            return -1;
        if (strcmp(key, "dtype") == 0) {
            char dtype[16];
            if (parse_string(c, dtype, sizeof dtype))
                return -1;
            if (strcmp(dtype, "F32") == 0)
                t->dtype = CXR_ST_F32;
            else if (strcmp(dtype, "I64") == 0)
                t->dtype = CXR_ST_I64;
            else if (strcmp(dtype, "I32") == 0)
                t->dtype = CXR_ST_I32;
            else
                return fail(c, "tensor \"%s\" has dtype %s; F32, I32 and I64 are supported", t->name,
                            dtype);
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (expect(c, '['))
                return -1;
            t->ndim = 0;
            if (peek(c, ']'))
                c->p++;
            else
                for (;;) {
                    if (t->ndim >= CXR_ST_MAX_DIMS)
                        return fail(c, "tensor \"%s\" has too many dimensions", t->name);
                    if (parse_int(c, &t->shape[t->ndim++]))
                        return -1;
                    if (peek(c, ',')) {
                        c->p++;
                        continue;
                    }
                    if (expect(c, ']'))
                        return -1;
                    break;
                }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            int64_t b, e;
            if (expect(c, '[') || parse_int(c, &b) || expect(c, ',') || parse_int(c, &e) ||
                expect(c, ']'))
                return -1;
            t->begin = (size_t)b;
            t->end = (size_t)e;
            have_offsets = 1;
        } else if (skip_value(c, 1))
            return -1;
        if (peek(c, ',')) {
            c->p++;
            continue;
        }
        if (expect(c, '}'))
            return -1;
        break;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return fail(c, "tensor \"%s\" lacks dtype, shape or data_offsets", t->name);
    return 0;
}

static int
compare_begin(const void *a, const void *b)
{
    const cxr_st_tensor *x = *(const cxr_st_tensor *const *)a, *y = *(const cxr_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int
validate_extents(json_cursor *c, cxr_st_file *f)
{
    cxr_st_tensor **order = malloc(sizeof(*order) * (f->n_tensors ? f->n_tensors : 1));
    if (!order)
        return fail(c, "out of memory");
    for (int i = 0; i < f->n_tensors; i++) {
        cxr_st_tensor *t = &f->tensors[i];
        /* element count with overflow checks, bounded by the data actually present */
        size_t numel = 1, elem = cxr_st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] != 0 && numel > f->data_len / (size_t)t->shape[d]) {
                free(order);
                return fail(c, "tensor \"%s\" is larger than the file", t->name);
            }
            numel *= (size_t)t->shape[d];
        }
        if (t->begin > t->end || t->end > f->data_len) {
            free(order);
            return fail(c, "tensor \"%s\" has data offsets outside the file", t->name);
        }
        if (numel > f->data_len / elem || t->end - t->begin != numel * elem) {
            free(order);
            return fail(c, "tensor \"%s\": data size does not match its dtype and shape",
                        t->name);
        }
        order[i] = t;
    }
    qsort(order, f->n_tensors, sizeof(*order), compare_begin);
    for (int i = 1; i < f->n_tensors; i++)
        if (order[i]->begin < order[i - 1]->end) {
            fail(c, "tensors \"%s\" and \"%s\" overlap", order[i - 1]->name, order[i]->name);
            free(order);
            return -1;
        }
    free(order);
    return 0;
}

int
cxr_st_parse(const uint8_t *buf, size_t len, cxr_st_file *f, char *err, size_t errlen)
{
    json_cursor c = {.err = err, .errlen = errlen};
    memset(f, 0, sizeof *f);
    if (len < 8) {
        snprintf(err, errlen, "not a safetensors file: %zu bytes", len);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > CXR_ST_MAX_HEADER || hlen > len - 8) {
        snprintf(err, errlen, "safetensors header length %llu exceeds the file (%zu bytes)",
                 (unsigned long long)hlen, len);
        return -1;
    }
    c.p = (const char *)buf + 8;
    c.end = c.p + hlen;
    f->data = buf + 8 + hlen;
    f->data_len = len - 8 - hlen;
    f->tensors = calloc(CXR_ST_MAX_TENSORS, sizeof *f->tensors);
    f->meta = calloc(64, sizeof *f->meta);
    if (!f->tensors || !f->meta) {
        cxr_st_free(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (expect(&c, '{'))
        goto bad;
    if (peek(&c, '}'))
        c.p++;
    else
        for (;;) {
            char name[CXR_ST_NAME_MAX];
            if (parse_string(&c, name, sizeof name) || expect(&c, ':'))
                goto bad;
            if (strcmp(name, "__metadata__") == 0) {
                if (parse_metadata(&c, f))
                    goto bad;
            } else {
                if (f->n_tensors >= CXR_ST_MAX_TENSORS) {
                    fail(&c, "safetensors file has too many tensors");
                    goto bad;
                }
                if (cxr_st_find(f, name)) {
                    fail(&c, "tensor \"%s\" appears twice", name);
                    goto bad;
                }
                cxr_st_tensor *t = &f->tensors[f->n_tensors++];
                memcpy(t->name, name, sizeof name);
                if (parse_tensor(&c, t))
                    goto bad;
            }
            if (peek(&c, ',')) {
                c.p++;
                continue;
            }
            if (expect(&c, '}'))
                goto bad;
            break;
        }
    skip_ws(&c);
    if (c.p != c.end) {
        fail(&c, "malformed safetensors header: trailing bytes after the JSON object");
        goto bad;
    }
    if (validate_extents(&c, f))
        goto bad;
    return 0;
bad:
    cxr_st_free(f);
    return -1;
}

void
cxr_st_free(cxr_st_file *f)
{
    free(f->tensors);
    free(f->meta);
    f->tensors = NULL;
    f->meta = NULL;
    f->n_tensors = f->n_meta = 0;
}

const cxr_st_tensor *
cxr_st_find(const cxr_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

const char *
cxr_st_meta_get(const cxr_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

size_t
cxr_st_dtype_size(cxr_st_dtype t)
{
    return t == CXR_ST_I64 ? 8 : 4;
}

static const char *
dtype_name(cxr_st_dtype t)
{
    return t == CXR_ST_F32 ? "F32" : t == CXR_ST_I64 ? "I64" : "I32";
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text;

__attribute__((format(printf, 2, 3))) static void
put(text *t, const char *fmt, ...)
{
    while (!t->failed) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)k < t->cap - t->len) {
            t->len += (size_t)k;
            return;
        }
        char *bigger = realloc(t->buf, 2 * t->cap + (size_t)k + 1);
        if (!bigger) {
            t->failed = 1;
            return;
        }
        t->buf = bigger;
        t->cap = 2 * t->cap + (size_t)k + 1;
    }
}

/* a JSON string: quotes, backslashes and control characters escaped */
static void
put_string(text *t, const char *s)
{
    put(t, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            put(t, "\\%c", ch);
        else if (ch < 0x20)
            put(t, "\\u%04x", ch);
        else
            put(t, "%c", ch);
    }
    put(t, "\"");
}

int
cxr_st_write(const cxr_st_meta_out *meta, int n_meta, const cxr_st_tensor_out *tensors,
             int n_tensors, uint8_t **out, size_t *out_len)
{
    text h = {malloc(4096), 0, 4096, 0};
    if (!h.buf)
        return -1;
    size_t offset = 0;
    put(&h, "{\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
        put(&h, "%s", i ? "," : "");
        put_string(&h, meta[i].key);
        put(&h, ":");
        put_string(&h, meta[i].value);
    }
    put(&h, "}");
    for (int i = 0; i < n_tensors; i++) {
        const cxr_st_tensor_out *t = &tensors[i];
        size_t numel = 1;
        put(&h, ",");
        put_string(&h, t->name);
        put(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) {
            put(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            numel *= (size_t)t->shape[d];
        }
        size_t bytes = numel * cxr_st_dtype_size(t->dtype);
        put(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    put(&h, "}");
    while (h.len % 8)
        put(&h, " ");
    uint8_t *buf = h.failed ? NULL : malloc(8 + h.len + offset);
    if (!buf) {
        free(h.buf);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.buf, h.len);
    uint8_t *data = buf + 8 + h.len;
    for (int i = 0; i < n_tensors; i++) {
        const cxr_st_tensor_out *t = &tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (size_t)t->shape[d];
        size_t bytes = numel * cxr_st_dtype_size(t->dtype);
        if (bytes)
            memcpy(data, t->data, bytes);
        data += bytes;
    }
    free(h.buf);
    *out = buf;
    *out_len = 8 + h.len + offset;
    return 0;
}

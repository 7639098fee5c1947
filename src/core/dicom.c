/* DICOM Part 10 reader (PS3.10 file format, PS3.5 data encoding): preamble and 'DICM', the
 * file meta group, the transfer syntax, an index of the top-level elements, and the first
 * frame of Pixel Data handed to dicom_pixels.c or a codec (cxr_codec.h).
 *
 * Bounds: every length is checked against the bytes left before it is used; sequences are
 * walked iteratively with an explicit stack of CXR_DICOM_MAX_DEPTH levels; a deflated dataset
 * inflates to at most CXR_DICOM_MAX_INFLATED bytes and CXR_DICOM_MAX_INFLATE_RATIO times its
 * size; pixel buffers are allocated only after Rows x Columns has been checked.
 *
 * Frame 1 of encapsulated Pixel Data (PS3.5 A.4): the fragments whose offsets (from the first
 * fragment's item tag) lie in [offset table entry 1, entry 2) when the basic offset table has
 * two entries or more; all fragments when it has fewer and the file has one frame; the first
 * fragment alone when it has fewer and the file has several frames (where frames cannot be
 * told apart without the table, one fragment per frame is what the standard's RLE and most
 * writers use). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cxr_codec.h"
#include "cxr_dicom.h"
#include "cxr_dicom_internal.h"
#include "cxr_large_buffer.h"
#include "cxr_interrupt.h"

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define TAG_ITEM CXR_DICOM_TAG(0xFFFE, 0xE000)
#define TAG_ITEM_DELIMITER CXR_DICOM_TAG(0xFFFE, 0xE00D)
#define TAG_SEQUENCE_DELIMITER CXR_DICOM_TAG(0xFFFE, 0xE0DD)
#define TAG_PIXEL_DATA CXR_DICOM_TAG(0x7FE0, 0x0010)
#define TAG_TRANSFER_SYNTAX CXR_DICOM_TAG(0x0002, 0x0010)

typedef struct {
    int expl, be;
} syntax;

static const syntax IMPLICIT_LE = {0, 0}, EXPLICIT_LE = {1, 0}, EXPLICIT_BE = {1, 1};

typedef enum { CODEC_NATIVE, CODEC_RLE, CODEC_JPEG, CODEC_J2K, CODEC_NONE } codec_kind;

typedef struct {
    uint32_t tag;
    char vr[3];
    uint32_t len;
    const uint8_t *value;
} element;

struct cxr_dicom {
    cxr_dicom_info info;
    codec_kind codec;
    const char *ts_name;
    uint8_t *inflated;          /* a deflated dataset, inflated */
    element *elems;
    size_t n_elems, cap_elems;
    int has_pixel_data, pixel_undefined, pixel_words_swapped;
    /* a pixel-module problem seen while parsing: the tags remain readable, decoding fails */
    cxr_img_status deferred;
    char deferred_msg[200];
};

/* ---- transfer syntaxes ---- */

typedef enum { TS_IMPLICIT, TS_EXPLICIT, TS_DEFLATED, TS_BIG_ENDIAN, TS_ENCAPSULATED } ts_kind;

static const struct {
    const char *uid, *name;
    ts_kind kind;
    codec_kind codec;
} transfer_syntaxes[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", TS_IMPLICIT, CODEC_NATIVE},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", TS_EXPLICIT, CODEC_NATIVE},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", TS_DEFLATED, CODEC_NATIVE},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", TS_BIG_ENDIAN, CODEC_NATIVE},
    {"1.2.840.10008.1.2.5", "RLE Lossless", TS_ENCAPSULATED, CODEC_RLE},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", TS_ENCAPSULATED, CODEC_JPEG},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", TS_ENCAPSULATED, CODEC_JPEG},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", TS_ENCAPSULATED,
     CODEC_JPEG},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
     TS_ENCAPSULATED, CODEC_JPEG},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 Image Compression (Lossless Only)", TS_ENCAPSULATED,
     CODEC_J2K},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000 Image Compression", TS_ENCAPSULATED, CODEC_J2K},
    /* known, encapsulated (so the dataset is read), but not decoded */
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.52", "JPEG Extended (Process 3 & 5), retired", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.53", "JPEG Spectral Selection, Non-Hierarchical, retired",
     TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.55", "JPEG Full Progression, Non-Hierarchical, retired",
     TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.58", "JPEG Lossless, Non-Hierarchical (Process 15), retired",
     TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2 Multi-component (Lossless Only)",
     TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.93", "JPEG 2000 Part 2 Multi-component", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.101", "MPEG2 Main Profile / High Level", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 High Profile", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 BD-compatible High Profile", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 High Profile For 2D Video", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 High Profile For 3D Video", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 Stereo High Profile", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.107", "HEVC/H.265 Main Profile", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.108", "HEVC/H.265 Main 10 Profile", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.110", "JPEG XL Lossless", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.111", "JPEG XL JPEG Recompression", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.112", "JPEG XL", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", TS_ENCAPSULATED,
     CODEC_NONE},
    {"1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
     TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", TS_ENCAPSULATED, CODEC_NONE},
    {"1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian",
     TS_ENCAPSULATED, CODEC_NONE},
};
#define N_TRANSFER_SYNTAXES (sizeof transfer_syntaxes / sizeof transfer_syntaxes[0])

/* ---- bytes ---- */

static uint16_t
rd16(const uint8_t *p, int be)
{
    return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t
rd32(const uint8_t *p, int be)
{
    return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
              : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint32_t
rd_tag(const uint8_t *p, int be)
{
    return CXR_DICOM_TAG(rd16(p, be), rd16(p + 2, be));
}

/* ---- value representations ---- */

static const char known_vrs[][3] = {
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL",
    "SS", "ST", "TM", "UI", "UL", "US", "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC",
    "UN", "UR", "UT", "UV",
};
#define N_SHORT_VRS 21 /* the first ones: 2-byte lengths in explicit VR */

static int
vr_index(const uint8_t *p)
{
    for (int i = 0; i < (int)(sizeof known_vrs / sizeof known_vrs[0]); i++)
        if (known_vrs[i][0] == (char)p[0] && known_vrs[i][1] == (char)p[1])
            return i;
    return -1;
}

/* What implicit VR needs to know: the pixel module, the tags cxr_dicom_tags reads, and which
 * elements are sequences. */
static const struct {
    uint32_t tag;
    char vr[3];
} dictionary[] = {
    {CXR_DICOM_TAG(0x0002, 0x0010), "UI"}, {CXR_DICOM_TAG(0x0008, 0x0016), "UI"},
    {CXR_DICOM_TAG(0x0008, 0x0018), "UI"}, {CXR_DICOM_TAG(0x0008, 0x0060), "CS"},
    {CXR_DICOM_TAG(0x0018, 0x0015), "CS"}, {CXR_DICOM_TAG(0x0018, 0x5101), "CS"},
    {CXR_DICOM_TAG(0x0020, 0x000D), "UI"}, {CXR_DICOM_TAG(0x0020, 0x000E), "UI"},
    {CXR_DICOM_TAG(0x0028, 0x0002), "US"}, {CXR_DICOM_TAG(0x0028, 0x0004), "CS"},
    {CXR_DICOM_TAG(0x0028, 0x0006), "US"}, {CXR_DICOM_TAG(0x0028, 0x0008), "IS"},
    {CXR_DICOM_TAG(0x0028, 0x0010), "US"}, {CXR_DICOM_TAG(0x0028, 0x0011), "US"},
    {CXR_DICOM_TAG(0x0028, 0x0030), "DS"}, {CXR_DICOM_TAG(0x0028, 0x0100), "US"},
    {CXR_DICOM_TAG(0x0028, 0x0101), "US"}, {CXR_DICOM_TAG(0x0028, 0x0102), "US"},
    {CXR_DICOM_TAG(0x0028, 0x0103), "US"}, {CXR_DICOM_TAG(0x0028, 0x1050), "DS"},
    {CXR_DICOM_TAG(0x0028, 0x1051), "DS"}, {CXR_DICOM_TAG(0x0028, 0x1052), "DS"},
    {CXR_DICOM_TAG(0x0028, 0x1053), "DS"}, {CXR_DICOM_TAG(0x0028, 0x1056), "CS"},
    {CXR_DICOM_TAG(0x0028, 0x3002), "US"}, {CXR_DICOM_TAG(0x0028, 0x3006), "OW"},
    {CXR_DICOM_TAG(0x0028, 0x3010), "SQ"}, {CXR_DICOM_TAG(0x7FE0, 0x0010), "OW"},
};

static void
dictionary_vr(uint32_t tag, char vr[3])
{
    const char *v = (tag & 0xFFFFu) == 0 ? "UL" : "UN"; /* group lengths are UL */
    for (size_t i = 0; i < sizeof dictionary / sizeof dictionary[0]; i++)
        if (dictionary[i].tag == tag)
            v = dictionary[i].vr;
    memcpy(vr, v, 3);
}

/* ---- element headers ---- */

typedef struct {
    uint32_t tag;
    char vr[3];   /* "" for items and delimiters */
    uint32_t len; /* UNDEFINED_LENGTH or checked to fit before the limit */
    size_t value; /* offset of the value */
} header;

static cxr_img_status
corrupt(char *err, size_t errlen, const char *what, uint32_t tag, size_t at)
{
    snprintf(err, errlen, "corrupt DICOM file: %s (%04X,%04X) at offset %zu", what, tag >> 16,
             tag & 0xFFFFu, at);
    return CXR_IMG_CORRUPT;
}

static cxr_img_status
read_header(const uint8_t *b, size_t pos, size_t limit, syntax s, header *h, char *err,
            size_t errlen)
{
    if (limit - pos < 8) {
        snprintf(err, errlen, "corrupt DICOM file: truncated element at offset %zu (%zu bytes "
                 "left)", pos, limit - pos);
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *p = b + pos;
    h->tag = rd_tag(p, s.be);
    if (h->tag >> 16 == 0xFFFE) {
        h->vr[0] = '\0';
        h->len = rd32(p + 4, s.be);
        h->value = pos + 8;
    } else if (s.expl) {
        int k = vr_index(p + 4);
        if (k < 0)
            return corrupt(err, errlen, "invalid value representation in element", h->tag, pos);
        memcpy(h->vr, known_vrs[k], 3);
        if (k >= N_SHORT_VRS) {
            if (limit - pos < 12) {
                snprintf(err, errlen, "corrupt DICOM file: truncated element at offset %zu",
                         pos);
                return CXR_IMG_CORRUPT;
            }
            h->len = rd32(p + 8, s.be);
            h->value = pos + 12;
        } else {
            h->len = rd16(p + 6, s.be);
            h->value = pos + 8;
        }
    } else {
        h->len = rd32(p + 4, s.be);
        h->value = pos + 8;
        dictionary_vr(h->tag, h->vr);
    }
    if (h->len != UNDEFINED_LENGTH && h->len > limit - h->value) {
        snprintf(err, errlen, "corrupt DICOM file: element (%04X,%04X) at offset %zu has %u "
                 "bytes, past the end (%zu left)", h->tag >> 16, h->tag & 0xFFFFu, pos, h->len,
                 limit - h->value);
        return CXR_IMG_CORRUPT;
    }
    return CXR_IMG_OK;
}

/* ---- sequences ---- */

enum { W_PLAIN = -1, W_SEQUENCE = 0, W_ITEM, W_FRAGMENTS };

/* Whether an element's value is a sequence of items (a dataset's SQ, an implicit VR
 * undefined length, UN of undefined length, whose content is implicit VR little endian per
 * PS3.5 6.2.2) or encapsulated fragments (OB/OW of undefined length), and its syntax. */
static cxr_img_status
nested_kind(const header *h, syntax s, int *kind, syntax *inner, size_t at, char *err,
            size_t errlen)
{
    int undefined = h->len == UNDEFINED_LENGTH;
    *inner = s;
    *kind = W_PLAIN;
    if (h->tag == TAG_PIXEL_DATA && undefined)
        *kind = W_FRAGMENTS;
    else if (strcmp(h->vr, "SQ") == 0)
        *kind = W_SEQUENCE;
    else if (undefined && (!s.expl || strcmp(h->vr, "UN") == 0)) {
        *kind = W_SEQUENCE;
        *inner = s.expl ? IMPLICIT_LE : s;
    } else if (undefined && (strcmp(h->vr, "OB") == 0 || strcmp(h->vr, "OW") == 0))
        *kind = W_FRAGMENTS;
    else if (undefined)
        return corrupt(err, errlen, "undefined length on a value that cannot have one",
                       h->tag, at);
    return CXR_IMG_OK;
}

typedef struct {
    int kind;
    syntax s;
    int undefined;
    size_t end; /* defined: the value's end; undefined: the enclosing limit */
} walk_frame;

/* Walks a sequence (or fragments) value from pos without recursion: *value_end is where the
 * value ends (the delimiter's offset when undefined), *next the offset after it. Nesting past
 * CXR_DICOM_MAX_DEPTH sequences (this one included) is corrupt. */
static cxr_img_status
walk(const uint8_t *b, size_t pos, size_t limit, syntax s, int kind, uint32_t len,
     size_t *value_end, size_t *next, char *err, size_t errlen)
{
    walk_frame st[2 * CXR_DICOM_MAX_DEPTH + 1];
    int top = 0, depth = 1;
    int undefined = len == UNDEFINED_LENGTH;
    st[0] = (walk_frame){kind, s, undefined, undefined ? limit : pos + len};
    for (;;) {
        walk_frame f = st[top];
        if (!f.undefined && pos == f.end) {
            if (top == 0) {
                *value_end = *next = pos;
                return CXR_IMG_OK;
            }
            depth -= f.kind != W_ITEM;
            top--;
            continue;
        }
        if (f.end - pos < 8) {
            if (f.undefined && pos == f.end) {
                snprintf(err, errlen, "corrupt DICOM file: undefined length %s without its "
                         "delimiter before offset %zu",
                         f.kind == W_ITEM ? "item" : "sequence", pos);
                return CXR_IMG_CORRUPT;
            }
            snprintf(err, errlen, "corrupt DICOM file: truncated %s at offset %zu",
                     f.kind == W_ITEM ? "item" : "sequence", pos);
            return CXR_IMG_CORRUPT;
        }
        uint32_t tag = rd_tag(b + pos, f.s.be), l = rd32(b + pos + 4, f.s.be);
        if (f.kind != W_ITEM) {
            if (tag == TAG_SEQUENCE_DELIMITER && f.undefined) {
                size_t at = pos;
                pos += 8;
                if (top == 0) {
                    *value_end = at;
                    *next = pos;
                    return CXR_IMG_OK;
                }
                depth--;
                top--;
                continue;
            }
            if (tag != TAG_ITEM)
                return corrupt(err, errlen, "unexpected tag in a sequence, not an item,", tag,
                               pos);
            pos += 8;
            if (l != UNDEFINED_LENGTH && l > f.end - pos)
                return corrupt(err, errlen, "item past the end of its sequence,", tag, pos - 8);
            if (f.kind == W_FRAGMENTS) {
                if (l == UNDEFINED_LENGTH)
                    return corrupt(err, errlen, "fragment of undefined length", tag, pos - 8);
                pos += l;
                continue;
            }
            top++;
            st[top] = (walk_frame){W_ITEM, f.s, l == UNDEFINED_LENGTH,
                                   l == UNDEFINED_LENGTH ? f.end : pos + l};
            continue;
        }
        if (tag == TAG_ITEM_DELIMITER && f.undefined) {
            pos += 8;
            top--;
            continue;
        }
        header h;
        cxr_img_status rc = read_header(b, pos, f.end, f.s, &h, err, errlen);
        if (rc != CXR_IMG_OK)
            return rc;
        if (h.tag >> 16 == 0xFFFE)
            return corrupt(err, errlen, "unexpected delimiter inside an item", h.tag, pos);
        int nk;
        syntax inner;
        if ((rc = nested_kind(&h, f.s, &nk, &inner, pos, err, errlen)) != CXR_IMG_OK)
            return rc;
        if (nk == W_PLAIN) {
            pos = h.value + h.len;
            continue;
        }
        if (depth >= CXR_DICOM_MAX_DEPTH) {
            snprintf(err, errlen, "corrupt DICOM file: sequences nested deeper than %d levels at "
                     "offset %zu", CXR_DICOM_MAX_DEPTH, pos);
            return CXR_IMG_CORRUPT;
        }
        depth++;
        top++;
        int u = h.len == UNDEFINED_LENGTH;
        st[top] = (walk_frame){nk, inner, u, u ? f.end : h.value + h.len};
        pos = h.value;
    }
}

/* ---- the element index ---- */

static cxr_img_status
add_element(cxr_dicom *d, const header *h, const uint8_t *value, size_t len, char *err,
            size_t errlen)
{
    if (len >= UNDEFINED_LENGTH)
        return corrupt(err, errlen, "a value of 4 GiB or more in element", h->tag, 0);
    if (d->n_elems == d->cap_elems) {
        size_t cap = d->cap_elems ? 2 * d->cap_elems : 64;
        element *e = realloc(d->elems, cap * sizeof *e);
        if (!e) {
            snprintf(err, errlen, "out of memory indexing a DICOM file");
            return CXR_IMG_NO_MEMORY;
        }
        d->elems = e;
        d->cap_elems = cap;
    }
    element *e = &d->elems[d->n_elems++];
    e->tag = h->tag;
    memcpy(e->vr, h->vr, 3);
    e->value = value;
    e->len = (uint32_t)len;
    return CXR_IMG_OK;
}

/* Indexes the elements of [pos, end) at the top level; meta: only while the group is 0002.
 * *stop is where it stopped. */
static cxr_img_status
index_elements(cxr_dicom *d, const uint8_t *b, size_t pos, size_t end, syntax s, int meta,
               size_t *stop, char *err, size_t errlen)
{
    cxr_img_status rc = CXR_IMG_OK;
    while (pos < end) {
        if (meta && (end - pos < 4 || rd16(b + pos, 0) != 0x0002))
            break;
        header h;
        if ((rc = read_header(b, pos, end, s, &h, err, errlen)) != CXR_IMG_OK)
            return rc;
        if (h.tag >> 16 == 0xFFFE)
            return corrupt(err, errlen, "item or delimiter outside a sequence", h.tag, pos);
        int nk;
        syntax inner;
        if ((rc = nested_kind(&h, s, &nk, &inner, pos, err, errlen)) != CXR_IMG_OK)
            return rc;
        size_t value_end, next;
        if (nk == W_PLAIN)
            value_end = next = h.value + h.len;
        else if ((rc = walk(b, h.value, end, inner, nk, h.len, &value_end, &next, err,
                            errlen)) != CXR_IMG_OK)
            return rc;
        if ((rc = add_element(d, &h, b + h.value, value_end - h.value, err, errlen)) !=
            CXR_IMG_OK)
            return rc;
        if (h.tag == TAG_PIXEL_DATA && !meta && !d->has_pixel_data) {
            d->has_pixel_data = 1;
            d->pixel_undefined = h.len == UNDEFINED_LENGTH;
            d->info.pixel_data = b + h.value;
            d->info.pixel_data_len = value_end - h.value;
            d->pixel_words_swapped = s.be && strcmp(h.vr, "OW") == 0;
        }
        pos = next;
    }
    *stop = pos;
    return rc;
}

static const element *
find(const cxr_dicom *d, uint32_t tag)
{
    for (size_t i = 0; i < d->n_elems; i++)
        if (d->elems[i].tag == tag)
            return &d->elems[i];
    return NULL;
}

/* ---- attribute values ---- */

static void
defer(cxr_dicom *d, cxr_img_status st, const char *fmt, const char *a, uint32_t tag)
{
    if (d->deferred != CXR_IMG_OK)
        return; /* the first problem is the one reported */
    d->deferred = st;
    char what[160];
    snprintf(what, sizeof what, fmt, a);
    snprintf(d->deferred_msg, sizeof d->deferred_msg, "%s (%04X,%04X)", what, tag >> 16,
             tag & 0xFFFFu);
}

/* A string value without its padding, at most n - 1 characters; -1 when absent or empty. */
static int
get_text(const cxr_dicom *d, uint32_t tag, char *out, size_t n)
{
    const element *e = find(d, tag);
    if (!e)
        return -1;
    size_t a = 0, z = e->len;
    while (z > 0 && (e->value[z - 1] == ' ' || e->value[z - 1] == '\0'))
        z--;
    while (a < z && e->value[a] == ' ')
        a++;
    if (a == z)
        return -1;
    size_t k = z - a < n - 1 ? z - a : n - 1;
    memcpy(out, e->value + a, k);
    out[k] = '\0';
    return (int)k;
}

/* US (or SS, read as its bits): 1 when present. */
static int
get_us(const cxr_dicom *d, uint32_t tag, int *v)
{
    const element *e = find(d, tag);
    if (!e || e->len < 2)
        return 0;
    *v = rd16(e->value, d->info.ts_big_endian);
    return 1;
}

/* The first value of a DS or IS: 1 when read, 0 when absent or empty, -1 when malformed. */
static int
get_number(cxr_dicom *d, uint32_t tag, double *v)
{
    char s[72];
    if (get_text(d, tag, s, sizeof s) < 0)
        return 0;
    char *bs = strchr(s, '\\');
    if (bs)
        *bs = '\0';
    size_t k = strlen(s);
    while (k > 0 && s[k - 1] == ' ')
        s[--k] = '\0';
    char *start = s, *end;
    while (*start == ' ')
        start++;
    double x = strtod(start, &end);
    if (end == start || *end != '\0' || !isfinite(x)) {
        defer(d, CXR_IMG_CORRUPT, "corrupt DICOM file: malformed number \"%s\" in", s, tag);
        return -1;
    }
    *v = x;
    return 1;
}

static void
read_voi_lut(cxr_dicom *d, const element *sq, syntax s)
{
    uint32_t tag = sq->tag;
    const uint8_t *b = sq->value;
    size_t n = sq->len;
    if (n == 0)
        return; /* no items: no LUT */
    if (strcmp(sq->vr, "UN") == 0)
        s = IMPLICIT_LE; /* PS3.5 6.2.2: a sequence stored as UN is implicit little endian */
    char err[8];
    uint32_t il = n >= 8 ? rd32(b + 4, s.be) : 0;
    if (n < 8 || rd_tag(b, s.be) != TAG_ITEM || (il != UNDEFINED_LENGTH && il > n - 8)) {
        defer(d, CXR_IMG_CORRUPT, "corrupt DICOM file: %sVOI LUT Sequence without an item", "",
              tag);
        return;
    }
    size_t pos = 8, end = il == UNDEFINED_LENGTH ? n : 8 + (size_t)il;
    int have_desc = 0, have_data = 0;
    while (pos < end) {
        header h;
        if (read_header(b, pos, end, s, &h, err, sizeof err) != CXR_IMG_OK)
            break;
        if (h.tag == TAG_ITEM_DELIMITER)
            break;
        int nk;
        syntax inner;
        size_t value_end = h.value + (h.len == UNDEFINED_LENGTH ? 0 : h.len), next = value_end;
        if (nested_kind(&h, s, &nk, &inner, pos, err, sizeof err) != CXR_IMG_OK)
            break;
        if (nk != W_PLAIN &&
            walk(b, h.value, end, inner, nk, h.len, &value_end, &next, err, sizeof err) !=
                CXR_IMG_OK)
            break;
        if (h.tag == CXR_DICOM_TAG(0x0028, 0x3002) && h.len >= 6) {
            const uint8_t *v = b + h.value;
            int entries = rd16(v, s.be), first = rd16(v + 2, s.be);
            /* first mapped is US or SS as the pixels are signed (C.11.2.1.1); an explicit VR
             * says which */
            int is_signed = s.expl ? strcmp(h.vr, "SS") == 0 : d->info.pixel_representation == 1;
            if (is_signed && first >= 32768)
                first -= 65536;
            d->info.lut_entries = entries == 0 ? 65536 : entries;
            d->info.lut_first_mapped = first;
            d->info.lut_bits = rd16(v + 4, s.be);
            have_desc = 1;
        } else if (h.tag == CXR_DICOM_TAG(0x0028, 0x3006)) {
            d->info.lut_data = b + h.value;
            d->info.lut_data_len = (uint32_t)(value_end - h.value);
            have_data = 1;
        }
        pos = next;
    }
    if (!have_desc || !have_data) {
        defer(d, CXR_IMG_CORRUPT, "corrupt DICOM file: %sVOI LUT Sequence item without "
              "LUTDescriptor and LUTData", "", tag);
        return;
    }
    d->info.voi = CXR_VOI_LUT;
}

static void
read_attributes(cxr_dicom *d, syntax s)
{
    cxr_dicom_info *in = &d->info;
    int v;
    in->rows = get_us(d, CXR_DICOM_TAG(0x0028, 0x0010), &v) ? (uint32_t)v : 0;
    in->columns = get_us(d, CXR_DICOM_TAG(0x0028, 0x0011), &v) ? (uint32_t)v : 0;
    /* defaults for what some writers leave out: the values a reader would assume */
    in->samples_per_pixel = get_us(d, CXR_DICOM_TAG(0x0028, 0x0002), &v) ? v : 1;
    in->bits_allocated = get_us(d, CXR_DICOM_TAG(0x0028, 0x0100), &v) ? v : 0;
    in->bits_stored =
        get_us(d, CXR_DICOM_TAG(0x0028, 0x0101), &v) ? v : in->bits_allocated;
    in->high_bit = get_us(d, CXR_DICOM_TAG(0x0028, 0x0102), &v) ? v : in->bits_stored - 1;
    in->pixel_representation = get_us(d, CXR_DICOM_TAG(0x0028, 0x0103), &v) ? v : 0;
    in->planar_configuration = get_us(d, CXR_DICOM_TAG(0x0028, 0x0006), &v) ? v : 0;
    if (get_text(d, CXR_DICOM_TAG(0x0028, 0x0004), in->photometric, sizeof in->photometric) < 0)
        snprintf(in->photometric, sizeof in->photometric, "%s",
                 in->samples_per_pixel == 1 ? "MONOCHROME2" : "");

    double x;
    in->number_of_frames = 1;
    if (get_number(d, CXR_DICOM_TAG(0x0028, 0x0008), &x) > 0) {
        if (x >= 1 && x <= 2147483647.0 && x == floor(x))
            in->number_of_frames = (int)x;
        else
            defer(d, CXR_IMG_CORRUPT, "corrupt DICOM file: NumberOfFrames %s", "out of range",
                  CXR_DICOM_TAG(0x0028, 0x0008));
    }
    in->rescale_slope = 1.0;
    in->rescale_intercept = 0.0;
    if (get_number(d, CXR_DICOM_TAG(0x0028, 0x1053), &x) > 0) {
        in->rescale_slope = x;
        in->has_rescale = 1;
    }
    if (get_number(d, CXR_DICOM_TAG(0x0028, 0x1052), &x) > 0) {
        in->rescale_intercept = x;
        in->has_rescale = 1;
    }

    const element *sq = find(d, CXR_DICOM_TAG(0x0028, 0x3010));
    if (sq)
        read_voi_lut(d, sq, s);
    double c, w;
    int hc = get_number(d, CXR_DICOM_TAG(0x0028, 0x1050), &c),
        hw = get_number(d, CXR_DICOM_TAG(0x0028, 0x1051), &w);
    if (in->voi == CXR_VOI_NONE && hc > 0 && hw > 0) {
        in->voi = CXR_VOI_WINDOW;
        in->window_center = c;
        in->window_width = w;
    }
    char fn[32];
    if (get_text(d, CXR_DICOM_TAG(0x0028, 0x1056), fn, sizeof fn) >= 0) {
        if (strcmp(fn, "LINEAR") == 0)
            in->voi_function = CXR_VOI_LINEAR;
        else if (strcmp(fn, "LINEAR_EXACT") == 0)
            in->voi_function = CXR_VOI_LINEAR_EXACT;
        else if (strcmp(fn, "SIGMOID") == 0)
            in->voi_function = CXR_VOI_SIGMOID;
        else if (in->voi == CXR_VOI_WINDOW)
            defer(d, CXR_IMG_UNSUPPORTED, "unsupported DICOM VOILUTFunction \"%s\"", fn,
                  CXR_DICOM_TAG(0x0028, 0x1056));
    }
}

/* ---- deflate ---- */

static cxr_img_status
inflate_dataset(const uint8_t *src, size_t n, uint8_t **out, size_t *out_len, char *err,
                size_t errlen)
{
    uint64_t by_ratio = (uint64_t)n * CXR_DICOM_MAX_INFLATE_RATIO + (1u << 20);
    size_t limit = by_ratio < CXR_DICOM_MAX_INFLATED ? (size_t)by_ratio : CXR_DICOM_MAX_INFLATED;
    size_t cap = n < limit / 4 ? 4 * n : limit, done = 0, used = 0;
    if (cap < 4096)
        cap = limit < 4096 ? limit : 4096;
    uint8_t *buf = cxr_large_buffer(cap);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (!buf || inflateInit2(&z, -15) != Z_OK) { /* raw deflate, PS3.5 A.5 */
        free(buf);
        snprintf(err, errlen, "out of memory inflating a deflated DICOM dataset");
        return CXR_IMG_NO_MEMORY;
    }
    cxr_img_status st = CXR_IMG_OK;
    for (;;) {
        if (cxr_interrupt_poll()) {
            snprintf(err, errlen, "interrupted");
            st = CXR_IMG_INTERRUPTED;
            break;
        }
        if (done == cap) {
            if (cap == limit) {
                snprintf(err, errlen, "deflated DICOM dataset of %zu bytes inflates past %zu "
                         "bytes (a deflate bomb?)", n, limit);
                st = CXR_IMG_TOO_LARGE;
                break;
            }
            size_t ncap = cap <= limit / 2 ? 2 * cap : limit;
            uint8_t *nb = cxr_large_buffer(ncap); /* huge pages: see cxr_large_buffer.h */
            if (nb) {
                memcpy(nb, buf, done);
                free(buf);
            }
            if (!nb) {
                snprintf(err, errlen, "out of memory inflating a deflated DICOM dataset");
                st = CXR_IMG_NO_MEMORY;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t in_chunk = n - used < (1u << 30) ? n - used : (1u << 30);
        size_t out_chunk = cap - done < (1u << 30) ? cap - done : (1u << 30);
        z.next_in = (Bytef *)(uintptr_t)(src + used); /* zlib's API is not const */
        z.avail_in = (uInt)in_chunk;
        z.next_out = buf + done;
        z.avail_out = (uInt)out_chunk;
        int r = inflate(&z, Z_NO_FLUSH);
        used += in_chunk - z.avail_in;
        done += out_chunk - z.avail_out;
        if (r == Z_STREAM_END)
            break;
        if (r == Z_BUF_ERROR && used == n && done < cap) {
            snprintf(err, errlen, "corrupt DICOM file: the deflated dataset is truncated");
            st = CXR_IMG_CORRUPT;
            break;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            snprintf(err, errlen, "corrupt DICOM file: deflated dataset: %s",
                     z.msg ? z.msg : "inflate failed");
            st = r == Z_MEM_ERROR ? CXR_IMG_NO_MEMORY : CXR_IMG_CORRUPT;
            break;
        }
    }
    inflateEnd(&z);
    if (st != CXR_IMG_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_len = done;
    return CXR_IMG_OK;
}

/* ---- open ---- */

/* Explicit or implicit VR, for a group without a transfer syntax: the VR bytes tell. */
static int
looks_explicit(const uint8_t *p, size_t n)
{
    return n >= 8 && vr_index(p + 4) >= 0;
}

cxr_img_status
cxr_dicom_open(const uint8_t *buf, size_t len, cxr_dicom **out, char *err, size_t errlen)
{
    *out = NULL;
    cxr_dicom *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory opening a DICOM file");
        return CXR_IMG_NO_MEMORY;
    }
    cxr_dicom_info *in = &d->info;
    cxr_img_status st;
    size_t pos = 0;
    if (len >= 132 && memcmp(buf + 128, "DICM", 4) == 0) {
        in->has_preamble = 1;
        pos = 132;
    }
    syntax s;
    ts_kind kind;
    if (len - pos >= 8 && rd16(buf + pos, 0) == 0x0002) {
        /* the meta group is explicit VR little endian; a few writers made it implicit */
        syntax ms = looks_explicit(buf + pos, len - pos) ? EXPLICIT_LE : IMPLICIT_LE;
        if ((st = index_elements(d, buf, pos, len, ms, 1, &pos, err, errlen)) != CXR_IMG_OK)
            goto fail;
        const element *ts = find(d, TAG_TRANSFER_SYNTAX);
        if (!ts || get_text(d, TAG_TRANSFER_SYNTAX, in->transfer_syntax,
                            sizeof in->transfer_syntax) < 0)
            snprintf(in->transfer_syntax, sizeof in->transfer_syntax, "%s",
                     transfer_syntaxes[0].uid); /* as pydicom: implicit VR little endian */
        size_t i = 0;
        while (i < N_TRANSFER_SYNTAXES && strcmp(transfer_syntaxes[i].uid, in->transfer_syntax))
            i++;
        if (i == N_TRANSFER_SYNTAXES) {
            snprintf(err, errlen, "unsupported DICOM transfer syntax %s", in->transfer_syntax);
            st = CXR_IMG_UNSUPPORTED;
            goto fail;
        }
        kind = transfer_syntaxes[i].kind;
        d->codec = transfer_syntaxes[i].codec;
        d->ts_name = transfer_syntaxes[i].name;
        s = kind == TS_IMPLICIT ? IMPLICIT_LE : kind == TS_BIG_ENDIAN ? EXPLICIT_BE : EXPLICIT_LE;
    } else {
        /* no meta: the first element's group tells the byte order, its VR bytes whether
         * explicit */
        if (len - pos < 8) {
            snprintf(err, errlen, "corrupt DICOM file: %zu bytes, no dataset", len);
            st = CXR_IMG_CORRUPT;
            goto fail;
        }
        const uint8_t *p = buf + pos;
        int be = rd16(p, 0) > 0x00FF && rd16(p, 1) <= 0x00FF;
        s = looks_explicit(p, len - pos) ? (be ? EXPLICIT_BE : EXPLICIT_LE) : IMPLICIT_LE;
        kind = s.be ? TS_BIG_ENDIAN : s.expl ? TS_EXPLICIT : TS_IMPLICIT;
        size_t i = kind == TS_BIG_ENDIAN ? 3 : kind == TS_EXPLICIT ? 1 : 0;
        snprintf(in->transfer_syntax, sizeof in->transfer_syntax, "%s", transfer_syntaxes[i].uid);
        d->ts_name = transfer_syntaxes[i].name;
        d->codec = CODEC_NATIVE;
    }
    if (!s.be && kind != TS_DEFLATED && len - pos >= 8 &&
        looks_explicit(buf + pos, len - pos) != s.expl)
        s.expl = !s.expl; /* as pydicom: some writers use the other VR encoding than they say */
    in->ts_explicit = s.expl;
    in->ts_big_endian = s.be;
    in->ts_deflated = kind == TS_DEFLATED;
    in->ts_encapsulated = kind == TS_ENCAPSULATED;

    const uint8_t *data = buf;
    size_t end = len;
    if (kind == TS_DEFLATED) {
        size_t inflated_len;
        if ((st = inflate_dataset(buf + pos, len - pos, &d->inflated, &inflated_len, err,
                                  errlen)) != CXR_IMG_OK)
            goto fail;
        data = d->inflated;
        pos = 0;
        end = inflated_len;
    }
    size_t stop;
    if ((st = index_elements(d, data, pos, end, s, 0, &stop, err, errlen)) != CXR_IMG_OK)
        goto fail;
    read_attributes(d, s);
    *out = d;
    return CXR_IMG_OK;
fail:
    cxr_dicom_close(d);
    return st;
}

const cxr_dicom_info *
cxr_dicom_info_of(const cxr_dicom *d)
{
    return &d->info;
}

int
cxr_dicom_element(const cxr_dicom *d, uint32_t tag, const uint8_t **value, uint32_t *len,
                  char vr[3])
{
    const element *e = find(d, tag);
    if (!e)
        return 0;
    *value = e->value;
    *len = e->len;
    memcpy(vr, e->vr, 3);
    return 1;
}

void
cxr_dicom_each(const cxr_dicom *d,
               int (*fn)(uint32_t tag, const char *vr, const uint8_t *value, uint32_t len,
                         void *arg),
               void *arg)
{
    for (size_t i = 0; i < d->n_elems; i++)
        if (fn(d->elems[i].tag, d->elems[i].vr, d->elems[i].value, d->elems[i].len, arg))
            return;
}

void
cxr_dicom_close(cxr_dicom *d)
{
    if (!d)
        return;
    free(d->elems);
    free(d->inflated);
    free(d);
}

/* ---- detection ---- */

/* Two leading elements of group 0002 or 0008 (the second may start the next groups) in
 * ascending order, with even, defined lengths that fit: a random file rarely does that. */
static int
plausible_dataset(const uint8_t *b, size_t len, syntax s)
{
    char err[8];
    size_t pos = 0;
    uint32_t prev = 0;
    for (int k = 0; k < 2; k++) {
        header h;
        if (read_header(b, pos, len, s, &h, err, sizeof err) != CXR_IMG_OK)
            return 0;
        uint32_t g = h.tag >> 16;
        if (k == 0 ? g != 0x0002 && g != 0x0008
                   : g != 0x0002 && g != 0x0008 && g != 0x0010 && g != 0x0018 && g != 0x0020 &&
                         g != 0x0028)
            return 0;
        if ((k > 0 && h.tag <= prev) || h.len == UNDEFINED_LENGTH || h.len % 2 != 0 ||
            (!s.expl && h.len > 1024))
            return 0;
        prev = h.tag;
        pos = h.value + h.len;
    }
    return 1;
}

int
cxr_dicom_detect(const uint8_t *buf, size_t len)
{
    if (len >= 132 && memcmp(buf + 128, "DICM", 4) == 0)
        return 1;
    return plausible_dataset(buf, len, EXPLICIT_LE) || plausible_dataset(buf, len, EXPLICIT_BE) ||
           plausible_dataset(buf, len, IMPLICIT_LE);
}

/* ---- decoding ---- */

/* Frame 1 of encapsulated Pixel Data (the rule is at the top of this file). *owned is set when
 * several fragments had to be joined. */
static cxr_img_status
first_frame(const cxr_dicom *d, const uint8_t **frame, size_t *frame_len, uint8_t **owned,
            char *err, size_t errlen)
{
    const uint8_t *p = d->info.pixel_data;
    size_t n = d->info.pixel_data_len;
    *owned = NULL;
    if (!d->pixel_undefined) {
        snprintf(err, errlen, "corrupt DICOM file: encapsulated Pixel Data (transfer syntax %s) "
                 "with a defined length", d->info.transfer_syntax);
        return CXR_IMG_CORRUPT;
    }
    /* the walk at open checked that these are items of defined lengths that fit */
    if (n < 8) {
        snprintf(err, errlen, "corrupt DICOM file: encapsulated Pixel Data without its basic "
                 "offset table");
        return CXR_IMG_CORRUPT;
    }
    uint32_t bot_len = rd32(p + 4, 0);
    if (bot_len % 4 != 0) {
        snprintf(err, errlen, "corrupt DICOM file: basic offset table of %u bytes", bot_len);
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *bot = p + 8;
    size_t entries = bot_len / 4, first = 8 + (size_t)bot_len;
    size_t lo = 0, hi = SIZE_MAX;
    if (entries >= 2) {
        lo = rd32(bot, 0);
        hi = rd32(bot + 4, 0);
        if (hi <= lo) {
            snprintf(err, errlen, "corrupt DICOM file: basic offset table entries %zu, %zu are "
                     "not ascending", lo, hi);
            return CXR_IMG_CORRUPT;
        }
    }
    int only_first = entries < 2 && d->info.number_of_frames > 1;
    size_t total = 0, count = 0, fragments = 0;
    const uint8_t *single = NULL;
    for (size_t pos = first; pos < n; pos += 8 + (size_t)rd32(p + pos + 4, 0)) {
        size_t off = pos - first, flen = rd32(p + pos + 4, 0);
        fragments++;
        if (off >= lo && off < hi && !(only_first && count == 1)) {
            total += flen;
            if (count++ == 0)
                single = p + pos + 8;
        }
    }
    if (fragments == 0) {
        snprintf(err, errlen, "corrupt DICOM file: encapsulated Pixel Data without fragments");
        return CXR_IMG_CORRUPT;
    }
    if (count == 0) {
        snprintf(err, errlen, "corrupt DICOM file: no fragment at basic offset table entry %zu",
                 lo);
        return CXR_IMG_CORRUPT;
    }
    if (count == 1) {
        *frame = single;
        *frame_len = total;
        return CXR_IMG_OK;
    }
    uint8_t *joined = malloc(total ? total : 1);
    if (!joined) {
        snprintf(err, errlen, "out of memory joining %zu fragments of a DICOM frame", count);
        return CXR_IMG_NO_MEMORY;
    }
    size_t at = 0;
    for (size_t pos = first; pos < n; pos += 8 + (size_t)rd32(p + pos + 4, 0)) {
        size_t off = pos - first, flen = rd32(p + pos + 4, 0);
        if (off >= lo && off < hi) {
            memcpy(joined + at, p + pos + 8, flen);
            at += flen;
        }
    }
    *frame = joined;
    *frame_len = total;
    *owned = joined;
    return CXR_IMG_OK;
}

static cxr_img_status
decode_encapsulated(cxr_dicom *d, int32_t *samples, size_t nsamples, int *color_transformed,
                    char *err, size_t errlen)
{
    const cxr_dicom_info *in = &d->info;
    const uint8_t *frame;
    size_t frame_len;
    uint8_t *owned;
    cxr_img_status st = first_frame(d, &frame, &frame_len, &owned, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    cxr_frame_info fi;
    memset(&fi, 0, sizeof fi);
    const char *codec = "RLE";
    if (d->codec == CODEC_RLE) {
        st = cxr_rle_decode(frame, frame_len, (int)in->columns, (int)in->rows,
                            in->samples_per_pixel, in->bits_allocated, samples, nsamples, err,
                            errlen);
        fi.width = (int)in->columns;
        fi.height = (int)in->rows;
        fi.components = in->samples_per_pixel;
    } else if (d->codec == CODEC_JPEG) {
        codec = "JPEG";
        /* the Photometric Interpretation, not the stream's markers, says whether a colour
         * stream is YCbCr (PS3.5 8.2.1), as DCMTK and GDCM read it */
        cxr_jpeg_color color = strcmp(in->photometric, "RGB") == 0 ? CXR_JPEG_COLOR_RGB
                               : strncmp(in->photometric, "YBR", 3) == 0 ? CXR_JPEG_COLOR_YCBCR
                                                                         : CXR_JPEG_COLOR_MARKERS;
        st = cxr_jpeg_decode_as(frame, frame_len, color, nsamples, samples, nsamples, &fi, err,
                                errlen);
    } else {
        codec = "JPEG 2000";
        st = cxr_j2k_decode(frame, frame_len, nsamples, samples, nsamples, &fi, err, errlen);
    }
    free(owned);
    if (st != CXR_IMG_OK)
        return st;
    if (fi.width != (int)in->columns || fi.height != (int)in->rows ||
        fi.components != in->samples_per_pixel) {
        snprintf(err, errlen, "corrupt DICOM file: the %s frame is %dx%d with %d components, the "
                 "DICOM attributes say %ux%u with %d", codec, fi.width, fi.height,
                 fi.components, in->columns, in->rows, in->samples_per_pixel);
        return CXR_IMG_CORRUPT;
    }
    *color_transformed = fi.color_transformed;
    return CXR_IMG_OK;
}

cxr_img_status
cxr_dicom_decode_gray(cxr_dicom *d, size_t max_pixels, float *out, size_t out_capacity,
                      int *frames, char *err, size_t errlen)
{
    const cxr_dicom_info *in = &d->info;
    if (frames)
        *frames = in->number_of_frames;
    if (d->codec == CODEC_NONE) {
        snprintf(err, errlen, "unsupported DICOM transfer syntax %s (%s)", in->transfer_syntax,
                 d->ts_name);
        return CXR_IMG_UNSUPPORTED;
    }
    if (d->deferred != CXR_IMG_OK) {
        snprintf(err, errlen, "%s", d->deferred_msg);
        return d->deferred;
    }
    if (!d->has_pixel_data) {
        snprintf(err, errlen, "DICOM file without Pixel Data (7FE0,0010)");
        return CXR_IMG_CORRUPT;
    }
    cxr_img_status st = cxr_dicom_check_pixels(in, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    /* sizes before any allocation: rows and columns are 16-bit, so these cannot overflow */
    uint64_t pixels = (uint64_t)in->rows * in->columns;
    if (pixels > max_pixels || pixels > out_capacity) {
        snprintf(err, errlen, "DICOM image of %ux%u pixels exceeds the %s of %zu pixels",
                 in->columns, in->rows, pixels > max_pixels ? "limit" : "output buffer",
                 pixels > max_pixels ? max_pixels : out_capacity);
        return CXR_IMG_TOO_LARGE;
    }
    size_t nsamples = (size_t)pixels * (size_t)in->samples_per_pixel;
    if (d->codec == CODEC_NATIVE) {
        size_t need = cxr_dicom_native_frame_bytes(in);
        if (d->pixel_undefined || need == 0 || in->pixel_data_len < need) {
            snprintf(err, errlen, "corrupt DICOM file: native Pixel Data of %zu bytes%s, frame 1 "
                     "of %ux%u needs %zu", in->pixel_data_len,
                     d->pixel_undefined ? " in fragments" : "", in->columns, in->rows, need);
            return CXR_IMG_CORRUPT;
        }
    }
    int swapped = d->pixel_words_swapped && in->bits_allocated == 8;
    if (d->codec == CODEC_NATIVE && cxr_dicom_native_mono_direct(in, swapped))
        return cxr_dicom_native_mono_gray(in, out, err, errlen);
    int32_t *samples = cxr_large_buffer(nsamples * sizeof *samples);
    if (!samples) {
        snprintf(err, errlen, "out of memory decoding a %ux%u DICOM image", in->columns,
                 in->rows);
        return CXR_IMG_NO_MEMORY;
    }
    int color_transformed = 0;
    if (d->codec == CODEC_NATIVE)
        st = cxr_dicom_unpack_native(in, swapped, samples, err, errlen);
    else
        st = decode_encapsulated(d, samples, nsamples, &color_transformed, err, errlen);
    if (st == CXR_IMG_OK)
        st = cxr_dicom_samples_to_gray(in, samples, color_transformed, out, err, errlen);
    free(samples);
    return st;
}

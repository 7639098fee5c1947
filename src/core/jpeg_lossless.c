/* JPEG Lossless, ITU-T T.81 process 14 (SOF3, Huffman coding): the lossless transfer syntaxes
 * of DICOM, which libjpeg-turbo 2.1 cannot read. Each sample is a prediction from its decoded
 * neighbours (Annex H) plus a Huffman-coded difference. Reconstructed values go straight into the
 * caller's output, whose already decoded samples are the neighbours, so nothing is allocated.
 * Every read is bounded: the bit reader pads with zeros past a marker or the end of the buffer
 * and counts real bits, so consuming a padding bit is detected as truncation. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cxr_codec.h"
#include "cxr_interrupt.h"

#define LUT_BITS 9
#define POLL_SAMPLES 65536

typedef struct {
    int defined;
    uint8_t counts[17]; /* codes of each length 1..16 */
    uint8_t vals[256];
    int32_t mincode[17], maxcode[17];
    int valptr[17];
    uint16_t lut[1 << LUT_BITS]; /* (length << 8) | value for codes up to LUT_BITS; 0: longer */
} huff_table;

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    uint64_t acc; /* next bits, most significant first */
    int nbits;    /* bits in acc, padding included */
    int real;     /* of which read from the stream */
    int stopped;  /* met a marker or the end: pad with zeros */
} bit_reader;

typedef struct {
    int width, height, ncomp, precision;
    int id[3], hs[3], vs[3];
    int done[3], pt[3];
    int restart_interval;
    huff_table tables[4];
} lossless_ctx;

static unsigned
be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static int
is_rst(unsigned m)
{
    return m >= 0xD0 && m <= 0xD7;
}

/* Canonical codes (T.81 Annex C); -1 when the counts ask for more codes than fit. */
static int
build_table(huff_table *t)
{
    int32_t code = 0;
    int k = 0;
    memset(t->lut, 0, sizeof t->lut);
    for (int l = 1; l <= 16; l++) {
        t->valptr[l] = k;
        t->mincode[l] = code;
        for (int i = 0; i < t->counts[l]; i++, code++, k++) {
            if (code >= ((int32_t)1 << l))
                return -1;
            if (l <= LUT_BITS) {
                int span = 1 << (LUT_BITS - l);
                for (int j = 0; j < span; j++)
                    t->lut[(code << (LUT_BITS - l)) | j] = (uint16_t)(l << 8 | t->vals[k]);
            }
        }
        t->maxcode[l] = t->counts[l] ? code - 1 : -1;
        code <<= 1;
    }
    return 0;
}

static cxr_img_status
read_dht(lossless_ctx *c, const uint8_t *d, size_t n, char *err, size_t errlen)
{
    while (n > 0) {
        if (n < 17) {
            snprintf(err, errlen, "corrupt JPEG Huffman table: %zu bytes left", n);
            return CXR_IMG_CORRUPT;
        }
        int tc = d[0] >> 4, th = d[0] & 15;
        if (tc > 1 || th > 3) {
            snprintf(err, errlen, "corrupt JPEG Huffman table: class %d, destination %d", tc, th);
            return CXR_IMG_CORRUPT;
        }
        size_t total = 0;
        for (int l = 1; l <= 16; l++)
            total += d[l];
        if (total > 256 || total > n - 17) {
            snprintf(err, errlen, "corrupt JPEG Huffman table: %zu codes in %zu bytes", total,
                     n - 17);
            return CXR_IMG_CORRUPT;
        }
        /* lossless uses only the DC class; AC tables are checked and ignored */
        if (tc == 0) {
            huff_table *t = &c->tables[th];
            memset(t, 0, sizeof *t);
            memcpy(t->counts + 1, d + 1, 16);
            memcpy(t->vals, d + 17, total);
            if (build_table(t) != 0) {
                snprintf(err, errlen, "corrupt JPEG Huffman table %d: too many codes", th);
                return CXR_IMG_CORRUPT;
            }
            t->defined = 1;
        }
        d += 17 + total;
        n -= 17 + total;
    }
    return CXR_IMG_OK;
}

/* Tops acc up to more than 56 bits; FF00 is a data byte FF, any other FF xx a marker. */
static void
fill(bit_reader *br)
{
    while (br->nbits <= 56) {
        unsigned byte = 0;
        if (!br->stopped) {
            if (br->pos >= br->len) {
                br->stopped = 1;
            } else if (br->buf[br->pos] != 0xFF) {
                byte = br->buf[br->pos++];
            } else if (br->pos + 1 < br->len && br->buf[br->pos + 1] == 0x00) {
                byte = 0xFF;
                br->pos += 2;
            } else {
                br->stopped = 1; /* a marker (left unread), or a lone FF at the end */
            }
        }
        br->acc |= (uint64_t)byte << (56 - br->nbits);
        if (!br->stopped)
            br->real += 8;
        br->nbits += 8;
    }
}

/* Consumes n bits (n <= 16) and returns them; -1 if that would take padding. */
static int32_t
get_bits(bit_reader *br, int n)
{
    if (n == 0)
        return 0;
    if (br->nbits < n)
        fill(br);
    if (br->real < n)
        return -1;
    int32_t v = (int32_t)(br->acc >> (64 - n));
    br->acc <<= n;
    br->nbits -= n;
    br->real -= n;
    return v;
}

/* The next difference magnitude category SSSS; -1 for a truncated stream or a bad code. */
static int
decode_ssss(bit_reader *br, const huff_table *t)
{
    if (br->nbits < 16)
        fill(br);
    unsigned e = t->lut[br->acc >> (64 - LUT_BITS)];
    int len = 0, val = -1;
    if (e) {
        len = (int)(e >> 8);
        val = e & 0xFF;
    } else {
        for (int l = LUT_BITS + 1; l <= 16; l++) {
            int32_t code = (int32_t)(br->acc >> (64 - l));
            if (code <= t->maxcode[l]) {
                len = l;
                val = t->vals[t->valptr[l] + code - t->mincode[l]];
                break;
            }
        }
        if (len == 0)
            return -1;
    }
    if (br->real < len)
        return -1;
    br->acc <<= len;
    br->nbits -= len;
    br->real -= len;
    return val;
}

/* A difference (T.81 H.1.2.2 and F.1.2.1.1): -1 - 2^31 marks an error. */
#define BAD_DIFF INT32_MIN
static int32_t
decode_diff(bit_reader *br, const huff_table *t)
{
    int s = decode_ssss(br, t);
    if (s < 0 || s > 16)
        return BAD_DIFF;
    if (s == 0)
        return 0;
    if (s == 16)
        return 32768; /* no extra bits follow */
    int32_t v = get_bits(br, s);
    if (v < 0)
        return BAD_DIFF;
    return v < ((int32_t)1 << (s - 1)) ? v - (((int32_t)1 << s) - 1) : v;
}

/* Position of the next marker at or after p that is not RSTn: where parsing resumes after a
 * scan (an encoder may leave stray bytes or restart markers behind its last sample). */
static size_t
next_marker(const uint8_t *b, size_t len, size_t p)
{
    while (p + 1 < len) {
        if (b[p] == 0xFF && b[p + 1] != 0x00 && b[p + 1] != 0xFF && !is_rst(b[p + 1]))
            return p;
        p++;
    }
    return len;
}

static int32_t
predict(int sv, int32_t ra, int32_t rb, int32_t rc)
{
    switch (sv) {
    case 1:
        return ra;
    case 2:
        return rb;
    case 3:
        return rc;
    case 4:
        return ra + rb - rc;
    case 5:
        return ra + ((rb - rc) >> 1);
    case 6:
        return rb + ((ra - rc) >> 1);
    default:
        return (ra + rb) >> 1;
    }
}

/* One scan: the header at s (n bytes), entropy-coded data from *p; on return *p is where the
 * next marker is looked for. */
static cxr_img_status
decode_scan(lossless_ctx *c, const uint8_t *buf, size_t len, const uint8_t *s, size_t n,
            size_t *p, int32_t *out, char *err, size_t errlen)
{
    int ns = n >= 1 ? s[0] : 0;
    if (ns < 1 || ns > c->ncomp || n != 4 + 2 * (size_t)ns) {
        snprintf(err, errlen, "corrupt JPEG scan header: %d components in %zu bytes", ns, n);
        return CXR_IMG_CORRUPT;
    }
    int idx[3];
    const huff_table *tab[3];
    for (int i = 0; i < ns; i++) {
        int cs = s[1 + 2 * i], td = s[2 + 2 * i] >> 4, k = -1;
        for (int j = 0; j < c->ncomp; j++)
            if (c->id[j] == cs)
                k = j;
        for (int j = 0; j < i; j++)
            if (idx[j] == k)
                k = -1;
        if (k < 0 || c->done[k]) {
            snprintf(err, errlen, "corrupt JPEG scan header: component id %d unknown, repeated "
                                  "or already decoded", cs);
            return CXR_IMG_CORRUPT;
        }
        if (td > 3 || !c->tables[td].defined) {
            snprintf(err, errlen, "corrupt JPEG scan header: Huffman table %d not defined", td);
            return CXR_IMG_CORRUPT;
        }
        /* an interleaved MCU of HxV samples per component would need padding: not written by
         * anything we know of */
        if (ns > 1 && (c->hs[k] != 1 || c->vs[k] != 1)) {
            snprintf(err, errlen, "unsupported JPEG Lossless image: interleaved scan with %dx%d "
                                  "sampling", c->hs[k], c->vs[k]);
            return CXR_IMG_UNSUPPORTED;
        }
        idx[i] = k;
        tab[i] = &c->tables[td];
    }
    const uint8_t *t = s + 1 + 2 * ns;
    int sv = t[0], ah = t[2] >> 4, pt = t[2] & 15;
    if (sv < 1 || sv > 7) {
        snprintf(err, errlen, "corrupt JPEG Lossless scan: predictor %d (1..7 expected)", sv);
        return CXR_IMG_CORRUPT;
    }
    if (ah != 0 || pt >= c->precision) {
        snprintf(err, errlen, "corrupt JPEG Lossless scan: point transform %d at %d bits (Ah %d)",
                 pt, c->precision, ah);
        return CXR_IMG_CORRUPT;
    }
    bit_reader br = {.buf = buf, .len = len, .pos = *p};
    const size_t w = (size_t)c->width, stride = (size_t)c->ncomp;
    const size_t line = w * stride;
    const int32_t initial = (int32_t)1 << (c->precision - pt - 1);
    int ri = c->restart_interval, mcus_left = ri, next_rst = 0;
    size_t reset_y = 0, reset_x = 0, since = 0;
    for (size_t y = 0; y < (size_t)c->height; y++) {
        if (since == 0 && cxr_interrupt_poll()) {
            snprintf(err, errlen, "interrupted");
            return CXR_IMG_INTERRUPTED;
        }
        since += w * (size_t)ns;
        if (since >= POLL_SAMPLES)
            since = 0;
        for (size_t x = 0; x < w; x++) {
            if (ri > 0 && mcus_left == 0) {
                /* what is left of the byte is padding; the marker must come next */
                size_t q = br.pos;
                while (q + 1 < len && (buf[q] != 0xFF || buf[q + 1] == 0x00 || buf[q + 1] == 0xFF))
                    q++;
                if (q + 1 >= len || buf[q + 1] != 0xD0 + next_rst) {
                    snprintf(err, errlen, "corrupt JPEG Lossless data: restart marker %d missing "
                                          "at row %zu", next_rst, y);
                    return CXR_IMG_CORRUPT;
                }
                br.pos = q + 2;
                br.acc = 0;
                br.nbits = br.real = br.stopped = 0;
                next_rst = (next_rst + 1) & 7;
                mcus_left = ri;
                reset_y = y;
                reset_x = x;
            }
            if (ri > 0)
                mcus_left--;
            for (int i = 0; i < ns; i++) {
                int32_t *o = out + y * line + x * stride + idx[i];
                int32_t pred;
                /* H.1.2.1: the first sample of the scan or of a restart interval gets
                 * 2^(P-Pt-1), the rest of that line its left neighbour, the first sample of
                 * later lines the one above */
                if (y == reset_y && x == reset_x)
                    pred = initial;
                else if (y == reset_y)
                    pred = o[-(ptrdiff_t)stride];
                else if (x == 0)
                    pred = o[-(ptrdiff_t)line];
                else
                    pred = predict(sv, o[-(ptrdiff_t)stride], o[-(ptrdiff_t)line],
                                   o[-(ptrdiff_t)line - (ptrdiff_t)stride]);
                int32_t d = decode_diff(&br, tab[i]);
                if (d == BAD_DIFF) {
                    snprintf(err, errlen, "corrupt JPEG Lossless data: %s at row %zu, column %zu",
                             br.stopped ? "truncated data or bad Huffman code" : "bad Huffman code",
                             y, x);
                    return CXR_IMG_CORRUPT;
                }
                *o = (int32_t)((uint32_t)(pred + d) & 0xFFFFu); /* modulo 2^16 (H.1.2.1) */
            }
        }
    }
    for (int i = 0; i < ns; i++) {
        c->done[idx[i]] = 1;
        c->pt[idx[i]] = pt;
    }
    *p = next_marker(buf, len, br.pos);
    return CXR_IMG_OK;
}

cxr_img_status
cxr_jpeg_lossless_decode(const uint8_t *buf, size_t len, size_t max_samples, int32_t *out,
                         size_t out_capacity, cxr_frame_info *info, char *err, size_t errlen)
{
    cxr_frame_info hdr;
    cxr_img_status st = cxr_jpeg_read_header(buf, len, &hdr, err, errlen);
    *info = hdr;
    if (st != CXR_IMG_OK)
        return st;
    if (hdr.process != 3) {
        snprintf(err, errlen, "not a JPEG Lossless stream (process %d)", hdr.process);
        return CXR_IMG_CORRUPT;
    }
    size_t samples = (size_t)hdr.width * (size_t)hdr.height * (size_t)hdr.components;
    if (samples > max_samples) {
        snprintf(err, errlen, "JPEG image of %dx%dx%d samples exceeds the limit of %zu samples",
                 hdr.width, hdr.height, hdr.components, max_samples);
        return CXR_IMG_TOO_LARGE;
    }
    if (!out || samples > out_capacity) {
        snprintf(err, errlen, "output buffer too small");
        return CXR_IMG_NO_MEMORY;
    }
    lossless_ctx c;
    memset(&c, 0, sizeof c);
    int have_frame = 0, eoi = 0;
    size_t p = 2;
    while (p < len && !eoi) {
        if (p + 2 > len || buf[p] != 0xFF) {
            snprintf(err, errlen, "corrupt JPEG Lossless stream: no marker at offset %zu", p);
            return CXR_IMG_CORRUPT;
        }
        unsigned m = buf[p + 1];
        if (m == 0xFF) {
            p++;
            continue;
        }
        p += 2;
        if (m == 0xD9) {
            eoi = 1;
            continue;
        }
        if (m == 0x01 || is_rst(m)) /* no segment; a stray RSTn is harmless */
            continue;
        if (m == 0x00 || m == 0xD8) {
            snprintf(err, errlen, "corrupt JPEG Lossless stream: marker 0x%02X at offset %zu", m,
                     p - 2);
            return CXR_IMG_CORRUPT;
        }
        if (p + 2 > len) {
            snprintf(err, errlen, "truncated JPEG Lossless stream at offset %zu", p);
            return CXR_IMG_CORRUPT;
        }
        size_t seg = be16(buf + p);
        if (seg < 2 || seg > len - p) {
            snprintf(err, errlen, "corrupt JPEG Lossless stream: marker 0x%02X segment of %zu "
                                  "bytes overruns the stream", m, seg);
            return CXR_IMG_CORRUPT;
        }
        const uint8_t *d = buf + p + 2;
        size_t dl = seg - 2;
        p += seg;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (m != 0xC3 || have_frame) {
                snprintf(err, errlen, "corrupt JPEG Lossless stream: a second frame header");
                return CXR_IMG_CORRUPT;
            }
            /* cxr_jpeg_read_header validated this segment */
            c.precision = d[0];
            c.height = (int)be16(d + 1);
            c.width = (int)be16(d + 3);
            c.ncomp = d[5];
            for (int k = 0; k < c.ncomp; k++) {
                c.id[k] = d[6 + 3 * k];
                c.hs[k] = d[7 + 3 * k] >> 4;
                c.vs[k] = d[7 + 3 * k] & 15;
                for (int j = 0; j < k; j++)
                    if (c.id[j] == c.id[k]) {
                        snprintf(err, errlen, "corrupt JPEG Lossless frame: component id %d "
                                              "repeated", c.id[k]);
                        return CXR_IMG_CORRUPT;
                    }
                /* unequal sampling gives components of unequal size */
                if (c.hs[k] != c.hs[0] || c.vs[k] != c.vs[0]) {
                    snprintf(err, errlen, "unsupported JPEG Lossless image: subsampled "
                                          "components");
                    return CXR_IMG_UNSUPPORTED;
                }
            }
            have_frame = 1;
        } else if (m == 0xC4) {
            st = read_dht(&c, d, dl, err, errlen);
            if (st != CXR_IMG_OK)
                return st;
        } else if (m == 0xDD) {
            if (dl != 2) {
                snprintf(err, errlen, "corrupt JPEG restart interval segment (%zu bytes)", dl);
                return CXR_IMG_CORRUPT;
            }
            c.restart_interval = (int)be16(d);
        } else if (m == 0xDA) {
            if (!have_frame) {
                snprintf(err, errlen, "corrupt JPEG Lossless stream: scan before the frame");
                return CXR_IMG_CORRUPT;
            }
            st = decode_scan(&c, buf, len, d, dl, &p, out, err, errlen);
            if (st != CXR_IMG_OK)
                return st;
        }
        /* APPn, COM, DQT, DNL and the rest carry nothing we need */
    }
    for (int k = 0; k < c.ncomp; k++)
        if (!c.done[k]) {
            snprintf(err, errlen, "truncated JPEG Lossless stream: component %d never decoded",
                     k);
            return CXR_IMG_CORRUPT;
        }
    if (!have_frame) {
        snprintf(err, errlen, "corrupt JPEG Lossless stream: no frame");
        return CXR_IMG_CORRUPT;
    }
    /* undo the point transform; keep P bits (only a bad stream sets more) */
    uint32_t mask = ((uint32_t)1 << c.precision) - 1;
    for (size_t i = 0; i < samples; i++) {
        int k = (int)(i % (size_t)c.ncomp);
        out[i] = (int32_t)(((uint32_t)out[i] << c.pt[k]) & mask);
    }
    /* a missing EOI after complete scans is tolerated: every sample was read from the data */
    *info = hdr;
    return CXR_IMG_OK;
}

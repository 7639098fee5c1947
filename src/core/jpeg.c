/* JPEG: our own marker parser up to the first SOF (cheap, no library), lossy decoding through
 * libjpeg-turbo (8-bit, from memory) and lossless (process 14) through jpeg_lossless.c.
 * libjpeg reports fatal errors through error_exit, which must not return: ours longjmps back to
 * the setjmp in lossy_decode, the only function of this file that calls the library, so no
 * jump ever crosses a caller's frame. */
#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "cxr_codec.h"
#include "cxr_interrupt.h"

/* A progressive image needs about ten scans; every scan re-reads the whole coefficient buffer,
 * so a small file of thousands of near-empty scans would take minutes to decode. */
#define MAX_SCANS 256
/* samples of work between interrupt polls */
#define POLL_SAMPLES 65536

static unsigned
be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* The processes we refuse, named for the message. */
static const char *
unsupported_sof(unsigned m)
{
    switch (m) {
    case 0xC5:
        return "differential sequential (hierarchical, SOF5)";
    case 0xC6:
        return "differential progressive (hierarchical, SOF6)";
    case 0xC7:
        return "differential lossless (hierarchical, SOF7)";
    case 0xC9:
        return "extended sequential with arithmetic coding (SOF9)";
    case 0xCA:
        return "progressive with arithmetic coding (SOF10)";
    case 0xCB:
        return "lossless with arithmetic coding (SOF11)";
    case 0xCD:
        return "differential sequential with arithmetic coding (hierarchical, SOF13)";
    case 0xCE:
        return "differential progressive with arithmetic coding (hierarchical, SOF14)";
    case 0xCF:
        return "differential lossless with arithmetic coding (hierarchical, SOF15)";
    case 0xDE:
        return "hierarchical (DHP marker)";
    case 0xF7:
        return "JPEG-LS (SOF55)";
    default:
        return NULL;
    }
}

/* What libjpeg's default_decompress_parms will assume for 3 components, from the markers seen
 * before the SOF: JFIF means YCbCr, Adobe's transform flag decides, else the component ids. */
static int
predict_ycbcr(int saw_jfif, int saw_adobe, int adobe_transform, const uint8_t *ids)
{
    if (saw_jfif)
        return 1;
    if (saw_adobe)
        return adobe_transform != 0;
    if (ids[0] == 82 && ids[1] == 71 && ids[2] == 66) /* 'R' 'G' 'B' */
        return 0;
    return 1;
}

cxr_img_status
cxr_jpeg_read_header(const uint8_t *buf, size_t len, cxr_frame_info *info, char *err,
                     size_t errlen)
{
    memset(info, 0, sizeof *info);
    info->process = -1;
    if (!buf || len < 4 || buf[0] != 0xFF || buf[1] != 0xD8) {
        snprintf(err, errlen, "not a JPEG stream (no SOI marker)");
        return CXR_IMG_CORRUPT;
    }
    int saw_jfif = 0, saw_adobe = 0, adobe_transform = 0;
    size_t p = 2;
    for (;;) {
        if (p + 2 > len) {
            snprintf(err, errlen, "truncated JPEG stream: no frame header (SOF) in %zu bytes",
                     len);
            return CXR_IMG_CORRUPT;
        }
        if (buf[p] != 0xFF) {
            snprintf(err, errlen, "corrupt JPEG stream: byte 0x%02X at offset %zu where a "
                                  "marker was expected", buf[p], p);
            return CXR_IMG_CORRUPT;
        }
        unsigned m = buf[p + 1];
        if (m == 0xFF) { /* fill byte before a marker */
            p++;
            continue;
        }
        p += 2;
        const char *refused = unsupported_sof(m);
        if (refused) {
            snprintf(err, errlen, "unsupported JPEG process: %s", refused);
            return CXR_IMG_UNSUPPORTED;
        }
        if (m == 0x01) /* TEM: no length */
            continue;
        if (m == 0x00 || m == 0xD8 || m == 0xD9 || m == 0xDA || (m >= 0xD0 && m <= 0xD7)) {
            snprintf(err, errlen, "corrupt JPEG stream: marker 0x%02X before the frame header",
                     m);
            return CXR_IMG_CORRUPT;
        }
        if (p + 2 > len) {
            snprintf(err, errlen, "truncated JPEG stream: marker 0x%02X without its length", m);
            return CXR_IMG_CORRUPT;
        }
        size_t seg = be16(buf + p);
        if (seg < 2 || seg > len - p) {
            snprintf(err, errlen, "corrupt JPEG stream: marker 0x%02X segment of %zu bytes at "
                                  "offset %zu overruns the %zu-byte stream", m, seg, p, len);
            return CXR_IMG_CORRUPT;
        }
        const uint8_t *d = buf + p + 2;
        size_t dl = seg - 2;
        if (m == 0xE0 && dl >= 5 && memcmp(d, "JFIF\0", 5) == 0)
            saw_jfif = 1;
        if (m == 0xEE && dl >= 12 && memcmp(d, "Adobe", 5) == 0) {
            saw_adobe = 1;
            adobe_transform = d[11];
        }
        if (m == 0xC0 || m == 0xC1 || m == 0xC2 || m == 0xC3) {
            if (dl < 6) {
                snprintf(err, errlen, "corrupt JPEG frame header: %zu bytes", dl);
                return CXR_IMG_CORRUPT;
            }
            int process = (int)(m & 0x0F);
            int prec = d[0];
            unsigned h = be16(d + 1), w = be16(d + 3);
            int nf = d[5];
            if (nf == 0 || dl != 6 + 3 * (size_t)nf) {
                snprintf(err, errlen, "corrupt JPEG frame header: %d components in %zu bytes", nf,
                         dl);
                return CXR_IMG_CORRUPT;
            }
            if (nf != 1 && nf != 3) {
                snprintf(err, errlen, "unsupported JPEG image: %d components (1 or 3 supported)",
                         nf);
                return CXR_IMG_UNSUPPORTED;
            }
            if (w == 0 || h == 0) {
                /* height 0 defers it to a DNL marker, which nothing we read writes */
                snprintf(err, errlen, "corrupt or unsupported JPEG image: dimensions %ux%u", w, h);
                return CXR_IMG_CORRUPT;
            }
            int prec_ok = process == 3 ? prec >= 2 && prec <= 16
                                       : prec == 8 || (prec == 12 && process != 0);
            if (!prec_ok) {
                snprintf(err, errlen, "corrupt JPEG frame header: %d-bit samples in process %d",
                         prec, process);
                return CXR_IMG_CORRUPT;
            }
            uint8_t ids[3] = {0, 0, 0};
            for (int c = 0; c < nf; c++) {
                const uint8_t *cd = d + 6 + 3 * c;
                int hs = cd[1] >> 4, vs = cd[1] & 15;
                if (hs < 1 || hs > 4 || vs < 1 || vs > 4 || cd[2] > 3) {
                    snprintf(err, errlen, "corrupt JPEG frame header: component %d has sampling "
                                          "%dx%d, table %d", c, hs, vs, cd[2]);
                    return CXR_IMG_CORRUPT;
                }
                ids[c] = cd[0];
            }
            info->width = (int)w;
            info->height = (int)h;
            info->components = nf;
            info->precision = prec;
            info->process = process;
            info->is_signed = 0;
            info->color_transformed =
                nf == 3 && process != 3 && predict_ycbcr(saw_jfif, saw_adobe, adobe_transform, ids);
            return CXR_IMG_OK;
        }
        p += seg;
    }
}

/* Scans in the stream, counted by walking its markers (entropy-coded data holds no marker but
 * RSTn, FF00 stands for a data byte). Stops early past limit. */
static int
count_scans(const uint8_t *b, size_t len, int limit)
{
    int scans = 0;
    size_t p = 2;
    while (p + 1 < len && scans <= limit) {
        if (b[p] != 0xFF) {
            p++;
            continue;
        }
        unsigned m = b[p + 1];
        if (m == 0xFF) {
            p++;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            p += 2;
            continue;
        }
        if (m == 0xD9 || p + 4 > len)
            break;
        size_t seg = be16(b + p + 2);
        if (seg < 2)
            break;
        p += 2 + seg;
        if (m == 0xDA)
            scans++;
    }
    return scans;
}

enum { ABORT_LIBRARY = 0, ABORT_INTERRUPTED, ABORT_SCANS };

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int reason;
    int warnings;
    int data_lost; /* a warning that means pixels were made up: the stream is bad */
    char msg[JMSG_LENGTH_MAX];
} err_mgr;

typedef struct {
    struct jpeg_progress_mgr pub;
    err_mgr *em;
    int absorbing; /* inside jpeg_start_decompress, reading every scan of a progressive file */
    size_t work;
} progress_mgr;

static void
on_error_exit(j_common_ptr cinfo)
{
    err_mgr *em = (err_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, em->msg);
    em->reason = ABORT_LIBRARY;
    longjmp(em->jump, 1);
}

static void
on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* nothing is printed */
}

static void
on_emit_message(j_common_ptr cinfo, int level)
{
    err_mgr *em = (err_mgr *)cinfo->err;
    if (level >= 0) /* trace messages */
        return;
    em->warnings++;
    /* libjpeg goes on after these, filling what is missing with gray: an image we would
     * score silently wrong, so they fail the decode (after the library is done) */
    int code = cinfo->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE ||
        code == JWRN_MUST_RESYNC || code == JWRN_NOT_SEQUENTIAL) {
        if (!em->data_lost)
            (*cinfo->err->format_message)(cinfo, em->msg);
        em->data_lost = 1;
    }
}

static void
on_progress(j_common_ptr cinfo)
{
    progress_mgr *pm = (progress_mgr *)cinfo->progress;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (!pm->absorbing)
        return;
    if (d->input_scan_number > MAX_SCANS) {
        pm->em->reason = ABORT_SCANS;
        longjmp(pm->em->jump, 1);
    }
    /* called once per iMCU row of each scan */
    size_t row = (size_t)d->image_width * (size_t)d->max_v_samp_factor * DCTSIZE;
    if (pm->work == 0 && cxr_interrupt_poll()) {
        pm->em->reason = ABORT_INTERRUPTED;
        longjmp(pm->em->jump, 1);
    }
    pm->work += row;
    if (pm->work >= POLL_SAMPLES)
        pm->work = 0;
}

/* Scanlines into out; returns 0, or 1 when interrupted. Errors longjmp from the library. */
static int
read_rows(j_decompress_ptr cinfo, int32_t *out)
{
    size_t stride = (size_t)cinfo->output_width * (size_t)cinfo->output_components;
    JSAMPARRAY row =
        (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, (JDIMENSION)stride, 1);
    size_t since = 0;
    while (cinfo->output_scanline < cinfo->output_height) {
        if (since == 0 && cxr_interrupt_poll())
            return 1;
        size_t y = cinfo->output_scanline;
        if (jpeg_read_scanlines(cinfo, row, 1) != 1)
            ERREXIT(cinfo, JERR_INPUT_EMPTY); /* a memory source never suspends */
        int32_t *o = out + y * stride;
        for (size_t i = 0; i < stride; i++)
            o[i] = row[0][i];
        since += stride;
        if (since >= POLL_SAMPLES)
            since = 0;
    }
    return 0;
}

/* libjpeg-turbo decoding of an 8-bit process 0, 1 or 2 stream whose header cxr_jpeg_read_header
 * accepted and whose size the caller checked. */
static cxr_img_status
lossy_decode(const uint8_t *buf, size_t len, cxr_jpeg_color color, const cxr_frame_info *hdr,
             int32_t *out, cxr_frame_info *info, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    err_mgr em;
    progress_mgr pm;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&em, 0, sizeof em);
    memset(&pm, 0, sizeof pm);
    cinfo.err = jpeg_std_error(&em.pub);
    em.pub.error_exit = on_error_exit;
    em.pub.emit_message = on_emit_message;
    em.pub.output_message = on_output_message;
    pm.pub.progress_monitor = on_progress;
    pm.em = &em;
    /* only the library writes cinfo, em and pm after this point (through pointers, so their
     * memory is current after the jump); no local is changed between setjmp and longjmp */
    if (setjmp(em.jump)) {
        cxr_img_status st = CXR_IMG_CORRUPT;
        if (em.reason == ABORT_INTERRUPTED) {
            snprintf(err, errlen, "interrupted");
            st = CXR_IMG_INTERRUPTED;
        } else if (em.reason == ABORT_SCANS) {
            snprintf(err, errlen, "unsupported JPEG image: more than %d scans (refused as a "
                                  "possible decompression bomb)", MAX_SCANS);
            st = CXR_IMG_UNSUPPORTED;
        } else if (em.pub.msg_code == JERR_OUT_OF_MEMORY ||
                   em.pub.msg_code == JERR_NO_BACKING_STORE) {
            snprintf(err, errlen, "out of memory decoding a %dx%d JPEG image: %s", hdr->width,
                     hdr->height, em.msg);
            st = CXR_IMG_NO_MEMORY;
        } else {
            snprintf(err, errlen, "corrupt JPEG image: %s", em.msg);
        }
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    jpeg_create_decompress(&cinfo);
    /* libjpeg-turbo has no limit of its own: the big allocation is a progressive image's
     * coefficient buffer (2 bytes a sample, MCU-padded), which beyond this fails for want of a
     * backing store instead of growing with a forged header */
    size_t padded = ((size_t)hdr->width + 32) * ((size_t)hdr->height + 32) * 3;
    size_t limit = ((size_t)32 << 20) + 4 * padded;
    cinfo.mem->max_memory_to_use = limit > (size_t)LONG_MAX ? LONG_MAX : (long)limit;
    cinfo.progress = &pm.pub;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if ((int)cinfo.image_width != hdr->width || (int)cinfo.image_height != hdr->height ||
        cinfo.num_components != hdr->components || cinfo.data_precision != 8) {
        /* our parser and the library read different frame headers: refuse rather than guess */
        snprintf(err, errlen, "corrupt JPEG image: inconsistent frame header");
        jpeg_destroy_decompress(&cinfo);
        return CXR_IMG_CORRUPT;
    }
    int transformed = 0;
    if (cinfo.num_components == 3) {
        if (color == CXR_JPEG_COLOR_RGB)
            cinfo.jpeg_color_space = JCS_RGB;
        else if (color == CXR_JPEG_COLOR_YCBCR)
            cinfo.jpeg_color_space = JCS_YCbCr;
        transformed = cinfo.jpeg_color_space == JCS_YCbCr;
        cinfo.out_color_space = JCS_RGB;
    } else {
        cinfo.out_color_space = JCS_GRAYSCALE;
    }
    pm.absorbing = 1;
    jpeg_start_decompress(&cinfo);
    pm.absorbing = 0;
    if ((int)cinfo.output_width != hdr->width || (int)cinfo.output_height != hdr->height ||
        cinfo.output_components != hdr->components) {
        snprintf(err, errlen, "corrupt JPEG image: unexpected output geometry");
        jpeg_destroy_decompress(&cinfo);
        return CXR_IMG_CORRUPT;
    }
    if (read_rows(&cinfo, out)) {
        snprintf(err, errlen, "interrupted");
        jpeg_destroy_decompress(&cinfo);
        return CXR_IMG_INTERRUPTED;
    }
    jpeg_finish_decompress(&cinfo);
    int lost = em.data_lost;
    if (lost)
        snprintf(err, errlen, "corrupt JPEG image: %s", em.msg);
    jpeg_destroy_decompress(&cinfo);
    if (lost)
        return CXR_IMG_CORRUPT;
    *info = *hdr;
    info->color_transformed = transformed;
    return CXR_IMG_OK;
}

cxr_img_status
cxr_jpeg_decode(const uint8_t *buf, size_t len, size_t max_samples, int32_t *out,
                size_t out_capacity, cxr_frame_info *info, char *err, size_t errlen)
{
    return cxr_jpeg_decode_as(buf, len, CXR_JPEG_COLOR_MARKERS, max_samples, out, out_capacity,
                              info, err, errlen);
}

cxr_img_status
cxr_jpeg_decode_as(const uint8_t *buf, size_t len, cxr_jpeg_color color, size_t max_samples,
                   int32_t *out, size_t out_capacity, cxr_frame_info *info, char *err,
                   size_t errlen)
{
    cxr_frame_info hdr;
    cxr_img_status st = cxr_jpeg_read_header(buf, len, &hdr, err, errlen);
    *info = hdr;
    if (st != CXR_IMG_OK)
        return st;
    if (hdr.process == 3)
        return cxr_jpeg_lossless_decode(buf, len, max_samples, out, out_capacity, info, err,
                                        errlen);
    if (hdr.precision != 8) {
        snprintf(err, errlen, "unsupported JPEG image: %d-bit lossy (process %d); only 8-bit "
                              "lossy JPEG is supported", hdr.precision, hdr.process);
        return CXR_IMG_UNSUPPORTED;
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
    int scans = count_scans(buf, len, MAX_SCANS);
    if (scans > MAX_SCANS) {
        snprintf(err, errlen, "unsupported JPEG image: more than %d scans (refused as a "
                              "possible decompression bomb)", MAX_SCANS);
        return CXR_IMG_UNSUPPORTED;
    }
    return lossy_decode(buf, len, color, &hdr, out, info, err, errlen);
}

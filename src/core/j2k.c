/* JPEG 2000 through OpenJPEG 2.5, from memory. OpenJPEG reports errors by return value (its
 * message callbacks only record text here), but it allocates per tile and per component as
 * soon as it reads the main header, so the SIZ marker segment is checked by our own parser
 * first: a forged size or tile count never reaches the library.
 *
 * opj_decode cannot be interrupted, and a chest X-ray takes it most of a second (several for
 * larger images). So it runs on a thread of its own, on its own copy of the stream and into its
 * own buffer, while the calling thread polls for a cancel; on a cancel the caller returns at
 * once and the worker, finding itself abandoned, frees what it holds when it finishes. The
 * worker never calls the host (no interrupt polls, no allocator of the caller's). */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openjpeg.h>

#include "cxr_codec.h"
#include "cxr_interrupt.h"
#include "cxr_threads.h"

#define POLL_SAMPLES 65536
/* OpenJPEG allocates a tile coding structure of a few kilobytes per tile in opj_read_header;
 * the files we read have one tile or a few */
#define MAX_TILES 4096

static const uint8_t jp2_signature[12] = {0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50,
                                          0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
} mem_stream;

typedef struct {
    char msg[256];
    int errors, warnings;
} messages;

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned
be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static OPJ_SIZE_T
mem_read(void *dst, OPJ_SIZE_T n, void *user)
{
    mem_stream *m = user;
    if (m->pos >= m->len)
        return (OPJ_SIZE_T)-1; /* OpenJPEG's end of stream */
    size_t k = m->len - m->pos < n ? m->len - m->pos : n;
    memcpy(dst, m->buf + m->pos, k);
    m->pos += k;
    return k;
}

static OPJ_OFF_T
mem_skip(OPJ_OFF_T n, void *user)
{
    mem_stream *m = user;
    if (n < 0) {
        if ((size_t)-n > m->pos)
            return -1;
        m->pos -= (size_t)-n;
        return n;
    }
    /* skipping nothing at the end must say -1, or OpenJPEG's skip loop never ends */
    if (m->pos >= m->len && n > 0)
        return -1;
    size_t k = m->len - m->pos < (size_t)n ? m->len - m->pos : (size_t)n;
    m->pos += k;
    return (OPJ_OFF_T)k;
}

static OPJ_BOOL
mem_seek(OPJ_OFF_T n, void *user)
{
    mem_stream *m = user;
    if (n < 0 || (uint64_t)n > m->len)
        return OPJ_FALSE;
    m->pos = (size_t)n;
    return OPJ_TRUE;
}

static void
on_error(const char *msg, void *data)
{
    messages *ms = data;
    if (ms->errors++ == 0) {
        snprintf(ms->msg, sizeof ms->msg, "%s", msg);
        size_t n = strlen(ms->msg);
        while (n > 0 && (ms->msg[n - 1] == '\n' || ms->msg[n - 1] == '\r'))
            ms->msg[--n] = '\0';
    }
}

static void
on_warning(const char *msg, void *data)
{
    (void)msg;
    ((messages *)data)->warnings++;
}

static void
on_info(const char *msg, void *data)
{
    (void)msg;
    (void)data;
}

/* The codestream of a JP2 file: the contents of its first top-level jp2c box. Refuses a
 * palette (pclr), which OpenJPEG expands into up to 255 components after the checks. */
static cxr_img_status
jp2_codestream(const uint8_t *buf, size_t len, size_t *off, char *err, size_t errlen)
{
    size_t p = 0;
    while (p + 8 <= len) {
        uint64_t box = be32(buf + p), head = 8;
        const uint8_t *type = buf + p + 4;
        if (box == 1) {
            if (p + 16 > len)
                break;
            box = (uint64_t)be32(buf + p + 8) << 32 | be32(buf + p + 12);
            head = 16;
        } else if (box == 0) {
            box = len - p;
        }
        if (box < head || box > len - p)
            break;
        if (memcmp(type, "jp2h", 4) == 0) {
            /* sub-boxes: ihdr, colr, pclr, cmap, ... */
            size_t q = p + head, end = p + (size_t)box;
            while (q + 8 <= end) {
                uint32_t sub = be32(buf + q);
                if (memcmp(buf + q + 4, "pclr", 4) == 0) {
                    snprintf(err, errlen, "unsupported JPEG 2000 image: JP2 palette");
                    return CXR_IMG_UNSUPPORTED;
                }
                if (sub < 8 || sub > end - q)
                    break;
                q += sub;
            }
        }
        if (memcmp(type, "jp2c", 4) == 0) {
            *off = p + (size_t)head;
            return CXR_IMG_OK;
        }
        p += (size_t)box;
    }
    snprintf(err, errlen, "corrupt JPEG 2000 file: no codestream box");
    return CXR_IMG_CORRUPT;
}

/* The SIZ marker segment (ISO 15444-1 A.5.1), right after SOC. */
static cxr_img_status
check_siz(const uint8_t *cs, size_t n, size_t max_samples, size_t out_capacity,
          cxr_frame_info *info, char *err, size_t errlen)
{
    if (n < 4 + 40 || be16(cs) != 0xFF4F || be16(cs + 2) != 0xFF51) {
        snprintf(err, errlen, "corrupt JPEG 2000 codestream: no SOC and SIZ markers");
        return CXR_IMG_CORRUPT;
    }
    const uint8_t *s = cs + 4;
    unsigned lsiz = be16(s), ncomp = be16(s + 36);
    if (ncomp == 0 || lsiz != 38 + 3 * ncomp || lsiz + 4 > n) {
        snprintf(err, errlen, "corrupt JPEG 2000 codestream: SIZ of %u bytes for %u components",
                 lsiz, ncomp);
        return CXR_IMG_CORRUPT;
    }
    uint32_t xs = be32(s + 4), ys = be32(s + 8), xo = be32(s + 12), yo = be32(s + 16);
    uint32_t xt = be32(s + 20), yt = be32(s + 24), xto = be32(s + 28), yto = be32(s + 32);
    if (xs <= xo || ys <= yo || xt == 0 || yt == 0 || xto > xo || yto > yo ||
        (uint64_t)xto + xt <= xo || (uint64_t)yto + yt <= yo) {
        snprintf(err, errlen, "corrupt JPEG 2000 codestream: image area %ux%u at (%u, %u), "
                              "tiles %ux%u at (%u, %u)",
                 xs, ys, xo, yo, xt, yt, xto, yto);
        return CXR_IMG_CORRUPT;
    }
    if (ncomp != 1 && ncomp != 3) {
        snprintf(err, errlen, "unsupported JPEG 2000 image: %u components (1 or 3 supported)",
                 ncomp);
        return CXR_IMG_UNSUPPORTED;
    }
    int prec = (s[38] & 0x7F) + 1, sgnd = s[38] >> 7;
    for (unsigned c = 0; c < ncomp; c++) {
        const uint8_t *cd = s + 38 + 3 * c;
        if (cd[1] != 1 || cd[2] != 1) {
            snprintf(err, errlen, "unsupported JPEG 2000 image: component %u subsampled %ux%u",
                     c, cd[1], cd[2]);
            return CXR_IMG_UNSUPPORTED;
        }
        if ((cd[0] & 0x7F) + 1 != prec || cd[0] >> 7 != sgnd) {
            snprintf(err, errlen, "unsupported JPEG 2000 image: components of unequal depth");
            return CXR_IMG_UNSUPPORTED;
        }
    }
    if (prec > 16) {
        snprintf(err, errlen, "unsupported JPEG 2000 image: %d-bit samples (16 at most)", prec);
        return CXR_IMG_UNSUPPORTED;
    }
    uint64_t w = xs - xo, h = ys - yo;
    uint64_t tiles = ((xs - xto + (uint64_t)xt - 1) / xt) * ((ys - yto + (uint64_t)yt - 1) / yt);
    info->width = w > 0x7FFFFFFF ? 0x7FFFFFFF : (int)w;
    info->height = h > 0x7FFFFFFF ? 0x7FFFFFFF : (int)h;
    info->components = (int)ncomp;
    info->precision = prec;
    info->is_signed = sgnd;
    /* 2^32 * 2^32 * 3 cannot overflow 128 bits; compare in steps instead */
    if (w > max_samples || h > max_samples || w * h > max_samples / ncomp) {
        snprintf(err, errlen, "JPEG 2000 image of %llux%llux%u samples exceeds the limit of %zu "
                              "samples",
                 (unsigned long long)w, (unsigned long long)h, ncomp, max_samples);
        return CXR_IMG_TOO_LARGE;
    }
    if (tiles > MAX_TILES) {
        snprintf(err, errlen, "unsupported JPEG 2000 image: %llu tiles (%d at most)",
                 (unsigned long long)tiles, MAX_TILES);
        return CXR_IMG_UNSUPPORTED;
    }
    if (w * h * ncomp > out_capacity) {
        snprintf(err, errlen, "output buffer too small");
        return CXR_IMG_NO_MEMORY;
    }
    return CXR_IMG_OK;
}

/* The decoding proper, on the worker thread (or the caller's when no thread starts): out
 * holds width x height x components samples; info was filled by check_siz. */
static cxr_img_status
decode_body(const uint8_t *buf, size_t len, OPJ_CODEC_FORMAT fmt, int32_t *out,
            const cxr_frame_info *info, char *err, size_t errlen)
{
    cxr_img_status st;
    mem_stream ms = {.buf = buf, .len = len, .pos = 0};
    messages msgs;
    memset(&msgs, 0, sizeof msgs);
    opj_codec_t *codec = NULL;
    opj_image_t *image = NULL;
    opj_stream_t *stream = opj_stream_create(65536, OPJ_TRUE);
    if (!stream) {
        snprintf(err, errlen, "out of memory decoding a JPEG 2000 image");
        return CXR_IMG_NO_MEMORY;
    }
    opj_stream_set_user_data(stream, &ms, NULL);
    opj_stream_set_user_data_length(stream, len);
    opj_stream_set_read_function(stream, mem_read);
    opj_stream_set_skip_function(stream, mem_skip);
    opj_stream_set_seek_function(stream, mem_seek);

    st = CXR_IMG_CORRUPT;
    const char *stage = "header";
    codec = opj_create_decompress(fmt);
    if (!codec) {
        st = CXR_IMG_NO_MEMORY;
        goto done;
    }
    opj_set_error_handler(codec, on_error, &msgs);
    opj_set_warning_handler(codec, on_warning, &msgs);
    opj_set_info_handler(codec, on_info, &msgs);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    if (!opj_setup_decoder(codec, &params))
        goto done;
    /* truncated code-blocks are an error, not silently blurred pixels */
    opj_decoder_set_strict_mode(codec, OPJ_TRUE);
    /* 0: decode in the calling thread (1 would start a worker thread, and OPJ_NUM_THREADS
     * would otherwise decide) */
    opj_codec_set_threads(codec, 0);
    if (!opj_read_header(stream, codec, &image) || !image)
        goto done;
    /* the library read the same SIZ as check_siz; a JP2 header could still disagree */
    int w = info->width, h = info->height, nc = info->components;
    if ((int)image->numcomps != nc || image->x1 - image->x0 != (OPJ_UINT32)w ||
        image->y1 - image->y0 != (OPJ_UINT32)h) {
        snprintf(msgs.msg, sizeof msgs.msg, "inconsistent image header");
        msgs.errors++;
        goto done;
    }
    for (int c = 0; c < nc; c++)
        if (image->comps[c].dx != 1 || image->comps[c].dy != 1 ||
            (int)image->comps[c].prec != info->precision ||
            (int)image->comps[c].sgnd != info->is_signed) {
            snprintf(msgs.msg, sizeof msgs.msg, "inconsistent component header");
            msgs.errors++;
            goto done;
        }
    stage = "data";
    if (!opj_decode(codec, stream, image) || !opj_end_decompress(codec, stream))
        goto done;
    if ((int)image->numcomps != nc) {
        snprintf(msgs.msg, sizeof msgs.msg, "decoded %u components, %d announced",
                 image->numcomps, nc);
        msgs.errors++;
        goto done;
    }
    for (int c = 0; c < nc; c++)
        if (!image->comps[c].data || image->comps[c].w != (OPJ_UINT32)w ||
            image->comps[c].h != (OPJ_UINT32)h) {
            snprintf(msgs.msg, sizeof msgs.msg, "component %d decoded incompletely", c);
            msgs.errors++;
            goto done;
        }
    size_t px = (size_t)w * (size_t)h;
    for (size_t i = 0; i < px; i++)
        for (int c = 0; c < nc; c++)
            out[i * (size_t)nc + (size_t)c] = image->comps[c].data[i];
    st = CXR_IMG_OK;
done:
    if (st == CXR_IMG_NO_MEMORY)
        snprintf(err, errlen, "out of memory decoding a JPEG 2000 image");
    else if (st != CXR_IMG_OK)
        snprintf(err, errlen, "corrupt JPEG 2000 image (%s): %s", stage,
                 msgs.errors ? msgs.msg : "decoding failed");
    if (image)
        opj_image_destroy(image);
    if (codec)
        opj_destroy_codec(codec);
    opj_stream_destroy(stream);
    return st;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    int done, abandoned;
    uint8_t *buf; /* the worker's copy of the stream */
    size_t len;
    OPJ_CODEC_FORMAT fmt;
    cxr_frame_info info;
    int32_t *out;
    cxr_img_status st;
    char err[320]; /* a corrupt stream's message quotes OpenJPEG's (up to 255 bytes) */
} decode_job;

static void
job_free(decode_job *job)
{
    pthread_cond_destroy(&job->finished);
    pthread_mutex_destroy(&job->lock);
    free(job->buf);
    free(job->out);
    free(job);
}

static void *
decode_worker(void *arg)
{
    decode_job *job = arg;
    cxr_img_status st = decode_body(job->buf, job->len, job->fmt, job->out, &job->info, job->err,
                                    sizeof job->err);
    pthread_mutex_lock(&job->lock);
    job->st = st;
    job->done = 1;
    int abandoned = job->abandoned;
    pthread_cond_signal(&job->finished);
    pthread_mutex_unlock(&job->lock);
    if (abandoned)
        job_free(job);
    return NULL;
}

#define POLL_NS 20000000L /* a cancel is seen within 20 ms */

static cxr_img_status
decode_off_thread(const uint8_t *buf, size_t len, OPJ_CODEC_FORMAT fmt, int32_t *out,
                  const cxr_frame_info *info, char *err, size_t errlen)
{
    size_t samples = (size_t)info->width * info->height * info->components;
    decode_job *job = calloc(1, sizeof *job);
    if (!job) {
        snprintf(err, errlen, "out of memory decoding a JPEG 2000 image");
        return CXR_IMG_NO_MEMORY;
    }
    job->buf = malloc(len);
    job->out = malloc(sizeof(int32_t) * samples);
    if (!job->buf || !job->out) {
        free(job->buf), free(job->out), free(job);
        snprintf(err, errlen, "out of memory decoding a JPEG 2000 image");
        return CXR_IMG_NO_MEMORY;
    }
    memcpy(job->buf, buf, len);
    job->len = len;
    job->fmt = fmt;
    job->info = *info;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->finished, NULL);
    pthread_t tid;
    if (cxr_thread_start(&tid, decode_worker, job) == 0)
        pthread_detach(tid); /* nobody joins it: the job's flags say when it is done */
    else /* no thread: decode here, uninterruptibly */
        decode_worker(job);
    pthread_mutex_lock(&job->lock);
    while (!job->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&job->finished, &job->lock, &until);
        if (job->done)
            break;
        pthread_mutex_unlock(&job->lock);
        int stop = cxr_interrupt_poll();
        pthread_mutex_lock(&job->lock);
        if (stop && !job->done) { /* the worker frees the job when it finishes */
            job->abandoned = 1;
            pthread_mutex_unlock(&job->lock);
            snprintf(err, errlen, "interrupted");
            return CXR_IMG_INTERRUPTED;
        }
    }
    pthread_mutex_unlock(&job->lock);
    cxr_img_status st = job->st;
    if (st == CXR_IMG_OK) {
        for (size_t i = 0; i < samples && st == CXR_IMG_OK; i += POLL_SAMPLES) {
            if (cxr_interrupt_poll())
                st = CXR_IMG_INTERRUPTED;
            else
                memcpy(out + i, job->out + i,
                       sizeof(int32_t) * (samples - i < POLL_SAMPLES ? samples - i : POLL_SAMPLES));
        }
        if (st == CXR_IMG_INTERRUPTED)
            snprintf(err, errlen, "interrupted");
    } else {
        snprintf(err, errlen, "%s", job->err);
    }
    job_free(job);
    return st;
}

cxr_img_status
cxr_j2k_decode(const uint8_t *buf, size_t len, size_t max_samples, int32_t *out,
               size_t out_capacity, cxr_frame_info *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    info->process = -1;
    OPJ_CODEC_FORMAT fmt;
    size_t cs_off = 0;
    cxr_img_status st;
    if (buf && len >= 4 && be32(buf) == 0xFF4FFF51u) {
        fmt = OPJ_CODEC_J2K;
    } else if (buf && len >= 12 && memcmp(buf, jp2_signature, 12) == 0) {
        fmt = OPJ_CODEC_JP2;
        st = jp2_codestream(buf, len, &cs_off, err, errlen);
        if (st != CXR_IMG_OK)
            return st;
    } else {
        snprintf(err, errlen, "not a JPEG 2000 codestream or JP2 file");
        return CXR_IMG_CORRUPT;
    }
    st = check_siz(buf + cs_off, len - cs_off, max_samples, out_capacity, info, err, errlen);
    if (st != CXR_IMG_OK)
        return st;
    if (!out) {
        snprintf(err, errlen, "output buffer too small");
        return CXR_IMG_NO_MEMORY;
    }
    if (cxr_interrupt_poll()) {
        snprintf(err, errlen, "interrupted");
        return CXR_IMG_INTERRUPTED;
    }

    return decode_off_thread(buf, len, fmt, out, info, err, errlen);
}

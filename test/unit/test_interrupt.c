/* Cancellation: a hook that says stop makes inference, training, batch assembly, PNG decoding
 * and resizing return early with their "interrupted" result; the hook is polled once per image
 * per layer (its call count grows linearly with the batch, by at least one per layer); with the
 * hook removed and the flag cleared everything computes as before. */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_image.h"
#include "cxr_interrupt.h"
#include "cxr_model.h"
#include "cxr_train.h"
#include "harness.h"

/* conv1..conv5 (docs/models.md) */
#define ALEXNET_CONVS 5
#include "interrupt_hook.h"

static void
test_flag(void)
{
    disarm();
    CHECK(cxr_interrupt_poll() == 0 && cxr_interrupt_requested() == 0, "no hook: never stops");
    arm(2);
    CHECK(cxr_interrupt_poll() == 0 && cxr_interrupt_poll() == 0, "first two polls go on");
    CHECK(cxr_interrupt_poll() == 1 && calls == 3, "third poll stops");
    CHECK(cxr_interrupt_poll() == 1 && cxr_interrupt_requested() == 1 && calls == 3,
          "sticky, without asking the hook again (%ld calls)", calls);
    cxr_set_interrupt_hook(NULL);
    CHECK(cxr_interrupt_poll() == 1, "removing the hook does not clear a request");
    cxr_interrupt_clear();
    CHECK(cxr_interrupt_requested() == 0 && cxr_interrupt_poll() == 0, "cleared");
}

/* Hook calls during one trainer step on n images (never stopping). */
static long
step_calls(cxr_trainer *t, const float *images, const float *labels, int n)
{
    arm(-1);
    double loss = cxr_trainer_forward_backward(t, images, labels, n, 5, NULL);
    CHECK(isfinite(loss), "step of %d with a silent hook: loss %g", n, loss);
    disarm();
    return calls;
}

static void
test_model(void)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create("alexnet_attn1", 1, 299, 11, err);
    CHECK(m != NULL, "create: %s", err);
    if (!m)
        return;
    enum { N = 3 };
    size_t img = (size_t)m->input_size * m->input_size;
    float *images = malloc(sizeof(float) * img * N), labels[N] = {1, 0, 1}, logits[N];
    harness_fill(images, img * N, 9);

    disarm();
    float plain = cxr_model_forward(m, images);
    CHECK(isfinite(plain), "forward without a hook");

    /* inference: at least one poll per conv layer, and stopping gives NAN */
    arm(-1);
    float with_hook = cxr_model_forward(m, images);
    long per_image = calls;
    CHECK(memcmp(&with_hook, &plain, sizeof plain) == 0, "a silent hook changes nothing");
    CHECK(per_image >= ALEXNET_CONVS, "forward polled %ld times, fewer than its %d conv layers",
          per_image, ALEXNET_CONVS);
    for (long k = 0; k < per_image; k++) {
        arm(k);
        float r = cxr_model_forward(m, images);
        CHECK(isnan(r) && calls == k + 1, "stop at poll %ld: logit %g after %ld calls", k + 1, r,
              calls);
    }
    /* batch: alexnet_attn1's head is small, so a batch takes its images one at a time
     * (kind_cnn.c, batch_chunk); a stop two polls into the second image leaves the first
     * image's logit, its single score bit for bit, and the others NAN */
    arm(per_image + 1);
    CHECK(cxr_model_forward_batch(m, images, N, logits) == -1, "batch reports the interrupt");
    CHECK(memcmp(&logits[0], &plain, sizeof plain) == 0 && isnan(logits[1]) && isnan(logits[2]),
          "batch: logits %g %g %g after the stop", logits[0], logits[1], logits[2]);
    CHECK(calls == per_image + 2, "batch went on polling after the stop: %ld calls", calls);
    disarm();
    CHECK(cxr_model_forward_batch(m, images, N, logits) == 0 &&
              memcmp(&logits[0], &plain, sizeof plain) == 0,
          "after clearing, the batch computes as before");

    /* training: calls grow linearly with the batch, by at least two polls per conv layer
     * (forward and backward) per image */
    cxr_adam_config adam = {1e-3f, 0.9f, 0.999f, 1e-8f};
    cxr_trainer *t = cxr_trainer_create(m, N, &adam);
    CHECK(t != NULL, "trainer");
    if (t) {
        long c1 = step_calls(t, images, labels, 1), c2 = step_calls(t, images, labels, 2),
             c3 = step_calls(t, images, labels, 3);
        CHECK(c2 - c1 == c3 - c2 && c2 - c1 >= 2 * ALEXNET_CONVS,
              "trainer polls for 1, 2, 3 images: %ld %ld %ld", c1, c2, c3);
        printf("  hook calls: forward %ld per image; training step %ld + %ld per image\n",
               per_image, c1 - (c2 - c1), c2 - c1);

        /* stopping at the first poll returns before any layer ran: BN statistics untouched */
        const cxr_param_info *rv = cxr_model_tensor(m, "bn1.running_var");
        float *before = malloc(sizeof(float) * rv->numel);
        memcpy(before, m->params + rv->offset, sizeof(float) * rv->numel);
        arm(0);
        CHECK(isnan(cxr_trainer_forward_backward(t, images, labels, N, 5, NULL)) && calls == 1,
              "step stopped at the first poll");
        CHECK(memcmp(before, m->params + rv->offset, sizeof(float) * rv->numel) == 0,
              "layer 1 ran after the stop");
        free(before);
        /* stopping anywhere, in forward or in backward, gives NAN at once */
        for (long k = 1; k < c3; k += 7) {
            arm(k);
            double loss = cxr_trainer_forward_backward(t, images, labels, N, 5, NULL);
            CHECK(isnan(loss) && calls == k + 1, "step stopped at poll %ld: loss %g, %ld calls",
                  k + 1, loss, calls);
        }
        disarm();
        CHECK(isfinite(cxr_trainer_forward_backward(t, images, labels, N, 5, NULL)),
              "after clearing, training works");
        cxr_trainer_free(t);
    }

    /* batch assembly polls per image */
    uint8_t *block = calloc(img * N, 1);
    cxr_dataset d = {N, N, m->input_size, &block, labels};
    int idx[N] = {0, 1, 2};
    cxr_augment_config aug = {10.0f, 1};
    arm(-1);
    CHECK(cxr_make_batch(&d, idx, N, &aug, 1, 0, images) == 0 && calls >= N,
          "make_batch: %ld polls for %d images", calls, N);
    arm(1);
    CHECK(cxr_make_batch(&d, idx, N, &aug, 1, 0, images) == -1 && calls == 2,
          "make_batch stops at its second image");
    disarm();
    free(block);
    free(images);
    cxr_model_free(m);
}

static void
test_image(void)
{
    enum { SW = 500, SH = 400, DW = 299, DH = 299 };
    float *src = malloc(sizeof(float) * SW * SH), *dst = malloc(sizeof(float) * DW * DH);
    float *again = malloc(sizeof(float) * DW * DH);
    float *tmp = malloc(sizeof(float) * cxr_resize_scratch_floats(SW, SH, DW, DH));
    for (int i = 0; i < SW * SH; i++)
        src[i] = (float)(i % 97) / 96.0f;
    disarm();
    CHECK(cxr_resize_bilinear(src, SW, SH, dst, DW, DH, tmp) == CXR_IMG_OK, "resize");
    arm(0);
    CHECK(cxr_resize_bilinear(src, SW, SH, again, DW, DH, tmp) == CXR_IMG_INTERRUPTED,
          "resize not interrupted");
    arm(-1);
    CHECK(cxr_resize_bilinear(src, SW, SH, again, DW, DH, tmp) == CXR_IMG_OK &&
              memcmp(again, dst, sizeof(float) * DW * DH) == 0,
          "a silent hook changes the resize");
    /* the work is about (SH*DW + DH*DW) * taps multiply-adds: several polls, not one per row of
     * a small image (cost) nor none (latency) */
    CHECK(calls >= 4, "resize of %dx%d polled only %ld times", SW, SH, calls);
    /* and tall images resize vertically first: also interruptible */
    arm(0);
    CHECK(cxr_resize_bilinear(src, 2, SW * SH / 2, again, 64, 64, tmp) == CXR_IMG_INTERRUPTED,
          "vertical-first resize not interrupted");

    /* PNG decoding: a 300x300 gray image is more than 64k pixels */
    enum { W = 300, H = 300 };
    uint8_t *px = malloc(W * H);
    for (int i = 0; i < W * H; i++)
        px[i] = (uint8_t)i;
    size_t len = 0;
    uint8_t *png = NULL;
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (int i = 0; i < W * H; i++)
        rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = px[i];
    disarm();
    CHECK(cxr_png_encode_rgb(rgb, W, H, &png, &len) == CXR_IMG_OK, "encode");
    float *gray = malloc(sizeof(float) * W * H);
    char err[128];
    CHECK(cxr_png_decode_gray(png, len, W * H, gray, W * H, err, sizeof err) == CXR_IMG_OK,
          "decode: %s", err);
    arm(1);
    CHECK(cxr_png_decode_gray(png, len, W * H, gray, W * H, err, sizeof err) ==
                  CXR_IMG_INTERRUPTED &&
              calls == 2,
          "decode not interrupted at its second poll (%ld calls)", calls);
    disarm();
    CHECK(cxr_png_decode_gray(png, len, W * H, gray, W * H, err, sizeof err) == CXR_IMG_OK &&
              fabsf(gray[W * H - 1] - px[W * H - 1] / 255.0f) < 1e-6f,
          "decode after clearing");

    /* (the overlay's interrupts: test_draw.c) */
    free(gray);
    free(png);
    free(rgb);
    free(px);
    free(src);
    free(dst);
    free(again);
    free(tmp);
}

int
main(void)
{
    cxr_blas_set_threads(1);
    test_flag();
    test_image();
    test_model();
    return harness_finish("test_interrupt");
}

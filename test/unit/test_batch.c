/* Batch inference: every dot-kernel path this CPU can run against a double-precision product
 * (edges of its tiles, the tail of a row, a row of 9216 as alexnet's fc1), and a row's result
 * equal bit for bit whether it is computed alone or inside any batch; whole networks scored in
 * a batch equal, bit for bit, the same images scored one by one, in any order, across the
 * workspace's chunks, within the workspace bound, on 1 and on 2 threads. (Against PyTorch:
 * test_reference's eval logits go through the batch path too.) */
#include <string.h>

#include "cxr_blas.h"
#include "cxr_layers.h"
#include "cxr_model.h"
#include "harness.h"

static void
check_path(int p)
{
    static const int shapes[][3] = {{1, 1, 1},   {3, 15, 5},   {7, 16, 9},    {5, 77, 11},
                                    {33, 300, 17}, {2, 9216, 10}, {4, 32, 4096}, {9, 129, 3}};
    const char *name = cxr_kernel_path_name(p);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float *x = malloc(sizeof(float) * n * in), *w = malloc(sizeof(float) * out * in);
        float *b = malloc(sizeof(float) * out), *y = malloc(sizeof(float) * n * out);
        float *y1 = malloc(sizeof(float) * out);
        harness_fill(x, (size_t)n * in, 3 + s);
        harness_fill(w, (size_t)out * in, 101 + s);
        harness_fill(b, out, 7 + s);
        cxr_dot_batch_path(p, x, n, in, out, w, s % 2 ? b : NULL, y);
        double worst = 0;
        int alone_equal = 1;
        for (int r = 0; r < n; r++) {
            for (int o = 0; o < out; o++) {
                double sum = s % 2 ? b[o] : 0, mag = s % 2 ? fabs(b[o]) : 0;
                for (int k = 0; k < in; k++) {
                    sum += (double)x[(size_t)r * in + k] * w[(size_t)o * in + k];
                    mag += fabs((double)x[(size_t)r * in + k] * w[(size_t)o * in + k]);
                }
                double e = fabs(y[(size_t)r * out + o] - sum) / (mag > 0 ? mag : 1);
                worst = e > worst ? e : worst;
            }
            cxr_dot_batch_path(p, x + (size_t)r * in, 1, in, out, w, s % 2 ? b : NULL, y1);
            alone_equal &= memcmp(y1, y + (size_t)r * out, sizeof(float) * out) == 0;
        }
        /* float32 sums of `in` products: a few units of 2^-24 of the magnitude per term */
        CHECK(worst <= 1e-6 * (1 + in / 64.0), "%s %dx%dx%d: error %.3g of the magnitude", name,
              n, in, out, worst);
        CHECK(alone_equal, "%s %dx%dx%d: a row alone differs from the same row in the batch",
              name, n, in, out);
        free(x), free(w), free(b), free(y), free(y1);
    }
}

static void
check_network(const char *arch, int side, int n)
{
    char err[CXR_ERR_LEN];
    cxr_model *m = cxr_model_create(arch, 1, side, 17, err);
    CHECK(m != NULL, "%s: %s", arch, err);
    if (!m)
        return;
    size_t img = (size_t)side * side;
    float *images = malloc(sizeof(float) * img * n), *reversed = malloc(sizeof(float) * img * n);
    float *single = malloc(sizeof(float) * n), *batch = malloc(sizeof(float) * n);
    float *back = malloc(sizeof(float) * n);
    for (size_t i = 0; i < img * n; i++) /* gray levels in [0, 1] */
        images[i] = (float)((i * 2654435761u) >> 8 & 255) / 255.0f;
    for (int i = 0; i < n; i++)
        memcpy(reversed + (size_t)(n - 1 - i) * img, images + (size_t)i * img, sizeof(float) * img);
    for (int i = 0; i < n; i++)
        single[i] = cxr_model_forward(m, images + (size_t)i * img);
    CHECK(cxr_model_forward_batch(m, images, n, batch) == 0, "%s: batch of %d", arch, n);
    CHECK(cxr_model_forward_batch(m, reversed, n, back) == 0, "%s: reversed batch", arch);
    int equal = 1, finite = 1;
    for (int i = 0; i < n; i++) {
        equal &= memcmp(&single[i], &batch[i], sizeof(float)) == 0 &&
                 memcmp(&single[i], &back[n - 1 - i], sizeof(float)) == 0;
        finite &= isfinite(single[i]);
    }
    CHECK(finite, "%s: finite logits", arch);
    CHECK(equal, "%s: %d images scored in a batch (and reversed) equal their scores alone", arch,
          n);
    size_t bytes = cxr_model_batch_bytes(m, n);
    CHECK(bytes <= CXR_BATCH_WORKSPACE_BYTES, "%s: batch workspace %zu bytes", arch,
          bytes);
    printf("  %-14s %d images at %d: batch equals single; batch workspace %.1f MiB\n", arch, n,
           side, bytes / 1048576.0);
    free(images), free(reversed), free(single), free(batch), free(back);
    cxr_model_free(m);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "paths")) { /* for make check-core: the paths to test */
        for (int p = 0; p < CXR_KERNEL_PATHS; p++)
            if (cxr_kernel_path_runs_here(p))
                printf("%s\n", cxr_kernel_path_name(p));
        return 0;
    }
    printf("  %s\n", cxr_dot_describe());
    int ran = 0;
    for (int p = 0; p < CXR_KERNEL_PATHS; p++)
        if (cxr_kernel_path_runs_here(p)) {
            check_path(p);
            printf("  dot path %s checked\n", cxr_kernel_path_name(p));
            ran++;
        }
    CHECK(ran >= 1, "the portable path at least runs everywhere");
    /* plain alexnet's head is two 4096-wide layers; enough images to cross a chunk */
    check_network("alexnet", 299, 2 * CXR_BATCH_IMAGES / 3 + 3);
    check_network("alexnet_attn2", 299, 5);
    check_network("resnet50", 64, 3);
    check_network("random_forest", 64, 3);
    /* on 2 threads the layers are shared out (cxr_conv_forward): alone or in a batch, an image
     * goes through the same shares. resnet50 at 128 px has layers shared by rows and by
     * channels. */
    cxr_blas_set_threads(2);
    check_network("alexnet_attn2", 299, 5);
    check_network("resnet50", 128, 3);
    cxr_blas_set_threads(1);
    return harness_finish("test_batch");
}

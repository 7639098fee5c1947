/* Kernels with more than one path (dot_kernels.c, winograd_products.c): which paths this CPU
 * can run, and the choice of one, made once, by CPU features, a self-test and an environment
 * variable that tests use to run every path. */
#include "cxr_layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
cpu_has(const char *feature)
{
#ifdef CXR_KERNEL_X86
    __builtin_cpu_init();
    if (!strcmp(feature, "avx512f"))
        return __builtin_cpu_supports("avx512f");
    if (!strcmp(feature, "avx2"))
        return __builtin_cpu_supports("avx2");
    if (!strcmp(feature, "fma"))
        return __builtin_cpu_supports("fma");
#endif
    (void)feature;
    return 0;
}

/* The paths, widest first; the last is portable C. */
static const struct {
    const char *name;
    const char *feature[2]; /* CPU features it needs */
} paths[CXR_KERNEL_PATHS] = {
#ifdef CXR_KERNEL_X86
    {"avx512", {"avx512f", "fma"}},
    {"avx2", {"avx2", "fma"}},
#endif
    {"portable", {NULL, NULL}},
};

const char *
cxr_kernel_path_name(int path)
{
    return path >= 0 && path < CXR_KERNEL_PATHS ? paths[path].name : NULL;
}

int
cxr_kernel_path_runs_here(int path)
{
    if (path < 0 || path >= CXR_KERNEL_PATHS)
        return 0;
    for (int i = 0; i < 2; i++)
        if (paths[path].feature[i] && !cpu_has(paths[path].feature[i]))
            return 0;
    return 1;
}

static void
choose(cxr_kernel_choice *c)
{
    const char *want = getenv(c->env);
    char failed[96] = "";
    int chosen = -1;
    for (int p = 0; p < CXR_KERNEL_PATHS && chosen < 0; p++) {
        if (!cxr_kernel_path_runs_here(p) || (want && *want && strcmp(want, paths[p].name)))
            continue;
        if (c->passes(p))
            chosen = p;
        else
            snprintf(failed + strlen(failed), sizeof failed - strlen(failed), " %s",
                     paths[p].name);
    }
    int passed = chosen >= 0;
    if (!passed) /* the variable names no path that runs here, or every one failed */
        chosen = CXR_KERNEL_PATHS - 1;
    snprintf(c->description, sizeof c->description, "%s: %s (%s%s%s)", c->what,
             paths[chosen].name, passed ? "self-test passed" : "no path chosen",
             *failed ? "; failed:" : "", failed);
    __atomic_store_n(&c->chosen, chosen, __ATOMIC_RELEASE);
}

int
cxr_kernel_chosen(cxr_kernel_choice *c)
{
    int chosen = __atomic_load_n(&c->chosen, __ATOMIC_ACQUIRE);
    if (chosen >= 0)
        return chosen;
    pthread_mutex_lock(&c->lock);
    if (c->chosen < 0)
        choose(c);
    pthread_mutex_unlock(&c->lock);
    return c->chosen;
}

const char *
cxr_kernel_choice_describe(cxr_kernel_choice *c)
{
    cxr_kernel_chosen(c);
    return c->description;
}

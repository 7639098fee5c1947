/* The registry of architectures: names to builders. */
#include <string.h>

#include "cxr_archs.h"

static const cxr_arch *const archs[] = {
    &cxr_arch_alexnet, &cxr_arch_alexnet_attn1, &cxr_arch_alexnet_attn2, &cxr_arch_alexnet_attn3,
    &cxr_arch_resnet50, &cxr_arch_random_forest,
};

const cxr_arch *
cxr_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i]->name, name) == 0)
            return archs[i];
    return NULL;
}

const char *
cxr_arch_names(void)
{
    return "alexnet, alexnet_attn1, alexnet_attn2, alexnet_attn3, resnet50, random_forest";
}

int
cxr_arch_train_input_size(const cxr_arch *a)
{
    return a->train_input_size ? a->train_input_size : a->default_input_size;
}

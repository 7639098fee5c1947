/* Internal: the architectures' builders (arch_*.c) and their registry (archs.c). */
#ifndef CXR_ARCHS_H
#define CXR_ARCHS_H

#include <stdio.h>

#include "cxr_graph.h"

extern const cxr_arch cxr_arch_alexnet, cxr_arch_alexnet_attn1, cxr_arch_alexnet_attn2,
    cxr_arch_alexnet_attn3, cxr_arch_resnet50, cxr_arch_random_forest;

#endif

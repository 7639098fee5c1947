#include <math.h>

#include "cxr_layers.h"

uint64_t
cxr_splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float
cxr_uniform(uint64_t seed, uint64_t index)
{
    uint64_t z = cxr_splitmix64(cxr_splitmix64(seed) ^ index);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

void
cxr_xavier_uniform(float *w, size_t n, int fan_in, int fan_out, uint64_t seed)
{
    float bound = (float)sqrt(6.0 / (double)(fan_in + fan_out));
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * cxr_uniform(seed, i) - 1.0f) * bound;
}

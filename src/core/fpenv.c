#include "cxr_fpenv.h"

#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>

/* MXCSR: flush-to-zero (bit 15) and denormals-are-zero (bit 6) */
#define FTZ_DAZ 0x8040u

cxr_fp_mode
cxr_fp_flush_denormals(void)
{
    cxr_fp_mode m = {_mm_getcsr()};
    _mm_setcsr(m.saved | FTZ_DAZ);
    return m;
}

void
cxr_fp_restore(cxr_fp_mode mode)
{
    _mm_setcsr(mode.saved);
}

unsigned
cxr_fp_current(void)
{
    return _mm_getcsr();
}

cxr_fp_mode
cxr_fp_set(unsigned mode)
{
    cxr_fp_mode m = {_mm_getcsr()};
    _mm_setcsr(mode);
    return m;
}
#else
cxr_fp_mode
cxr_fp_flush_denormals(void)
{
    return (cxr_fp_mode){0};
}

void
cxr_fp_restore(cxr_fp_mode mode)
{
    (void)mode;
}

unsigned
cxr_fp_current(void)
{
    return 0;
}

cxr_fp_mode
cxr_fp_set(unsigned mode)
{
    (void)mode;
    return (cxr_fp_mode){0};
}
#endif

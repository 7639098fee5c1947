/* Scratch buffers of decoded images (tens of MB, written once, freed at once). On this kind of
 * virtual machine first-touch page faults cost more than decoding: a 2,500 px square 16-bit
 * X-ray's 25 MB of int32 samples took ~60 ms of faults on 4 KiB pages. Buffers of 4 MiB and
 * more are aligned to 2 MiB and asked for transparent huge pages (madvise; a no-op where the
 * kernel has none), so they fault a few hundred times less often. Free with free(). */
#ifndef CXR_LARGE_BUFFER_H
#define CXR_LARGE_BUFFER_H

#include <stddef.h>

void *cxr_large_buffer(size_t bytes);

#endif

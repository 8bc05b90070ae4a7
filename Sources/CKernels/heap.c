// The C library's heap: hand freed pages back to the kernel.
#include <malloc.h>
#include "ckernels.h"

int mlatp_heap_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

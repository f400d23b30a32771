/* big_alloc.c - allocations of many megabytes (a graph's activation arena) on huge pages.
 *
 * A training step walks ~100 MB of activations and gradients a few times; with 4 KB pages
 * that is ~30 000 pages, far beyond the TLB's reach, and the element-wise passes ran at a
 * third of the memory bandwidth. Linux hands out 2 MB pages to regions that ask for them
 * (transparent huge pages in "madvise" mode, Debian's default); elsewhere the hint is
 * ignored and the memory is ordinary. */
#define _DEFAULT_SOURCE
#include "nn/big_alloc.h"

#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)

void *ams_big_alloc(size_t bytes, size_t align) {
    if (bytes < HUGE_PAGE) {
        size_t n = (bytes + align - 1) / align * align;
        return aligned_alloc(align, n ? n : align);
    }
    size_t n = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: failure leaves 4 KB pages */
#endif
    return p;
}

/* big_alloc.h - aligned allocations, on huge pages when they are large (big_alloc.c). */
#ifndef AMS_NN_BIG_ALLOC_H
#define AMS_NN_BIG_ALLOC_H

#include <stddef.h>

/* bytes (rounded up) aligned to align (a power of two); 2 MB aligned and advised onto
 * huge pages from 2 MB up. Freed with free(). NULL when out of memory. */
void *ams_big_alloc(size_t bytes, size_t align);

#endif

/* The backing heap's own entry points: Debian's jemalloc archive, linked with every
 * public name renamed to fa_je_* (rename-jemalloc.sh), so these are the only way
 * in. The bottom of the heap's files: heap.h puts framealloc's policy and checks
 * around them. */
#ifndef FA_JEMALLOC_H
#define FA_JEMALLOC_H

#include <stddef.h>

void *fa_je_malloc(size_t size);
void *fa_je_calloc(size_t count, size_t size);
void fa_je_free(void *p);
void *fa_je_mallocx(size_t size, int flags);
size_t fa_je_malloc_usable_size(void *p);
size_t fa_je_xallocx(void *p, size_t size, size_t extra, int flags);
size_t fa_je_nallocx(size_t size, int flags);

/* jemalloc's MALLOCX_ALIGN for a power-of-two alignment. */
#define FA_JE_ALIGN(a) ((int)__builtin_ctzl(a))

#endif

/* jemalloc as the backing heap. Debian's archive is linked with every public name
 * renamed to fa_je_* (see rename-jemalloc.sh), so these are the only way in; its
 * policy (settings and extent hooks) is in heap.c. */
#ifndef FA_HEAP_H
#define FA_HEAP_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

void *fa_je_malloc(size_t size);
void *fa_je_calloc(size_t count, size_t size);
void *fa_je_realloc(void *p, size_t size);
void fa_je_free(void *p);
void *fa_je_mallocx(size_t size, int flags);
size_t fa_je_malloc_usable_size(void *p);

/* jemalloc's MALLOCX_ALIGN for a power-of-two alignment. */
#define FA_JE_ALIGN(a) ((int)__builtin_ctzl(a))

/* jemalloc's 8-byte class is only 8-aligned; malloc must return 16-aligned blocks
 * (FA_MIN_ALIGN), so requests never go below its 16-byte class. */
FA_INLINE size_t fa_heap_size(size_t size) { return size < FA_MIN_ALIGN ? FA_MIN_ALIGN : size; }

/* False until the calling thread's arena has framealloc's policy (heap.c). */
extern __thread bool fa_heap_thread_ready;
void fa_heap_thread_prepare(void);

/* Setting up costs jemalloc's control tables (about 140 KiB, once per process), so
 * it waits for a request big enough for the policy to matter: the eager purge
 * concerns extents of 8 MiB, reached by large blocks or by many freed together. */
#define FA_HEAP_PREPARE_MIN ((size_t)256 << 10)

FA_INLINE void fa_heap_thread_check(size_t size)
{
    if (FA_UNLIKELY(!fa_heap_thread_ready) && size >= FA_HEAP_PREPARE_MIN)
        fa_heap_thread_prepare();
}

FA_INLINE void *fa_heap_malloc(size_t size)
{
    fa_heap_thread_check(size);
    return fa_je_malloc(fa_heap_size(size));
}

/* count * size must not overflow (the caller checks). Large zeroed blocks reuse
 * freed memory with memset rather than the kernel's fresh pages (heap.c). */
void *fa_heap_calloc(size_t count, size_t size);

/* alignment: a power of two. jemalloc's mallocx does not accept size 0. */
FA_INLINE void *fa_heap_aligned(size_t alignment, size_t size)
{
    fa_heap_thread_check(size);
    void *p = fa_je_mallocx(size ? size : 1, FA_JE_ALIGN(alignment));
    if (!p)
        errno = ENOMEM;
    return p;
}

/* jemalloc may make a system call while freeing (purging), and free must keep errno. */
FA_INLINE void fa_heap_free(void *p)
{
    int saved = errno;
    fa_je_free(p);
    errno = saved;
}

/* jemalloc leaves errno alone when realloc fails on an impossible size; glibc sets ENOMEM. */
FA_INLINE void *fa_heap_realloc(void *p, size_t size)
{
    fa_heap_thread_check(size);
    void *q = fa_je_realloc(p, fa_heap_size(size));
    if (!q)
        errno = ENOMEM;
    return q;
}

FA_INLINE size_t fa_heap_usable_size(void *p) { return fa_je_malloc_usable_size(p); }

#endif

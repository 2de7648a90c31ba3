/* The core's entry points: the malloc family with glibc's documented semantics,
 * under fa_ names. The preload layer maps the libc and C++ names onto these;
 * unit tests call them directly. */
#ifndef FA_ALLOC_H
#define FA_ALLOC_H

#include <stddef.h>

#include "config.h"

/* On the libc and C++ names the preload exports: any program may call them, so
 * they sit with the code every process runs. */
#define FA_EXPORT __attribute__((visibility("default"))) FA_EVERY_PROCESS

void *fa_malloc(size_t size);
void *fa_calloc(size_t count, size_t size);
void *fa_realloc(void *p, size_t size);
void *fa_reallocarray(void *p, size_t count, size_t size);
void fa_free(void *p);
int fa_posix_memalign(void **out, size_t alignment, size_t size);
void *fa_aligned_alloc(size_t alignment, size_t size);
void *fa_memalign(size_t alignment, size_t size);
void *fa_valloc(size_t size);
void *fa_pvalloc(size_t size);
size_t fa_malloc_usable_size(void *p);
/* alignment: any power of two (the C++ aligned operators). */
void *fa_malloc_aligned(size_t alignment, size_t size);

/* For the allocations libc, the dynamic loader and framealloc's own libraries make
 * for themselves (a stream's buffer, the environment, a thread's dynamic TLS):
 * the same contracts, but never served by a frame arena, since what they keep
 * must outlive the frame scope they happened to be called in. */
void *fa_malloc_for_system(size_t size);
void *fa_calloc_for_system(size_t count, size_t size);
void *fa_realloc_for_system(void *p, size_t size);

#endif

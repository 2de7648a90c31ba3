/* The libc allocation names, each mapped onto the core entry point with the same
 * contract; malloc and free carry the inlined fast paths. Nothing else lives here. */
#include <stddef.h>

#include "alloc.h"
#include "alloc_fast.h"

FA_EXPORT void *malloc(size_t size) { return fa_malloc_fast(size); }
FA_EXPORT void *calloc(size_t count, size_t size) { return fa_calloc(count, size); }
FA_EXPORT void *realloc(void *p, size_t size) { return fa_realloc(p, size); }
FA_EXPORT void *reallocarray(void *p, size_t count, size_t size) { return fa_reallocarray(p, count, size); }
FA_EXPORT void free(void *p) { fa_free_fast(p); }
FA_EXPORT void cfree(void *p) { fa_free_fast(p); }
FA_EXPORT int posix_memalign(void **out, size_t alignment, size_t size) { return fa_posix_memalign(out, alignment, size); }
FA_EXPORT void *aligned_alloc(size_t alignment, size_t size) { return fa_aligned_alloc(alignment, size); }
FA_EXPORT void *memalign(size_t alignment, size_t size) { return fa_memalign(alignment, size); }
FA_EXPORT void *valloc(size_t size) { return fa_valloc(size); }
FA_EXPORT void *pvalloc(size_t size) { return fa_pvalloc(size); }
FA_EXPORT size_t malloc_usable_size(void *p) { return fa_malloc_usable_size(p); }

/* glibc's internal names: libc itself and some programs call these directly. */
FA_EXPORT void *__libc_malloc(size_t size) { return fa_malloc_fast(size); }
FA_EXPORT void *__libc_calloc(size_t count, size_t size) { return fa_calloc(count, size); }
FA_EXPORT void *__libc_realloc(void *p, size_t size) { return fa_realloc(p, size); }
FA_EXPORT void __libc_free(void *p) { fa_free_fast(p); }
FA_EXPORT void *__libc_memalign(size_t alignment, size_t size) { return fa_memalign(alignment, size); }
FA_EXPORT void *__libc_valloc(size_t size) { return fa_valloc(size); }
FA_EXPORT void *__libc_pvalloc(size_t size) { return fa_pvalloc(size); }
FA_EXPORT int __posix_memalign(void **out, size_t alignment, size_t size) { return fa_posix_memalign(out, alignment, size); }

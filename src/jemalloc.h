/* The backing heap's own entry points: Debian's jemalloc archive, linked with every
 * public name renamed to fa_je_* (rename-jemalloc.sh), so these are the only way
 * in. The bottom of the heap's files: heap.h puts framealloc's policy and checks
 * around them. */
#ifndef FA_JEMALLOC_H
#define FA_JEMALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *fa_je_malloc(size_t size);
void *fa_je_calloc(size_t count, size_t size);
void fa_je_free(void *p);
void *fa_je_mallocx(size_t size, int flags);
size_t fa_je_malloc_usable_size(void *p);
size_t fa_je_xallocx(void *p, size_t size, size_t extra, int flags);
size_t fa_je_nallocx(size_t size, int flags);

/* jemalloc 5.3's opt.cache_oblivious, an internal global (its je_ name is not
 * renamed), true in Debian's build: a page of padding after every large block (16 KiB
 * and up), so that the block can start at a random cache line. jemalloc reads it
 * once, as it starts, into the pad it uses from then on. 5.3 rejects
 * cache_oblivious in malloc_conf ("Invalid conf pair"), so fa_heap_configure
 * (heap.c) writes the global before jemalloc's first call. */
extern bool je_opt_cache_oblivious;

/* jemalloc 5.3's opt.lg_extent_max_active_fit (6): a freed extent more than 2^6
 * times a request's size is not split to serve it, so that small blocks do not pin
 * big free ranges. Freed neighbours coalesce, so after a program frees everything
 * it holds, the free memory is a few big extents that no request fits: under an
 * address-space limit, which still counts them, a second round of 1 MiB blocks got
 * 41-57 % of glibc's. jemalloc reads the global at every fit, so heap_fine.c lifts
 * the bound when it first sees a limit. */
extern size_t je_opt_lg_extent_max_active_fit;

/* The fork handlers jemalloc registers as it starts, kept here instead of given to
 * glibc (jemalloc_imports.c): heap.c runs them from framealloc's own handlers, so
 * that a fork waits for a start in progress on another thread. */
typedef struct {
    void (*prepare)(void);
    void (*parent)(void);
    void (*child)(void);
} fa_je_fork_handlers_t;
extern fa_je_fork_handlers_t fa_je_fork_handlers;

/* jemalloc's MALLOCX_ALIGN for a power-of-two alignment. */
#define FA_JE_ALIGN(a) ((int)__builtin_ctzl(a))

#endif

/* Size-class pools: small blocks from per-thread chunks, no locks or atomics on the
 * fast paths.
 *
 * Invariants
 * - A pool chunk holds blocks of one class. Only its owner thread touches its
 *   local_free list, `used` and `carve`; other threads only push onto thread_free.
 * - `used` counts the chunk's blocks that are out of the chunk's own lists: held by
 *   the program, sitting in the owner's TLS cache (any class list may hold blocks of
 *   any of the owner's chunks of that class), or freed by another thread and not yet
 *   collected. A non-current chunk whose `used` drops to 0 is empty and can go.
 * - A freed block carries a cookie (its address XOR a per-process secret) in its
 *   second word, cleared when it is handed out again: a free that finds the cookie is
 *   a double free (confirmed by a list scan when the owner frees). A pointer that is
 *   not a block start (interior or never carved) is rejected by an exact modulo test. */
#ifndef FA_POOL_H
#define FA_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "region.h"
#include "thread.h"

typedef struct fa_pool_block {
    struct fa_pool_block *next;
    uintptr_t cookie;
} fa_pool_block_t;

typedef struct fa_pool_chunk {
    fa_chunk_head_t head;
    uint32_t block_size;
    uint32_t class_index;
    uint32_t div_magic;   /* ceil(2^32 / block_size): exact block-start test */
    uint32_t used;
    uint32_t local_free_count;
    uint8_t list;         /* which owner list it is on (FA_POOL_LIST_*) */
    fa_pool_block_t *local_free;
    char *_Atomic carve;  /* first never-handed-out byte */
    char *limit;          /* end of the block area */
    _Atomic(fa_pool_block_t *) thread_free;
    struct fa_pool_chunk *next, *prev;
    uint64_t empty_since_ms; /* when it joined the thread's empty list */
} fa_pool_chunk_t;

#define FA_POOL_DATA_OFFSET 256
_Static_assert(sizeof(fa_pool_chunk_t) <= FA_POOL_DATA_OFFSET, "pool chunk header too large");

extern size_t fa_pool_max;                 /* FRAMEALLOC_POOL_MAX */
extern uintptr_t fa_pool_secret;
extern uint8_t fa_pool_class_of[FA_POOL_LARGEST / 16 + 1]; /* by (size + 15) / 16 */
extern const uint32_t fa_pool_class_size[FA_POOL_CLASSES];
extern uint32_t fa_pool_cache_limit[FA_POOL_CLASSES]; /* blocks a thread caches per class */

void fa_pool_configure(void);

/* Refills the thread's list for the class of size and pops one block, or NULL when
 * pools cannot serve (thread dead, region exhausted). */
void *fa_pool_alloc_slow(fa_thread_t *t, size_t size);
void fa_pool_free_slow(fa_thread_t *t, fa_pool_chunk_t *c, void *p);

/* The fast path alone: a block from the thread's list, or NULL (never calls out). */
FA_INLINE void *fa_pool_try_alloc(fa_thread_t *t, size_t size)
{
    unsigned cls = fa_pool_class_of[(size + 15) >> 4];
    fa_pool_block_t *b = t->pool.free[cls];
    if (FA_UNLIKELY(!b))
        return NULL;
    t->pool.free[cls] = b->next;
    t->pool.free_count[cls]--;
    t->pool.allocs[cls]++;
    b->cookie = 0;
    return b;
}

FA_INLINE void *fa_pool_alloc(fa_thread_t *t, size_t size)
{
    void *p = fa_pool_try_alloc(t, size);
    return FA_LIKELY(p != NULL) ? p : fa_pool_alloc_slow(t, size);
}

/* True when p is exactly a block start below the carve line. */
FA_INLINE bool fa_pool_is_block_start(const fa_pool_chunk_t *c, const void *p)
{
    size_t off = (size_t)((const char *)p - (const char *)c) - FA_POOL_DATA_OFFSET;
    uint32_t index = (uint32_t)(((uint64_t)off * c->div_magic) >> 32);
    return (size_t)index * c->block_size == off && (const char *)p < __atomic_load_n(&c->carve, __ATOMIC_RELAXED);
}

/* The fast path alone: the owner freeing one of its blocks into its cache, after the
 * checks, while the cache has room. Returns false (having done nothing) otherwise. */
FA_INLINE bool fa_pool_try_free(fa_thread_t *t, fa_pool_chunk_t *c, void *p)
{
    fa_pool_block_t *b = p;
    uintptr_t cookie = (uintptr_t)b ^ fa_pool_secret;
    unsigned cls = c->class_index;
    if (FA_LIKELY(__atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id &&
                  t->pool.free_count[cls] < fa_pool_cache_limit[cls] && b->cookie != cookie &&
                  fa_pool_is_block_start(c, p))) {
        b->cookie = cookie;
        b->next = t->pool.free[cls];
        t->pool.free[cls] = b;
        t->pool.free_count[cls]++;
        t->pool.frees[cls]++;
        return true;
    }
    return false;
}

FA_INLINE void fa_pool_free(fa_thread_t *t, fa_pool_chunk_t *c, void *p)
{
    if (FA_UNLIKELY(!fa_pool_try_free(t, c, p)))
        fa_pool_free_slow(t, c, p);
}

FA_INLINE size_t fa_pool_usable_size(const fa_pool_chunk_t *c) { return c->block_size; }

/* Validates p for realloc and malloc_usable_size (aborts with a message if it is
 * not a live block start). */
void fa_pool_check_pointer(const fa_pool_chunk_t *c, const void *p, const char *what);

void fa_pool_thread_exit(fa_thread_t *t);
/* Gives the thread's emptied chunks back to the region (memory pressure). */
void fa_pool_release_cached(fa_thread_t *t);

typedef struct {
    uint64_t allocs, frees;          /* blocks, cumulative */
    uint64_t live_bytes;             /* (allocs - frees) x block size */
    uint64_t chunks;                 /* pool chunks held now */
    uint64_t class_allocs[FA_POOL_CLASSES];
    uint64_t class_live[FA_POOL_CLASSES];
} fa_pool_totals_t;

/* Sums the counters of live threads (call with the thread registry locked) and
 * adds those of exited threads. */
void fa_pool_add_thread(const fa_thread_t *t, fa_pool_totals_t *out);
void fa_pool_add_exited(fa_pool_totals_t *out);

void fa_pool_fork_prepare(void);
void fa_pool_fork_parent(void);
void fa_pool_fork_child(void);

#endif

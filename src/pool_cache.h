/* The per-thread part of the size-class pools (lives inside fa_thread_t).
 * free[c] is the thread's cache of ready blocks of class c, from any of its chunks:
 * allocation pops it, a free by the owner pushes it, and an empty list (as in a new
 * thread's all-zero state) misses into the slow path. free_count[c] bounds it: past
 * fa_pool_cache_limit[c] the older half goes back to the blocks' chunks. */
#ifndef FA_POOL_CACHE_H
#define FA_POOL_CACHE_H

#include <stdint.h>

#define FA_POOL_CLASSES 36
#define FA_POOL_LARGEST 16384

struct fa_pool_block;
struct fa_pool_chunk;

typedef struct {
    struct fa_pool_block *free[FA_POOL_CLASSES];
    uint32_t free_count[FA_POOL_CLASSES];
    uint64_t allocs[FA_POOL_CLASSES]; /* blocks this thread allocated, cumulative */
    uint64_t frees[FA_POOL_CLASSES];  /* blocks this thread freed (any owner), cumulative */
    struct fa_pool_chunk *current[FA_POOL_CLASSES];
    struct fa_pool_chunk *avail[FA_POOL_CLASSES]; /* own chunks with local free blocks or uncarved room */
    struct fa_pool_chunk *full[FA_POOL_CLASSES];  /* own chunks with neither (other threads may free into them) */
    struct fa_pool_chunk *empty, *empty_oldest;   /* emptied chunks kept for reuse, newest first */
    uint32_t empty_count;
} fa_pool_cache_t;

#endif

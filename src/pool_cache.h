/* The per-thread part of the size-class pools (lives inside fa_thread_t).
 * Empty until the pool layer lands: every small request goes to the heap. */
#ifndef FA_POOL_CACHE_H
#define FA_POOL_CACHE_H

typedef struct {
    char unused;
} fa_pool_cache_t;

#endif

/* The per-thread part of the size-class pools (lives inside fa_thread_t).
 * bins[c] is the thread's cache of ready blocks of class c, from any of its chunks:
 * allocation pops it, a free by the owner pushes it, and an empty list (as in a new
 * thread's all-zero state) misses into the slow path. Everything the two fast paths
 * touch for one class sits in one 32-byte bin (one cache line). bins[FA_POOL_CLASSES]
 * is always empty: sizes above FRAMEALLOC_POOL_MAX map to it, so the malloc fast
 * path needs no load of the limit.
 *
 * The fast paths reach a bin's fields as bin_words[index + field], index = class *
 * FA_POOL_BIN_WORDS (from the size table or the chunk): an array indexed straight
 * off the thread lets the compiler keep %fs-relative addressing with a scaled
 * index; through a bin pointer it first computes the thread's linear address (two
 * more instructions on each fast path). */
#ifndef FA_POOL_CACHE_H
#define FA_POOL_CACHE_H

#include <stdint.h>

#include "chunk_list.h"

#define FA_POOL_CLASSES 63
#define FA_POOL_LARGEST 16384

struct fa_pool_block;
struct fa_pool_chunk;

typedef struct {
    struct fa_pool_block *head; /* links safe-linked (pool.h); NULL: empty */
    uint64_t allocs;            /* blocks popped, cumulative (the one per-call counter) */
    /* Owner frees the list may still take before it is flushed: its limit minus the
     * blocks on it. A free at 0 goes to the slow path; the slow paths never let it
     * go below 0. */
    int64_t room;
    int64_t limit; /* the class's cache limit once the list was first filled; 0 before */
} fa_pool_bin_t;

/* Word positions of the fields in fa_pool_bin_t (all 8 bytes). */
enum { FA_POOL_BIN_HEAD, FA_POOL_BIN_ALLOCS, FA_POOL_BIN_ROOM, FA_POOL_BIN_LIMIT, FA_POOL_BIN_WORDS };

/* The statistics are derived, not counted per call: every block that enters the
 * list other than by a fast free is counted in `entered`, every block that leaves
 * it other than by malloc in `left`, so the owner's fast frees are
 *   on the list now (limit - room) - entered + left + allocs. */
typedef struct {
    uint64_t entered;   /* refills and slow-path owner frees */
    uint64_t left;      /* flushed back to the chunks (or at thread exit) */
    uint64_t slow_frees; /* frees counted by the slow path (all of this thread's) */
} fa_pool_flow_t;

typedef struct {
    union {
        fa_pool_bin_t bins[FA_POOL_CLASSES + 1];
        uint64_t bin_words[(FA_POOL_CLASSES + 1) * FA_POOL_BIN_WORDS];
    } __attribute__((aligned(32)));
    fa_pool_flow_t flow[FA_POOL_CLASSES];
    struct fa_pool_chunk *current[FA_POOL_CLASSES];
    fa_list_t avail[FA_POOL_CLASSES]; /* own chunks with local free blocks or uncarved room */
    fa_list_t full[FA_POOL_CLASSES];  /* own chunks with neither (other threads may free into them) */
    fa_list_t empty;                  /* emptied chunks kept for reuse, newest first */
    /* Set at the thread's first refill, which first adopts an exited thread's parked
     * cache if there is one (pool.c, parked caches). */
    uint8_t started;
} fa_pool_cache_t;

#endif

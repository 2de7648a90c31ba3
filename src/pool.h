/* Size-class pools: small blocks from per-thread chunks, no locks or atomics on the
 * fast paths.
 *
 * Invariants
 * - A pool chunk holds blocks of one class. Only its owner thread touches its
 *   local_free list, `used` and `carved`; other threads only push onto thread_free.
 * - `used` counts the chunk's blocks that are out of the chunk's own lists: held by
 *   the program, sitting in the owner's TLS bin (any bin may hold blocks of any of
 *   the owner's chunks of its class; while an exited thread's cache is parked, its
 *   chunks have no owner and its bins keep their blocks), or freed by another
 *   thread and not yet collected. A non-current chunk whose `used` drops to 0 is
 *   empty and can go.
 * - Every free-list link (bins, local_free, thread_free) is stored safe-linked:
 *   (next * key) ^ (the block's own address), key a per-process odd secret. An
 *   overflow or a write after free that changes a link therefore decodes to an
 *   address nobody chose, and malloc checks each block against the region before
 *   it touches it: a bad link aborts with a message, it is never handed out.
 * - A freed block carries a cookie (a per-process random word, unrelated to the
 *   link key, as glibc's tcache key) in its second word, cleared when it is handed
 *   out again: a free that finds the cookie is a double
 *   free (confirmed by a list scan when the owner frees, since program data may
 *   hold anything). A pointer that is not a block start (interior or never carved)
 *   is rejected by an exact divisibility test. */
#ifndef FA_POOL_H
#define FA_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_list.h"
#include "config.h"
#include "region.h"
#include "thread.h"

#ifndef FA_HIDDEN
#define FA_HIDDEN __attribute__((visibility("hidden")))
#endif

typedef struct fa_pool_block {
    struct fa_pool_block *link; /* safe-linked next (fa_pool_link_encode) */
    uintptr_t cookie;
} fa_pool_block_t;

typedef struct fa_pool_chunk {
    fa_chunk_head_t head;
    uint32_t class_index;
    /* Bytes of the block area carved since the chunk's pages were last given back
     * (0 in a fresh chunk: the region hands out zeroed chunks), kept across reuse:
     * below it the pages are resident, so carving there costs no memory. */
    uint32_t carved_resident;
    /* The owner's bin for this class, by address (set with head.owner, and only
     * used once head.owner matched the caller): the owner's free finds its bin in
     * one load instead of an index and the thread's address. */
    fa_pool_bin_t *owner_bin;
    /* Bytes of the block area handed out so far (from FA_POOL_DATA_OFFSET). Only the
     * owner writes it (atomically); other threads read it atomically, the owner's
     * fast free with a plain load (no race: it wrote the value itself). */
    uint64_t carved;
    uint64_t div;          /* 1 + UINT64_MAX / block_size: exact block-start test */
    uint64_t div_below;    /* div again: a second field lets the compiler use both as
                            * memory operands (multiply, compare) with no register copy */
    uint32_t block_size;
    uint32_t used;
    uint32_t local_free_count;
    uint8_t list;          /* which owner list it is on (FA_POOL_LIST_*) */
    fa_pool_block_t *local_free;
    uint64_t area;         /* bytes of whole blocks in the block area */
    _Atomic(fa_pool_block_t *) thread_free;
    fa_list_link_t link;     /* on one list: an owner list, the empty list, the spares, the
                              * orphans, or the recorded chunks */
    uint64_t empty_since_ms; /* when it joined the thread's empty list */
} fa_pool_chunk_t;

/* Emptied chunks of exited threads kept for the next threads (pool.c, park_chunk);
 * an exited thread's whole cache is kept only if its chunks fit beside them
 * (pool.c, parked caches). */
#define FA_POOL_SPARE_MAX 64

#define FA_POOL_DATA_OFFSET 256
_Static_assert(sizeof(fa_pool_chunk_t) <= FA_POOL_DATA_OFFSET, "pool chunk header too large");

/* All hidden: the fast paths reach them rip-relative, not through the GOT. */
extern uint64_t fa_pool_key FA_HIDDEN;        /* odd secret: links */
extern uint64_t fa_pool_key_inverse FA_HIDDEN; /* key * key_inverse == 1 (mod 2^64) */
/* Where a block may lie: [link_base, link_base + link_span); 0 until the first chunk. */
extern uintptr_t fa_pool_link_base FA_HIDDEN;
extern uint64_t fa_pool_link_span FA_HIDDEN;
/* By (size + 15) / 16: the bin index (class * FA_POOL_BIN_WORDS) of the size's bin;
 * sizes above FRAMEALLOC_POOL_MAX get the always-empty bin. */
extern uint8_t fa_pool_bin_of[FA_POOL_LARGEST / 16 + 1] FA_HIDDEN;
extern uint8_t fa_pool_class_of[FA_POOL_LARGEST / 16 + 1] FA_HIDDEN; /* the real class, for the slow paths */
extern const uint32_t fa_pool_class_size[FA_POOL_CLASSES] FA_HIDDEN;
extern int32_t fa_pool_cache_limit[FA_POOL_CLASSES] FA_HIDDEN; /* blocks a thread caches per class */

void fa_pool_configure(void);

/* ---- safe-linking ----
 * glibc (2.32+) stores next ^ (address >> 12) and relies on ASLR for the secret.
 * Here a real secret exists, so the link is multiplied by it instead of shifted: the
 * same cost (a multiply and an xor each way), and unlike an xor it is not malleable:
 * overwriting the low bytes of a link moves the decoded pointer by an unknown
 * amount, not by a chosen small one onto a neighbouring block. The block's own
 * address makes a link copied to another block decode to garbage too. */
FA_INLINE fa_pool_block_t *fa_pool_link_encode(const fa_pool_block_t *at, const fa_pool_block_t *next)
{
    return (fa_pool_block_t *)(((uintptr_t)next * fa_pool_key) ^ (uintptr_t)at);
}

FA_INLINE fa_pool_block_t *fa_pool_link_decode(const fa_pool_block_t *at)
{
    return (fa_pool_block_t *)(((uintptr_t)at->link ^ (uintptr_t)at) * fa_pool_key_inverse);
}

/* True when b may be dereferenced as a block: inside the region. NULL fails too, so
 * one compare tells "a usable head" from "empty or corrupt". */
FA_INLINE bool fa_pool_link_ok(const fa_pool_block_t *b)
{
    return (uintptr_t)b - fa_pool_link_base < fa_pool_link_span;
}

/* The same for every block: one load, no arithmetic. Its own secret, so reading a
 * freed block's cookie tells nothing about the link key. */
extern uintptr_t fa_pool_cookie_value FA_HIDDEN;

FA_INLINE uintptr_t fa_pool_cookie(void) { return fa_pool_cookie_value; }

_Static_assert(sizeof(fa_pool_bin_t) == FA_POOL_BIN_WORDS * sizeof(uint64_t), "bin fields are words");
_Static_assert(FA_POOL_CLASSES * FA_POOL_BIN_WORDS <= UINT8_MAX, "bin indexes fit the size table");

/* A bin's fields for the fast paths, by bin index (see pool_cache.h for why). */
#define FA_POOL_BIN_FIELD(t, index, field) ((t)->pool.bin_words[(index) + (field)])

/* Refills the thread's list for the class of size and pops one block, or NULL when
 * pools cannot serve (thread dead, region exhausted, size above the limit). Aborts
 * when the list's head is corrupt. */
void *fa_pool_alloc_slow(fa_thread_t *t, size_t size);
void fa_pool_free_slow(fa_thread_t *t, fa_pool_chunk_t *c, void *p);

/* A block whose every free must reach the slow path (a recorded block: records see
 * its free), or NULL as fa_pool_alloc_slow. It comes from pool chunks no thread
 * owns (FA_OWNER_RECORDS), shared by all threads under a lock: ordinary pool
 * chunks otherwise, with every check a free gets. */
void *fa_pool_alloc_recorded(fa_thread_t *t, size_t size);

/* Pops the head of the bin at index, or NULL when it is empty or its head fails
 * the check. */
FA_INLINE void *fa_pool_pop(fa_thread_t *t, size_t index)
{
    fa_pool_block_t *b = (fa_pool_block_t *)FA_POOL_BIN_FIELD(t, index, FA_POOL_BIN_HEAD);
    if (FA_UNLIKELY(!fa_pool_link_ok(b)))
        return NULL;
    FA_POOL_BIN_FIELD(t, index, FA_POOL_BIN_HEAD) = (uintptr_t)fa_pool_link_decode(b);
    FA_POOL_BIN_FIELD(t, index, FA_POOL_BIN_ROOM)++;
    FA_POOL_BIN_FIELD(t, index, FA_POOL_BIN_ALLOCS)++;
    b->cookie = 0;
    return b;
}

/* The fast path alone: a block from the thread's list, or NULL (never calls out).
 * Takes any size: sizes above FRAMEALLOC_POOL_MAX find the always-empty bin, sizes
 * above the largest class fail one compile-time compare, so the caller needs no
 * limit test of its own (a NULL sends it to fa_pool_alloc_slow or the heap). */
FA_INLINE void *fa_pool_try_alloc(fa_thread_t *t, size_t size)
{
    if (FA_UNLIKELY(size > FA_POOL_LARGEST))
        return NULL;
    return fa_pool_pop(t, fa_pool_bin_of[(size + 15) >> 4]);
}

FA_INLINE void *fa_pool_alloc(fa_thread_t *t, size_t size)
{
    void *p = fa_pool_try_alloc(t, size);
    return FA_LIKELY(p != NULL) ? p : fa_pool_alloc_slow(t, size);
}

/* ceil(2^64 / block_size), written so that it fits 64 bits. */
FA_INLINE uint64_t fa_pool_div_of(uint32_t block_size) { return 1 + UINT64_MAX / block_size; }

/* off is a multiple of the block size whose div is given: exact for every off below
 * 2^32 (Lemire, Kaser, Kurz 2019: off * ceil(2^64/d) mod 2^64 < ceil(2^64/d) iff
 * d divides off; the unit tests check every offset of every class in a chunk). */
FA_INLINE bool fa_pool_is_multiple(uint64_t off, uint64_t div) { return off * div < div; }

/* True when p is exactly a block start below the carve line `carved`. p is in c's
 * chunk, so the masked offset is below 2^18; a pointer into the header wraps to an
 * offset beyond any carve line. */
FA_INLINE bool fa_pool_is_start_below(const fa_pool_chunk_t *c, const void *p, uint64_t carved)
{
    uint64_t off = ((uintptr_t)p - FA_POOL_DATA_OFFSET) & FA_CHUNK_MASK;
    return off < carved && off * c->div < c->div_below;
}

/* The same for any thread. */
FA_INLINE bool fa_pool_is_block_start(const fa_pool_chunk_t *c, const void *p)
{
    return fa_pool_is_start_below(c, p, __atomic_load_n(&c->carved, __ATOMIC_RELAXED));
}

/* Takes one unit of the bin's room for a free; false (room unchanged) when it has
 * none. With GCC on x86-64 one decrement of memory and a branch on its sign;
 * compilers otherwise load, test, decrement and store (5 instructions). The room
 * is an input memory operand with a memory clobber, as alloc_fast.h's sampling
 * countdown: GCC 12 mislaid the branch of the "+m" output form there. */
FA_INLINE bool fa_pool_take_room(fa_pool_bin_t *bin)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
    __asm__ goto("subq $1, %0\n\tjs %l[none]" : : "m"(bin->room) : "cc", "memory" : none);
    return true;
none:
    bin->room++;
    return false;
#else
    if (bin->room <= 0)
        return false;
    bin->room--;
    return true;
#endif
}

/* The fast path alone: the owner freeing one of its blocks into its bin, after the
 * checks, while the bin has room. Returns false (having done nothing) otherwise. */
FA_INLINE bool fa_pool_try_free(fa_thread_t *t, fa_pool_chunk_t *c, void *p)
{
    fa_pool_block_t *b = p;
    fa_pool_bin_t *bin = c->owner_bin;
    uintptr_t cookie = fa_pool_cookie();
    if (FA_LIKELY(__atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id &&
                  fa_pool_is_start_below(c, p, c->carved) && b->cookie != cookie)) {
        if (FA_UNLIKELY(!fa_pool_take_room(bin)))
            return false;
        b->cookie = cookie;
        b->link = fa_pool_link_encode(b, bin->head);
        bin->head = b;
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
/* Gives the thread's cached blocks back to their chunks and its emptied chunks back
 * to the region (malloc_trim, memory pressure). */
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

/* Which heap blocks are live: framealloc's own exact record of every block the
 * backing heap (jemalloc) has handed out and not yet taken back, so that a double
 * free, an interior free, or a free, realloc or malloc_usable_size of a pointer that
 * was never allocated is reported with a message instead of reaching jemalloc, which
 * has no safe look-up for an unknown pointer (its radix tree read of a foreign address
 * can fault, and a freed block is absorbed into its caches silently).
 *
 * The record is a bitmap: one bit per 16-byte granule of the address space, set while
 * a live heap block starts there (every heap block is at least 16-aligned). It lives
 * in a sparse three-level radix tree: a static root of 16 GiB ranges, mid nodes of
 * 4 MiB ranges, leaves of 4096 words. Chosen over a hash set of addresses because:
 * - adding and removing is one atomic OR or AND-NOT on one word, with no lock, no
 *   probing and no resizing, so concurrent frees need no shard locks (and fork needs
 *   no handlers); a concurrent double free is caught exactly (one AND-NOT wins);
 * - a look-up of any address, however foreign, reads only the tree's own memory;
 * - nodes are created only when the heap first hands out a block in a new 4 MiB
 *   range, never on free, and are never freed: the tree's memory is bounded by the
 *   heap's address space / 128 and only the pages holding set bits become resident
 *   (at most one 4 KiB page per 512 KiB of heap).
 * Nodes come from the OS layer, never from malloc. When a node cannot be mapped the
 * allocation that needed it fails with ENOMEM (fa_heap_blocks_add returns false).
 * A pointer freed twice is reported unless the heap handed the same address out again
 * in between (then the second free frees the new block, as with any allocator). */
#ifndef FA_HEAP_BLOCKS_H
#define FA_HEAP_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define FA_HEAP_BLOCKS_GRANULE_SHIFT 4                      /* one bit per 16 bytes */
#define FA_HEAP_BLOCKS_LEAF_SHIFT 22                        /* a leaf covers 4 MiB */
#define FA_HEAP_BLOCKS_MID_SHIFT 34                         /* a mid node covers 16 GiB */
#define FA_HEAP_BLOCKS_ADDRESS_BITS 48                      /* x86-64 user addresses */
#define FA_HEAP_BLOCKS_LEAF_WORDS ((size_t)1 << (FA_HEAP_BLOCKS_LEAF_SHIFT - FA_HEAP_BLOCKS_GRANULE_SHIFT - 6))
#define FA_HEAP_BLOCKS_MID_SLOTS ((size_t)1 << (FA_HEAP_BLOCKS_MID_SHIFT - FA_HEAP_BLOCKS_LEAF_SHIFT))
#define FA_HEAP_BLOCKS_ROOT_SLOTS ((size_t)1 << (FA_HEAP_BLOCKS_ADDRESS_BITS - FA_HEAP_BLOCKS_MID_SHIFT))

typedef uint64_t *fa_heap_blocks_mid_t[FA_HEAP_BLOCKS_MID_SLOTS]; /* leaf pointers */

extern FA_HIDDEN fa_heap_blocks_mid_t *fa_heap_blocks_root[FA_HEAP_BLOCKS_ROOT_SLOTS];

/* The word holding address a's bit, or NULL when no leaf covers a (then nothing live
 * starts there). Reads only the tree. */
FA_INLINE uint64_t *fa_heap_blocks_word(uintptr_t a)
{
    if (FA_UNLIKELY(a >> FA_HEAP_BLOCKS_ADDRESS_BITS))
        return NULL;
    fa_heap_blocks_mid_t *mid = __atomic_load_n(&fa_heap_blocks_root[a >> FA_HEAP_BLOCKS_MID_SHIFT], __ATOMIC_ACQUIRE);
    if (FA_UNLIKELY(!mid))
        return NULL;
    uint64_t *leaf =
        __atomic_load_n(&(*mid)[(a >> FA_HEAP_BLOCKS_LEAF_SHIFT) & (FA_HEAP_BLOCKS_MID_SLOTS - 1)], __ATOMIC_ACQUIRE);
    if (FA_UNLIKELY(!leaf))
        return NULL;
    return &leaf[(a >> (FA_HEAP_BLOCKS_GRANULE_SHIFT + 6)) & (FA_HEAP_BLOCKS_LEAF_WORDS - 1)];
}

FA_INLINE uint64_t fa_heap_blocks_bit(uintptr_t a) { return (uint64_t)1 << ((a >> FA_HEAP_BLOCKS_GRANULE_SHIFT) & 63); }

/* The word for a, creating the nodes that cover it; NULL when they cannot be mapped. */
uint64_t *fa_heap_blocks_word_creating(uintptr_t a);

/* Records p (a block the heap just handed out) as live. False when the tree could
 * not get memory for it: the caller gives the block back and fails with ENOMEM. */
FA_INLINE bool fa_heap_blocks_add(void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint64_t *word = fa_heap_blocks_word(a);
    if (FA_UNLIKELY(!word) && !(word = fa_heap_blocks_word_creating(a)))
        return false;
    __atomic_fetch_or(word, fa_heap_blocks_bit(a), __ATOMIC_RELAXED);
    return true;
}

/* p, a block the heap just returned (or NULL), recorded as live and returned; when
 * the record has no memory for it, the block goes back to the heap and this fails
 * with ENOMEM. Not inline: one call keeps the heap's callers small enough to stay
 * inlined in the allocation slow path (fewer instructions per heap pair). */
void *fa_heap_blocks_track(void *p);

/* Aborts with one line: what(p) is not a live heap block, and why if it can tell. */
FA_COLD __attribute__((noreturn)) void fa_heap_blocks_report(const char *what, const void *p);

/* p is about to go back to the heap: it stops being live, or what(p) is reported
 * (a double free, a pointer into a block, a pointer never allocated). The bit is
 * cleared before the heap sees p, so another thread that gets p from the heap next
 * sets it again after this. */
FA_INLINE void fa_heap_blocks_remove(void *p, const char *what)
{
    uintptr_t a = (uintptr_t)p;
    uint64_t *word = fa_heap_blocks_word(a);
    uint64_t bit = fa_heap_blocks_bit(a);
    if (FA_UNLIKELY(!word || (a & (FA_MIN_ALIGN - 1)) || !(__atomic_fetch_and(word, ~bit, __ATOMIC_RELAXED) & bit)))
        fa_heap_blocks_report(what, p);
}

/* what(p) needs p to be a live heap block: reported otherwise. */
FA_INLINE void fa_heap_blocks_check(const void *p, const char *what)
{
    uintptr_t a = (uintptr_t)p;
    uint64_t *word = fa_heap_blocks_word(a);
    if (FA_UNLIKELY(!word || (a & (FA_MIN_ALIGN - 1)) ||
                    !(__atomic_load_n(word, __ATOMIC_RELAXED) & fa_heap_blocks_bit(a))))
        fa_heap_blocks_report(what, p);
}

#endif

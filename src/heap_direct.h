/* Heap blocks mapped directly and unmapped when freed, as glibc does: those aligned
 * to FA_HEAP_DIRECT_ALIGNMENT or more (jemalloc would reserve alignment + size for
 * each and keep that address space after the free: 16 rounds of 1 GiB-aligned
 * blocks left 20 GiB), and the first few heap blocks of a process, before jemalloc
 * starts (heap.c). A small table knows them. */
#ifndef FA_HEAP_DIRECT_H
#define FA_HEAP_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define FA_HEAP_DIRECT_ALIGNMENT ((size_t)64 << 20)

/* Directly mapped blocks now live (statistics). */
extern _Atomic size_t fa_heap_direct_count FA_HIDDEN;
/* Their bytes (each rounded to a page), which jemalloc's statistics do not count. */
extern _Atomic size_t fa_heap_direct_bytes FA_HIDDEN;
/* Bytes of directly mapped blocks unmapped so far (heap.c's early blocks stop once
 * a program has given back FA_HEAP_EARLY_CHURN bytes of them). */
extern _Atomic size_t fa_heap_direct_unmapped FA_HIDDEN;
/* Heap blocks framealloc serves itself now live: heap_fine.h's in the low 32 bits
 * (it adds 1 per block), these in the bits above (FA_HEAP_OWN_DIRECT each). The heap
 * paths look a block up in a table only when it has blocks, told apart in one load:
 * a program that keeps a block mapped before jemalloc's start does not pay the fine
 * heap's look-up at every free (scripts/bench-instructions' 16-64 KiB heap pair,
 * whose harness keeps one: 659 instructions with both look-ups, 640 with this and
 * fa_heap_direct_may_own, 627 with no direct block live). */
extern _Atomic size_t fa_heap_own_count FA_HIDDEN;
#define FA_HEAP_OWN_DIRECT ((size_t)1 << 32)
FA_INLINE bool fa_heap_own_direct(size_t own) { return own >= FA_HEAP_OWN_DIRECT; }
FA_INLINE bool fa_heap_own_fine(size_t own) { return (uint32_t)own != 0; }
/* The lowest start and highest end of any directly mapped block so far (they only
 * widen): a heap block outside them is not one of the table's, so a heap free
 * while some direct block lives skips the table for jemalloc's blocks (mapped after
 * the blocks of a process's start, below them) with two compares, no call. */
extern _Atomic uintptr_t fa_heap_direct_lowest FA_HIDDEN, fa_heap_direct_highest FA_HIDDEN;
FA_INLINE bool fa_heap_direct_may_own(const void *p)
{
    return (uintptr_t)p >= __atomic_load_n(&fa_heap_direct_lowest, __ATOMIC_RELAXED) &&
           (uintptr_t)p < __atomic_load_n(&fa_heap_direct_highest, __ATOMIC_RELAXED);
}

/* A block of size bytes at alignment, mapped directly (jemalloc's when the table is
 * full), or NULL with errno ENOMEM. */
void *fa_heap_direct_alloc(size_t alignment, size_t size);
/* The same without jemalloc (heap.c's blocks before jemalloc's start): NULL with
 * errno ENOMEM when there is no memory, NULL with *table_full set when the table has
 * no free slot. */
void *fa_heap_direct_map(size_t alignment, size_t size, bool *table_full);
/* The usable size of p when it is a directly mapped block, else 0. */
size_t fa_heap_direct_size(const void *p);
/* Unmaps p when it is a directly mapped block; false otherwise. */
bool fa_heap_direct_free(void *p);

#endif

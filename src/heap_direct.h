/* Heap blocks mapped directly and unmapped when freed, as glibc does: those aligned
 * to FA_HEAP_DIRECT_ALIGNMENT or more (jemalloc would reserve alignment + size for
 * each and keep that address space after the free: 16 rounds of 1 GiB-aligned
 * blocks left 20 GiB), and the first few heap blocks of a process, before jemalloc
 * starts (heap.c). A small table knows them. */
#ifndef FA_HEAP_DIRECT_H
#define FA_HEAP_DIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define FA_HEAP_DIRECT_ALIGNMENT ((size_t)64 << 20)

/* Directly mapped blocks now live (statistics). */
extern _Atomic size_t fa_heap_direct_count FA_HIDDEN;
/* Their bytes (each rounded to a page), which jemalloc's statistics do not count. */
extern _Atomic size_t fa_heap_direct_bytes FA_HIDDEN;
/* Heap blocks framealloc serves itself (these and heap_fine.h's) now live: the heap
 * paths look a block up in their tables only when there are. */
extern _Atomic size_t fa_heap_own_count FA_HIDDEN;
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

/* Heap blocks rounded finely, for address-space limits (RLIMIT_AS). jemalloc rounds a
 * block up to its size class, which can be a quarter larger than the request (16400
 * bytes take 20 KiB, 1 MiB + 100 takes 1.25 MiB), and a limit counts that address
 * space even when its pages are never touched: such blocks reached 77-82 % of what
 * glibc allocates under a limit (issue 10). Under a limit, the heap gives each block
 * that jemalloc would round up by more than a 64th to this heap instead, which
 * takes the request and a 16-byte header, rounded to 16 bytes, as glibc does:
 * - blocks below FA_HEAP_FINE_BIG are cut from spans (8 MiB mappings) with boundary
 *   tags: a freed block merges with its free neighbours, free blocks wait in 64 bins
 *   per doubling of size, and a span whose blocks are all free is unmapped (one is
 *   kept), so the limit gets its address space back;
 * - larger blocks get a mapping each, rounded to a page, unmapped when freed.
 * One lock serves the spans (only programs under a limit get here). An owner table,
 * one entry per 128 KiB of address space, says exactly which heap blocks are these
 * (a span's 128 KiB, or the page where a large block's mapping starts), so free
 * never reads a header of a block jemalloc made. */
#ifndef FA_HEAP_FINE_H
#define FA_HEAP_FINE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Blocks from this size on (with their header) get a mapping each, as glibc maps
 * blocks from 128 KiB on: a page rounds them up by at most 3 %. */
#define FA_HEAP_FINE_BIG ((size_t)128 << 10)

/* Bytes of heap allocation the calling thread makes before the address-space limit
 * is looked at again (fa_heap_fine_chosen); 0 under a limit, so that every heap
 * allocation is weighed. Starts at 0: a thread's first heap allocation looks. */
extern __thread size_t fa_heap_fine_watch_left;

/* Counts size off the calling thread's watch; false when the watch is due. */
FA_INLINE bool fa_heap_fine_watch(size_t size)
{
    if (FA_LIKELY(size < fa_heap_fine_watch_left)) {
        fa_heap_fine_watch_left -= size;
        return true;
    }
    return false;
}

/* The watch is due: looks at the limit (re-arming the watch), and says whether a
 * block of size bytes belongs here (under a limit, where jemalloc's class would
 * round it up by more than a 64th of size beyond what this heap takes). */
bool fa_heap_fine_chosen(size_t size);

/* A block of size bytes, recorded as a live heap block (heap_blocks.h), or NULL with
 * errno ENOMEM. zeroed: its bytes read as zero. */
void *fa_heap_fine_alloc(size_t size, bool zeroed);

/* p is a live heap block (the caller checked). Its usable size when it is one of
 * this heap's, else 0. */
size_t fa_heap_fine_size(const void *p);
/* Gives p back when it is one of this heap's (p is a live heap block that has just
 * been taken off the record); false otherwise. */
bool fa_heap_fine_free(void *p);
/* True when this heap's block p now holds size bytes where it is: shrunk (its tail
 * given back) or grown into a free neighbour. A large block stays when it holds
 * size bytes and no more than twice as many. */
bool fa_heap_fine_resize_in_place(void *p, size_t size);

void fa_heap_fine_fork_prepare(void);
void fa_heap_fine_fork_parent(void);
void fa_heap_fine_fork_child(void);

#endif

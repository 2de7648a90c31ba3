/* One reserved virtual range holds all frame and pool memory (design contract 1).
 * Its first part holds only frame chunks and the rest only pool chunks, so the
 * offset of a pointer from the base says frame, pool or heap (outside the range)
 * without loading anything from the block; the header of the chunk that holds it
 * is found by masking. A chunk never moves between the parts, so a stale frame
 * pointer can never free a pool block. */
#ifndef FA_REGION_H
#define FA_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Free's fast path reads base first and the bounds after it (fa_region_offset):
 * fa_region_trim sets the bounds to 0 before it moves base, so a reader that sees
 * the new base never pairs it with old bounds. */
typedef struct {
    uintptr_t base;      /* the frame part's first byte; 0 until reserved */
    size_t frame_checked; /* frame-part offsets below this are checked when freed:
                           * frame_size in safe mode, 0 in strict mode */
    size_t frame_size;   /* [base, base + frame_size) holds frame chunks */
    size_t size;         /* the rest up to base + size holds pool chunks; 0 until reserved */
    uintptr_t origin;    /* the whole reservation, fixed once reserved: bounds that */
    size_t reserved;     /* must hold for every chunk ever handed out */
} fa_region_t;

extern fa_region_t fa_region FA_HIDDEN;
/* Odd while fa_region_trim moves base (once per process at most). */
extern unsigned fa_region_layout_seq FA_HIDDEN;

/* What a chunk holds; the first byte of every chunk header. */
typedef enum {
    FA_CHUNK_UNUSED = 0, /* fresh or released: never handed to a caller */
    FA_CHUNK_FRAME = 0x46,
    FA_CHUNK_POOL = 0x50,
} fa_chunk_kind_t;

/* Owner of a chunk whose thread has exited. Thread ids start at 1 and are never
 * reused (not even by a thread created after fork), so an id match always means
 * "the calling thread owns this chunk". */
#define FA_OWNER_NONE UINT64_MAX
/* Pool chunks of recorded blocks (pool.c): owned by no thread, so every free of
 * their blocks takes the slow path, where records see it. */
#define FA_OWNER_RECORDS (UINT64_MAX - 1)

/* Common first field of every chunk header. */
typedef struct {
    uint8_t kind;
    uint8_t reserved[7];
    _Atomic uint64_t owner; /* owning thread's id, or FA_OWNER_NONE */
} fa_chunk_head_t;

/* x86 keeps loads in order with loads and stores with stores: the layout's readers
 * and its one writer only need the compiler to keep their order too. */
#define FA_REGION_ORDER() __asm__ volatile("" ::: "memory")

/* Offset of p from the region's base for free's fast path: below frame_checked a
 * checked frame block's, below frame_size a strict-mode one's, below size a pool
 * chunk's, else the heap's (also before init, when all are 0). The bounds are read
 * after this (plain loads, so that compares take them from memory). While
 * fa_region_trim moves base a pointer may look like the heap's: free's slow path
 * asks again with fa_region_place. */
FA_INLINE size_t fa_region_offset(const void *p)
{
    /* A plain load, so that the subtraction takes it from memory; the bounds after it. */
    size_t off = (uintptr_t)p - fa_region.base;
    FA_REGION_ORDER();
    return off;
}

typedef enum { FA_PLACE_HEAP, FA_PLACE_FRAME, FA_PLACE_POOL } fa_place_t;

/* What lies at offset off from the base. */
FA_INLINE fa_place_t fa_region_place_of(size_t off)
{
    return off < fa_region.frame_size ? FA_PLACE_FRAME : off < fa_region.size ? FA_PLACE_POOL : FA_PLACE_HEAP;
}

/* Where p lies, read under the layout's sequence count (fa_region_place's slow part). */
fa_place_t fa_region_place_settled(const void *p);

/* Where p lies. While fa_region_trim moves base, a quick look can only take a pool
 * pointer for the heap's (no frame chunk exists then): a heap answer is checked
 * under the sequence count once base has moved, or is moving. */
FA_INLINE fa_place_t fa_region_place(const void *p)
{
    fa_place_t place = fa_region_place_of(fa_region_offset(p));
    FA_REGION_ORDER(); /* the bounds before the count */
    if (FA_UNLIKELY(place == FA_PLACE_HEAP && __atomic_load_n(&fa_region_layout_seq, __ATOMIC_RELAXED)))
        return fa_region_place_settled(p);
    return place;
}

FA_INLINE bool fa_region_owns(const void *p) { return fa_region_place(p) != FA_PLACE_HEAP; }

FA_INLINE bool fa_region_is_frame(const void *p) { return fa_region_place(p) == FA_PLACE_FRAME; }

FA_INLINE fa_chunk_head_t *fa_chunk_of(const void *p)
{
    return (fa_chunk_head_t *)((uintptr_t)p & ~(uintptr_t)FA_CHUNK_MASK);
}

/* Reserves the range, halving the size down to 64 MiB if the address space is
 * limited (RLIMIT_AS). Returns false and leaves the region empty (everything then
 * goes to the heap) if even that fails. */
bool fa_region_init(size_t bytes);

/* Sets whether free checks frame blocks (safe mode) or returns at once (strict). */
void fa_region_check_frame_frees(bool checked);

/* When an address-space limit (RLIMIT_AS) is set, gives the chunks neither part
 * ever handed out back to the kernel, so that the heap can map that much more: the
 * pool part's tail, and the frame part's (all of it, base moving up, when it never
 * held a chunk: a program without frame scopes). Only chunks handed out before are
 * reused afterwards. Returns true if anything went back (the caller may try its
 * mapping again). */
bool fa_region_trim(void);

/* A zero-filled, committed chunk from the part for kind (FA_CHUNK_FRAME or
 * FA_CHUNK_POOL), or NULL when that part is exhausted. */
void *fa_region_chunk_alloc(fa_chunk_kind_t kind);
/* True when the last chunk request failed and no chunk was freed since: an arena
 * that gave up may then succeed once cached chunks go back (a hint, not a lock). */
bool fa_region_exhausted(void);
/* Gives the chunk's pages back to the OS and makes it available again. */
void fa_region_chunk_free(void *chunk);

/* Chunks handed out and not freed, and the most ever, for statistics. */
size_t fa_region_chunks_in_use(void);
/* False for a frame-part address whose chunk was given back (fa_region_trim): its
 * header is not mapped, and may never be read. */
bool fa_region_frame_chunk_mapped(const void *p);
size_t fa_region_chunks_peak(void);

void fa_region_fork_prepare(void);
void fa_region_fork_parent(void);
void fa_region_fork_child(void);

#endif

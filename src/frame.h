/* Frame arenas: per-thread bump allocation recycled by frame number.
 *
 * Invariants
 * - A chunk's `starts` bitmap has one bit per 16-byte granule that begins a block;
 *   only the owner thread sets bits, and only while the chunk is its current chunk.
 * - A block is live when its start bit is set and neither freed bit is: the owner
 *   frees into `freed_local`, any other thread into `freed_remote` (atomic OR).
 *   The bits are masks, not counts, so even a double free that slips past the checks
 *   cannot make a live block look free. `starts` and `freed_local` are interleaved
 *   word by word so that a free by the owner reads one cache line.
 * - A chunk retired with stamp s holds only blocks made in frames <= s; it is
 *   recycled when the global frame reaches s + FRAMES_IN_FLIGHT. In safe mode it is
 *   reset only if no block in it is live; otherwise its live blocks are counted as
 *   escapes and the chunk waits until they are freed. In strict mode frees are
 *   no-ops and recycling is unconditional.
 * - `used_end` (release-stored after the start bit) bounds the newest block, so any
 *   thread can compute a block's size: the next start bit, or used_end when that is
 *   above the block.
 * - A chunk recycled with live blocks (escapes) keeps them and is rewritten so that
 *   its dead space can be reused: dead starts are cleared, and each gap after a live
 *   block begins with a "fence", a start bit that is also freed (so the live block
 *   keeps its end). Such a partial chunk is filled again run by run, and remembers the
 *   blocks it carried over, so they are not counted as escapes twice. */
#ifndef FA_FRAME_H
#define FA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "region.h"
#include "thread.h"

#define FA_FRAME_GRANULE 16
#define FA_FRAME_WORDS (FA_CHUNK_SIZE / FA_FRAME_GRANULE / 64)
/* Larger alignments in a frame scope are served by the heap. */
#define FA_FRAME_MAX_ALIGN 4096
/* A partial chunk lists up to this many carried-over blocks, so that its escapes
 * are counted exactly; with more, new escapes are counted as a lower bound. */
#define FA_FRAME_CARRIED_MAX 768
/* A partial chunk whose largest gap is smaller than this is set aside, not refilled. */
#define FA_FRAME_MIN_GAP 1024

typedef struct fa_frame_chunk {
    fa_chunk_head_t head;
    uint64_t stamp;            /* last frame whose allocations it may hold */
    uint64_t quarantined_at;   /* frame it became inaccessible (FRAMEALLOC_DEBUG=protect) */
    char *_Atomic used_end;    /* end of the newest block */
    struct fa_frame_chunk *next;
    uint8_t partial;           /* holds blocks of earlier frames; new blocks go in its gaps */
    uint16_t carried_count;    /* entries in carried[] */
    uint32_t carried_total;    /* live blocks carried over at its last recycle */
    uint32_t largest_gap;      /* bytes, for choosing a partial chunk */
    uint16_t carried[FA_FRAME_CARRIED_MAX]; /* their granules */
    struct {
        uint64_t starts;
        uint64_t freed_local;
    } bits[FA_FRAME_WORDS];
    _Atomic uint64_t freed_remote[FA_FRAME_WORDS];
} fa_frame_chunk_t;

/* Data starts on a page so that FRAMEALLOC_DEBUG=protect can make all of it inaccessible. */
#define FA_FRAME_DATA_OFFSET ((sizeof(fa_frame_chunk_t) + 4095) & ~(size_t)4095)
_Static_assert(FA_FRAME_DATA_OFFSET <= 8192, "frame chunk header larger than two pages");

extern _Atomic uint64_t fa_frame_number; /* frames ended so far */
extern size_t fa_frame_max;              /* FRAMEALLOC_FRAME_MAX */
extern bool fa_frame_strict;             /* FRAMEALLOC_FRAME_MODE=strict */
extern bool fa_frame_rewind;             /* freeing the newest block gives it back (one frame in flight) */

void fa_frame_configure(void);

/* Serves n bytes aligned to align (any power of two), or NULL when the frame arena
 * cannot (too large, alignment too large, thread dead, region exhausted). */
void *fa_frame_alloc_slow(fa_thread_t *t, size_t n, size_t align);
void fa_frame_free_slow(fa_thread_t *t, fa_frame_chunk_t *c, void *p);

FA_INLINE void fa_frame_mark_start(fa_frame_chunk_t *c, char *p, char *end)
{
    size_t off = (size_t)(p - (char *)c);
    uint64_t *word = &c->bits[off >> 10].starts;
    __atomic_store_n(word, __atomic_load_n(word, __ATOMIC_RELAXED) | (1ULL << ((off >> 4) & 63)), __ATOMIC_RELAXED);
    __atomic_store_n(&c->used_end, end, __ATOMIC_RELEASE);
}

/* The fast path alone: a bump in the current chunk, or NULL (never calls out). */
FA_INLINE void *fa_frame_try_alloc(fa_thread_t *t, size_t n)
{
    fa_frame_arena_t *a = &t->frame;
    size_t need = (n + FA_FRAME_GRANULE - 1) & ~(size_t)(FA_FRAME_GRANULE - 1);
    char *p = a->bump;
    if (FA_UNLIKELY(n - 1 >= fa_frame_max || need > (size_t)(a->end - p)))
        return NULL;
    a->bump = p + need;
    a->allocs++;
    a->bytes += need;
    fa_frame_mark_start(a->chunk, p, p + need);
    return p;
}

FA_INLINE void *fa_frame_alloc(fa_thread_t *t, size_t n)
{
    void *p = fa_frame_try_alloc(t, n);
    return FA_LIKELY(p != NULL) ? p : fa_frame_alloc_slow(t, n, FA_MIN_ALIGN);
}

enum { FA_FRAME_FREE_SLOW, FA_FRAME_FREE_DONE, FA_FRAME_FREE_LAST_IN_WORD };

/* Frees a live block of the owner whose start is the last in its bitmap word: gives
 * its bytes back when it is the newest block (see fa_frame_try_free), else marks it. */
void fa_frame_free_last_in_word(fa_thread_t *t, fa_frame_chunk_t *c, void *p);

/* The fast path alone: strict mode, or the owner freeing a live block. Returns
 * FA_FRAME_FREE_SLOW (having done nothing) for every other case.
 * Freeing the newest block gives its bytes back: temporaries freed in stack order,
 * as most are, then reuse warm memory instead of growing the frame's footprint. That
 * test needs the arena's state, so the rare candidates (start last in its word)
 * return FA_FRAME_FREE_LAST_IN_WORD for the caller to finish out of line. */
FA_INLINE int fa_frame_try_free(fa_thread_t *t, fa_frame_chunk_t *c, void *p)
{
    if (fa_frame_strict)
        return FA_FRAME_FREE_DONE;
    size_t off = (size_t)((char *)p - (char *)c);
    size_t w = off >> 10;
    unsigned shift = (unsigned)(off >> 4) & 63;
    uint64_t bit = 1ULL << shift;
    if (FA_LIKELY(__atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id && (off & 15) == 0)) {
        uint64_t starts = c->bits[w].starts;
        uint64_t freed = c->bits[w].freed_local;
        if (FA_LIKELY(starts & ~freed & bit)) {
            if (FA_UNLIKELY((starts >> shift) == 1))
                return FA_FRAME_FREE_LAST_IN_WORD;
            __atomic_store_n(&c->bits[w].freed_local, freed | bit, __ATOMIC_RELAXED);
            return FA_FRAME_FREE_DONE;
        }
    }
    return FA_FRAME_FREE_SLOW;
}

FA_INLINE void fa_frame_free(fa_thread_t *t, fa_frame_chunk_t *c, void *p)
{
    int result = fa_frame_try_free(t, c, p);
    if (result == FA_FRAME_FREE_LAST_IN_WORD)
        fa_frame_free_last_in_word(t, c, p);
    else if (FA_UNLIKELY(result == FA_FRAME_FREE_SLOW))
        fa_frame_free_slow(t, c, p);
}

/* Bytes usable at p (a live frame block), from p to the next block or the end. */
size_t fa_frame_usable_size(fa_frame_chunk_t *c, const void *p);

/* Resizes p in place when it is the calling thread's newest block, or when n fits
 * in the block already. Returns true on success. */
bool fa_frame_resize_in_place(fa_thread_t *t, fa_frame_chunk_t *c, void *p, size_t n);

/* Frame markers (public API) for the calling thread. */
void fa_frame_end_now(fa_thread_t *t);
/* Called when the thread's intent changes: from_frame says it was FA_FRAME, to_frame
 * that it becomes FA_FRAME. Syncs with the global frame where needed. */
void fa_frame_on_intent_change(fa_thread_t *t, bool from_frame, bool to_frame);

/* Gives the thread's spare chunks back to the region (memory pressure). */
void fa_frame_release_spares(fa_thread_t *t);

/* Thread exit: frees what it can, orphans chunks that still hold live blocks. */
void fa_frame_thread_exit(fa_thread_t *t);

/* Chunks held by frame arenas, all threads, and the totals of exited threads (statistics). */
uint64_t fa_frame_chunks_held(void);
void fa_frame_exited_totals(uint64_t *allocs, uint64_t *bytes, uint64_t *escapes);

void fa_frame_fork_prepare(void);
void fa_frame_fork_parent(void);
void fa_frame_fork_child(void);

#endif

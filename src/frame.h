/* Frame arenas: per-thread bump allocation recycled by frame number.
 *
 * Blocks carry their own proof of life. Each block is [8-byte header][data]; the
 * program's pointer p is 16-aligned, the header sits at p - 8 and the next block's
 * header at p - 8 + span (span = round_up(n + 8, 16)). A header holds
 *     p ^ span ^ state ^ key,   key = secret ^ (seq << 24)
 * where seq numbers the generation that made the block (the blocks one thread makes
 * between two frame syncs; every generation of every thread has its own seq) and
 * the secret is per process. Decoding with the right key gives span | state:
 * below 2^20 exactly when the block is live (state 0). So free checks "a live block
 * of my current generation" with one load, one xor and one compare: an older
 * generation's block, another thread's, a freed one, or a pointer into the middle
 * of a block decodes to a large number and takes the slow path, which decodes with
 * the secret alone (span, state and seq) and reports misuse exactly.
 *
 * Invariants
 * - Blocks tile a chunk from its data start to its end: walking span by span from
 *   the first header reaches every block (a bump range that ends leaves its unused
 *   rest as one FREED block). Dead runs that are kept (gaps between escaped
 *   blocks) are single FREED blocks, so the walk always works.
 * - A chunk belongs to exactly one place: the current generation, one finished
 *   generation, the escaped list, the spares, the quarantine, or the orphans.
 * - Only the owner changes a header from LIVE to FREED. Another thread changes it
 *   from LIVE to PENDING with a compare-and-swap (so a second remote free fails
 *   there) and pushes the block on the chunk's `remote` list; the owner applies the
 *   list at its next sync (PENDING -> FREED) and counts it. So "made == freed"
 *   proves that nothing in a generation is alive, and recycling it is a few pointer
 *   writes per chunk.
 * - A generation whose counts differ when its frame is recycled is walked: its live
 *   blocks stay (escapes, counted in their chunk's `live`), the dead runs around
 *   them become gaps that later generations bump into.
 * - Frame chunks live in the frame part of the region, so a stale frame pointer
 *   can never reach a pool block. */
#ifndef FA_FRAME_H
#define FA_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk_list.h"
#include "config.h"
#include "region.h"
#include "thread.h"

#define FA_FRAME_HEADER 8
/* Decoded header fields: span in bits 4..19, state in bits 20..21, the recorded
 * flag in bit 22, seq from bit 24. */
#define FA_FRAME_LIVE_LIMIT ((uint64_t)1 << 20)
#define FA_FRAME_FREED ((uint64_t)1 << 20)
#define FA_FRAME_PENDING ((uint64_t)1 << 21)
/* A block allocation records know: its decoded span is never below the live limit,
 * so every free of it misses the fast path and the slow path tells records. */
#define FA_FRAME_RECORDED ((uint64_t)1 << 22)
#define FA_FRAME_SEQ_SHIFT 24
/* Larger alignments in a frame scope are served by the heap. */
#define FA_FRAME_MAX_ALIGN 4096
/* A gap smaller than this is not worth moving a bump range into. */
#define FA_FRAME_MIN_GAP 1024

typedef struct fa_frame_chunk {
    fa_chunk_head_t head;
    fa_list_link_t link;      /* on one of its arena's lists, or among the orphans */
    uint64_t live;            /* escaped blocks still alive (counted by a walk) */
    uint64_t stamp;           /* orphans: last frame their blocks can belong to */
    uint64_t quarantined_at;  /* frame it became inaccessible (FRAMEALLOC_DEBUG=protect) */
    uint32_t largest_gap;     /* bytes, in a chunk with escapes */
    _Atomic(uint64_t *) remote; /* blocks freed by other threads, not yet applied */
} fa_frame_chunk_t;

/* Data starts on a page so that FRAMEALLOC_DEBUG=protect can make all of it inaccessible. */
#define FA_FRAME_DATA_OFFSET ((size_t)4096)
_Static_assert(sizeof(fa_frame_chunk_t) <= FA_FRAME_DATA_OFFSET, "frame chunk header too large");

extern _Atomic uint64_t fa_frame_number FA_HIDDEN; /* frames ended so far */
extern uint64_t fa_frame_secret FA_HIDDEN;
/* Free checks and counts frame blocks in safe mode; in strict mode
 * (FRAMEALLOC_FRAME_MODE=strict) a frame free does nothing. */
void fa_frame_configure(void);

FA_INLINE size_t fa_frame_span(size_t n) { return (n + FA_FRAME_HEADER + 15) & ~(size_t)15; }

/* The fast path alone: a bump in the current range, or NULL (never calls out).
 * n < 2^62 (see FA_SAMPLE_NEVER). No size limit here: FRAMEALLOC_FRAME_MAX keeps a
 * large request from starting a chunk, and one that fits where the range already
 * is costs nothing extra. */
FA_INLINE void *fa_frame_try_alloc(fa_thread_t *t, size_t n)
{
    fa_frame_arena_t *a = &t->frame;
    char *p = a->bump;
    size_t span = fa_frame_span(n);
    if (FA_UNLIKELY(span > (size_t)(a->end - p)))
        return NULL;
    ((uint64_t *)p)[-1] = (uintptr_t)p ^ span ^ a->key;
    a->bump = p + span;
    a->made++;
    return p;
}

/* Serves n bytes aligned to align (any power of two), or NULL when the frame arena
 * cannot (too large, alignment too large, thread dead, region exhausted). */
void *fa_frame_alloc_slow(fa_thread_t *t, size_t n, size_t align);

/* The fast path alone: the owner freeing a live block of its current generation;
 * the newest block gives its bytes back. Returns false (having done nothing) for
 * everything else. */
FA_INLINE bool fa_frame_try_free(fa_thread_t *t, void *p)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t *header = (uint64_t *)p - 1;
    uint64_t h = *header;
    uint64_t span = h ^ (uintptr_t)p ^ a->free_key;
    if (FA_UNLIKELY(span >= FA_FRAME_LIVE_LIMIT))
        return false;
    *header = h ^ FA_FRAME_FREED; /* a second free now fails the test above */
    a->freed++;
    if ((char *)p + span == a->bump)
        a->bump = p;
    return true;
}

/* Marks p, a live block just allocated, as recorded (see FA_FRAME_RECORDED). */
FA_INLINE void fa_frame_mark_recorded(void *p) { ((uint64_t *)p)[-1] ^= FA_FRAME_RECORDED; }

/* True when p's header says recorded (p is any pointer into the frame part's chunks). */
FA_INLINE bool fa_frame_is_recorded(const void *p)
{
    return ((((const uint64_t *)p)[-1] ^ (uintptr_t)p ^ fa_frame_secret) & FA_FRAME_RECORDED) != 0;
}

/* Every other free of a pointer in the frame part: other generations, other
 * threads, misuse (reported, never absorbed). */
void fa_frame_free_slow(fa_thread_t *t, void *p);

/* Bytes usable at p, a live frame block (else an abort naming the operation what). */
size_t fa_frame_usable_size(const void *p, const char *what);

/* Resizes p in place when it is the calling thread's newest block, or when n fits
 * in the block already. Returns true on success. */
bool fa_frame_resize_in_place(fa_thread_t *t, void *p, size_t n);

/* Frame markers (public API) for the calling thread. */
void fa_frame_end_now(fa_thread_t *t);
/* Called when the thread's intent changes: from_frame says it was FA_FRAME, to_frame
 * that it becomes FA_FRAME. Syncs with the global frame where needed. */
void fa_frame_on_intent_change(fa_thread_t *t, bool from_frame, bool to_frame);
/* A thread's other slow paths call this: a thread that stopped using frame scopes
 * still recycles its frames and gives a spike's memory back. */
void fa_frame_idle_sync(fa_thread_t *t);

/* Gives the thread's spare chunks back to the region (memory pressure). */
void fa_frame_release_spares(fa_thread_t *t);

/* Thread exit: chunks go to the orphans until their frames are recycled and
 * nothing in them is alive. */
void fa_frame_thread_exit(fa_thread_t *t);

/* For FRAMEALLOC_DEBUG=protect's fault handler: true when addr lies in the data of
 * a frame chunk; then *block is the start of the block holding it (NULL when none)
 * and *quarantined_at the frame at which the chunk became inaccessible. */
bool fa_frame_fault_at(const char *addr, char **block, uint64_t *quarantined_at);

/* Chunks held by frame arenas, all threads, and the totals of exited threads (statistics). */
uint64_t fa_frame_chunks_held(void);
void fa_frame_exited_totals(uint64_t *allocs, uint64_t *bytes, uint64_t *escapes);

#endif

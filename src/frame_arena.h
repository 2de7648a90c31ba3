/* The per-thread part of a frame arena (lives inside fa_thread_t). The fields the
 * fast paths touch come first and share one cache line. */
#ifndef FA_FRAME_ARENA_H
#define FA_FRAME_ARENA_H

#include <stdbool.h>
#include <stdint.h>

#include "chunk_list.h"

struct fa_frame_chunk;

/* A finished generation waiting for its frame to be recycled (or several merged:
 * their sequence numbers are first..last, and only this thread's are in its chunks). */
typedef struct {
    uint64_t first, last;         /* its keys' sequence numbers */
    uint64_t stamp;               /* last frame its blocks can belong to */
    uint64_t made, freed;         /* blocks made, and frees applied by the owner */
    fa_list_t chunks;             /* whole lists move in O(1): recycling costs no work per chunk */
    /* Some chunk also holds older escaped blocks (a bump range went into a gap), so
     * equal counts do not prove that its chunks are empty. */
    bool has_escapes;
} fa_frame_gen_t;

/* Generations waiting at once; a thread that makes more merges the newest ones. */
#define FA_FRAME_GENS 40

typedef struct {
    /* ---- fast path ---- */
    /* The range is kept as the pointers the program sees (each 8 bytes past its
     * header slot), so the fast paths need no offset arithmetic. */
    char *bump;            /* where the next block's data starts; NULL: no range */
    char *end;             /* end of the current bump range, plus 8 */
    uint64_t key;          /* the current generation's header key; 0: none */
    /* What free decodes with: key, or key ^ 8 where freeing the newest block must
     * not give its bytes back (frames in flight, protect): the decoded span is then
     * never a multiple of 16, so it never leads to bump. */
    uint64_t free_key;
    uint64_t made, freed;  /* the current generation's blocks made and freed */
    /* ---- slow path ---- */
    /* Held by the owner in its slow paths, and by a thread ending a frame while it
     * recycles for an owner that stopped syncing (the fast paths never need it:
     * they touch only the current generation, which only the owner changes). */
    _Atomic uint8_t lock;
    uint64_t seq;                   /* the current generation's sequence number */
    char *range_start;              /* where the current bump range began (statistics) */
    struct fa_frame_chunk *chunk;   /* the chunk the range is in */
    fa_list_t chunks;               /* the current generation's chunks, newest first */
    bool chunks_have_escapes;       /* see fa_frame_gen_t.has_escapes */
    fa_frame_gen_t gens[FA_FRAME_GENS]; /* ring of finished generations, oldest first */
    uint32_t gen_first, gen_count;
    fa_list_t escaped;              /* recycled with live blocks: kept, gaps reusable */
    fa_list_t spare;                /* empty, ready for reuse */
    fa_list_t quarantine;           /* recycled, inaccessible (debug), oldest first */
    uint32_t taken_this_frame;      /* chunks started since the last frame sync */
    uint32_t recent_need[4];        /* taken_this_frame of the last few frames */
    uint32_t need_slot;
    uint64_t synced_frame;          /* global frame number at the last sync */
    uint64_t scope_end_frame;       /* global frame when the last frame scope ended */
    /* Statistics, read by other threads: finished generations only (plus made, above). */
    uint64_t allocs, bytes, escapes;
} fa_frame_arena_t;

#endif

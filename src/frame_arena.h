/* The per-thread part of a frame arena (lives inside fa_thread_t). */
#ifndef FA_FRAME_ARENA_H
#define FA_FRAME_ARENA_H

#include <stdint.h>

struct fa_frame_chunk;

typedef struct {
    char *bump; /* next free byte in the current chunk */
    char *end;  /* end of the current chunk; bump == end == NULL means no chunk */
    struct fa_frame_chunk *chunk;
    uint64_t allocs, bytes; /* served by this thread, cumulative */
    uint64_t escapes;       /* allocations found alive when their frame was recycled */
    uint64_t synced_frame;  /* global frame number at the last sync */
    uint64_t scope_end_frame; /* global frame when the last frame scope ended */
    struct fa_frame_chunk *retired_head, *retired_tail; /* waiting for frame + N, oldest first */
    struct fa_frame_chunk *escaped; /* recycled with many live allocations: kept until freed */
    struct fa_frame_chunk *partial; /* recycled with a few live allocations: gaps reusable */
    struct fa_frame_chunk *spare;   /* reset, ready for reuse */
    struct fa_frame_chunk *quarantine_head, *quarantine_tail; /* recycled, inaccessible (debug) */
    uint32_t spare_count;
    uint32_t taken_this_frame;      /* chunks started since the last frame sync */
    uint32_t recent_need[4];        /* taken_this_frame of the last few frames */
    uint32_t need_slot;
} fa_frame_arena_t;

#endif

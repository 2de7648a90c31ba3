/* The chunks both arenas hold, below them and above the region: taking a chunk from
 * the region and giving it back (with the count of chunks held per kind, for
 * statistics), and the orphans: chunks of exited threads that may still hold live
 * blocks, kept per kind in bins (a pool class; frame chunks use bin 0) under one lock
 * per kind, until an arena adopts or reclaims them. The locks here are the chunk
 * layer's whole fork state (fa_chunk_fork_*).
 *
 * Every chunk header starts with its fa_chunk_head_t (region.h) and holds, somewhere
 * in the header, the fa_list_link_t (chunk_list.h) that puts it on one list at a time:
 * masking a link's address gives its chunk (fa_chunk_at). Lock order: an arena's own
 * locks, then these, then the region's. */
#ifndef FA_CHUNK_CACHE_H
#define FA_CHUNK_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "chunk_list.h"
#include "region.h"

/* Bins of orphans per kind: enough for every pool class (pool.c checks). */
#define FA_CHUNK_ORPHAN_BINS 63

/* The chunk whose header holds link, or NULL for NULL. */
FA_INLINE void *fa_chunk_at(const fa_list_link_t *link) { return link ? fa_chunk_of(link) : NULL; }

/* A zero-filled chunk of kind (FA_CHUNK_FRAME or FA_CHUNK_POOL) from the region, its
 * kind byte set and counted as held, or NULL when that part is exhausted. */
void *fa_chunk_alloc(fa_chunk_kind_t kind);
/* Gives a chunk from fa_chunk_alloc back to the region (its pages to the OS). */
void fa_chunk_release(void *chunk);
/* Gives the chunks at l's head back until l holds at most keep (a spare list
 * trimmed to what its arena wants to keep). */
void fa_chunk_release_beyond(fa_list_t *l, uint32_t keep);
/* Gives every chunk on l back, leaving l empty. */
void fa_chunk_release_all(fa_list_t *l);
/* Chunks of kind held by the arenas now. */
uint64_t fa_chunk_held(fa_chunk_kind_t kind);

/* Orphans held now, by kind ([0] frame, [1] pool): read without the lock, so that
 * the arenas skip the lock when there are none. */
extern _Atomic uint64_t fa_chunk_orphan_counts[2] FA_HIDDEN;

FA_INLINE bool fa_chunk_orphans_any(fa_chunk_kind_t kind)
{
    return __atomic_load_n(&fa_chunk_orphan_counts[kind == FA_CHUNK_POOL], __ATOMIC_RELAXED) != 0;
}

/* Makes the chunk an orphan of its kind in bin: it has no owner from now on
 * (FA_OWNER_NONE, so every free into it takes the remote path). */
void fa_chunk_orphan_put(fa_list_link_t *link, unsigned bin);
/* The newest orphan of kind in bin, taken off the orphans (its owner still NONE),
 * or NULL. */
fa_list_link_t *fa_chunk_orphan_take(fa_chunk_kind_t kind, unsigned bin);

/* For a walk over the orphans of kind in bin: the list, with the kind's lock held,
 * or NULL (lock not taken) when there are none or another thread holds the lock.
 * During the walk fa_chunk_orphan_remove takes one off; fa_chunk_orphans_unlock ends it. */
fa_list_t *fa_chunk_orphans_try_lock(fa_chunk_kind_t kind, unsigned bin);
void fa_chunk_orphan_remove(fa_chunk_kind_t kind, fa_list_t *list, fa_list_link_t *link);
void fa_chunk_orphans_unlock(fa_chunk_kind_t kind);

/* Validator (FA_CHECK level 2): every orphan list of kind is well formed, holds
 * chunks of that kind with no owner, and the kind's count matches (takes the lock). */
bool fa_chunk_orphans_valid(fa_chunk_kind_t kind);

/* Fork: every lock above, taken before the region's and released after it. */
void fa_chunk_fork_prepare(void);
void fa_chunk_fork_parent(void);
void fa_chunk_fork_child(void);

#endif

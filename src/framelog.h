/* The frame log (FRAMEALLOC_FRAMELOG=path): one CSV row per fa_frame_end.
 *
 * Shared by libframealloc and by the probe library (probe/), which times frames for
 * other allocators, so it knows nothing of allocator internals: the caller passes a
 * counters function (fa_stats_fill in the library), or NULL when it has none, and
 * the counter columns are then left empty.
 *
 * Allocation-free: rows are formatted with fa_format into a stack buffer and written
 * with one write(2) to a file opened once with O_APPEND. */
#ifndef FA_FRAMELOG_H
#define FA_FRAMELOG_H

#include <stddef.h>

#include "framealloc.h"

typedef int (*fa_framelog_stats_fn)(fa_stats *out, size_t size);

/* fa_frame_begin: the frame's time starts now (otherwise it starts when the previous
 * fa_frame_end's row was written). */
void fa_framelog_begin(void);

/* fa_frame_end: appends the frame's row. Call it after the allocator's own frame-end
 * work, so that work counts in the frame time. stats may be NULL. */
void fa_framelog_end(fa_framelog_stats_fn stats);

#endif

/* The figures behind mallinfo2 and the work behind malloc_trim (memory_summary.h). */
#include "memory_summary.h"

#include "stats.h"
#include "heap.h"
#include "process.h"
#include "region.h"
#include "thread.h"

void fa_memory_summary(fa_memory_summary_t *out)
{
    fa_stats s;
    fa_stats_fill(&s, sizeof s);
    uint64_t frame_bytes = s.frame_chunks * FA_CHUNK_SIZE;
    out->in_use_bytes = s.pool_live_bytes + s.heap_bytes + frame_bytes;
    out->held_bytes = s.region_bytes + fa_heap_statistic("stats.mapped");
    if (out->held_bytes < out->in_use_bytes) /* jemalloc's figures lag its epoch */
        out->held_bytes = out->in_use_bytes;
    out->direct_blocks = __atomic_load_n(&fa_heap_direct_count, __ATOMIC_RELAXED);
}

static uint64_t resident_bytes(void)
{
    return (uint64_t)fa_region_chunks_in_use() * FA_CHUNK_SIZE + fa_heap_statistic("stats.resident");
}

bool fa_memory_release_unused(void)
{
    uint64_t before = resident_bytes();
    fa_thread_t *t = fa_thread();
    if (t->state == FA_THREAD_LIVE)
        fa_process_release_cached(t);
    fa_heap_purge();
    return resident_bytes() < before;
}

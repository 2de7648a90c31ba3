/* The figures behind mallinfo2 and the work behind malloc_trim (memory_summary.h). */
#include "memory_summary.h"

#include "api.h"
#include "frame.h"
#include "heap.h"
#include "pool.h"
#include "region.h"
#include "thread.h"

int fa_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* jemalloc's MALLCTL_ARENAS_ALL: "arena.<i>.purge" for every arena at once. */
#define HEAP_ALL_ARENAS "4096"

/* A jemalloc statistic after refreshing them; 0 if it cannot be read. */
static uint64_t heap_statistic(const char *name)
{
    uint64_t epoch = 1;
    size_t value = 0, len = sizeof value;
    fa_je_mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
    if (fa_je_mallctl(name, &value, &len, NULL, 0) != 0)
        return 0;
    return value;
}

void fa_memory_summary(fa_memory_summary_t *out)
{
    fa_stats s;
    fa_stats_fill(&s, sizeof s);
    uint64_t frame_bytes = s.frame_chunks * FA_CHUNK_SIZE;
    out->in_use_bytes = s.pool_live_bytes + s.heap_bytes + frame_bytes;
    out->held_bytes = s.region_bytes + heap_statistic("stats.mapped");
    if (out->held_bytes < out->in_use_bytes) /* jemalloc's figures lag its epoch */
        out->held_bytes = out->in_use_bytes;
    out->direct_blocks = __atomic_load_n(&fa_heap_direct_count, __ATOMIC_RELAXED);
}

static uint64_t resident_bytes(void)
{
    return (uint64_t)fa_region_chunks_in_use() * FA_CHUNK_SIZE + heap_statistic("stats.resident");
}

bool fa_memory_release_unused(void)
{
    uint64_t before = resident_bytes();
    fa_thread_t *t = fa_thread();
    if (t->state == FA_THREAD_LIVE) {
        fa_pool_release_cached(t);
        fa_frame_release_spares(t);
    }
    fa_je_mallctl("arena." HEAP_ALL_ARENAS ".purge", NULL, NULL, NULL, 0);
    return resident_bytes() < before;
}

/* Counters for fa_stats_get and the exit summary: per-thread figures summed over
 * the registry, plus the totals of exited threads, the region and jemalloc. */
#include <string.h>

#include "stats.h"
#include "frame.h"
#include "heap.h"
#include "log.h"
#include "pool.h"
#include "region.h"
#include "thread.h"

typedef struct {
    fa_stats *stats;
    fa_pool_totals_t *pool;
} fa_stats_sum_t;

static void add_thread(fa_thread_t *t, void *arg)
{
    fa_stats_sum_t *sum = arg;
    fa_stats *s = sum->stats;
    /* The current generation's blocks count as soon as they are made. */
    s->frame_allocs += __atomic_load_n(&t->frame.allocs, __ATOMIC_RELAXED) + __atomic_load_n(&t->frame.made, __ATOMIC_RELAXED);
    s->frame_bytes += __atomic_load_n(&t->frame.bytes, __ATOMIC_RELAXED);
    s->frame_escapes += __atomic_load_n(&t->frame.escapes, __ATOMIC_RELAXED);
    s->threads++;
    fa_pool_add_thread(t, sum->pool);
}

static void collect(fa_stats *s, fa_pool_totals_t *pool)
{
    memset(s, 0, sizeof *s);
    memset(pool, 0, sizeof *pool);
    s->frame = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    fa_frame_exited_totals(&s->frame_allocs, &s->frame_bytes, &s->frame_escapes);
    fa_stats_sum_t sum = {s, pool};
    fa_thread_for_each(add_thread, &sum);
    fa_pool_add_exited(pool);
    s->frame_chunks = fa_frame_chunks_held();
    s->pool_allocs = pool->allocs;
    s->pool_live_bytes = pool->live_bytes;
    s->pool_chunks = pool->chunks;
    s->region_bytes = (uint64_t)fa_region_chunks_in_use() * FA_CHUNK_SIZE;
    s->region_peak_bytes = (uint64_t)fa_region_chunks_peak() * FA_CHUNK_SIZE;
    s->heap_bytes = fa_heap_statistic("stats.allocated");
}

int fa_stats_fill(fa_stats *out, size_t size)
{
    fa_stats s;
    fa_pool_totals_t pool;
    collect(&s, &pool);
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return 0;
}

int fa_stats_get(fa_stats *out) { return fa_stats_fill(out, sizeof *out); }

void fa_stats_print(int fd)
{
    fa_stats s;
    fa_pool_totals_t pool;
    collect(&s, &pool);
    char buf[1024];
    size_t n = fa_format(buf, sizeof buf,
                         "framealloc: frames %llu | frame allocs %llu, bytes %llu, escapes %llu, chunks held %llu | "
                         "region now %llu KiB, peak %llu KiB | heap live %llu KiB | arena threads %llu\n",
                         (unsigned long long)s.frame, (unsigned long long)s.frame_allocs,
                         (unsigned long long)s.frame_bytes, (unsigned long long)s.frame_escapes,
                         (unsigned long long)s.frame_chunks, (unsigned long long)(s.region_bytes >> 10),
                         (unsigned long long)(s.region_peak_bytes >> 10), (unsigned long long)(s.heap_bytes >> 10),
                         (unsigned long long)s.threads);
    fa_write_all(fd, buf, n);
    n = fa_format(buf, sizeof buf, "framealloc: pool allocs %llu, live %llu KiB, chunks %llu\n",
                  (unsigned long long)s.pool_allocs, (unsigned long long)(s.pool_live_bytes >> 10),
                  (unsigned long long)s.pool_chunks);
    fa_write_all(fd, buf, n);
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        if (!pool.class_allocs[cls])
            continue;
        n = fa_format(buf, sizeof buf, "framealloc:   class %4u B: allocs %llu, live %llu\n",
                      (unsigned)fa_pool_class_size[cls], (unsigned long long)pool.class_allocs[cls],
                      (unsigned long long)pool.class_live[cls]);
        fa_write_all(fd, buf, n);
    }
}

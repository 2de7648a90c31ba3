/* Counters for fa_stats_get and the exit summary: per-thread figures summed over
 * the registry, plus the totals of exited threads, the region and jemalloc. */
#include <string.h>

#include "api.h"
#include "frame.h"
#include "log.h"
#include "region.h"
#include "thread.h"

int fa_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

static void add_thread(fa_thread_t *t, void *arg)
{
    fa_stats *s = arg;
    s->frame_allocs += __atomic_load_n(&t->frame.allocs, __ATOMIC_RELAXED);
    s->frame_bytes += __atomic_load_n(&t->frame.bytes, __ATOMIC_RELAXED);
    s->frame_escapes += __atomic_load_n(&t->frame.escapes, __ATOMIC_RELAXED);
    s->threads++;
}

static uint64_t heap_allocated(void)
{
    uint64_t epoch = 1;
    size_t allocated = 0, len = sizeof allocated;
    fa_je_mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
    if (fa_je_mallctl("stats.allocated", &allocated, &len, NULL, 0) != 0)
        return 0;
    return allocated;
}

int fa_stats_fill(fa_stats *out, size_t size)
{
    fa_stats s;
    memset(&s, 0, sizeof s);
    s.frame = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    fa_frame_exited_totals(&s.frame_allocs, &s.frame_bytes, &s.frame_escapes);
    fa_thread_for_each(add_thread, &s);
    s.frame_chunks = fa_frame_chunks_held();
    s.region_bytes = (uint64_t)fa_region_chunks_in_use() * FA_CHUNK_SIZE;
    s.region_peak_bytes = (uint64_t)fa_region_chunks_peak() * FA_CHUNK_SIZE;
    s.heap_bytes = heap_allocated();
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
    return 0;
}

int fa_stats_get(fa_stats *out) { return fa_stats_fill(out, sizeof *out); }

void fa_stats_print(int fd)
{
    fa_stats s;
    fa_stats_fill(&s, sizeof s);
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
}

/* glibc's heap-inspection and tuning names. Left to glibc, they would initialise
 * and read glibc's own heap, which no block of this process lives in: the figures
 * would be zeros, and two threads making the first such call at once race in
 * glibc's set-up (a crash). Here they describe framealloc's arenas instead. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>

#include "alloc.h"
#include "stats.h"
#include "memory_summary.h"

static struct mallinfo2 summary_as_mallinfo2(void)
{
    fa_memory_summary_t s;
    fa_memory_summary(&s);
    return (struct mallinfo2){
        .arena = s.held_bytes,
        .uordblks = s.in_use_bytes,
        .fordblks = s.held_bytes - s.in_use_bytes,
        .hblks = s.direct_blocks,
    };
}

FA_EXPORT struct mallinfo2 mallinfo2(void) { return summary_as_mallinfo2(); }

static int clamp_to_int(size_t value) { return value > INT_MAX ? INT_MAX : (int)value; }

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
FA_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = summary_as_mallinfo2();
    return (struct mallinfo){
        .arena = clamp_to_int(m.arena),
        .uordblks = clamp_to_int(m.uordblks),
        .fordblks = clamp_to_int(m.fordblks),
        .hblks = clamp_to_int(m.hblks),
    };
}
#pragma GCC diagnostic pop

FA_EXPORT int malloc_trim(size_t pad)
{
    (void)pad; /* nothing framealloc gives back grows on demand the way glibc's top does */
    return fa_memory_release_unused();
}

/* glibc's parameters tune glibc's heap, which framealloc replaces: they change
 * nothing here. The result is glibc's: 1, except for an M_MXFAST out of its range. */
FA_EXPORT int mallopt(int param, int value)
{
    if (param == M_MXFAST)
        return value >= 0 && (size_t)value <= 80 * sizeof(size_t) / 4;
    return 1;
}

FA_EXPORT void malloc_stats(void)
{
    struct mallinfo2 m = summary_as_mallinfo2();
    fprintf(stderr, "Total (framealloc):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n", m.arena,
            m.uordblks);
    fa_stats_print(2);
}

FA_EXPORT int malloc_info(int options, FILE *out)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct mallinfo2 m = summary_as_mallinfo2();
    fprintf(out,
            "<malloc version=\"1\" allocator=\"framealloc\">\n"
            "<total type=\"in-use\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "</malloc>\n",
            m.uordblks, m.hblks, m.arena);
    return 0;
}

/* libframealloc_probe.so: the frame log without the allocator.
 *
 * Preloaded in front of another allocator (LD_PRELOAD="libframealloc_probe.so
 * libjemalloc.so.2"), it gives a game marked with framealloc.h the same fa_api_v1
 * table libframealloc exports, so frame_begin/frame_end write exactly the same frame
 * log (src/framelog.c, compiled in here too). Scopes and tags do nothing and there
 * are no counters. It exports fa_api_v1 and nothing else: malloc stays with
 * whichever allocator is loaded. */
#include "framealloc.h"
#include "framelog.h"
#include "options.h"

static void probe_frame_end(void) { fa_framelog_end(NULL); }
static void probe_scope_push(int intent) { (void)intent; }
static void probe_nothing(void) {}
static void probe_tag_push(const char *tag) { (void)tag; }

static int probe_stats_get(fa_stats *out, size_t size)
{
    memset(out, 0, size < sizeof *out ? size : sizeof *out);
    return -1; /* as the header does without the library: no counters */
}

/* No records here: as without the library, reports fail and budgets are ignored. */
static int probe_report(const char *dir)
{
    (void)dir;
    return -1;
}

static void probe_budget_set(const char *tag, uint64_t bytes)
{
    (void)tag;
    (void)bytes;
}

__attribute__((visibility("default"))) const fa_api fa_api_v1 = {
    .version = 1,
    .size = sizeof(fa_api),
    .frame_begin = fa_framelog_begin,
    .frame_end = probe_frame_end,
    .scope_push = probe_scope_push,
    .scope_pop = probe_nothing,
    .tag_push = probe_tag_push,
    .tag_pop = probe_nothing,
    .stats_get = probe_stats_get,
    .report = probe_report,
    .budget_set = probe_budget_set,
};

/* FRAMEALLOC_FRAMELOG and the other settings, read as libframealloc reads them. */
__attribute__((constructor)) static void probe_start(void) { fa_options_load(); }

/* Process start and end for the preloaded library: initialise early (settings,
 * help text), print the counters at exit when FRAMEALLOC_STATS=1. Allocation works
 * before this constructor runs: until then everything goes to the heap. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "frame.h"
#include "learn.h"
#include "log.h"
#include "options.h"
#include "protect.h"
#include "records.h"
#include "report.h"
#include "system_callers.h"
#include "thread.h"

void fa_unwind_load_for_profiling(void); /* unwind_names.c */

/* The setting is read by the audit module and the Vulkan layer; without either it
 * would silently do nothing. */
static void check_autoframe(void)
{
    const char *audit = getenv("LD_AUDIT");
    const char *layers = getenv("VK_INSTANCE_LAYERS");
    bool audited = audit && strstr(audit, "libframealloc_autoframe");
    bool layered = layers && strstr(layers, "VK_LAYER_FRAMEALLOC_autoframe");
    int64_t mode = fa_option(FA_OPT_AUTOFRAME);
    if (mode && !audited && !(mode == 1 && layered))
        fa_log("FRAMEALLOC_AUTOFRAME=%s does nothing without the audit module: "
               "LD_AUDIT=.../libframealloc_autoframe.so (framealloc --autoframe or --tick sets it)",
               mode == 1 ? "1" : "tick");
}

__attribute__((constructor)) static void framealloc_start(void)
{
    fa_init();
    fa_init_late();
    fa_unwind_load_for_profiling();
    check_autoframe();
    fa_records_start();
    fa_learn_start();
    fa_protect_start();
    fa_report_start();
    /* After the records and protect modes loaded libunwind: its allocations (made
     * while capturing a stack inside the program's frame scope, its thread-local
     * block among them, which the loader allocates) are framealloc's own, and what
     * the loader allocates is never frame-temporary. Safe mode keeps whatever libc
     * allocated in a frame scope alive as long as libc uses it (an escape), so only
     * strict mode sends libc's allocations elsewhere; safe mode keeps serving strdup
     * or asprintf in a scope from frames. */
    fa_preload_redirect_system_callers(fa_frame_strict());
}

__attribute__((destructor)) static void framealloc_stop(void)
{
    if (fa_option(FA_OPT_STATS))
        fa_stats_print(2);
    /* The records report's symbolizer (libdw) allocates: not the program's sites. */
    fa_learn_pause();
    fa_report_at_exit();
    fa_learn_finish();
}

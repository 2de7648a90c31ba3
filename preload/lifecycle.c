/* Process start and end for the preloaded library: initialise early (settings,
 * help text), print the counters at exit when FRAMEALLOC_STATS=1. Allocation works
 * before this constructor runs: until then everything goes to the heap. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "log.h"
#include "options.h"
#include "protect.h"
#include "records.h"
#include "report.h"
#include "thread.h"

/* The setting is read by the audit module; alone it would silently do nothing. */
static void check_autoframe(void)
{
    const char *audit = getenv("LD_AUDIT");
    if (fa_option(FA_OPT_AUTOFRAME) && (!audit || !strstr(audit, "libframealloc_autoframe")))
        fa_log("FRAMEALLOC_AUTOFRAME=1 does nothing without the audit module: "
               "LD_AUDIT=.../libframealloc_autoframe.so (framealloc-run --autoframe sets it)");
}

__attribute__((constructor)) static void framealloc_start(void)
{
    fa_init();
    fa_init_late();
    check_autoframe();
    fa_records_start();
    fa_protect_start();
    fa_report_start();
}

__attribute__((destructor)) static void framealloc_stop(void)
{
    if (fa_option(FA_OPT_STATS))
        fa_stats_print(2);
    fa_report_at_exit();
}

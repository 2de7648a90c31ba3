/* Process start and end for the preloaded library: initialise early (settings,
 * help text), print the counters at exit when FRAMEALLOC_STATS=1. Allocation works
 * before this constructor runs: until then everything goes to the heap. */
#include "api.h"
#include "options.h"
#include "protect.h"
#include "records.h"
#include "report.h"
#include "thread.h"

__attribute__((constructor)) static void framealloc_start(void)
{
    fa_init();
    fa_init_late();
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

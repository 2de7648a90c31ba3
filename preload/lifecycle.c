/* The preloaded library's constructor and destructor: the core's start-up and
 * exit (process.c) plus what only the preload does: libunwind's names, the
 * autoframe check and the redirection of libc's and the loader's allocations.
 * Allocation works before this constructor runs: until then everything goes to
 * the heap. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "options.h"
#include "process.h"
#include "system_callers.h"

void fa_unwind_load_for_profiling(void); /* unwind_names.c */

/* The setting is read by the audit module and the Vulkan layer; without either it
 * would silently do nothing. */
static void check_autoframe(void)
{
    int64_t mode = fa_settings.autoframe;
    if (!mode)
        return; /* nothing to check: and the names below are read-only data (see code_footprint.c) */
    const char *audit = getenv("LD_AUDIT");
    const char *layers = getenv("VK_INSTANCE_LAYERS");
    bool audited = audit && strstr(audit, "libframealloc_autoframe");
    bool layered = layers && strstr(layers, "VK_LAYER_FRAMEALLOC_autoframe");
    if (!audited && !(mode == 1 && layered))
        fa_log("FRAMEALLOC_AUTOFRAME=%s does nothing without the audit module: "
               "LD_AUDIT=.../libframealloc_autoframe.so (framealloc --autoframe or --tick sets it)",
               mode == 1 ? "1" : "tick");
}

__attribute__((constructor)) static void framealloc_start(void)
{
    fa_init();
    fa_init_late();
    fa_unwind_load_for_profiling(); /* before the observers capture stacks */
    check_autoframe();
    fa_process_start_observers();
    /* After the records and protect modes loaded libunwind: its allocations (made
     * while capturing a stack inside the program's frame scope, its thread-local
     * block among them, which the loader allocates) are framealloc's own, and what
     * the loader allocates is never frame-temporary. Safe mode keeps whatever libc
     * allocated in a frame scope alive as long as libc uses it (an escape), so only
     * strict mode sends libc's allocations elsewhere; safe mode keeps serving strdup
     * or asprintf in a scope from frames. */
    fa_preload_redirect_system_callers(fa_settings.frame_strict);
}

__attribute__((destructor)) static void framealloc_stop(void) { fa_process_stop(); }

/* The library's DT_FINI, which the loader calls at exit (meson.build: -Wl,-fini).
 * The default, the C runtime's empty _fini, sits after all of the text, where
 * calling it faulted a 64 KiB window of code in (28 KiB resident) in every process;
 * this one sits with the code every process runs. The destructors above run from
 * .fini_array, as before. */
__attribute__((used)) FA_EVERY_PROCESS void fa_library_fini(void) {}

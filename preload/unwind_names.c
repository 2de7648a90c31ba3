/* The two unwinder functions the embedded jemalloc's profiler calls (prof_sys.c),
 * defined here so that libframealloc.so does not link libgcc_s (local through
 * exports.map). Profiling is off unless MALLOC_CONF turns it on; then the
 * library's constructor loads the unwinder (fa_unwind_load_for_profiling) and these
 * forward to it. They never load it themselves: jemalloc calls _Unwind_Backtrace
 * while it initialises, under its init lock, and dlopen would allocate there and
 * deadlock. Until the constructor ran, a backtrace is empty. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <unwind.h>

#include "config.h"

/* jemalloc's own option flag, read directly: a mallctl call at every start would
 * run (and fault in) jemalloc's control code for nothing. */
extern bool je_opt_prof;
void fa_unwind_load_for_profiling(void);

typedef _Unwind_Reason_Code (*backtrace_fn)(_Unwind_Trace_Fn trace, void *arg);
typedef _Unwind_Ptr (*get_ip_fn)(struct _Unwind_Context *context);

static backtrace_fn real_backtrace;
static get_ip_fn real_get_ip;

FA_EVERY_PROCESS void fa_unwind_load_for_profiling(void)
{
    if (!je_opt_prof)
        return;
    void *unwinder = dlopen("libgcc_s.so.1", RTLD_NOW);
    if (!unwinder)
        return;
    __atomic_store_n(&real_get_ip, (get_ip_fn)dlsym(unwinder, "_Unwind_GetIP"), __ATOMIC_RELAXED);
    __atomic_store_n(&real_backtrace, (backtrace_fn)dlsym(unwinder, "_Unwind_Backtrace"), __ATOMIC_RELEASE);
}

_Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn trace, void *arg)
{
    backtrace_fn fn = __atomic_load_n(&real_backtrace, __ATOMIC_ACQUIRE);
    return fn ? fn(trace, arg) : _URC_END_OF_STACK;
}

/* Called only from a trace callback, so after real_backtrace was set. */
_Unwind_Ptr _Unwind_GetIP(struct _Unwind_Context *context)
{
    return __atomic_load_n(&real_get_ip, __ATOMIC_RELAXED)(context);
}

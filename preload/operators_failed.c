/* What operator new does when no memory is left, in C, so that libframealloc.so
 * never links libstdc++ (its pages were most of a small program's extra footprint).
 * The throwing forms run the new_handler loop and throw std::bad_alloc; the nothrow
 * forms run the same loop and return NULL, also when the handler throws.
 *
 * The C++ runtime is the program's own: a program that calls operator new has one
 * loaded, and its std::get_new_handler, std::__throw_bad_alloc and catch functions are
 * found by name here, when an allocation has failed (never on a normal path).
 * Exceptions pass through the C frames of operators.c and this file (built with
 * -fexceptions). Catching one in C needs a frame with a personality routine:
 * fa_cxx_call_catching (operators_catch.S) is that frame, and fa_cxx_catch_personality
 * below catches everything thrown through it, as catch (...) does. */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <unwind.h>

#include "alloc.h"
#include "log.h"

void *fa_cxx_new_failed(size_t size, size_t alignment, int nothrow);

typedef void (*fa_new_handler_t)(void);

/* The C++ runtime's entry points; each is NULL until found. Written once per name
 * (the same value from any thread), so relaxed atomics suffice. */
typedef struct fa_cxx_runtime_s {
    fa_new_handler_t (*get_new_handler)(void);
    void (*throw_bad_alloc)(void);
    void *(*begin_catch)(void *exception);
    void (*end_catch)(void);
    void (*set_ip)(struct _Unwind_Context *context, _Unwind_Ptr ip);
    void (*set_gr)(struct _Unwind_Context *context, int reg, _Unwind_Word value);
} fa_cxx_runtime_t;

static fa_cxx_runtime_t runtime;

/* The first of names that the process defines; *slot keeps it once found. */
static void *find(void **slot, const char *const *names)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_RELAXED);
    for (; !fn && *names; names++)
        fn = dlsym(RTLD_DEFAULT, *names);
    __atomic_store_n(slot, fn, __ATOMIC_RELAXED);
    return fn;
}

#define FIND(field, ...) find((void **)&runtime.field, (const char *const[]){__VA_ARGS__, NULL})

/* libstdc++ and libc++abi both define these in namespace std; libc++ has its own
 * __throw_bad_alloc in std::__1. The unwinder (libgcc_s) is a dependency of either. */
static void find_runtime(void)
{
    FIND(get_new_handler, "_ZSt15get_new_handlerv");
    FIND(throw_bad_alloc, "_ZSt17__throw_bad_allocv", "_ZNSt3__117__throw_bad_allocEv");
    FIND(begin_catch, "__cxa_begin_catch");
    FIND(end_catch, "__cxa_end_catch");
    FIND(set_ip, "_Unwind_SetIP");
    FIND(set_gr, "_Unwind_SetGR");
}

/* operators_catch.S: calls handler; returns NULL when it returned, the exception
 * (the unwinder's _Unwind_Exception) when it threw. */
void *fa_cxx_call_catching(fa_new_handler_t handler);
extern const char fa_cxx_catch_landing[];

/* The personality routine of fa_cxx_call_catching's frame alone: the search phase
 * finds a handler for every exception; the cleanup phase lands on the code after
 * the call with the exception in the return register. A forced unwind (thread
 * cancellation, pthread_exit) is not an exception to catch: it goes on through. */
__attribute__((visibility("hidden"))) _Unwind_Reason_Code
fa_cxx_catch_personality(int version, _Unwind_Action actions, _Unwind_Exception_Class exception_class,
                         struct _Unwind_Exception *exception, struct _Unwind_Context *context)
{
    (void)exception_class;
    if (version != 1 || !runtime.set_ip || !runtime.set_gr)
        return _URC_FATAL_PHASE1_ERROR;
    if (actions & _UA_SEARCH_PHASE)
        return _URC_HANDLER_FOUND;
    if (actions & _UA_FORCE_UNWIND)
        return _URC_CONTINUE_UNWIND;
    runtime.set_gr(context, __builtin_eh_return_data_regno(0), (_Unwind_Word)(uintptr_t)exception);
    runtime.set_ip(context, (_Unwind_Ptr)(uintptr_t)fa_cxx_catch_landing);
    return _URC_INSTALL_CONTEXT;
}

/* Runs the handler; false when it threw (the nothrow forms' catch (...)). */
static int run_handler_catching(fa_new_handler_t handler)
{
    if (!runtime.set_ip || !runtime.set_gr || !runtime.begin_catch || !runtime.end_catch)
        fa_fatal("operator new(nothrow): the C++ runtime's catch functions are missing; cannot run the new_handler");
    void *exception = fa_cxx_call_catching(handler);
    if (!exception)
        return 1;
    runtime.begin_catch(exception);
    runtime.end_catch();
    return 0;
}

/* Called after the fast path and the core's slow path both failed for size bytes. */
void *fa_cxx_new_failed(size_t size, size_t alignment, int nothrow)
{
    for (;;) {
        find_runtime();
        fa_new_handler_t handler = runtime.get_new_handler ? runtime.get_new_handler() : NULL;
        if (!handler) {
            if (nothrow)
                return NULL;
            if (!runtime.throw_bad_alloc)
                fa_fatal("operator new: out of memory, and no C++ runtime in the process to throw std::bad_alloc");
            runtime.throw_bad_alloc();
            __builtin_unreachable();
        }
        if (nothrow) {
            if (!run_handler_catching(handler))
                return NULL;
        } else {
            handler();
        }
        void *p = alignment ? fa_malloc_aligned(alignment, size) : fa_malloc(size);
        if (p)
            return p;
    }
}

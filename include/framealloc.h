/* framealloc.h: mark frames and frame-temporary scopes for libframealloc.
 *
 * The same binary runs with and without the allocator: without it every call here
 * does nothing and costs about one predictable branch. The header finds the library
 * at run time through dlsym, which works in PIE and non-PIE executables alike (a weak
 * undefined symbol would be fixed to 0 at link time in a non-PIE executable).
 * Link with -ldl on glibc older than 2.34.
 *
 *   fa_scope_push(FA_FRAME);          // malloc/new on this thread now bump-allocate
 *   build_draw_list();                // ... in this thread's frame arena
 *   fa_scope_pop();
 *   fa_frame_end();                   // once per frame, on the main loop
 *
 * C:   FA_FRAME_SCOPE { ... }         (pops on every way out of the block; in C,
 *                                     break/continue leave only the scope: see FA_SCOPE)
 * C++: { fa::frame_scope scope; ... } (RAII)
 */
#ifndef FRAMEALLOC_H
#define FRAMEALLOC_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where allocations on this thread go. FA_DEFAULT: size-class pools for small
 * sizes, the heap for the rest. FA_FRAME: this thread's frame arena, recycled at
 * frame end. FA_POOL: the pools. FA_HEAP: the backing heap (jemalloc). */
typedef enum { FA_DEFAULT = 0, FA_FRAME, FA_POOL, FA_HEAP } fa_intent;

typedef struct fa_stats {
    uint64_t frame;          /* frames ended so far */
    uint64_t frame_allocs;   /* allocations served by frame arenas, cumulative */
    uint64_t frame_bytes;    /* bytes served by frame arenas (16-byte granules), cumulative */
    uint64_t frame_escapes;  /* frame allocations still alive when their frame was recycled, cumulative */
    uint64_t frame_chunks;   /* frame arena chunks held now (in use, waiting, escaped, spare) */
    uint64_t region_bytes;   /* frame and pool memory held now (chunks x chunk size) */
    uint64_t region_peak_bytes; /* most frame and pool memory ever held */
    uint64_t heap_bytes;     /* live bytes in the backing heap (jemalloc stats.allocated) */
    uint64_t threads;        /* threads that use frame or pool arenas now */
    uint64_t pool_allocs;    /* allocations served by size-class pools, cumulative */
    uint64_t pool_live_bytes; /* pool blocks allocated and not freed, in bytes (block sizes) */
    uint64_t pool_chunks;    /* pool chunks held now */
} fa_stats;

/* The table libframealloc exports as "fa_api_v1"; the inline functions below call
 * through it. */
typedef struct fa_api {
    uint32_t version; /* 1 */
    uint32_t size;    /* sizeof(fa_api) in the library */
    void (*frame_begin)(void);
    void (*frame_end)(void);
    void (*scope_push)(int intent);
    void (*scope_pop)(void);
    void (*tag_push)(const char *tag);
    void (*tag_pop)(void);
    int (*stats_get)(fa_stats *out, size_t size);
    /* Added after the first release: check size before calling (fa__has). */
    int (*report)(const char *dir);
    void (*budget_set)(const char *tag, uint64_t bytes);
} fa_api;

#ifndef FRAMEALLOC_BUILDING_LIBRARY

/* The library's table, or NULL when it is not loaded. Resolved once per translation unit. */
static inline const fa_api *fa__api(void)
{
    static uintptr_t cached = 1; /* 1: not looked up yet */
    uintptr_t api = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (__builtin_expect(api == 1, 0)) {
        /* (void *)0 is RTLD_DEFAULT on glibc: search the global scope. */
        const fa_api *found = (const fa_api *)dlsym((void *)0, "fa_api_v1");
        api = found && found->version == 1 ? (uintptr_t)found : 0;
        __atomic_store_n(&cached, api, __ATOMIC_RELEASE);
    }
    return (const fa_api *)api;
}

/* 1 when libframealloc is loaded in this process, else 0. */
static inline int fa_active(void) { return fa__api() != 0; }

/* Optional start-of-frame marker (frame timing). */
static inline void fa_frame_begin(void)
{
    const fa_api *api = fa__api();
    if (api)
        api->frame_begin();
}

/* Ends the current frame: advances the global frame number. Frame memory of frame k
 * is recycled when frame k + FRAMEALLOC_FRAMES_IN_FLIGHT begins. */
static inline void fa_frame_end(void)
{
    const fa_api *api = fa__api();
    if (api)
        api->frame_end();
}

/* Allocations on this thread now follow intent, until the matching pop. Scopes nest. */
static inline void fa_scope_push(fa_intent intent)
{
    const fa_api *api = fa__api();
    if (api)
        api->scope_push((int)intent);
}

static inline void fa_scope_pop(void)
{
    const fa_api *api = fa__api();
    if (api)
        api->scope_pop();
}

/* Attributes allocations on this thread to a subsystem until the matching pop.
 * tag must stay valid (a string literal). */
static inline void fa_tag_push(const char *tag)
{
    const fa_api *api = fa__api();
    if (api)
        api->tag_push(tag);
}

static inline void fa_tag_pop(void)
{
    const fa_api *api = fa__api();
    if (api)
        api->tag_pop();
}

/* 0 on success; without the library: -1 and *out zeroed. */
static inline int fa_stats_get(fa_stats *out)
{
    const fa_api *api = fa__api();
    if (api)
        return api->stats_get(out, sizeof *out);
    memset(out, 0, sizeof *out);
    return -1;
}

/* True when the loaded library's table has the member (an older library's is shorter). */
#define fa__has(api, member) ((api)->size >= offsetof(fa_api, member) + sizeof((api)->member) && (api)->member)

/* Writes the allocation-records report (summary.txt, report.json, *.folded) into dir
 * (created if missing), or, when dir is NULL, into a new directory
 * FRAMEALLOC_REPORT/PROGRAM.PID.N (N = 1, 2, ... per process). 0 on success; -1
 * without the library, when records are off (FRAMEALLOC_RECORDS) or when a file
 * cannot be written (a symlink or a file of another owner is never replaced). */
static inline int fa_report(const char *dir)
{
    const fa_api *api = fa__api();
    if (api && fa__has(api, report))
        return api->report(dir);
    return -1;
}

/* Prints one warning (with the allocating stack) the first time the live bytes
 * attributed to tag exceed bytes. Budgets are checked while records are on. */
static inline void fa_budget_set(const char *tag, uint64_t bytes)
{
    const fa_api *api = fa__api();
    if (api && fa__has(api, budget_set))
        api->budget_set(tag, bytes);
}

static inline void fa__scope_cleanup(int *unused)
{
    (void)unused;
    fa_scope_pop();
}

#define FA__CONCAT2(a, b) a##b
#define FA__CONCAT(a, b) FA__CONCAT2(a, b)
#define FA__ONCE FA__CONCAT(fa__scope_once_, __LINE__)

/* FA_SCOPE(FA_POOL) { ... }: the block runs with the intent pushed; it is popped
 * however the block is left (end, break, continue, return, goto).
 *
 * BREAK AND CONTINUE: in C++17 and later FA_SCOPE is an if statement, so break and
 * continue inside its block act on the enclosing loop or switch, as in any block.
 * In C (and C++ before 17) it must be a one-pass for loop: there BREAK AND CONTINUE
 * ONLY LEAVE THE SCOPE, NOT THE ENCLOSING LOOP. In C, write the scope as a
 * declaration instead when the block must break out of a loop:
 *
 *   for (...) {
 *       FA_SCOPE_HERE(FA_FRAME);   // pushed until the end of this block
 *       if (done) break;           // leaves the loop; the intent is popped
 *   }
 */
#if defined(__cplusplus) && __cplusplus >= 201703L
#define FA_SCOPE(intent) if (fa::scope FA__ONCE{intent}; false) {} else
#else
#define FA_SCOPE(intent)                                                                      \
    for (int FA__ONCE __attribute__((cleanup(fa__scope_cleanup))) = (fa_scope_push(intent), 1); \
         FA__ONCE; FA__ONCE = 0)
#endif
#define FA_FRAME_SCOPE FA_SCOPE(FA_FRAME)

/* FA_SCOPE_HERE(intent);: pushes intent until the end of the enclosing block (a
 * declaration, one per line; GCC and Clang). */
#define FA_SCOPE_HERE(intent) \
    int FA__ONCE __attribute__((cleanup(fa__scope_cleanup), unused)) = (fa_scope_push(intent), 1)

#endif /* FRAMEALLOC_BUILDING_LIBRARY */

#ifdef __cplusplus
} /* extern "C" */

#ifndef FRAMEALLOC_BUILDING_LIBRARY
namespace fa {

/* { fa::scope s(FA_POOL); ... }: pushes on construction, pops on destruction. */
class scope {
public:
    explicit scope(fa_intent intent) { fa_scope_push(intent); }
    ~scope() { fa_scope_pop(); }
    scope(const scope &) = delete;
    scope &operator=(const scope &) = delete;
};

class frame_scope : public scope {
public:
    frame_scope() : scope(FA_FRAME) {}
};

class tag_scope {
public:
    explicit tag_scope(const char *tag) { fa_tag_push(tag); }
    ~tag_scope() { fa_tag_pop(); }
    tag_scope(const tag_scope &) = delete;
    tag_scope &operator=(const tag_scope &) = delete;
};

} /* namespace fa */
#endif
#endif /* __cplusplus */

#endif /* FRAMEALLOC_H */

/* The core's entry points and their slow paths: intent routing (which arena serves
 * a request), frees that miss the fast path, sizes, realloc and the aligned family.
 * The fast paths themselves are inline in alloc_fast.h.
 *
 * Routing: FA_DEFAULT sends sizes up to FRAMEALLOC_POOL_MAX to the pools, FA_POOL
 * sends sizes up to the largest class there, FA_FRAME sends sizes up to
 * FRAMEALLOC_FRAME_MAX to the frame arena, and everything else (and anything an
 * arena cannot serve) goes to the heap. */
#include "alloc.h"
#include "alloc_fast.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "heap.h"
#include "learn.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "debug.h"
#include "pool.h"
#include "process.h"
#include "protect.h"
#include "records.h"
#include "region.h"
#include "sampling.h"
#include "thread.h"

#include "framealloc.h"

/* jemalloc's start (heap.h). Under an address-space limit set at run time there
 * may be no room for it until the region gives back its unused tail, or none at
 * all: then the heap stays unstarted and the call fails with ENOMEM. */
static FA_EVERY_PROCESS FA_NOINLINE bool heap_start(void)
{
    if (fa_heap_early_open()) /* the heap maps its first blocks itself (heap.h) */
        return true;
    if (!fa_heap_start_has_room() && (!fa_region_trim() || !fa_heap_start_has_room())) {
        errno = ENOMEM;
        return false;
    }
    fa_heap_start();
    return true;
}

/* A heap call, after jemalloc's start, tried again once when giving back the
 * region's unused tail under an address-space limit set at run time made room. */
#define HEAP_CALL(call)                                                                            \
    ({                                                                                             \
        void *heap_p_ = NULL;                                                                      \
        if (FA_LIKELY(fa_heap_started) || heap_start()) {                                          \
            heap_p_ = (call);                                                                      \
            if (!heap_p_ && fa_region_trim())                                                      \
                heap_p_ = (call);                                                                  \
        }                                                                                          \
        heap_p_;                                                                                   \
    })

/* True when intent sends a request of size and alignment to the pools. */
static bool pool_serves(uint8_t intent, size_t size, size_t alignment)
{
    /* Pool blocks are only 16-aligned: larger alignments use the frame arena or the heap. */
    return alignment <= FA_MIN_ALIGN &&
           ((intent == FA_DEFAULT && size <= fa_settings.pool_max) || (intent == FA_POOL && size <= FA_POOL_LARGEST));
}

/* The heap, for everything an arena does not serve. */
static void *heap_alloc(size_t size, size_t alignment)
{
    return alignment <= FA_MIN_ALIGN ? HEAP_CALL(fa_heap_malloc(size))
                                     : HEAP_CALL(fa_heap_aligned(alignment, size));
}

static size_t frame_alignment(size_t alignment) { return alignment > FA_MIN_ALIGN ? alignment : FA_MIN_ALIGN; }

/* Arenas serve attached threads: a thread's first slow path attaches it; a thread
 * past its exit (or one running the library's initialisation) gets the heap. */
static bool attached(fa_thread_t *t) { return t->state == FA_THREAD_LIVE || fa_thread_attach(t); }

/* The arena the intent names, or NULL. recorded: a block allocation records keep,
 * whose every free is made to reach fa_free_slow, where records see it (pool blocks
 * from the records' own pool chunks, frame blocks flagged in their header).
 * Observing never moves a block to another arena, so every check of that arena
 * still applies. */
static FA_EVERY_PROCESS void *arena_alloc(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment, bool recorded)
{
    void *p = NULL;
    if (pool_serves(intent, size, alignment))
        p = recorded ? fa_pool_alloc_recorded(t, size) : fa_pool_alloc(t, size);
    else if (intent == FA_FRAME && (p = fa_frame_alloc_slow(t, size, frame_alignment(alignment))) && recorded)
        fa_frame_mark_recorded(p);
    return p;
}

/* The normal path for intent (the records flag removed): the arena the intent names,
 * with its slow path, and the heap for everything an arena does not serve. When the
 * region had no chunk for the arena, the thread's cached chunks go back first (an
 * address-space limit counts the region's committed part) and the arena tries again.
 * A frame request the frame arena does not serve (its part used up, or given back
 * under an address-space limit, or above FRAMEALLOC_FRAME_MAX) goes to the pools
 * when they serve its size: they are faster than the heap, and under a limit their
 * freed chunks are memory the heap cannot map again. */
static void *route(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment, bool recorded)
{
    void *p = NULL;
    /* Attached first: the first call initialises the library, and with it the settings
     * pool_serves reads. */
    bool to_arena = attached(t) && (pool_serves(intent, size, alignment) || intent == FA_FRAME);
    if (to_arena && !(p = arena_alloc(t, intent, size, alignment, recorded)) && fa_region_exhausted()) {
        fa_process_release_cached(t);
        p = arena_alloc(t, intent, size, alignment, recorded);
    }
    if (!p && to_arena && intent == FA_FRAME && pool_serves(FA_DEFAULT, size, alignment))
        p = arena_alloc(t, FA_DEFAULT, size, alignment, recorded);
    return p ? p : heap_alloc(size, alignment);
}

/* A block records keep. Records observe: they capture the stack first, the block
 * comes from the recorded route (with room for guard bytes), then records note it. Their
 * own allocations, and any without an unwinder, take the normal path. */
static FA_NOINLINE void *allocate_recorded(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment)
{
    fa_record_draft_t draft;
    if (!fa_records_begin(&draft, size))
        return route(t, intent, size, alignment, false);
    void *p = route(t, intent, draft.block_size, alignment, true);
    fa_records_end(t, &draft, intent, p);
    return p;
}

/* An allocation that used up the thread's sample_left: recorded when sampling is on.
 * In a thread's first slow path (sample_left 0) this also sets sample_left. */
static FA_EVERY_PROCESS FA_NOINLINE void *allocate_due(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment)
{
    void *p = fa_records_mode == FA_RECORDS_SAMPLE ? allocate_recorded(t, intent, size, alignment)
                                                   : route(t, intent, size, alignment, false);
    fa_sampling_rearm(t, size);
    return p;
}

/* A frame block under FRAMEALLOC_DEBUG=protect, recorded too under full records
 * (guards, poison); protect then notes its allocating stack. */
static FA_NOINLINE void *allocate_protected(fa_thread_t *t, size_t size, size_t alignment)
{
    void *p = fa_records_mode == FA_RECORDS_FULL ? allocate_recorded(t, FA_FRAME, size, alignment)
                                                 : route(t, FA_FRAME, size, alignment, false);
    fa_protect_note_block(p);
    return p;
}

/* Every allocation that is not a fast-path hit. counted: its size was already taken
 * off sample_left (the fast path does that before it tries an arena). */
static void *allocate(fa_thread_t *t, size_t size, size_t alignment, bool counted)
{
    uint8_t intent = fa_thread_intent(t);
    if (intent == FA_INTENT_LEARN)
        intent = FA_DEFAULT; /* learned routing happens in fa_malloc_learn_slow only */
    if (FA_UNLIKELY(fa_records_diverting)) {
        if (intent == FA_FRAME && (fa_settings.debug & FA_DEBUG_PROTECT))
            return allocate_protected(t, size, alignment);
        if (fa_records_mode == FA_RECORDS_FULL)
            return allocate_recorded(t, intent, size, alignment);
    }
    if (!counted) {
        if (FA_UNLIKELY(size >= t->sample_left))
            return allocate_due(t, intent, size, alignment);
        t->sample_left -= size;
    }
    return route(t, intent, size, alignment, false);
}

FA_EVERY_PROCESS FA_NOINLINE void *fa_malloc_slow(fa_thread_t *t, size_t size, int counted)
{
    if (!counted)
        t->sample_left += size; /* undoes the fast path's borrow */
    if (fa_thread_intent(t) != FA_FRAME)
        fa_frame_idle_sync(t);
    return allocate(t, size, FA_MIN_ALIGN, counted);
}

/* Observed allocations go to the heap, whose frees reach fa_free_slow, where their
 * age is taken; routed sites get the frame arena (then the normal routing). */
FA_NOINLINE void *fa_malloc_learn_slow(fa_thread_t *t, size_t size, uintptr_t site)
{
    void *p;
    switch (fa_learn_decide(t, site, size)) {
    case FA_LEARN_USE_OBSERVE:
        if ((p = HEAP_CALL(fa_heap_malloc(size))))
            fa_learn_observe(p, site, size);
        return p;
    case FA_LEARN_USE_FRAME:
        if ((p = fa_frame_alloc_slow(t, size, FA_MIN_ALIGN)))
            return p;
        break;
    case FA_LEARN_USE_DEFAULT:
        break;
    }
    return allocate(t, size, FA_MIN_ALIGN, true);
}

FA_EVERY_PROCESS void *fa_malloc(size_t size) { return fa_malloc_fast(size); }

FA_EVERY_PROCESS void *fa_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    fa_thread_t *t = fa_thread();
    uint8_t intent = fa_thread_intent(t);
    if (!fa_records_mode && total < t->sample_left &&
        (intent == FA_DEFAULT ? total > fa_settings.pool_max : intent == FA_HEAP)) {
        t->sample_left -= total;
        return HEAP_CALL(fa_heap_calloc(count, size)); /* jemalloc knows which pages are already zero */
    }
    /* Arena memory is reused without being cleared. */
    void *p = allocate(t, total, FA_MIN_ALIGN, false);
    return p ? memset(p, 0, total) : NULL;
}

/* Alignments above this are checked against the machine's memory first. */
#define FA_HUGE_ALIGNMENT ((size_t)1 << 30)

/* Any power-of-two alignment. */
FA_EVERY_PROCESS void *fa_malloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= FA_MIN_ALIGN)
        return fa_malloc(size);
    /* glibc maps alignment + size bytes and fails where the kernel will not give
     * that much; the heap would reserve it and keep the address space. */
    if (alignment > FA_HUGE_ALIGNMENT && (size > SIZE_MAX - alignment || alignment + size > fa_os_memory_bytes())) {
        errno = ENOMEM;
        return NULL;
    }
    return allocate(fa_thread(), size, alignment, false);
}

FA_COLD static void report_foreign_pointer(const char *what, const void *p)
{
    fa_fatal_misuse(p, "%s(%p): pointer was not returned by malloc (it lies in framealloc's region but in no arena)",
                    what, p);
}

/* Everything free's fast path does not handle: other generations and threads,
 * full caches, misuse, the heap. */
FA_EVERY_PROCESS FA_NOINLINE void fa_free_slow(void *p)
{
    fa_place_t place = fa_region_place(p);
    if (place == FA_PLACE_FRAME) {
        if (FA_UNLIKELY(fa_records_mode) && fa_frame_is_recorded(p))
            fa_records_forget(p);
        fa_frame_free_slow(fa_thread(), p);
        return;
    }
    if (place == FA_PLACE_POOL) {
        fa_chunk_head_t *c = fa_chunk_of(p);
        if (c->kind != FA_CHUNK_POOL)
            report_foreign_pointer("free", p);
        if (FA_UNLIKELY(c->owner == FA_OWNER_RECORDS))
            fa_records_forget(p);
        fa_thread_t *t = fa_thread();
        attached(t); /* a thread that only frees is attached here, so that its counts are summed */
        fa_pool_free(t, (fa_pool_chunk_t *)c, p);
        return;
    }
    if (!p)
        return;
    if (FA_UNLIKELY(fa_records_mode))
        fa_records_forget(p);
    if (FA_UNLIKELY(fa_settings.learn))
        fa_learn_forget(p);
    fa_heap_free(p);
}

FA_EVERY_PROCESS void fa_free(void *p) { fa_free_fast(p); }

/* A pool block of the region's pool part, checked; aborts on a foreign pointer. */
static fa_pool_chunk_t *pool_chunk_checked(void *p, const char *what)
{
    fa_chunk_head_t *c = fa_chunk_of(p);
    if (c->kind != FA_CHUNK_POOL)
        report_foreign_pointer(what, p);
    fa_pool_check_pointer((fa_pool_chunk_t *)c, p, what);
    return (fa_pool_chunk_t *)c;
}

/* The usable bytes of p, checked (misuse is reported as operation what). */
static size_t usable_size(void *p, const char *what)
{
    size_t requested;
    if (FA_UNLIKELY(fa_records_mode) && (fa_settings.debug & FA_DEBUG_GUARDS) &&
        fa_records_requested_size(p, &requested))
        return requested; /* the guard bytes are not the program's */
    if (fa_region_is_frame(p))
        return fa_frame_usable_size(p, what);
    if (fa_region_owns(p))
        return fa_pool_usable_size(pool_chunk_checked(p, what));
    return fa_heap_usable_size(p, what);
}

size_t fa_malloc_usable_size(void *p) { return p ? usable_size(p, "malloc_usable_size") : 0; }

/* Moves p (old usable bytes) to a new block of size bytes, through the normal
 * routing, so records see the new block as an allocation and the old as a free. */
static void *realloc_moving(void *p, size_t old, size_t size)
{
    void *q = fa_malloc(size);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    fa_free(p);
    return q;
}

/* A block records keep (FRAMEALLOC_RECORDS, guards, poison): flagged in a frame
 * block's header, a pool block by its chunk; a heap block is looked up when freed. */
static bool is_recorded(void *p)
{
    if (fa_region_is_frame(p))
        return fa_frame_is_recorded(p);
    if (fa_region_owns(p))
        return fa_chunk_of(p)->owner == FA_OWNER_RECORDS;
    return true;
}

/* realloc of a block in the region: in place when the arena allows, else move. */
static void *realloc_owned(void *p, size_t size)
{
    size_t old;
    if (fa_region_is_frame(p)) {
        if (fa_frame_resize_in_place(fa_thread(), p, size))
            return p;
        old = fa_frame_usable_size(p, "realloc");
    } else {
        old = fa_pool_usable_size(pool_chunk_checked(p, "realloc"));
        /* Keep the block unless it would waste more than half of it. */
        if (size <= old && size > old / 2)
            return p;
    }
    return realloc_moving(p, old, size);
}

FA_EVERY_PROCESS void *fa_realloc(void *p, size_t size)
{
    if (!p)
        return fa_malloc(size);
    if (size == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        fa_free(p);
        return NULL;
    }
    /* Records see a resize of a recorded block as a new block and a free (never in
     * place: its guard bytes and its record would go stale). */
    if (FA_UNLIKELY(fa_records_mode) && is_recorded(p))
        return realloc_moving(p, usable_size(p, "realloc"), size);
    if (fa_region_owns(p))
        return realloc_owned(p, size);
    void *q = HEAP_CALL(fa_heap_realloc(p, size));
    if (FA_UNLIKELY(fa_settings.learn) && q)
        fa_learn_moved(p, q);
    return q;
}

FA_EVERY_PROCESS void *fa_reallocarray(void *p, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return fa_realloc(p, total);
}

static int is_power_of_two(size_t x) { return x && !(x & (x - 1)); }

FA_EVERY_PROCESS int fa_posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = fa_malloc_aligned(alignment, size);
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

/* glibc 2.36's aligned_alloc is its memalign (the C17 EINVAL for an alignment that
 * is not a power of two came in 2.38). */
FA_EVERY_PROCESS void *fa_aligned_alloc(size_t alignment, size_t size) { return fa_memalign(alignment, size); }

/* glibc's memalign: an alignment that is not a power of two is rounded up to one. */
FA_EVERY_PROCESS void *fa_memalign(size_t alignment, size_t size)
{
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_power_of_two(alignment))
        alignment = alignment ? (size_t)1 << (64 - __builtin_clzl(alignment)) : 1;
    return fa_malloc_aligned(alignment, size);
}

void *fa_valloc(size_t size) { return fa_malloc_aligned(fa_os_page_size(), size); }

void *fa_pvalloc(size_t size)
{
    size_t page = fa_os_page_size();
    size_t rounded = size ? (size + page - 1) & ~(page - 1) : page;
    if (rounded < size) {
        errno = ENOMEM;
        return NULL;
    }
    return fa_malloc_aligned(page, rounded);
}

/* ---- allocations libc and the loader make for themselves ---- */

/* The thread's frame intent becomes FA_DEFAULT until the matching frames_back (the
 * records flag is kept: only the intent bits change). Returns what to undo. */
static uint8_t frames_aside(fa_thread_t *t)
{
    uint8_t swap = fa_thread_intent(t) == FA_FRAME ? (FA_FRAME ^ FA_DEFAULT) : 0;
    t->intent ^= swap;
    return swap;
}

static void frames_back(fa_thread_t *t, uint8_t swap) { t->intent ^= swap; }

void *fa_malloc_for_system(size_t size)
{
    fa_thread_t *t = fa_thread();
    uint8_t swap = frames_aside(t);
    void *p = fa_malloc(size);
    frames_back(t, swap);
    return p;
}

void *fa_calloc_for_system(size_t count, size_t size)
{
    fa_thread_t *t = fa_thread();
    uint8_t swap = frames_aside(t);
    void *p = fa_calloc(count, size);
    frames_back(t, swap);
    return p;
}

void *fa_realloc_for_system(void *p, size_t size)
{
    fa_thread_t *t = fa_thread();
    uint8_t swap = frames_aside(t);
    void *q = fa_realloc(p, size);
    frames_back(t, swap);
    return q;
}

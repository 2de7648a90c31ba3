/* Entry points and intent routing. The fast paths are inlined here: one TLS load
 * of the intent, one compare, then a pool pop or a frame bump; everything rare is in
 * a slow path. Ownership on free is one range compare (region.h); the chunk header
 * says which arena made the block.
 *
 * Routing: FA_DEFAULT sends sizes up to FRAMEALLOC_POOL_MAX to the pools, FA_POOL
 * sends sizes up to the largest class there, FA_FRAME sends sizes up to
 * FRAMEALLOC_FRAME_MAX to the frame arena, and everything else (and anything an
 * arena cannot serve) goes to the heap. */
#include "alloc.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "heap.h"
#include "log.h"
#include "os.h"
#include "debug.h"
#include "pool.h"
#include "protect.h"
#include "records.h"
#include "region.h"
#include "thread.h"

#include "framealloc.h"

/* The normal path for intent (the records flag removed): the arena the intent names,
 * with its slow path, and the heap for everything an arena does not serve. */
static void *route(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment)
{
    void *p = NULL;
    if (alignment <= FA_MIN_ALIGN) {
        if (intent == FA_DEFAULT) {
            if (size <= fa_pool_max)
                p = fa_pool_alloc(t, size);
        } else if (intent == FA_FRAME) {
            p = fa_frame_alloc(t, size);
        } else if (intent == FA_POOL && size <= FA_POOL_LARGEST) {
            p = fa_pool_alloc(t, size);
        }
        return p ? p : fa_heap_malloc(size);
    }
    /* Pool blocks are only 16-aligned: larger alignments use the frame arena or the heap. */
    if (intent == FA_FRAME && (p = fa_frame_alloc_slow(t, size, alignment)))
        return p;
    return fa_heap_aligned(alignment, size);
}

/* An allocation that used up the thread's sample_left: recorded when sampling is on.
 * In a thread's first slow path (sample_left 0) this also sets sample_left. */
static FA_NOINLINE void *allocate_due(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment)
{
    void *p = fa_records_mode == FA_RECORDS_SAMPLE ? fa_records_alloc(t, intent, size, alignment, route)
                                                   : route(t, intent, size, alignment);
    fa_records_rearm(t, size);
    return p;
}

/* Every allocation that is not a fast-path hit. counted: its size was already taken
 * off sample_left (the fast path does that before it tries an arena). */
static void *allocate(fa_thread_t *t, size_t size, size_t alignment, bool counted)
{
    uint8_t intent = fa_thread_intent(t);
    if (FA_UNLIKELY(fa_records_diverting)) {
        if (intent == FA_FRAME && (fa_debug_flags & FA_DEBUG_PROTECT))
            return fa_protect_alloc(t, size, alignment, route);
        if (fa_records_mode == FA_RECORDS_FULL)
            return fa_records_alloc(t, intent, size, alignment, route);
    }
    if (!counted) {
        if (FA_UNLIKELY(size >= t->sample_left))
            return allocate_due(t, intent, size, alignment);
        t->sample_left -= size;
    }
    return route(t, intent, size, alignment);
}

static FA_NOINLINE void *malloc_slow(fa_thread_t *t, size_t size, bool counted)
{
    return allocate(t, size, FA_MIN_ALIGN, counted);
}

/* Only the commonest cases inline, with no calls, so this needs no stack frame: the
 * sampling countdown, then a pool pop under FA_DEFAULT or a frame bump under FA_FRAME. */
void *fa_malloc(size_t size)
{
    fa_thread_t *t = fa_thread();
    void *p;
    if (FA_UNLIKELY(size >= t->sample_left))
        return malloc_slow(t, size, false);
    t->sample_left -= size;
    if (FA_LIKELY(t->intent == FA_DEFAULT)) {
        if (FA_LIKELY(size <= fa_pool_max) && (p = fa_pool_try_alloc(t, size)))
            return p;
    } else if (t->intent == FA_FRAME && (p = fa_frame_try_alloc(t, size))) {
        return p;
    }
    return malloc_slow(t, size, true);
}

void *fa_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    fa_thread_t *t = fa_thread();
    uint8_t intent = fa_thread_intent(t);
    if (!fa_records_mode && total < t->sample_left && (intent == FA_DEFAULT ? total > fa_pool_max : intent == FA_HEAP)) {
        t->sample_left -= total;
        return fa_heap_calloc(count, size); /* jemalloc knows which pages are already zero */
    }
    /* Arena memory is reused without being cleared. */
    void *p = allocate(t, total, FA_MIN_ALIGN, false);
    return p ? memset(p, 0, total) : NULL;
}

/* Any power-of-two alignment. */
void *fa_malloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= FA_MIN_ALIGN)
        return fa_malloc(size);
    return allocate(fa_thread(), size, alignment, false);
}

FA_COLD static void report_foreign_pointer(const char *what, const void *p)
{
    fa_fatal("%s(%p): pointer was not returned by malloc (it lies in framealloc's region but in no arena)", what, p);
}

/* Everything free's fast path does not handle: other threads' blocks, emptied
 * chunks, misuse, the heap. */
static FA_NOINLINE void free_slow(void *p)
{
    if (fa_region_owns(p)) {
        fa_chunk_head_t *c = fa_chunk_of(p);
        if (c->kind == FA_CHUNK_POOL)
            fa_pool_free(fa_thread(), (fa_pool_chunk_t *)c, p);
        else if (c->kind == FA_CHUNK_FRAME)
            fa_frame_free(fa_thread(), (fa_frame_chunk_t *)c, p);
        else
            report_foreign_pointer("free", p);
        return;
    }
    if (!p)
        return;
    if (FA_UNLIKELY(fa_records_mode))
        fa_records_forget(p);
    fa_heap_free(p);
}

/* Inline only the owner's own frees into a pool or frame chunk, with no calls. */
void fa_free(void *p)
{
    if (FA_LIKELY(fa_region_owns(p))) {
        fa_chunk_head_t *c = fa_chunk_of(p);
        fa_thread_t *t = fa_thread();
        if (FA_LIKELY(c->kind == FA_CHUNK_POOL)) {
            if (FA_LIKELY(fa_pool_try_free(t, (fa_pool_chunk_t *)c, p)))
                return;
        } else if (c->kind == FA_CHUNK_FRAME) {
            int result = fa_frame_try_free(t, (fa_frame_chunk_t *)c, p);
            if (FA_LIKELY(result == FA_FRAME_FREE_DONE))
                return;
            if (result == FA_FRAME_FREE_LAST_IN_WORD) {
                fa_frame_free_last_in_word(t, (fa_frame_chunk_t *)c, p);
                return;
            }
        }
    }
    free_slow(p);
}

size_t fa_malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (fa_region_owns(p)) {
        fa_chunk_head_t *c = fa_chunk_of(p);
        if (c->kind == FA_CHUNK_POOL) {
            fa_pool_check_pointer((fa_pool_chunk_t *)c, p, "malloc_usable_size");
            return fa_pool_usable_size((fa_pool_chunk_t *)c);
        }
        if (c->kind == FA_CHUNK_FRAME)
            return fa_frame_usable_size((fa_frame_chunk_t *)c, p);
        report_foreign_pointer("malloc_usable_size", p);
    }
    size_t requested;
    if (FA_UNLIKELY(fa_records_mode) && (fa_debug_flags & FA_DEBUG_GUARDS) && fa_records_requested_size(p, &requested))
        return requested; /* the guard bytes are not the program's */
    return fa_heap_usable_size(p);
}

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

/* realloc of a block in the region: in place when the arena allows, else move. */
static void *realloc_owned(void *p, size_t size)
{
    fa_chunk_head_t *c = fa_chunk_of(p);
    size_t old;
    if (c->kind == FA_CHUNK_POOL) {
        fa_pool_chunk_t *pc = (fa_pool_chunk_t *)c;
        fa_pool_check_pointer(pc, p, "realloc");
        old = fa_pool_usable_size(pc);
        /* Keep the block unless it would waste more than half of it. */
        if (size <= old && size > old / 2)
            return p;
    } else if (c->kind == FA_CHUNK_FRAME) {
        fa_frame_chunk_t *fc = (fa_frame_chunk_t *)c;
        if (fa_frame_resize_in_place(fa_thread(), fc, p, size))
            return p;
        old = fa_frame_usable_size(fc, p);
    } else {
        report_foreign_pointer("realloc", p);
    }
    return realloc_moving(p, old, size);
}

void *fa_realloc(void *p, size_t size)
{
    if (!p)
        return fa_malloc(size);
    if (size == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        fa_free(p);
        return NULL;
    }
    if (fa_region_owns(p))
        return realloc_owned(p, size);
    if (FA_UNLIKELY(fa_records_mode))
        return realloc_moving(p, fa_malloc_usable_size(p), size);
    return fa_heap_realloc(p, size);
}

void *fa_reallocarray(void *p, size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return fa_realloc(p, total);
}

static int is_power_of_two(size_t x) { return x && !(x & (x - 1)); }

int fa_posix_memalign(void **out, size_t alignment, size_t size)
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

void *fa_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return fa_malloc_aligned(alignment, size);
}

/* glibc's memalign: an alignment that is not a power of two is rounded up to one. */
void *fa_memalign(size_t alignment, size_t size)
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

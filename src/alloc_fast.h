/* The malloc and free fast paths, inlined into every exported name (malloc, free,
 * operator new and delete) so that no call stands between the PLT and the memory.
 * Each ends in one no-inline slow path per direction (alloc.c), which handles
 * everything rare: a thread's first call, sampling, records, debug modes, arena
 * misses, other threads' blocks, misuse and the heap.
 *
 * malloc: the sampling countdown, then a pool pop under FA_DEFAULT or a frame bump
 * under FA_FRAME (the records flag in the intent byte fails both compares), and
 * after those two the learned routing under FA_INTENT_LEARN (learn.h).
 * free: the pointer's offset in the region says frame part, pool part or heap.
 * Safe mode checks a frame free after one compare; strict mode returns after two. */
#ifndef FA_ALLOC_FAST_H
#define FA_ALLOC_FAST_H

#include <stddef.h>

#include "frame.h"
#include "learn.h"
#include "pool.h"
#include "region.h"
#include "thread.h"

#include "framealloc.h"

/* counted: size was already taken off sample_left; otherwise taking it off
 * borrowed (the sample is due) and the slow path gives it back first. */
void *fa_malloc_slow(fa_thread_t *t, size_t size, int counted);
void fa_free_slow(void *p);
/* Under FA_INTENT_LEARN (FRAMEALLOC_LEARN): everything its fast path does not serve. */
void *fa_malloc_learn_slow(fa_thread_t *t, size_t size, uintptr_t site);

/* Takes size off the thread's sampling countdown; true when that borrowed (a
 * sample is due). One read-modify-write subtract and one branch: compilers turn
 * the C form into load, subtract, store and branch. The operand is an input with
 * a memory clobber: GCC 12 mislaid the borrow branch of the "+m" output form. */
FA_INLINE bool fa_sample_countdown(fa_thread_t *t, size_t size)
{
    __asm__ goto("subq %1, %0\n\tjb %l[borrowed]" : : "m"(t->sample_left), "r"(size) : "cc", "memory" : borrowed);
    return false;
borrowed:
    return true;
}

/* What the fast path tail-calls when it misses: the core's slow paths for malloc;
 * operator new passes its own, which add the new_handler loop, so that no value has
 * to stay live across a call in the fast path. */
typedef void *(*fa_alloc_miss_fn)(fa_thread_t *t, size_t size, int counted);
typedef void *(*fa_learn_miss_fn)(fa_thread_t *t, size_t size, uintptr_t site);

FA_INLINE void *fa_alloc_fast(size_t size, fa_alloc_miss_fn miss, fa_learn_miss_fn learn_miss)
{
    fa_thread_t *t = fa_thread();
    void *p;
    /* sample_left never exceeds FA_SAMPLE_NEVER, so below this line size < 2^62 and
     * no size arithmetic can overflow. */
    if (FA_UNLIKELY(fa_sample_countdown(t, size)))
        return miss(t, size, 0);
    if (t->intent == FA_FRAME) {
        if (FA_LIKELY((p = fa_frame_try_alloc(t, size)) != NULL))
            return p;
    } else if (FA_LIKELY(t->intent == FA_DEFAULT)) {
        if (FA_LIKELY((p = fa_pool_try_alloc(t, size)) != NULL)) /* sizes above the limit find an empty bin */
            return p;
    } else if (t->intent == FA_INTENT_LEARN) {
        /* Only with learning on; inlined into malloc and operator new, so this is
         * the program's call site. */
        uintptr_t site = (uintptr_t)__builtin_return_address(0);
        if (FA_LIKELY((p = fa_learn_try_alloc(t, size, site)) != NULL))
            return p;
        return learn_miss(t, size, site);
    }
    return miss(t, size, 1);
}

FA_INLINE void *fa_malloc_fast(size_t size) { return fa_alloc_fast(size, fa_malloc_slow, fa_malloc_learn_slow); }

FA_INLINE void fa_free_fast(void *p)
{
    size_t off = fa_region_offset(p);
    if (off < fa_region.frame_checked) {
        if (FA_LIKELY(fa_frame_try_free(fa_thread(), p)))
            return;
    } else if (off < fa_region.frame_size) {
        return; /* strict mode: frame memory goes back when its frame is recycled */
    } else if (FA_LIKELY(off < fa_region.size)) {
        if (FA_LIKELY(fa_pool_try_free(fa_thread(), (fa_pool_chunk_t *)fa_chunk_of(p), p)))
            return;
    }
    fa_free_slow(p);
}

#endif

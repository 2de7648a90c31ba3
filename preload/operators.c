/* The twenty C++ operator new/delete forms, under their mangled names, written in C
 * so that the inline fast paths sit right behind the PLT, as in malloc and free.
 * A throwing new that gets no memory tail-calls fa_cxx_new_failed (operators_failed.c),
 * which runs the new_handler loop and throws std::bad_alloc; the nothrow forms
 * return NULL after the same loop. Sized deletes ignore the size: every block
 * knows its own. */
#include <stddef.h>

#include "alloc.h"
#include "alloc_fast.h"

void *fa_cxx_new_failed(size_t size, size_t alignment, int nothrow);

/* The fast path's misses for new and for new(nothrow): the core's slow path, then
 * the new_handler loop when it found no memory. */
#define NEW_MISSES(prefix, nothrow)                                                                   \
    static FA_NOINLINE FA_EVERY_PROCESS void *prefix##_miss(fa_thread_t *t, size_t size, int counted) \
    {                                                                                                 \
        void *p = fa_malloc_slow(t, size, counted);                                                   \
        return FA_LIKELY(p != NULL) ? p : fa_cxx_new_failed(size, 0, nothrow);                        \
    }                                                                                                 \
    static FA_NOINLINE void *prefix##_learn_miss(fa_thread_t *t, size_t size, uintptr_t site)         \
    {                                                                                                 \
        void *p = fa_malloc_learn_slow(t, size, site);                                                \
        return FA_LIKELY(p != NULL) ? p : fa_cxx_new_failed(size, 0, nothrow);                        \
    }
NEW_MISSES(new, 0)
NEW_MISSES(new_nothrow, 1)

#define NEW(name, nothrow)                                                                   \
    FA_EXPORT void *name(size_t size)                                                        \
    {                                                                                        \
        return nothrow ? fa_alloc_fast(size, new_nothrow_miss, new_nothrow_learn_miss)       \
                       : fa_alloc_fast(size, new_miss, new_learn_miss);                      \
    }
#define NEW_NOTHROW(name)                                                                    \
    FA_EXPORT void *name(size_t size, const void *tag)                                       \
    {                                                                                        \
        (void)tag;                                                                           \
        return fa_alloc_fast(size, new_nothrow_miss, new_nothrow_learn_miss);                \
    }
#define NEW_ALIGNED(name, nothrow)                                                           \
    FA_EXPORT void *name(size_t size, size_t alignment)                                      \
    {                                                                                        \
        void *p = fa_malloc_aligned(alignment, size);                                        \
        return FA_LIKELY(p != NULL) ? p : fa_cxx_new_failed(size, alignment, nothrow);       \
    }
#define NEW_ALIGNED_NOTHROW(name)                                                            \
    FA_EXPORT void *name(size_t size, size_t alignment, const void *tag)                     \
    {                                                                                        \
        (void)tag;                                                                           \
        void *p = fa_malloc_aligned(alignment, size);                                        \
        return FA_LIKELY(p != NULL) ? p : fa_cxx_new_failed(size, alignment, 1);             \
    }

NEW(_Znwm, 0)                                  /* new(size_t) */
NEW(_Znam, 0)                                  /* new[](size_t) */
NEW_NOTHROW(_ZnwmRKSt9nothrow_t)               /* new(size_t, nothrow_t) */
NEW_NOTHROW(_ZnamRKSt9nothrow_t)
NEW_ALIGNED(_ZnwmSt11align_val_t, 0)           /* new(size_t, align_val_t) */
NEW_ALIGNED(_ZnamSt11align_val_t, 0)
NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t)
NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t)

/* delete(void *) and the forms with a size, an alignment or nothrow_t after it:
 * every extra argument is ignored, so one definition serves each. */
#define UNUSED __attribute__((unused))
#define DELETE(name, ...)                                                                    \
    FA_EXPORT void name(void *p, __VA_ARGS__) { fa_free_fast(p); }

FA_EXPORT void _ZdlPv(void *p) { fa_free_fast(p); }
FA_EXPORT void _ZdaPv(void *p) { fa_free_fast(p); }
DELETE(_ZdlPvRKSt9nothrow_t, UNUSED const void *tag)
DELETE(_ZdaPvRKSt9nothrow_t, UNUSED const void *tag)
DELETE(_ZdlPvm, UNUSED size_t size)
DELETE(_ZdaPvm, UNUSED size_t size)
DELETE(_ZdlPvSt11align_val_t, UNUSED size_t alignment)
DELETE(_ZdaPvSt11align_val_t, UNUSED size_t alignment)
DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, UNUSED size_t alignment, UNUSED const void *tag)
DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, UNUSED size_t alignment, UNUSED const void *tag)
DELETE(_ZdlPvmSt11align_val_t, UNUSED size_t size, UNUSED size_t alignment)
DELETE(_ZdaPvmSt11align_val_t, UNUSED size_t size, UNUSED size_t alignment)

/* Directly mapped heap blocks (heap_direct.h). */
#include "heap_direct.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "jemalloc.h"
#include "os.h"

/* Few at once: a program does not keep many blocks aligned to 64 MiB or more, and
 * makes at most FA_HEAP_EARLY_BLOCKS before jemalloc starts (heap.h). A slot
 * is taken and given up with a compare-and-swap (no lock, so fork needs nothing);
 * when all are taken, jemalloc serves the block as before. */
#define DIRECT_MAX 64

_Atomic size_t fa_heap_direct_count;
_Atomic size_t fa_heap_direct_bytes;
_Atomic size_t fa_heap_direct_unmapped;
_Atomic size_t fa_heap_own_count;
static struct {
    _Atomic(void *) p;
    size_t size; /* written by the thread that took the slot, before it returns p */
} direct[DIRECT_MAX];

_Atomic uintptr_t fa_heap_direct_lowest = UINTPTR_MAX, fa_heap_direct_highest;

static void widen_bounds(uintptr_t start, uintptr_t end)
{
    uintptr_t seen = fa_heap_direct_lowest;
    while (start < seen && !atomic_compare_exchange_weak(&fa_heap_direct_lowest, &seen, start)) {
    }
    seen = fa_heap_direct_highest;
    while (end > seen && !atomic_compare_exchange_weak(&fa_heap_direct_highest, &seen, end)) {
    }
}

void *fa_heap_direct_map(size_t alignment, size_t size, bool *table_full)
{
    *table_full = false;
    size_t page = fa_os_page_size();
    size_t mapped = size ? (size + page - 1) & ~(page - 1) : page;
    void *p = mapped >= size ? fa_os_reserve(mapped, alignment < page ? page : alignment) : NULL;
    if (p && !fa_os_commit(p, mapped)) {
        fa_os_unreserve(p, mapped);
        p = NULL;
    }
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 0; i < DIRECT_MAX; i++) {
        void *none = NULL;
        if (__atomic_compare_exchange_n(&direct[i].p, &none, p, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            direct[i].size = mapped;
            widen_bounds((uintptr_t)p, (uintptr_t)p + mapped);
            fa_heap_direct_bytes += mapped;
            fa_heap_direct_count++;
            fa_heap_own_count += FA_HEAP_OWN_DIRECT;
            return p;
        }
    }
    fa_os_unreserve(p, mapped);
    *table_full = true;
    return NULL;
}

void *fa_heap_direct_alloc(size_t alignment, size_t size)
{
    bool table_full;
    void *p = fa_heap_direct_map(alignment, size, &table_full);
    if (!table_full)
        return p;
    return fa_je_mallocx(size ? size : 1, FA_JE_ALIGN(alignment));
}

FA_EVERY_PROCESS size_t fa_heap_direct_size(const void *p)
{
    if (!fa_heap_direct_may_own(p))
        return 0;
    for (int i = 0; i < DIRECT_MAX; i++)
        if (__atomic_load_n(&direct[i].p, __ATOMIC_ACQUIRE) == p)
            return direct[i].size;
    return 0;
}

FA_EVERY_PROCESS bool fa_heap_direct_free(void *p)
{
    if (!fa_heap_direct_may_own(p))
        return false;
    for (int i = 0; i < DIRECT_MAX; i++) {
        void *expected = p;
        if (__atomic_load_n(&direct[i].p, __ATOMIC_ACQUIRE) != p)
            continue;
        size_t size = direct[i].size;
        if (__atomic_compare_exchange_n(&direct[i].p, &expected, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            fa_heap_direct_count--;
            fa_heap_direct_bytes -= size;
            fa_heap_direct_unmapped += size;
            fa_heap_own_count -= FA_HEAP_OWN_DIRECT;
            fa_os_unreserve(p, size);
            return true;
        }
    }
    return false;
}

/* Directly mapped heap blocks (heap_direct.h). */
#include "heap_direct.h"

#include <errno.h>

#include "jemalloc.h"
#include "os.h"

/* Few at once: a program does not keep many blocks aligned to 64 MiB or more. A slot
 * is taken and given up with a compare-and-swap (no lock, so fork needs nothing);
 * when all are taken, jemalloc serves the block as before. */
#define DIRECT_MAX 64

_Atomic size_t fa_heap_direct_count;
_Atomic size_t fa_heap_own_count;
static struct {
    _Atomic(void *) p;
    size_t size; /* written by the thread that took the slot, before it returns p */
} direct[DIRECT_MAX];

void *fa_heap_direct_alloc(size_t alignment, size_t size)
{
    size_t page = fa_os_page_size();
    size_t mapped = size ? (size + page - 1) & ~(page - 1) : page;
    void *p = mapped >= size ? fa_os_reserve(mapped, alignment) : NULL;
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
            fa_heap_direct_count++;
            fa_heap_own_count++;
            return p;
        }
    }
    fa_os_unreserve(p, mapped); /* table full */
    return fa_je_mallocx(size ? size : 1, FA_JE_ALIGN(alignment));
}

size_t fa_heap_direct_size(const void *p)
{
    for (int i = 0; i < DIRECT_MAX; i++)
        if (__atomic_load_n(&direct[i].p, __ATOMIC_ACQUIRE) == p)
            return direct[i].size;
    return 0;
}

bool fa_heap_direct_free(void *p)
{
    for (int i = 0; i < DIRECT_MAX; i++) {
        void *expected = p;
        if (__atomic_load_n(&direct[i].p, __ATOMIC_ACQUIRE) != p)
            continue;
        size_t size = direct[i].size;
        if (__atomic_compare_exchange_n(&direct[i].p, &expected, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            fa_heap_direct_count--;
            fa_heap_own_count--;
            fa_os_unreserve(p, size);
            return true;
        }
    }
    return false;
}

/* The record of live heap blocks (heap_blocks.h): creating its nodes, and the
 * message for a pointer that is not a live heap block. */
#include "heap_blocks.h"

#include <errno.h>

#include "heap_direct.h"
#include "heap_fine.h"
#include "jemalloc.h"
#include "log.h"
#include "os.h"

FA_HIDDEN fa_heap_blocks_mid_t *fa_heap_blocks_root[FA_HEAP_BLOCKS_ROOT_SLOTS];

/* Zeroed memory from the OS for one node; NULL when the kernel refuses it. */
static void *map_node(size_t bytes)
{
    void *p = fa_os_reserve(bytes, fa_os_page_size());
    if (p && !fa_os_commit(p, bytes)) {
        fa_os_unreserve(p, bytes);
        return NULL;
    }
    return p;
}

/* Installs a fresh node in *slot unless another thread did first; returns the
 * node in place, or NULL when none could be mapped. */
static void *install_node(void **slot, size_t bytes)
{
    void *node = map_node(bytes);
    if (!node)
        return NULL;
    void *expected = NULL;
    if (__atomic_compare_exchange_n(slot, &expected, node, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return node;
    fa_os_unreserve(node, bytes);
    return expected;
}

FA_EVERY_PROCESS uint64_t *fa_heap_blocks_word_creating(uintptr_t a)
{
    if (a >> FA_HEAP_BLOCKS_ADDRESS_BITS)
        return NULL; /* not a user address on x86-64 Linux: the heap never returns one */
    void **mid_slot = (void **)&fa_heap_blocks_root[a >> FA_HEAP_BLOCKS_MID_SHIFT];
    fa_heap_blocks_mid_t *mid = __atomic_load_n(mid_slot, __ATOMIC_ACQUIRE);
    if (!mid && !(mid = install_node(mid_slot, sizeof *mid)))
        return NULL;
    void **leaf_slot = (void **)&(*mid)[(a >> FA_HEAP_BLOCKS_LEAF_SHIFT) & (FA_HEAP_BLOCKS_MID_SLOTS - 1)];
    if (!__atomic_load_n(leaf_slot, __ATOMIC_ACQUIRE) &&
        !install_node(leaf_slot, FA_HEAP_BLOCKS_LEAF_WORDS * sizeof(uint64_t)))
        return NULL;
    return fa_heap_blocks_word(a);
}

FA_EVERY_PROCESS void *fa_heap_blocks_track(void *p)
{
    if (FA_LIKELY(p != NULL) && FA_UNLIKELY(!fa_heap_blocks_add(p))) {
        if (!fa_heap_direct_free(p))
            fa_je_free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* How far back the report looks for a live block that contains the pointer. */
#define FA_HEAP_BLOCKS_REPORT_REACH ((uintptr_t)64 << 20)

/* The start of the nearest live block at or below a (within the reach), or 0. */
static uintptr_t live_start_at_or_below(uintptr_t a)
{
    const uintptr_t word_span = (uintptr_t)64 << FA_HEAP_BLOCKS_GRANULE_SHIFT;
    uintptr_t lowest = a > FA_HEAP_BLOCKS_REPORT_REACH ? a - FA_HEAP_BLOCKS_REPORT_REACH : word_span;
    unsigned granule = (unsigned)((a >> FA_HEAP_BLOCKS_GRANULE_SHIFT) & 63);
    uint64_t below = granule == 63 ? ~(uint64_t)0 : ((uint64_t)2 << granule) - 1; /* bits 0..granule */
    for (uintptr_t w = a & ~(word_span - 1); w >= lowest; w -= word_span, below = ~(uint64_t)0) {
        const uint64_t *word = fa_heap_blocks_word(w);
        uint64_t bits = word ? __atomic_load_n(word, __ATOMIC_RELAXED) & below : 0;
        if (bits)
            return w + ((uintptr_t)(63 - __builtin_clzll(bits)) << FA_HEAP_BLOCKS_GRANULE_SHIFT);
    }
    return 0;
}

void fa_heap_blocks_report(const char *what, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t start = live_start_at_or_below(a);
    if (start && start != a) {
        /* A directly mapped or finely rounded block is not jemalloc's: jemalloc's
         * look-up of its size would read tables jemalloc never made for that range
         * (SIGSEGV). */
        size_t size = fa_heap_fine_size((void *)start);
        if (!size)
            size = fa_heap_direct_size((void *)start);
        if (!size)
            size = fa_je_malloc_usable_size((void *)start);
        if (a - start < size)
            fa_fatal_misuse(p,
                            "%s(%p): a pointer into the middle of a heap block (%zu bytes into the live %zu-byte "
                            "block at %p)",
                            what, p, (size_t)(a - start), size, (void *)start);
    }
    fa_fatal_misuse(p, "%s(%p): not a live heap block (already freed: a double free; or never returned by malloc)",
                    what, p);
}

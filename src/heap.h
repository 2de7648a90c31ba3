/* jemalloc as the backing heap. Debian's archive is linked with every public name
 * renamed to fa_je_* (see rename-jemalloc.sh), so these are the only way in; its
 * policy (settings and extent hooks) is in heap.c. Every block these functions hand
 * out is recorded as live (heap_blocks.h) and checked when it comes back, so misuse
 * of a heap block is reported instead of reaching jemalloc. */
#ifndef FA_HEAP_H
#define FA_HEAP_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "heap_blocks.h"
#include "heap_direct.h"
#include "heap_fine.h"
#include "jemalloc.h"
#include "os.h"

/* jemalloc's 8-byte class is only 8-aligned; malloc must return 16-aligned blocks
 * (FA_MIN_ALIGN), so requests never go below its 16-byte class. */
FA_INLINE size_t fa_heap_size(size_t size) { return size < FA_MIN_ALIGN ? FA_MIN_ALIGN : size; }

/* Before jemalloc's first call (fa_init): the settings that cannot wait for a
 * thread (heap.c). */
void fa_heap_configure(void);

/* jemalloc starts at its first call (rename-jemalloc.sh). A start that fails for
 * want of address space leaves it unusable, so the caller starts it on purpose,
 * first making room when fa_heap_start_has_room says there is too little. */
extern _Atomic bool fa_heap_started;
bool fa_heap_start_has_room(void);
void fa_heap_start(void);

/* jemalloc's start costs a process about 660 KiB resident (six 64 KiB windows of
 * its code faulted in, its arena's metadata): a small program with one 32 KiB
 * block peaked at 2.37 MiB instead of 1.71. Many programs ask for only a few blocks
 * above the pools' limit (counted with uprobes on scripts/bench's programs:
 * python3 -c pass 21 of 18-256 KiB, perl 12 of 32 KiB-2 MiB, sqlite3 6 of 16 KiB-
 * 2 MiB, sort one of 332 MiB, xz -6 five of 64 KiB-64 MiB; 25, 14 and 11 with the
 * blocks realloc moves), so the first FA_HEAP_EARLY_BLOCKS heap blocks of a process
 * are mapped directly and unmapped when freed, as glibc maps its large ones
 * (heap_direct.h; rounded to a page), and jemalloc starts at the next. Larger pool
 * classes would not do it: these programs ask for blocks no 256 KiB pool chunk
 * holds without wasting most of it. The count bounds what a program that keeps
 * allocating such blocks pays in system calls before jemalloc serves it (gcc's
 * cc1, W10 and a python3 workload go past it). */
#define FA_HEAP_EARLY_BLOCKS 32
/* ...and jemalloc starts early once the program has freed this many bytes of them:
 * it replaces large blocks, and each directly mapped one faults and zeroes all its
 * pages again, where jemalloc reuses them (fabench bigbuf, 5-25 MiB zeroed buffers:
 * 0.18x glibc's time with jemalloc, 12x with its first 32 blocks mapped; glibc
 * raises its mapping threshold at the first such free for the same reason). */
#define FA_HEAP_EARLY_CHURN ((size_t)16 << 20)
/* True while the heap's blocks are still mapped directly: jemalloc need not start
 * (the caller's heap call then goes through fa_heap_early). */
bool fa_heap_early_open(void);
/* Before jemalloc's start: true when the request is served early, *p then being a
 * directly mapped block of size bytes at alignment (recorded as live), or NULL with
 * errno ENOMEM; false once jemalloc has been started instead (the early blocks are
 * spent or the table of direct blocks is full), for the caller to ask it. */
bool fa_heap_early(size_t alignment, size_t size, void **p);

/* Set once the calling thread has called into jemalloc, which then holds a cache
 * for it that fa_heap_thread_exit takes apart. */
extern __thread bool fa_heap_thread_entered;
FA_INLINE void fa_heap_enter(void) { fa_heap_thread_entered = true; }

/* The calling thread is exiting: hands its jemalloc cache back (heap.c says why
 * this cannot wait for jemalloc's own exit step). */
void fa_heap_thread_exit(void);

/* Around fork: waits for a start of jemalloc in progress, and runs jemalloc's own
 * fork handlers (heap.c). */
void fa_heap_fork_prepare(void);
void fa_heap_fork_parent(void);
void fa_heap_fork_child(void);

/* False until the calling thread's arena has framealloc's extent hooks (heap.c),
 * which only zeroed blocks need: the program's second calloc of FA_HEAP_PREPARE_MIN
 * or more, and its second thread (whose jemalloc cache is a zeroed block) once
 * jemalloc runs. Setting them up costs jemalloc's control tables (about 140 KiB, and
 * its control code, once per process), which a program that never needs them does
 * not pay; nor does a threaded program whose blocks all fit the pools pay jemalloc's
 * start for them. */
extern __thread bool fa_heap_thread_ready;
void fa_heap_thread_prepare(void);
/* The process has its second thread: the hooks now, or as jemalloc starts. */
void fa_heap_second_thread(void);
#define FA_HEAP_PREPARE_MIN ((size_t)256 << 10)

/* A heap allocation whose limit watch is due (heap_fine.h): from the finely rounded
 * heap when it is chosen and has room, else from jemalloc. */
void *fa_heap_malloc_watched(size_t size);

FA_INLINE void *fa_heap_malloc(size_t size)
{
    fa_heap_enter();
    if (FA_UNLIKELY(!fa_heap_fine_watch(size)))
        return fa_heap_malloc_watched(size);
    return fa_heap_blocks_track(fa_je_malloc(fa_heap_size(size)));
}

/* The usable size of p when framealloc serves it itself (heap_fine.h,
 * heap_direct.h), else 0. */
FA_INLINE size_t fa_heap_own_size(const void *p)
{
    size_t own = __atomic_load_n(&fa_heap_own_count, __ATOMIC_RELAXED);
    if (FA_LIKELY(!own))
        return 0;
    size_t size = fa_heap_own_direct(own) && fa_heap_direct_may_own(p) ? fa_heap_direct_size(p) : 0;
    return size || !fa_heap_own_fine(own) ? size : fa_heap_fine_size(p);
}

/* jemalloc's statistic name ("stats.allocated", "stats.mapped", "stats.resident"),
 * refreshed first (0 if it cannot be read), plus the bytes of directly mapped
 * blocks; only those before jemalloc's start. */
uint64_t fa_heap_statistic(const char *name);
/* Gives every arena's unused dirty pages back to the kernel now. */
void fa_heap_purge(void);

/* count * size must not overflow (the caller checks). Large zeroed blocks reuse
 * freed memory with memset rather than the kernel's fresh pages (heap.c). */
void *fa_heap_calloc(size_t count, size_t size);

/* alignment: a power of two. jemalloc's mallocx does not accept size 0. */
FA_INLINE void *fa_heap_aligned(size_t alignment, size_t size)
{
    if (FA_UNLIKELY(alignment >= FA_HEAP_DIRECT_ALIGNMENT))
        return fa_heap_blocks_track(fa_heap_direct_alloc(alignment, size));
    fa_heap_enter();
    void *p;
    if (FA_UNLIKELY(!fa_heap_started) && fa_heap_early(alignment, size, &p))
        return p;
    p = fa_heap_blocks_track(fa_je_mallocx(size ? size : 1, FA_JE_ALIGN(alignment)));
    if (!p)
        errno = ENOMEM;
    return p;
}

/* Moved blocks (realloc) of fa_heap_moved_purge_floor bytes or more give their pages
 * back (see FA_HEAP_MOVED_PURGE_MIN). Once one did, the program's own frees are
 * watched: a block it frees raises the floor past its size (heap.c). */
extern size_t fa_heap_moved_purge_floor FA_HIDDEN;
extern bool fa_heap_watching_frees FA_HIDDEN;
void fa_heap_note_free(void *p);

/* jemalloc may make a system call while freeing (purging), and free must keep errno.
 * by_program: the program's free (watched), not realloc's of a moved block. */
FA_INLINE void fa_heap_release(void *p, bool by_program)
{
    fa_heap_blocks_remove(p, "free");
    fa_heap_enter();
    int saved = errno;
    size_t own = __atomic_load_n(&fa_heap_own_count, __ATOMIC_RELAXED);
    if (FA_UNLIKELY(own) && ((fa_heap_own_direct(own) && fa_heap_direct_may_own(p) && fa_heap_direct_free(p)) ||
                             (fa_heap_own_fine(own) && fa_heap_fine_free(p)))) {
        errno = saved;
        return;
    }
    if (by_program && FA_UNLIKELY(__atomic_load_n(&fa_heap_watching_frees, __ATOMIC_RELAXED)))
        fa_heap_note_free(p);
    fa_je_free(p);
    errno = saved;
}

FA_INLINE void fa_heap_free(void *p) { fa_heap_release(p, true); }

/* A jemalloc block that realloc moves gives its pages back before it is freed when
 * it is this large or more (glibc's first mmap threshold). A buffer grown by realloc
 * leaves behind every size it went through (64 KiB, 128 KiB ... 1 MiB for a 2 MiB
 * one), which jemalloc keeps dirty for its decay (about ten seconds) and can reuse
 * only for blocks above the pools' limit; glibc moves such blocks with mremap and
 * keeps nothing. perl's hash arrays and sqlite3's sorter grow so. As glibc raises its
 * mmap threshold when the program frees a mapped block, a program that frees a block
 * itself raises this floor past the block's size (up to FA_HEAP_MOVED_PURGE_MAX):
 * one that grows and frees such buffers over and over keeps them, instead of
 * faulting them in again each time (a 64 KiB -> 4 MiB regrowth loop took 35x
 * glibc's time with the floor fixed). */
#define FA_HEAP_MOVED_PURGE_MIN ((size_t)128 << 10)
#define FA_HEAP_MOVED_PURGE_MAX ((size_t)32 << 20)

/* What jemalloc's realloc does (resize in place when the size class allows, or when
 * the fine heap's block can, else allocate, copy, free), in steps, so that the new
 * block is recorded before the old one is given up: when the record has no memory
 * for the new block, p stays as it was and realloc fails with ENOMEM (glibc's errno;
 * jemalloc's realloc leaves errno alone on an impossible size). */
FA_INLINE void *fa_heap_realloc(void *p, size_t size)
{
    fa_heap_blocks_check(p, "realloc");
    size_t wanted = fa_heap_size(size);
    size_t own = fa_heap_own_size(p);
    size_t usable = own ? own : fa_je_xallocx(p, wanted, 0, 0);
    if (own ? fa_heap_fine_resize_in_place(p, wanted) : usable >= wanted && usable == fa_je_nallocx(wanted, 0))
        return p;
    void *q = fa_heap_malloc(size);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(q, p, usable < size ? usable : size);
    if (!own && usable >= __atomic_load_n(&fa_heap_moved_purge_floor, __ATOMIC_RELAXED)) {
        fa_os_purge(p, usable, false);
        __atomic_store_n(&fa_heap_watching_frees, true, __ATOMIC_RELAXED);
    }
    fa_heap_release(p, false);
    return q;
}

/* what: the operation that needs the size, named if p is not a live heap block. */
FA_INLINE size_t fa_heap_usable_size(void *p, const char *what)
{
    fa_heap_blocks_check(p, what);
    size_t own = fa_heap_own_size(p);
    return own ? own : fa_je_malloc_usable_size(p);
}

#endif

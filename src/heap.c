/* The backing heap's policy: the settings framealloc compiles into its private
 * jemalloc, and the extent hooks that let a zeroed allocation reuse memory the
 * program just freed instead of handing it back to the kernel. */
#include "heap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "os.h"

/* jemalloc reads this string before MALLOC_CONF, so the user's MALLOC_CONF still
 * wins setting by setting (the renamed archive defines a weak empty one).
 * Each setting was chosen by measurement (issue 9; figures in the commit):
 * - oversize_threshold:0: jemalloc sends blocks of 8 MiB and more to a dedicated
 *   arena that gives them to the kernel at every free, and does the same to any
 *   freed extent that coalesces past 8 MiB in a normal arena. A program that keeps
 *   replacing 5-25 MiB buffers then faults and zeroes every page again and again
 *   (6x glibc's time); freeciv-server did it 1 140 times per game with 8 MiB
 *   blocks. Off, large blocks are kept like any other freed memory and age out
 *   through dirty_decay_ms.
 * - dirty_decay_ms:10000, muzzy_decay_ms:0 (jemalloc 5.3's defaults, written out
 *   because they are the policy): a freed page is given back once it has stayed
 *   unused about ten seconds of allocation activity, not at once.
 * - tcache_max:65536: blocks up to 64 KiB, four times the pools' limit, are cached
 *   per thread (at most tcache_nslots_large = 20 per size), so mid-size blocks that
 *   a program keeps freeing and allocating take no arena lock and are never purged
 *   while in use; larger limits let each thread hold megabytes it may never reuse.
 * - narenas:1: when the last thread attached to an arena exits, jemalloc gives back
 *   all of that arena's free memory at once (not after dirty_decay_ms). With an
 *   arena per few threads, a program that keeps starting short threads hit that
 *   at nearly every exit and faulted everything in again (fabench tchurn: 17-20 ms
 *   a round, 17 000 page faults; with one arena, which the initialising thread
 *   joins for the process's life (fa_init): 1-1.7 ms, 1 700 faults). jemalloc holds
 *   only blocks above the pools' limit here, and each thread's tcache serves those
 *   up to 64 KiB without the arena's lock, so one arena costs little contention. */
const char *fa_je_malloc_conf = "oversize_threshold:0,dirty_decay_ms:10000,muzzy_decay_ms:0,tcache_max:65536,narenas:1";

int fa_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* jemalloc 5.3's extent hook table (jemalloc.h's extent_hooks_t, which the renamed
 * archive still uses; the header itself is not included because its names are the
 * unrenamed ones). Every hook returns false on success. */
typedef struct fa_extent_hooks_s fa_extent_hooks_t;
struct fa_extent_hooks_s {
    void *(*alloc)(fa_extent_hooks_t *, void *, size_t, size_t, bool *, bool *, unsigned);
    bool (*dalloc)(fa_extent_hooks_t *, void *, size_t, bool, unsigned);
    void (*destroy)(fa_extent_hooks_t *, void *, size_t, bool, unsigned);
    bool (*commit)(fa_extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
    bool (*decommit)(fa_extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
    bool (*purge_lazy)(fa_extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
    bool (*purge_forced)(fa_extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
    bool (*split)(fa_extent_hooks_t *, void *, size_t, size_t, size_t, bool, unsigned);
    bool (*merge)(fa_extent_hooks_t *, void *, size_t, void *, size_t, bool, unsigned);
};

/* Fresh mappings: new_addr (growing in place) is never asked for while retain is on
 * (Linux's default); refuse it rather than map elsewhere. */
static void *extent_alloc(fa_extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment, bool *zero,
                          bool *commit, unsigned arena)
{
    (void)hooks, (void)arena;
    if (new_addr)
        return NULL;
    size_t page = fa_os_page_size();
    char *start = fa_os_map_aligned(size, alignment < page ? page : alignment);
    if (!start)
        return NULL;
    *zero = true;
    *commit = true;
    return start;
}

static void extent_destroy(fa_extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena)
{
    (void)hooks, (void)committed, (void)arena;
    fa_os_unreserve(addr, size);
}

static bool extent_purge_lazy(fa_extent_hooks_t *hooks, void *addr, size_t size, size_t offset, size_t length,
                              unsigned arena)
{
    (void)hooks, (void)size, (void)arena;
    return !fa_os_purge((char *)addr + offset, length, true);
}

static bool extent_purge_forced(fa_extent_hooks_t *hooks, void *addr, size_t size, size_t offset, size_t length,
                                unsigned arena)
{
    (void)hooks, (void)size, (void)arena;
    return !fa_os_purge((char *)addr + offset, length, false);
}

static bool extent_split(fa_extent_hooks_t *hooks, void *addr, size_t size, size_t a, size_t b, bool committed,
                         unsigned arena)
{
    (void)hooks, (void)addr, (void)size, (void)a, (void)b, (void)committed, (void)arena;
    return false; /* anonymous mappings split anywhere */
}

static bool extent_merge(fa_extent_hooks_t *hooks, void *a, size_t size_a, void *b, size_t size_b, bool committed,
                         unsigned arena)
{
    (void)hooks, (void)a, (void)size_a, (void)b, (void)size_b, (void)committed, (void)arena;
    return false; /* Linux coalesces adjacent anonymous mappings */
}

/* The same work as jemalloc's default hooks, with one difference that matters: for
 * hooks that are not its defaults, jemalloc zeroes a recycled extent for calloc with
 * memset instead of MADV_DONTNEED. glibc does the same (memset of reused memory,
 * nothing for fresh mappings); the purge makes every reuse fault and the kernel
 * zero every page again (issue 9: 6x glibc's time on a large-buffer loop).
 * dalloc, commit and decommit are absent: mappings are kept (jemalloc retains and
 * purges them) and memory is never decommitted, as with the defaults on Linux. */
static fa_extent_hooks_t zero_by_memset_hooks = {
    .alloc = extent_alloc,
    .destroy = extent_destroy,
    .purge_lazy = extent_purge_lazy,
    .purge_forced = extent_purge_forced,
    .split = extent_split,
    .merge = extent_merge,
};

__thread bool fa_heap_thread_ready;
__thread bool fa_heap_thread_entered;

/* Arenas already set up (arena indexes below 512; others are set up by each of
 * their threads, which costs two more mallctl calls per thread). */
static _Atomic uint64_t arenas_ready[8];

static void set_arena_setting(unsigned arena, const char *setting, void *value, size_t len)
{
    char name[48];
    fa_format(name, sizeof name, "arena.%u.%s", arena, setting);
    fa_je_mallctl(name, NULL, NULL, value, len);
}

/* jemalloc's global that a new arena's oversize threshold is copied from. jemalloc
 * 5.3 creates arena 0 before it turns the oversize_threshold setting into this
 * global, so arena 0 alone would still give back every freed extent of 8 MiB or
 * more at once; written before jemalloc's first call, arena 0 starts with it too. */
extern size_t je_oversize_threshold;

/* Large blocks without jemalloc's page of padding (opt.cache_oblivious off; glibc and
 * mimalloc do not pad either). The pad is a page of address space per block, which
 * an address-space limit counts: heap blocks of 16-64 KiB reached 77-85 % of what
 * glibc allocates under one (issue 10, where the aim is 90 %). It bought each block a
 * random cache-line offset against cache-set conflicts between page-aligned
 * buffers; without it large blocks start on a page. jemalloc 5.3 turns the option
 * into the pad once, as it starts, and from then on uses only that pad (never the
 * compile-time setting) for large extents, their resizing in place and the offset,
 * so writing it before the first call is what cache_oblivious:false in malloc_conf
 * does in later versions. */
FA_EVERY_PROCESS void fa_heap_configure(void)
{
    je_oversize_threshold = SIZE_MAX;
    je_opt_cache_oblivious = false;
}

size_t fa_heap_moved_purge_floor = FA_HEAP_MOVED_PURGE_MIN;
bool fa_heap_watching_frees;

/* A racy maximum is enough: the floor is a hint, and every value it takes is right. */
void fa_heap_note_free(void *p)
{
    size_t size = fa_je_malloc_usable_size(p);
    if (size >= __atomic_load_n(&fa_heap_moved_purge_floor, __ATOMIC_RELAXED) && size < FA_HEAP_MOVED_PURGE_MAX)
        __atomic_store_n(&fa_heap_moved_purge_floor, size + 1, __ATOMIC_RELAXED);
}

/* What jemalloc maps as it starts (its first metadata blocks and extents, about
 * 8 MiB on Linux), with room to spare. */
#define START_BYTES ((size_t)16 << 20)

_Atomic bool fa_heap_started;

FA_EVERY_PROCESS bool fa_heap_start_has_room(void)
{
    void *probe = fa_os_reserve(START_BYTES, fa_os_page_size());
    if (probe)
        fa_os_unreserve(probe, START_BYTES);
    return probe != NULL;
}

/* Set once the process has a second thread; with fa_heap_started, whichever of the
 * two comes last sets the hooks up (both may: fa_heap_thread_prepare does it once). */
static _Atomic bool second_thread;

/* Held while jemalloc starts, and across fork: a fork while another thread is in
 * jemalloc's start would leave the child jemalloc's init lock held for good (its
 * fork handlers only exist once it has started). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

FA_EVERY_PROCESS void fa_heap_start(void)
{
    pthread_mutex_lock(&start_lock);
    if (!fa_heap_started) { /* another thread may have started it while this one waited */
        fa_je_free(fa_je_malloc(1));
        fa_heap_started = true;
    }
    pthread_mutex_unlock(&start_lock);
    if (second_thread)
        fa_heap_thread_prepare();
}

/* jemalloc's own handlers run inside framealloc's (jemalloc.h): first before a fork,
 * last after it, as when it registered them itself after framealloc. */
void fa_heap_fork_prepare(void)
{
    pthread_mutex_lock(&start_lock);
    if (fa_je_fork_handlers.prepare)
        fa_je_fork_handlers.prepare();
}

void fa_heap_fork_parent(void)
{
    if (fa_je_fork_handlers.parent)
        fa_je_fork_handlers.parent();
    pthread_mutex_unlock(&start_lock);
}

void fa_heap_fork_child(void)
{
    if (fa_je_fork_handlers.child)
        fa_je_fork_handlers.child();
    pthread_mutex_init(&start_lock, NULL);
}

void fa_heap_second_thread(void)
{
    second_thread = true;
    if (fa_heap_started)
        fa_heap_thread_prepare();
}

/* Gives the calling thread's arena the hooks above (heap.h says when). */
void fa_heap_thread_prepare(void)
{
    fa_heap_thread_ready = true;
    fa_heap_enter();
    unsigned arena;
    size_t len = sizeof arena;
    if (fa_je_mallctl("thread.arena", &arena, &len, NULL, 0) != 0)
        return;
    uint64_t bit = (uint64_t)1 << (arena % 64);
    if (arena < 512 && (atomic_fetch_or(&arenas_ready[arena / 64], bit) & bit))
        return;
    fa_extent_hooks_t *hooks = &zero_by_memset_hooks;
    set_arena_setting(arena, "extent_hooks", &hooks, sizeof hooks);
}

/* jemalloc gives back all of an arena's free memory at once when a thread's cache
 * is taken apart and no thread is attached to the arena any more. At a thread's
 * exit it detaches the thread first and takes the cache apart second, so in a
 * program whose main thread never used the heap (jemalloc starts at its first call,
 * see rename-jemalloc.sh) every exit of the last heap-using thread emptied the
 * arena, and a program that keeps starting threads faulted everything in again
 * (fabench tchurn: 4.2 ms a round instead of 0.5). Turning the cache off here,
 * while the thread is still attached, flushes it with the ordinary decay; jemalloc's
 * own exit step then finds no cache. framealloc's exit key is created before
 * jemalloc's (which jemalloc creates at its first call), so this runs first. */
void fa_heap_thread_exit(void)
{
    /* A thread that only had blocks mapped before jemalloc's start must not start it
     * now (mallctl would). */
    if (!fa_heap_thread_entered || !fa_heap_started)
        return;
    bool off = false;
    fa_je_mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof off);
}

uint64_t fa_heap_statistic(const char *name)
{
    /* Directly mapped blocks are allocated, mapped and resident (all of it, for what
     * these figures are for); mallctl would start jemalloc, which has nothing yet. */
    uint64_t direct = __atomic_load_n(&fa_heap_direct_bytes, __ATOMIC_RELAXED);
    if (!fa_heap_started)
        return direct;
    uint64_t epoch = 1;
    size_t value = 0, len = sizeof value;
    fa_je_mallctl("epoch", NULL, NULL, &epoch, sizeof epoch);
    if (fa_je_mallctl(name, &value, &len, NULL, 0) != 0)
        return direct;
    return value + direct;
}

/* jemalloc's MALLCTL_ARENAS_ALL in "arena.<i>.purge": every arena at once. */
#define ALL_ARENAS "4096"

void fa_heap_purge(void)
{
    if (fa_heap_started) /* else jemalloc holds nothing (and mallctl would start it) */
        fa_je_mallctl("arena." ALL_ARENAS ".purge", NULL, NULL, NULL, 0);
}

/* Zeroed blocks of FA_HEAP_PREPARE_MIN or more asked for before the hooks were set. */
static _Atomic uint32_t large_zeroed_blocks;

/* Blocks mapped directly before jemalloc starts (heap.h, FA_HEAP_EARLY_BLOCKS). */
static _Atomic uint32_t early_blocks;

/* Early blocks left: fewer than FA_HEAP_EARLY_BLOCKS taken, and fewer than
 * FA_HEAP_EARLY_CHURN bytes of them given back. */
static bool early_blocks_left(uint32_t taken)
{
    return taken < FA_HEAP_EARLY_BLOCKS &&
           atomic_load_explicit(&fa_heap_direct_unmapped, memory_order_relaxed) < FA_HEAP_EARLY_CHURN;
}

bool fa_heap_early_open(void)
{
    return !fa_heap_started && early_blocks_left(atomic_load_explicit(&early_blocks, memory_order_relaxed));
}

bool fa_heap_early(size_t alignment, size_t size, void **p)
{
    if (early_blocks_left(atomic_fetch_add(&early_blocks, 1))) {
        bool table_full;
        void *block = fa_heap_direct_map(alignment, size, &table_full);
        if (!table_full) {
            *p = fa_heap_blocks_track(block); /* a block, or NULL with ENOMEM */
            return true;
        }
    }
    /* The budget ran out between the caller's fa_heap_early_open and here (another
     * thread took the last one), or the table is full: jemalloc now, without the
     * caller's room check (a race of a few calls, not a policy). */
    fa_heap_start();
    return false;
}

void *fa_heap_malloc_watched(size_t size)
{
    void *p;
    /* Before jemalloc's start every thread's watch stays due (nothing arms it), so
     * every heap block comes here. */
    if (FA_UNLIKELY(!fa_heap_started) && fa_heap_early(FA_MIN_ALIGN, size, &p))
        return p;
    if (fa_heap_fine_chosen(size) && (p = fa_heap_fine_alloc(size, false)))
        return p;
    return fa_heap_blocks_track(fa_je_malloc(fa_heap_size(size)));
}

FA_EVERY_PROCESS void *fa_heap_calloc(size_t count, size_t size)
{
    size_t total = count * size;
    fa_heap_enter();
    void *p;
    if (FA_UNLIKELY(!fa_heap_started) && fa_heap_early(FA_MIN_ALIGN, total, &p))
        return p; /* a fresh mapping reads as zero */
    if (FA_UNLIKELY(!fa_heap_fine_watch(total)) && fa_heap_fine_chosen(total) && (p = fa_heap_fine_alloc(total, true)))
        return p;
    if (total < FA_MIN_ALIGN)
        return fa_heap_blocks_track(fa_je_calloc(1, FA_MIN_ALIGN));
    /* Zeroed blocks from jemalloc's large classes (16 KiB up) are the ones the hooks
     * clear with memset (smaller ones come from slabs, cleared with memset anyway).
     * The hooks wait for a program's second zeroed block of FA_HEAP_PREPARE_MIN or
     * more: below that size, or for a single one (python3 asks for one at start),
     * the kernel's zeroing of a purged block costs less than setting them up. */
    if (FA_UNLIKELY(!fa_heap_thread_ready) && total >= FA_HEAP_PREPARE_MIN &&
        atomic_fetch_add(&large_zeroed_blocks, 1) >= 1)
        fa_heap_thread_prepare();
    return fa_heap_blocks_track(fa_je_calloc(count, size));
}

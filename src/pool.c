/* Pool slow paths: refilling a thread's list (collect, carve, switch chunk, adopt
 * an orphan, take a new chunk), frees that miss the fast path, emptied chunks,
 * thread exit (an exited thread's cache parked for the next thread), and the
 * misuse checks. */
#include "pool.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "chunk_cache.h"
#include "framealloc.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "self_check.h"

enum { FA_POOL_LIST_NONE, FA_POOL_LIST_AVAIL, FA_POOL_LIST_FULL };

/* The page the carving steps follow (Linux's on x86-64; a larger page only makes
 * the first step of a class touch one page more). */
#define FA_POOL_PAGE 4096

/* Emptied chunks a thread always keeps for reuse, however long they stay empty. */
#define FA_POOL_EMPTY_RETAIN 4

FA_EVERY_PROCESS_DATA uint64_t fa_pool_key, fa_pool_key_inverse;
FA_EVERY_PROCESS_DATA uintptr_t fa_pool_cookie_value;
FA_EVERY_PROCESS_DATA uintptr_t fa_pool_link_base;
FA_EVERY_PROCESS_DATA uint64_t fa_pool_link_span;
FA_EVERY_PROCESS_DATA uint8_t fa_pool_bin_of[FA_POOL_LARGEST / 16 + 1];
FA_EVERY_PROCESS_DATA uint8_t fa_pool_class_of[FA_POOL_LARGEST / 16 + 1];
FA_EVERY_PROCESS_DATA int32_t fa_pool_cache_limit[FA_POOL_CLASSES];

/* 16-byte steps to 128, four classes per doubling to 256, then eight (at most 12.5%
 * slack; glibc's chunks waste 16 bytes on average): a program whose blocks spread
 * over 256 B-4 KiB (fabench W10's components, 128 B-4 KiB) paid 8 % of those bytes
 * with four, 4 % with eight. Just above 4 KiB, 128-byte steps to 4608: blocks of a
 * page and a header are common (sqlite's page cache asks for 4368 bytes, 2 % more
 * than a page, and its pages are most of its memory). 63 classes is the most the
 * byte-sized bin indexes of the size table hold (pool.h). */
FA_EVERY_PROCESS_CONST const uint32_t fa_pool_class_size[FA_POOL_CLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 832, 896, 960, 1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584,
    3840, 4096, 4224, 4352, 4480, 4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192, 9216,
    10240, 11264, 12288, 13312, 14336, 15360, 16384,
};

/* Chunks of exited threads that still hold live blocks are the chunk layer's
 * orphans, one bin per class. */
_Static_assert(FA_POOL_CLASSES <= FA_CHUNK_ORPHAN_BINS, "an orphan bin for every class");

/* Emptied chunks of exited threads, newest first (see park_chunk). */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static fa_list_t spares;
static _Atomic uint32_t spare_any;
static _Atomic uint64_t exited_allocs[FA_POOL_CLASSES], exited_frees[FA_POOL_CLASSES];

/* Whole caches of exited threads waiting for the next thread (see parked caches). */
#define FA_POOL_PARKED_MAX 16
typedef struct {
    fa_pool_cache_t cache;
    uint64_t since_ms;
    uint32_t chunks; /* chunks on the cache's lists */
    bool used;
} parked_cache_t;
static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER; /* taken before spare_lock and the orphans' */
static parked_cache_t parked[FA_POOL_PARKED_MAX];
static _Atomic uint32_t parked_count;
static uint32_t parked_chunks;            /* on parked caches' lists; with the spares, at most FA_POOL_SPARE_MAX */
static _Atomic uint64_t parked_oldest_ms; /* since_ms of the oldest parked cache */

/* An odd random link key (odd: invertible modulo 2^64) with its inverse by Newton's
 * iteration (each step doubles the correct low bits; key itself is right to 3),
 * and the cookie (never 0, so a zeroed word is never a cookie). */
static void make_keys(void)
{
    uint64_t key = fa_os_random64(); /* odd already */
    uint64_t inverse = key;
    for (int i = 0; i < 5; i++)
        inverse *= 2 - key * inverse;
    fa_pool_key = key;
    fa_pool_key_inverse = inverse;
    fa_pool_cookie_value = fa_os_random64();
}

/* Runs during init, before any thread can use pools: the bin table starts all
 * zero, which sends every size to bin 0, whose empty list misses into the slow
 * path, and the slow path initialises before it looks at the table again. */
FA_EVERY_PROCESS void fa_pool_configure(void)
{
    if (!fa_pool_key)
        make_keys();
    /* About 256 KiB of ready blocks per class, 16 to 4096 of them (like a tcache):
     * a program that frees more of a class between two refills than its bin holds
     * cycles the surplus through the chunks (flush, then refill) every frame; at 64
     * KiB the demo game's unmarked run spent 2 % of the allocator's instructions so. */
    for (unsigned c = 0; c < FA_POOL_CLASSES; c++) {
        int32_t limit = (int32_t)(262144 / fa_pool_class_size[c]);
        fa_pool_cache_limit[c] = limit < 16 ? 16 : limit > 4096 ? 4096 : limit;
    }
    unsigned cls = 0;
    for (size_t i = 0; i <= FA_POOL_LARGEST / 16; i++) {
        size_t size = i ? i * 16 : 1;
        while (fa_pool_class_size[cls] < size)
            cls++;
        fa_pool_class_of[i] = (uint8_t)cls;
        /* Above the limit: the always-empty bin, so malloc's fast path misses without
         * reading fa_pool_max (the slow path then routes the size). */
        unsigned bin = size <= fa_settings.pool_max ? cls : FA_POOL_CLASSES;
        fa_pool_bin_of[i] = (uint8_t)(bin * FA_POOL_BIN_WORDS);
    }
}

/* ---- chunk lists (chunk_list.h; a chunk's link is in its header) ---- */

static fa_pool_chunk_t *first_chunk(const fa_list_t *l) { return fa_chunk_at(l->head); }
static fa_pool_chunk_t *next_chunk(const fa_pool_chunk_t *c) { return fa_chunk_at(c->link.next); }
static fa_pool_chunk_t *pop_chunk(fa_list_t *l) { return fa_chunk_at(fa_list_pop_front(l)); }

/* ---- owner lists ---- */

static fa_list_t *list_head(fa_thread_t *t, fa_pool_chunk_t *c)
{
    return c->list == FA_POOL_LIST_AVAIL ? &t->pool.avail[c->class_index] : &t->pool.full[c->class_index];
}

static void list_remove(fa_thread_t *t, fa_pool_chunk_t *c)
{
    if (c->list == FA_POOL_LIST_NONE)
        return;
    fa_list_remove(list_head(t, c), &c->link);
    c->list = FA_POOL_LIST_NONE;
}

static void list_push(fa_thread_t *t, fa_pool_chunk_t *c, uint8_t list)
{
    c->list = list;
    fa_list_push_front(list_head(t, c), &c->link);
}

/* ---- chunks ---- */

static void init_chunk(fa_thread_t *t, fa_pool_chunk_t *c, unsigned cls)
{
    c->head.kind = FA_CHUNK_POOL;
    c->block_size = fa_pool_class_size[cls];
    c->class_index = cls;
    c->div = c->div_below = fa_pool_div_of(c->block_size);
    c->used = 0;
    c->local_free = NULL;
    c->local_free_count = 0;
    c->list = FA_POOL_LIST_NONE;
    c->link = (fa_list_link_t){0};
    c->area = (FA_CHUNK_SIZE - FA_POOL_DATA_OFFSET) / c->block_size * c->block_size;
    __atomic_store_n(&c->carved, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->thread_free, NULL, __ATOMIC_RELAXED);
    c->owner_bin = &t->pool.bins[cls];
    __atomic_store_n(&c->head.owner, t->id, __ATOMIC_RELEASE);
}

/* ---- emptied chunks ----
 * A program that frees a batch and allocates it again (a level, a frame's worth of
 * objects) should find its pages still there: emptied chunks wait on a per-thread
 * list, newest first, and are reused first. Only chunks that stay empty for
 * FRAMEALLOC_POOL_DECAY_MS go back to the OS, checked on the slow paths. */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- spare chunks ----
 * A thread that exits used to give its emptied chunks straight back to the region,
 * which returns their pages to the OS (madvise) at once; a program that keeps
 * starting threads then paid a system call and page faults for every chunk of
 * every thread. Instead they wait here, with their pages, for the next thread's
 * new_chunk: at most FA_POOL_SPARE_MAX of them (16 MiB of address space, resident
 * only as far as they were used), and those parked longer than
 * FRAMEALLOC_POOL_DECAY_MS go back whenever a chunk is parked. */

/* Unlinks the spares that expired (or all when now is UINT64_MAX), under the lock,
 * and returns them as a list, to be released outside the lock (each release costs a
 * system call). */
static fa_list_t unlink_expired_spares(uint64_t now)
{
    fa_list_t expired = {0};
    fa_pool_chunk_t *c;
    while ((c = fa_chunk_at(spares.tail)) &&
           (now == UINT64_MAX || c->empty_since_ms + fa_settings.pool_decay_ms <= now)) {
        fa_list_remove(&spares, &c->link);
        fa_list_push_front(&expired, &c->link);
    }
    __atomic_store_n(&spare_any, spares.count != 0, __ATOMIC_RELAXED);
    return expired;
}

static void park_chunk(fa_pool_chunk_t *c)
{
    uint64_t now = now_ms();
    c->empty_since_ms = now;
    c->list = FA_POOL_LIST_NONE;
    pthread_mutex_lock(&spare_lock);
    fa_list_t expired = unlink_expired_spares(now);
    if (spares.count < FA_POOL_SPARE_MAX && fa_settings.pool_decay_ms) {
        fa_list_push_front(&spares, &c->link);
        __atomic_store_n(&spare_any, 1, __ATOMIC_RELAXED);
        c = NULL;
    }
    pthread_mutex_unlock(&spare_lock);
    fa_chunk_release_all(&expired);
    if (c)
        fa_chunk_release(c);
}

static fa_pool_chunk_t *take_spare(void)
{
    if (!__atomic_load_n(&spare_any, __ATOMIC_RELAXED))
        return NULL;
    pthread_mutex_lock(&spare_lock);
    fa_pool_chunk_t *c = pop_chunk(&spares);
    __atomic_store_n(&spare_any, spares.count != 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&spare_lock);
    return c;
}

static void release_expired(fa_pool_cache_t *pc, uint64_t now)
{
    fa_pool_chunk_t *c;
    while (pc->empty.count > FA_POOL_EMPTY_RETAIN && (c = fa_chunk_at(pc->empty.tail)) &&
           c->empty_since_ms + fa_settings.pool_decay_ms <= now) {
        fa_list_remove(&pc->empty, &c->link);
        fa_chunk_release(c);
    }
}

/* Every block lies in the region, which stays where it is once reserved: the
 * bounds malloc checks each popped block against are set from it when the first
 * chunk exists (before that every list is empty). The whole region, not only the
 * pool chunks: one range costs one compare. */
static void set_link_bounds(void)
{
    if (__atomic_load_n(&fa_pool_link_span, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&fa_pool_link_base, fa_region.origin, __ATOMIC_RELAXED);
    __atomic_store_n(&fa_pool_link_span, fa_region.reserved, __ATOMIC_RELAXED);
}

static fa_pool_chunk_t *new_chunk(fa_thread_t *t, unsigned cls)
{
    fa_pool_chunk_t *c = pop_chunk(&t->pool.empty);
    if (!c)
        c = take_spare();
    if (!c) {
        c = fa_chunk_alloc(FA_CHUNK_POOL);
        if (!c)
            return NULL;
        set_link_bounds();
    }
    init_chunk(t, c, cls);
    return c;
}

static void retire_empty(fa_thread_t *t, fa_pool_chunk_t *c)
{
    list_remove(t, c);
    if (t->state != FA_THREAD_LIVE) {
        park_chunk(c);
        return;
    }
    fa_pool_cache_t *pc = &t->pool;
    uint64_t now = now_ms();
    c->empty_since_ms = now;
    fa_list_push_front(&pc->empty, &c->link);
    release_expired(pc, now);
}

/* A link that decodes outside the region: the program wrote into a freed block
 * (after free, or past the end of the block before it). */
FA_COLD static void report_corrupt_link(const void *decoded)
{
    fa_fatal("pool free list corrupted: a freed block's link was overwritten (write after free or overflow; "
             "it decodes to %p)", decoded);
}

/* The next block after b on a list, checked like malloc's pop checks a head. */
static fa_pool_block_t *next_of(const fa_pool_block_t *b)
{
    fa_pool_block_t *next = fa_pool_link_decode(b);
    if (next && !fa_pool_link_ok(next))
        report_corrupt_link(next);
    return next;
}

static void push(fa_pool_block_t **list, fa_pool_block_t *b)
{
    b->link = fa_pool_link_encode(b, *list);
    *list = b;
}

/* Takes the blocks other threads freed into c. */
static void collect_remote(fa_pool_chunk_t *c)
{
    fa_pool_block_t *b = __atomic_exchange_n(&c->thread_free, NULL, __ATOMIC_ACQUIRE);
    while (b) {
        fa_pool_block_t *next = next_of(b);
        push(&c->local_free, b);
        c->local_free_count++;
        c->used--;
        b = next;
    }
}

/* An empty bin takes count blocks headed by first. */
static void fill_bin(fa_thread_t *t, unsigned cls, fa_pool_block_t *first, uint32_t count)
{
    fa_pool_bin_t *bin = &t->pool.bins[cls];
    bin->head = first;
    bin->limit = fa_pool_cache_limit[cls];
    bin->room = bin->limit - (int64_t)count;
    t->pool.flow[cls].entered += count;
}

/* Moves c's free blocks (local list, else a carved batch) into the thread's list.
 * Returns false when c has none. */
static FA_EVERY_PROCESS bool fill_from(fa_thread_t *t, fa_pool_chunk_t *c)
{
    unsigned cls = c->class_index;
    uint32_t limit = (uint32_t)fa_pool_cache_limit[cls];
    if (!c->local_free)
        collect_remote(c);
    if (c->local_free) {
        /* The whole list when it fits the bin (the links stay as they are: they
         * depend only on each block's address), else its first `limit` blocks. */
        fa_pool_block_t *first = c->local_free;
        uint32_t count = c->local_free_count;
        if (count > limit) {
            fa_pool_block_t *last = first;
            for (uint32_t i = 1; i < limit; i++)
                last = next_of(last);
            c->local_free = next_of(last);
            last->link = fa_pool_link_encode(last, NULL);
            count = limit;
        } else {
            c->local_free = NULL;
        }
        c->local_free_count -= count;
        c->used += count;
        fill_bin(t, cls, first, count);
        return true;
    }
    uint64_t carved = __atomic_load_n(&c->carved, __ATOMIC_RELAXED);
    if (carved >= c->area)
        return false;
    /* About 16 KiB at a time over pages the chunk already touched (a reused chunk,
     * as a program that frees and allocates a batch again gets: fewer refills),
     * up to the end of the page over fresh pages: the links written here touch every
     * carved page, and a small program that uses a few blocks of many classes
     * should pay a page per class, not four (16 KiB batches cost a 2 000-node
     * program about 100 KiB more resident memory; a whole page's worth from the
     * header's page on touched two pages of every class). At least one block, at
     * most the bin's limit. */
    uint32_t size = c->block_size;
    char *start = (char *)c + FA_POOL_DATA_OFFSET + carved;
    uint64_t batch = carved < c->carved_resident ? 16384 : FA_POOL_PAGE - ((uintptr_t)start & (FA_POOL_PAGE - 1));
    uint64_t count = batch / size ? batch / size : 1;
    if (count > limit)
        count = limit;
    if (count > (c->area - carved) / size)
        count = (c->area - carved) / size;
    fa_pool_block_t *next = NULL;
    for (uint64_t i = count; i-- > 0;) {
        fa_pool_block_t *b = (fa_pool_block_t *)(start + i * size);
        b->link = fa_pool_link_encode(b, next);
        next = b;
    }
    __atomic_store_n(&c->carved, carved + count * size, __ATOMIC_RELEASE);
    if (carved + count * size > c->carved_resident)
        c->carved_resident = (uint32_t)(carved + count * size);
    c->used += (uint32_t)count;
    fill_bin(t, cls, next, (uint32_t)count);
    return true;
}

static fa_pool_chunk_t *adopt_orphan(fa_thread_t *t, unsigned cls)
{
    if (!fa_chunk_orphans_any(FA_CHUNK_POOL))
        return NULL;
    fa_pool_chunk_t *c = fa_chunk_at(fa_chunk_orphan_take(FA_CHUNK_POOL, cls));
    if (!c)
        return NULL;
    c->list = FA_POOL_LIST_NONE;
    c->owner_bin = &t->pool.bins[cls];
    __atomic_store_n(&c->head.owner, t->id, __ATOMIC_RELEASE);
    return c;
}

/* ---- parked caches ----
 * A thread's pool state outlives the thread. Handing it back block by block at
 * exit (every cached block decoded and pushed onto its own chunk, then every chunk
 * orphaned or parked) cost about 60 000 instructions per exiting thread, the
 * largest part of framealloc's own cost in a program that keeps starting threads
 * (issue 9, fabench tchurn; a thread that made only 100 small blocks paid 70 000).
 * Instead the whole cache (its bins of ready blocks and its chunks, which may hold
 * live blocks handed to other threads) is parked as it is, and the next thread's
 * first refill adopts it: a copy and two stores per chunk, no walk over blocks,
 * and the new thread starts with warm bins and resident chunks. While a cache is
 * parked its chunks have no owner, so every free into them takes the remote path.
 * Memory stays bounded as before: a cache is parked only while its chunks and the
 * spare chunks together stay within FA_POOL_SPARE_MAX (a thread that held many
 * chunks is taken apart at exit as it used to be: blocks back to their chunks,
 * chunks orphaned or spare; without that bound mimalloc's test-stress at 16
 * threads took about 30 % less CPU time but up to a third more peak RSS). A cache parked
 * longer than FRAMEALLOC_POOL_DECAY_MS is taken apart when a cache is parked or
 * adopted or a thread looks for orphans; when all slots are taken the oldest is;
 * with FRAMEALLOC_POOL_DECAY_MS=0 nothing is parked. */

static void set_chunk_owner(fa_pool_chunk_t *c, fa_thread_t *t)
{
    if (t)
        c->owner_bin = &t->pool.bins[c->class_index];
    __atomic_store_n(&c->head.owner, t ? t->id : FA_OWNER_NONE, __ATOMIC_RELEASE);
}

/* Gives every chunk on pc's lists (not the empty list) to t, or to no thread when t
 * is NULL; returns how many there are. */
static uint32_t set_owner(fa_pool_cache_t *pc, fa_thread_t *t)
{
    uint32_t count = 0;
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        if (pc->current[cls]) {
            set_chunk_owner(pc->current[cls], t);
            count++;
        }
        for (fa_pool_chunk_t *c = first_chunk(&pc->avail[cls]); c; c = next_chunk(c))
            set_chunk_owner(c, t);
        for (fa_pool_chunk_t *c = first_chunk(&pc->full[cls]); c; c = next_chunk(c))
            set_chunk_owner(c, t);
        count += pc->avail[cls].count + pc->full[cls].count;
    }
    return count;
}

static void orphan_or_release(fa_pool_chunk_t *c)
{
    collect_remote(c);
    if (c->used == 0) {
        park_chunk(c);
        return;
    }
    c->list = FA_POOL_LIST_NONE;
    fa_chunk_orphan_put(&c->link, c->class_index);
}

/* Takes a cache apart (its empty list already made spares at thread exit): its
 * cached blocks go back to their chunks, and each chunk is orphaned (live blocks
 * left) or parked as a spare. No chunk is retired on the way: every one is orphaned
 * or parked here. */
static void tear_down(fa_pool_cache_t *pc)
{
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        for (fa_pool_block_t *b = pc->bins[cls].head, *next; b; b = next) {
            next = next_of(b);
            fa_pool_chunk_t *owner_chunk = (fa_pool_chunk_t *)fa_chunk_of(b);
            push(&owner_chunk->local_free, b);
            owner_chunk->local_free_count++;
            owner_chunk->used--;
        }
        fa_pool_chunk_t *c = pc->current[cls];
        if (c)
            orphan_or_release(c);
        while ((c = pop_chunk(&pc->avail[cls])))
            orphan_or_release(c);
        while ((c = pop_chunk(&pc->full[cls])))
            orphan_or_release(c);
    }
    FA_CHECK(2, fa_chunk_orphans_valid(FA_CHUNK_POOL));
}

/* Tears down the parked caches older than the decay (all of them when now is
 * UINT64_MAX). Call with parked_lock held. */
static FA_EVERY_PROCESS void expire_parked_locked(uint64_t now)
{
    uint64_t oldest = UINT64_MAX;
    for (int i = 0; i < FA_POOL_PARKED_MAX; i++) {
        parked_cache_t *slot = &parked[i];
        if (!slot->used)
            continue;
        if (now != UINT64_MAX && slot->since_ms + fa_settings.pool_decay_ms > now) {
            oldest = slot->since_ms < oldest ? slot->since_ms : oldest;
            continue;
        }
        slot->used = false;
        parked_count--;
        parked_chunks -= slot->chunks;
        tear_down(&slot->cache);
    }
    parked_oldest_ms = oldest;
}

/* The same, from a thread that holds no pool lock; cheap when nothing expired. */
static void expire_parked(uint64_t now)
{
    if (!__atomic_load_n(&parked_count, __ATOMIC_RELAXED) ||
        (now != UINT64_MAX && __atomic_load_n(&parked_oldest_ms, __ATOMIC_RELAXED) + fa_settings.pool_decay_ms > now))
        return;
    pthread_mutex_lock(&parked_lock);
    expire_parked_locked(now);
    pthread_mutex_unlock(&parked_lock);
}

/* Parks an exiting thread's cache (its counts already folded into the exited
 * totals, its empty list already spare); false when it is not kept: nothing on its
 * lists, too many chunks beside the spares, or FRAMEALLOC_POOL_DECAY_MS=0. Its
 * chunks have no owner afterwards either way. */
static bool park_cache(fa_pool_cache_t *pc)
{
    uint32_t chunks = set_owner(pc, NULL);
    if (!chunks || !fa_settings.pool_decay_ms)
        return false;
    uint64_t now = now_ms();
    pthread_mutex_lock(&parked_lock);
    expire_parked_locked(now);
    pthread_mutex_lock(&spare_lock);
    uint32_t kept = spares.count + parked_chunks;
    pthread_mutex_unlock(&spare_lock);
    if (kept + chunks > FA_POOL_SPARE_MAX) { /* too big to keep: taken apart as before */
        pthread_mutex_unlock(&parked_lock);
        return false;
    }
    parked_cache_t *slot = &parked[0]; /* a free slot, else the oldest */
    for (int i = 0; i < FA_POOL_PARKED_MAX; i++) {
        if (!parked[i].used) {
            slot = &parked[i];
            break;
        }
        if (parked[i].since_ms < slot->since_ms)
            slot = &parked[i];
    }
    if (slot->used) { /* all taken: the oldest makes room */
        parked_count--;
        parked_chunks -= slot->chunks;
        tear_down(&slot->cache);
    }
    slot->cache = *pc;
    slot->since_ms = now;
    slot->chunks = chunks;
    slot->used = true;
    parked_count++;
    parked_chunks += chunks;
    if (now < parked_oldest_ms)
        parked_oldest_ms = now;
    pthread_mutex_unlock(&parked_lock);
    return true;
}

/* A thread's first refill: it takes over the newest parked cache, if any. */
static void adopt_parked(fa_thread_t *t)
{
    t->pool.started = 1;
    if (!__atomic_load_n(&parked_count, __ATOMIC_RELAXED))
        return;
    uint64_t now = now_ms();
    pthread_mutex_lock(&parked_lock);
    expire_parked_locked(now);
    parked_cache_t *newest = NULL;
    for (int i = 0; i < FA_POOL_PARKED_MAX; i++)
        if (parked[i].used && (!newest || parked[i].since_ms > newest->since_ms))
            newest = &parked[i];
    if (newest) {
        t->pool = newest->cache;
        newest->used = false;
        parked_count--;
        parked_chunks -= newest->chunks;
    }
    pthread_mutex_unlock(&parked_lock);
    if (newest)
        set_owner(&t->pool, t);
}

/* True when c holds blocks freed back to it (by its owner or by other threads). */
static bool has_free_blocks(const fa_pool_chunk_t *c)
{
    return c->local_free || __atomic_load_n(&c->thread_free, __ATOMIC_RELAXED);
}

static bool has_room(const fa_pool_chunk_t *c) { return __atomic_load_n(&c->carved, __ATOMIC_RELAXED) < c->area; }

/* Puts the thread's current chunk of cls (if any) back on its owner list: with
 * room left to carve at the tail of avail, where it is found after every chunk
 * that has free blocks, else on full. */
static FA_EVERY_PROCESS void put_back_current(fa_thread_t *t, unsigned cls)
{
    fa_pool_chunk_t *c = t->pool.current[cls];
    if (!c)
        return;
    t->pool.current[cls] = NULL;
    if (!has_room(c)) {
        list_push(t, c, FA_POOL_LIST_FULL);
        return;
    }
    c->list = FA_POOL_LIST_AVAIL;
    fa_list_push_back(&t->pool.avail[cls], &c->link);
}

/* Makes c (off every list) current for cls and fills the thread's list from it. */
static FA_EVERY_PROCESS bool fill_from_current(fa_thread_t *t, unsigned cls, fa_pool_chunk_t *c)
{
    put_back_current(t, cls);
    t->pool.current[cls] = c;
    if (fill_from(t, c))
        return true;
    put_back_current(t, cls);
    return false;
}

/* Makes a chunk with free blocks current for cls and fills the thread's list.
 * Freed blocks are reused before fresh pages are carved: the current chunk's, then
 * those on the class's avail chunks, and only then the rest of a partly carved
 * chunk, blocks other threads freed into full chunks, a dead thread's chunk or a
 * new chunk. Carving first, as this did before, let a program whose
 * population fell and rose again (fabench W10's second level) fault in fresh pages
 * of every class's current chunk while the freed blocks of its other chunks stayed
 * unused: 1.5 MiB more peak RSS than its first level needed. */
static FA_EVERY_PROCESS bool refill(fa_thread_t *t, unsigned cls)
{
    fa_pool_cache_t *pc = &t->pool;
    fa_pool_chunk_t *c = pc->current[cls];
    if (c && has_free_blocks(c))
        return fill_from(t, c); /* always: it has blocks */
    for (c = first_chunk(&pc->avail[cls]); c; c = next_chunk(c)) {
        if (!has_free_blocks(c))
            continue; /* room only (put back at the tail) */
        list_remove(t, c);
        return fill_from_current(t, cls, c); /* always: it has blocks */
    }
    /* No freed block on the chunks at hand: carve. */
    c = pc->current[cls];
    if (c && fill_from(t, c))
        return true;
    while ((c = first_chunk(&pc->avail[cls]))) {
        list_remove(t, c);
        if (fill_from_current(t, cls, c))
            return true;
    }
    put_back_current(t, cls);
    /* Full chunks that other threads freed into: looked at only when nothing is
     * left to carve, as a program that only grows holds more and more full chunks
     * and a walk at every refill would cost it time quadratic in its size. */
    for (c = first_chunk(&pc->full[cls]); c; c = next_chunk(c)) {
        if (!__atomic_load_n(&c->thread_free, __ATOMIC_RELAXED))
            continue;
        list_remove(t, c);
        return fill_from_current(t, cls, c); /* always: only the owner empties thread_free */
    }
    if (__atomic_load_n(&parked_count, __ATOMIC_RELAXED))
        expire_parked(now_ms()); /* their chunks become orphans and spares */
    while ((c = adopt_orphan(t, cls))) {
        if (fill_from_current(t, cls, c))
            return true;
    }
    if (pc->empty.count > FA_POOL_EMPTY_RETAIN)
        release_expired(pc, now_ms());
    c = new_chunk(t, cls);
    if (!c)
        return false;
    pc->current[cls] = c;
    return fill_from(t, c);
}

/* ---- validation (FA_CHECK level 2, see self_check.h) ---- */

/* A chunk of t's for class cls, on the owner list it says it is on (or none). */
static bool own_chunk_valid(const fa_thread_t *t, const fa_pool_chunk_t *c, unsigned cls, uint8_t list)
{
    uint32_t n = 0;
    for (const fa_pool_block_t *b = c->local_free; b && n <= c->local_free_count; b = next_of(b))
        n++;
    return c->head.kind == FA_CHUNK_POOL && c->head.owner == t->id && c->class_index == cls && c->list == list &&
           c->owner_bin == &t->pool.bins[cls] && n == c->local_free_count &&
           __atomic_load_n(&c->carved, __ATOMIC_RELAXED) <= c->area && c->used <= c->area / c->block_size;
}

/* A well-formed owner list (chunk_list.h), every chunk valid. */
static bool own_list_valid(const fa_thread_t *t, const fa_list_t *l, unsigned cls, uint8_t list)
{
    if (!fa_list_valid(l))
        return false;
    for (const fa_pool_chunk_t *c = first_chunk(l); c; c = next_chunk(c))
        if (!own_chunk_valid(t, c, cls, list))
            return false;
    return true;
}

/* Everything t keeps for class cls: its bin holds exactly limit - room blocks (freed
 * or freshly carved), each the start of a block of one of t's chunks of the class,
 * and its chunk lists. */
static bool class_valid(const fa_thread_t *t, unsigned cls)
{
    const fa_pool_bin_t *bin = &t->pool.bins[cls];
    if (bin->room < 0 || bin->room > bin->limit)
        return false;
    int64_t n = 0;
    for (const fa_pool_block_t *b = bin->head; b; b = next_of(b), n++) {
        const fa_pool_chunk_t *c = (const fa_pool_chunk_t *)fa_chunk_of(b);
        if (n == bin->limit || c->head.kind != FA_CHUNK_POOL || c->head.owner != t->id || c->class_index != cls ||
            !fa_pool_is_block_start(c, b))
            return false;
    }
    const fa_pool_chunk_t *current = t->pool.current[cls];
    return n == bin->limit - bin->room && (!current || own_chunk_valid(t, current, cls, FA_POOL_LIST_NONE)) &&
           own_list_valid(t, &t->pool.avail[cls], cls, FA_POOL_LIST_AVAIL) &&
           own_list_valid(t, &t->pool.full[cls], cls, FA_POOL_LIST_FULL);
}

/* The class that serves size on thread t (attached by routing; a thread past its
 * exit gets the heap), or -1 when the pools do not serve it. FRAMEALLOC_POOL_MAX is
 * checked here, where a pool scope may also exceed it. */
static int serving_class(fa_thread_t *t, size_t size)
{
    if (t->state != FA_THREAD_LIVE)
        return -1;
    if (size > (fa_thread_intent(t) == FA_POOL ? FA_POOL_LARGEST : fa_settings.pool_max))
        return -1;
    return fa_pool_class_of[(size + 15) >> 4];
}

FA_EVERY_PROCESS void *fa_pool_alloc_slow(fa_thread_t *t, size_t size)
{
    int found = serving_class(t, size);
    if (found < 0)
        return NULL;
    unsigned cls = (unsigned)found;
    if (FA_UNLIKELY(!t->pool.started))
        adopt_parked(t);
    fa_pool_bin_t *bin = &t->pool.bins[cls];
    if (bin->head && !fa_pool_link_ok(bin->head))
        report_corrupt_link(bin->head); /* decoded from the link of the block popped before */
    if (!bin->head && !refill(t, cls))
        return NULL;
    FA_CHECK(2, class_valid(t, cls));
    return fa_pool_pop(t, cls * FA_POOL_BIN_WORDS);
}

/* ---- free ---- */

static bool list_contains(const fa_pool_block_t *list, const fa_pool_block_t *b)
{
    for (; list; list = next_of(list))
        if (list == b)
            return true;
    return false;
}

#define NOT_A_BLOCK_START "not the start of a pool block (a pointer into the middle of a block, or never allocated)"

FA_COLD static void report_bad_free(const char *what, const void *p, const char *why)
{
    fa_fatal_misuse(p, "%s(%p): %s", what, p, why);
}

FA_EVERY_PROCESS void fa_pool_check_pointer(const fa_pool_chunk_t *c, const void *p, const char *what)
{
    if (!fa_pool_is_block_start(c, p))
        report_bad_free(what, p, NOT_A_BLOCK_START);
    if (((const fa_pool_block_t *)p)->cookie == fa_pool_cookie())
        report_bad_free(what, p, "the pool block was already freed (use after free)");
}

/* The owner freeing a block whose cookie says "free": it is a double free if the
 * block is on one of the chunk's free lists (else the program's data only looked
 * like a cookie). */
static bool owner_holds_free(fa_thread_t *t, fa_pool_chunk_t *c, fa_pool_block_t *b)
{
    return list_contains(t->pool.bins[c->class_index].head, b) || list_contains(c->local_free, b) ||
           list_contains(__atomic_load_n(&c->thread_free, __ATOMIC_ACQUIRE), b);
}

/* Gives block b (whose cookie is set) back to its own chunk's list. */
static void return_to_chunk(fa_thread_t *t, fa_pool_block_t *b)
{
    fa_pool_chunk_t *c = (fa_pool_chunk_t *)fa_chunk_of(b);
    push(&c->local_free, b);
    c->local_free_count++;
    if (--c->used == 0 && c != t->pool.current[c->class_index]) {
        retire_empty(t, c);
        return;
    }
    if (c->list == FA_POOL_LIST_FULL) {
        list_remove(t, c);
        list_push(t, c, FA_POOL_LIST_AVAIL);
    }
}

/* Keeps the newest `keep` blocks of the class's cache (the warm ones) and gives the
 * older ones back to their chunks, where emptied chunks are noticed. */
/* Blocks on the bin: its limit minus its room (0 for a bin never filled). */
static uint32_t bin_count(const fa_pool_bin_t *bin) { return (uint32_t)(bin->limit - bin->room); }

/* All frees this thread made of class cls: its fast frees, derived (pool_cache.h),
 * and those its slow path counted. Read field by field (another thread may ask). */
static uint64_t thread_frees(const fa_pool_cache_t *pc, unsigned cls)
{
    const fa_pool_bin_t *bin = &pc->bins[cls];
    int64_t limit = __atomic_load_n(&bin->limit, __ATOMIC_RELAXED);
    int64_t room = __atomic_load_n(&bin->room, __ATOMIC_RELAXED);
    uint64_t fast = (uint64_t)(uint32_t)(limit - room) - __atomic_load_n(&pc->flow[cls].entered, __ATOMIC_RELAXED) +
                    __atomic_load_n(&pc->flow[cls].left, __ATOMIC_RELAXED) +
                    __atomic_load_n(&bin->allocs, __ATOMIC_RELAXED);
    return fast + __atomic_load_n(&pc->flow[cls].slow_frees, __ATOMIC_RELAXED);
}

static void flush_cache(fa_thread_t *t, unsigned cls, uint32_t keep)
{
    fa_pool_bin_t *bin = &t->pool.bins[cls];
    uint32_t count = bin_count(bin);
    if (count <= keep)
        return;
    fa_pool_block_t *old;
    if (keep == 0) {
        old = bin->head;
        bin->head = NULL;
    } else {
        fa_pool_block_t *last = bin->head;
        for (uint32_t i = 1; i < keep; i++)
            last = next_of(last);
        old = next_of(last);
        last->link = fa_pool_link_encode(last, NULL);
    }
    bin->room = bin->limit - (int64_t)keep;
    t->pool.flow[cls].left += count - keep;
    while (old) {
        fa_pool_block_t *next = next_of(old);
        return_to_chunk(t, old);
        old = next;
    }
}

static void free_remote(fa_pool_chunk_t *c, fa_pool_block_t *b)
{
    b->cookie = fa_pool_cookie();
    fa_pool_block_t *head = __atomic_load_n(&c->thread_free, __ATOMIC_RELAXED);
    do {
        b->link = fa_pool_link_encode(b, head);
    } while (!__atomic_compare_exchange_n(&c->thread_free, &head, b, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void fa_pool_free_slow(fa_thread_t *t, fa_pool_chunk_t *c, void *p)
{
    fa_pool_block_t *b = p;
    if (!fa_pool_is_block_start(c, p))
        report_bad_free("free", p, NOT_A_BLOCK_START);
    bool owner = __atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id;
    if (b->cookie == fa_pool_cookie() && (!owner || owner_holds_free(t, c, b)))
        report_bad_free("free", p, "double free of a pool block");
    unsigned cls = c->class_index;
    if (t->state == FA_THREAD_LIVE)
        t->pool.flow[cls].slow_frees++;
    else
        exited_frees[cls]++;
    if (!owner) {
        free_remote(c, b);
        return;
    }
    /* The owner's bin is full: keep its newest half (the warm blocks), give the
     * older ones back to their chunks, where emptied chunks are noticed. */
    fa_pool_bin_t *bin = &t->pool.bins[cls];
    if (bin->room <= 0)
        flush_cache(t, cls, bin_count(bin) / 2);
    b->cookie = fa_pool_cookie();
    push(&bin->head, b);
    bin->room--;
    t->pool.flow[cls].entered++;
    FA_CHECK(2, class_valid(t, cls));
}

void fa_pool_release_cached(fa_thread_t *t)
{
    /* The blocks the thread's bins hold go back to their chunks first: a chunk that
     * only they kept (up to about 256 KiB of blocks per class) then empties and goes
     * too, and so does an empty current chunk. */
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        flush_cache(t, cls, 0);
        fa_pool_chunk_t *c = t->pool.current[cls];
        if (c && c->used == 0) {
            put_back_current(t, cls);
            retire_empty(t, c);
        }
    }
    fa_chunk_release_all(&t->pool.empty);
    expire_parked(UINT64_MAX); /* before the spares: tearing down makes spares */
    pthread_mutex_lock(&spare_lock);
    fa_list_t expired = unlink_expired_spares(UINT64_MAX);
    pthread_mutex_unlock(&spare_lock);
    fa_chunk_release_all(&expired);
}

/* ---- recorded blocks (see fa_pool_alloc_recorded) ---- */

static pthread_mutex_t recorded_lock = PTHREAD_MUTEX_INITIALIZER;
static fa_list_t recorded_chunks[FA_POOL_CLASSES]; /* newest first */
static _Atomic uint64_t recorded_allocs[FA_POOL_CLASSES];
/* The owner_bin of recorded chunks: the fast free never reaches it (no owner). */
static fa_pool_bin_t recorded_bin;

/* One block of c: a freed one (their frees arrive as remote frees), else a new one. */
static fa_pool_block_t *take_recorded_block(fa_pool_chunk_t *c)
{
    if (!c->local_free)
        collect_remote(c);
    fa_pool_block_t *b = c->local_free;
    if (b) {
        c->local_free = next_of(b);
        c->local_free_count--;
        c->used++;
        return b;
    }
    uint64_t carved = __atomic_load_n(&c->carved, __ATOMIC_RELAXED);
    if (carved + c->block_size > c->area)
        return NULL;
    b = (fa_pool_block_t *)((char *)c + FA_POOL_DATA_OFFSET + carved);
    __atomic_store_n(&c->carved, carved + c->block_size, __ATOMIC_RELEASE);
    c->used++;
    return b;
}

static fa_pool_chunk_t *new_recorded_chunk(fa_thread_t *t, unsigned cls)
{
    fa_pool_chunk_t *c = fa_chunk_alloc(FA_CHUNK_POOL);
    if (!c)
        return NULL;
    set_link_bounds();
    init_chunk(t, c, cls);
    c->owner_bin = &recorded_bin;
    __atomic_store_n(&c->head.owner, FA_OWNER_RECORDS, __ATOMIC_RELEASE);
    fa_list_push_front(&recorded_chunks[cls], &c->link);
    return c;
}

void *fa_pool_alloc_recorded(fa_thread_t *t, size_t size)
{
    int found = serving_class(t, size);
    if (found < 0)
        return NULL;
    unsigned cls = (unsigned)found;
    fa_pool_block_t *b = NULL;
    pthread_mutex_lock(&recorded_lock);
    /* Recording is slow anyway (a stack per block): a walk over the class's chunks
     * for a free block is not what it costs. */
    for (fa_pool_chunk_t *c = first_chunk(&recorded_chunks[cls]); c && !b; c = next_chunk(c))
        b = take_recorded_block(c);
    fa_pool_chunk_t *c;
    if (!b && (c = new_recorded_chunk(t, cls)))
        b = take_recorded_block(c);
    if (b)
        recorded_allocs[cls]++;
    pthread_mutex_unlock(&recorded_lock);
    if (b)
        b->cookie = 0;
    return b;
}

/* ---- thread exit ---- */

/* Adds the cache's counts to the exited threads' and leaves counts that sum to
 * nothing (pool_cache.h's formula: the blocks on a bin entered it, none left), so
 * the thread that adopts the cache counts only its own. */
static void fold_counts(fa_pool_cache_t *pc)
{
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        exited_allocs[cls] += pc->bins[cls].allocs;
        exited_frees[cls] += thread_frees(pc, cls);
        pc->bins[cls].allocs = 0;
        pc->flow[cls] = (fa_pool_flow_t){.entered = bin_count(&pc->bins[cls])};
    }
}

FA_EVERY_PROCESS void fa_pool_thread_exit(fa_thread_t *t)
{
    fa_pool_cache_t *pc = &t->pool;
    fold_counts(pc);
    /* The emptied chunks become spares first: the cache is parked only if its
     * chunks fit beside them. */
    fa_pool_chunk_t *c;
    while ((c = pop_chunk(&pc->empty)))
        park_chunk(c);
    if (!park_cache(pc))
        tear_down(pc);
    memset(pc, 0, sizeof *pc);
}

/* ---- statistics and fork ---- */

static void add_counts(fa_pool_totals_t *out, unsigned cls, uint64_t allocs, uint64_t frees)
{
    out->allocs += allocs;
    out->frees += frees;
    out->class_allocs[cls] += allocs;
    out->class_live[cls] += allocs - frees; /* wraps per thread; the sum is right */
}

/* Read while the owner runs: each field is read once, so a sum taken during a
 * refill or flush may be off by that batch until the next call (as any counters
 * read without stopping the thread). Exact for the calling thread itself. */
void fa_pool_add_thread(const fa_thread_t *t, fa_pool_totals_t *out)
{
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++)
        add_counts(out, cls, __atomic_load_n(&t->pool.bins[cls].allocs, __ATOMIC_RELAXED), thread_frees(&t->pool, cls));
}

void fa_pool_add_exited(fa_pool_totals_t *out)
{
    out->live_bytes = 0;
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        add_counts(out, cls, exited_allocs[cls] + recorded_allocs[cls], exited_frees[cls]);
        out->live_bytes += out->class_live[cls] * fa_pool_class_size[cls];
    }
    out->chunks = fa_chunk_held(FA_CHUNK_POOL);
}

void fa_pool_fork_prepare(void)
{
    pthread_mutex_lock(&recorded_lock);
    pthread_mutex_lock(&parked_lock);
    pthread_mutex_lock(&spare_lock);
}

void fa_pool_fork_parent(void)
{
    pthread_mutex_unlock(&spare_lock);
    pthread_mutex_unlock(&parked_lock);
    pthread_mutex_unlock(&recorded_lock);
}

void fa_pool_fork_child(void)
{
    pthread_mutex_init(&spare_lock, NULL);
    pthread_mutex_init(&parked_lock, NULL);
    pthread_mutex_init(&recorded_lock, NULL);
}

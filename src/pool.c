/* Pool slow paths: refilling a thread's list (collect, carve, switch chunk, adopt
 * an orphan, take a new chunk), frees that miss the fast path, emptied chunks,
 * thread exit, and the misuse checks. */
#include "pool.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "framealloc.h"
#include "log.h"
#include "options.h"

enum { FA_POOL_LIST_NONE, FA_POOL_LIST_AVAIL, FA_POOL_LIST_FULL };

/* Emptied chunks a thread always keeps for reuse, however long they stay empty. */
#define FA_POOL_EMPTY_RETAIN 4

size_t fa_pool_max = 16384;
static uint64_t decay_ms = 1000;
uintptr_t fa_pool_secret;
uint8_t fa_pool_class_of[FA_POOL_LARGEST / 16 + 1];
uint32_t fa_pool_cache_limit[FA_POOL_CLASSES];

/* 16-byte steps to 128, then four classes per doubling (at most 25% slack). */
const uint32_t fa_pool_class_size[FA_POOL_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,   160,   192,   224,   256,
    320,  384,  448,  512,  640,  768,  896,  1024,  1280,  1536,  1792,  2048,
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
};

/* Chunks of exited threads that still hold live blocks, by class. */
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static fa_pool_chunk_t *orphans[FA_POOL_CLASSES];
static _Atomic uint64_t orphan_total;
static _Atomic uint64_t chunks_held;
static _Atomic uint64_t exited_allocs[FA_POOL_CLASSES], exited_frees[FA_POOL_CLASSES];

static uintptr_t make_secret(void)
{
    uintptr_t secret = 0;
    if (getrandom(&secret, sizeof secret, GRND_NONBLOCK) != sizeof secret) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        secret = (uintptr_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&ts;
    }
    return secret | 1; /* never 0, so a zeroed word is never a cookie */
}

/* Runs during init, before any thread can use pools: the class table starts all
 * zero, which sends every size to class 0, whose empty list misses into the slow
 * path, and the slow path initialises before it looks at the table again. */
void fa_pool_configure(void)
{
    fa_pool_max = (size_t)fa_option(FA_OPT_POOL_MAX);
    decay_ms = (uint64_t)fa_option(FA_OPT_POOL_DECAY_MS);
    if (!fa_pool_secret)
        fa_pool_secret = make_secret();
    /* About 64 KiB of ready blocks per class, 16 to 512 of them (like a tcache). */
    for (unsigned c = 0; c < FA_POOL_CLASSES; c++) {
        uint32_t limit = 65536 / fa_pool_class_size[c];
        fa_pool_cache_limit[c] = limit < 16 ? 16 : limit > 512 ? 512 : limit;
    }
    unsigned cls = 0;
    for (size_t i = 0; i <= FA_POOL_LARGEST / 16; i++) {
        size_t size = i ? i * 16 : 1;
        while (fa_pool_class_size[cls] < size)
            cls++;
        fa_pool_class_of[i] = (uint8_t)cls;
    }
}

/* ---- owner lists ---- */

static fa_pool_chunk_t **list_head(fa_thread_t *t, fa_pool_chunk_t *c)
{
    return c->list == FA_POOL_LIST_AVAIL ? &t->pool.avail[c->class_index] : &t->pool.full[c->class_index];
}

static void list_remove(fa_thread_t *t, fa_pool_chunk_t *c)
{
    if (c->list == FA_POOL_LIST_NONE)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        *list_head(t, c) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->list = FA_POOL_LIST_NONE;
}

static void list_push(fa_thread_t *t, fa_pool_chunk_t *c, uint8_t list)
{
    c->list = list;
    fa_pool_chunk_t **head = list_head(t, c);
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

/* ---- chunks ---- */

static void init_chunk(fa_thread_t *t, fa_pool_chunk_t *c, unsigned cls)
{
    c->head.kind = FA_CHUNK_POOL;
    c->block_size = fa_pool_class_size[cls];
    c->class_index = cls;
    c->div_magic = (uint32_t)((((uint64_t)1 << 32) + c->block_size - 1) / c->block_size);
    c->used = 0;
    c->local_free = NULL;
    c->local_free_count = 0;
    c->list = FA_POOL_LIST_NONE;
    c->next = c->prev = NULL;
    c->limit = (char *)c + FA_POOL_DATA_OFFSET +
               (FA_CHUNK_SIZE - FA_POOL_DATA_OFFSET) / c->block_size * c->block_size;
    __atomic_store_n(&c->carve, (char *)c + FA_POOL_DATA_OFFSET, __ATOMIC_RELAXED);
    __atomic_store_n(&c->thread_free, NULL, __ATOMIC_RELAXED);
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

static fa_pool_chunk_t *take_empty(fa_pool_cache_t *pc)
{
    fa_pool_chunk_t *c = pc->empty;
    if (!c)
        return NULL;
    pc->empty = c->next;
    if (pc->empty)
        pc->empty->prev = NULL;
    else
        pc->empty_oldest = NULL;
    pc->empty_count--;
    return c;
}

static void release_chunk(fa_pool_chunk_t *c)
{
    chunks_held--;
    fa_region_chunk_free(c);
}

static void release_expired(fa_pool_cache_t *pc, uint64_t now)
{
    fa_pool_chunk_t *c;
    while (pc->empty_count > FA_POOL_EMPTY_RETAIN && (c = pc->empty_oldest) && c->empty_since_ms + decay_ms <= now) {
        pc->empty_oldest = c->prev;
        pc->empty_oldest->next = NULL;
        pc->empty_count--;
        release_chunk(c);
    }
}

static fa_pool_chunk_t *new_chunk(fa_thread_t *t, unsigned cls)
{
    fa_pool_chunk_t *c = take_empty(&t->pool);
    if (!c) {
        c = fa_thread_chunk_alloc(t, FA_CHUNK_POOL);
        if (!c)
            return NULL;
        chunks_held++;
    }
    init_chunk(t, c, cls);
    return c;
}

static void retire_empty(fa_thread_t *t, fa_pool_chunk_t *c)
{
    list_remove(t, c);
    if (t->state != FA_THREAD_LIVE) {
        release_chunk(c);
        return;
    }
    fa_pool_cache_t *pc = &t->pool;
    uint64_t now = now_ms();
    c->empty_since_ms = now;
    c->prev = NULL;
    c->next = pc->empty;
    if (pc->empty)
        pc->empty->prev = c;
    else
        pc->empty_oldest = c;
    pc->empty = c;
    pc->empty_count++;
    release_expired(pc, now);
}

/* Takes the blocks other threads freed into c. */
static void collect_remote(fa_pool_chunk_t *c)
{
    fa_pool_block_t *b = __atomic_exchange_n(&c->thread_free, NULL, __ATOMIC_ACQUIRE);
    while (b) {
        fa_pool_block_t *next = b->next;
        b->next = c->local_free;
        c->local_free = b;
        c->local_free_count++;
        c->used--;
        b = next;
    }
}

/* Moves c's free blocks (local list, else a carved batch) into the thread's list.
 * Returns false when c has none. */
static bool fill_from(fa_thread_t *t, fa_pool_chunk_t *c)
{
    unsigned cls = c->class_index;
    if (!c->local_free)
        collect_remote(c);
    if (c->local_free) {
        t->pool.free[cls] = c->local_free;
        t->pool.free_count[cls] = c->local_free_count;
        c->used += c->local_free_count;
        c->local_free = NULL;
        c->local_free_count = 0;
        return true;
    }
    char *carve = __atomic_load_n(&c->carve, __ATOMIC_RELAXED);
    if (carve >= c->limit)
        return false;
    /* About 16 KiB at a time (at least one block), so pages are touched only as
     * they are needed, also for the large classes. */
    size_t size = c->block_size;
    size_t count = 16384 / size ? 16384 / size : 1;
    size_t room = (size_t)(c->limit - carve) / size;
    if (count > room)
        count = room;
    fa_pool_block_t *first = (fa_pool_block_t *)carve;
    for (size_t i = 0; i + 1 < count; i++)
        ((fa_pool_block_t *)(carve + i * size))->next = (fa_pool_block_t *)(carve + (i + 1) * size);
    ((fa_pool_block_t *)(carve + (count - 1) * size))->next = NULL;
    __atomic_store_n(&c->carve, carve + count * size, __ATOMIC_RELEASE);
    c->used += (uint32_t)count;
    t->pool.free[cls] = first;
    t->pool.free_count[cls] = (uint32_t)count;
    return true;
}

static fa_pool_chunk_t *adopt_orphan(fa_thread_t *t, unsigned cls)
{
    if (!orphan_total)
        return NULL;
    pthread_mutex_lock(&orphan_lock);
    fa_pool_chunk_t *c = orphans[cls];
    if (c) {
        orphans[cls] = c->next;
        orphan_total--;
    }
    pthread_mutex_unlock(&orphan_lock);
    if (!c)
        return NULL;
    c->next = c->prev = NULL;
    c->list = FA_POOL_LIST_NONE;
    __atomic_store_n(&c->head.owner, t->id, __ATOMIC_RELEASE);
    return c;
}

/* Makes a chunk with free blocks current for cls and fills the thread's list. */
static bool refill(fa_thread_t *t, unsigned cls)
{
    fa_pool_cache_t *pc = &t->pool;
    fa_pool_chunk_t *c = pc->current[cls];
    if (c && fill_from(t, c))
        return true;
    if (c)
        list_push(t, c, FA_POOL_LIST_FULL);
    pc->current[cls] = NULL;
    /* Own chunks with local free blocks or room, then full ones that other threads
     * freed into, then a dead thread's chunk, then a new chunk. */
    while ((c = pc->avail[cls])) {
        list_remove(t, c);
        pc->current[cls] = c;
        if (fill_from(t, c))
            return true;
        list_push(t, c, FA_POOL_LIST_FULL);
        pc->current[cls] = NULL;
    }
    for (c = pc->full[cls]; c; c = c->next) {
        if (!__atomic_load_n(&c->thread_free, __ATOMIC_RELAXED))
            continue;
        list_remove(t, c);
        pc->current[cls] = c;
        if (fill_from(t, c)) /* always: only the owner empties thread_free */
            return true;
        list_push(t, c, FA_POOL_LIST_FULL);
        pc->current[cls] = NULL;
        break;
    }
    while ((c = adopt_orphan(t, cls))) {
        pc->current[cls] = c;
        if (fill_from(t, c))
            return true;
        list_push(t, c, FA_POOL_LIST_FULL);
        pc->current[cls] = NULL;
    }
    if (pc->empty_count > FA_POOL_EMPTY_RETAIN)
        release_expired(pc, now_ms());
    c = new_chunk(t, cls);
    if (!c)
        return false;
    pc->current[cls] = c;
    return fill_from(t, c);
}

void *fa_pool_alloc_slow(fa_thread_t *t, size_t size)
{
    if (t->state != FA_THREAD_LIVE && !fa_thread_attach(t))
        return NULL;
    /* The first call may have initialised the library: re-check FRAMEALLOC_POOL_MAX. */
    if (size > (fa_thread_intent(t) == FA_POOL ? FA_POOL_LARGEST : fa_pool_max))
        return NULL;
    unsigned cls = fa_pool_class_of[(size + 15) >> 4];
    if (!t->pool.free[cls] && !refill(t, cls))
        return NULL;
    return fa_pool_alloc(t, size);
}

/* ---- free ---- */

static bool list_contains(const fa_pool_block_t *list, const fa_pool_block_t *b)
{
    for (; list; list = list->next)
        if (list == b)
            return true;
    return false;
}

FA_COLD static void report_bad_free(const char *what, const void *p, const char *why)
{
    fa_fatal("%s(%p): %s", what, p, why);
}

void fa_pool_check_pointer(const fa_pool_chunk_t *c, const void *p, const char *what)
{
    if (!fa_pool_is_block_start(c, p))
        report_bad_free(what, p, "not the start of a pool block (a pointer into the middle of a block, or never allocated)");
    if (((const fa_pool_block_t *)p)->cookie == ((uintptr_t)p ^ fa_pool_secret))
        report_bad_free(what, p, "block was already freed (use after free)");
}

/* The owner freeing a block whose cookie says "free": it is a double free if the
 * block is on one of the chunk's free lists (else the program's data only looked
 * like a cookie). */
static bool owner_holds_free(fa_thread_t *t, fa_pool_chunk_t *c, fa_pool_block_t *b)
{
    return list_contains(t->pool.free[c->class_index], b) || list_contains(c->local_free, b) ||
           list_contains(__atomic_load_n(&c->thread_free, __ATOMIC_ACQUIRE), b);
}

/* Gives block b (whose cookie is set) back to its own chunk's list. */
static void return_to_chunk(fa_thread_t *t, fa_pool_block_t *b)
{
    fa_pool_chunk_t *c = (fa_pool_chunk_t *)fa_chunk_of(b);
    b->next = c->local_free;
    c->local_free = b;
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
static void flush_cache(fa_thread_t *t, unsigned cls, uint32_t keep)
{
    fa_pool_cache_t *pc = &t->pool;
    fa_pool_block_t **link = &pc->free[cls];
    for (uint32_t i = 0; i < keep && *link; i++)
        link = &(*link)->next;
    fa_pool_block_t *old = *link;
    *link = NULL;
    pc->free_count[cls] = keep;
    while (old) {
        fa_pool_block_t *next = old->next;
        return_to_chunk(t, old);
        old = next;
    }
}

static void free_remote(fa_pool_chunk_t *c, fa_pool_block_t *b, uintptr_t cookie)
{
    b->cookie = cookie;
    fa_pool_block_t *head = __atomic_load_n(&c->thread_free, __ATOMIC_RELAXED);
    do {
        b->next = head;
    } while (!__atomic_compare_exchange_n(&c->thread_free, &head, b, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

void fa_pool_free_slow(fa_thread_t *t, fa_pool_chunk_t *c, void *p)
{
    fa_pool_block_t *b = p;
    uintptr_t cookie = (uintptr_t)b ^ fa_pool_secret;
    if (!fa_pool_is_block_start(c, p))
        report_bad_free("free", p, "not the start of a pool block (a pointer into the middle of a block, or never allocated)");
    bool owner = __atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id;
    if (b->cookie == cookie && (!owner || owner_holds_free(t, c, b)))
        report_bad_free("free", p, "double free of a pool block");
    unsigned cls = c->class_index;
    /* A thread that only frees is attached here so its counts are summed. */
    if (t->state == FA_THREAD_LIVE || fa_thread_attach(t))
        t->pool.frees[cls]++;
    else
        exited_frees[cls]++;
    if (!owner) {
        free_remote(c, b, cookie);
        return;
    }
    b->cookie = cookie;
    b->next = t->pool.free[cls];
    t->pool.free[cls] = b;
    if (++t->pool.free_count[cls] > fa_pool_cache_limit[cls])
        flush_cache(t, cls, t->pool.free_count[cls] / 2);
}

void fa_pool_release_cached(fa_thread_t *t)
{
    fa_pool_chunk_t *c;
    while ((c = take_empty(&t->pool)))
        release_chunk(c);
}

/* ---- thread exit ---- */

static void orphan_or_release(fa_pool_chunk_t *c)
{
    collect_remote(c);
    if (c->used == 0) {
        release_chunk(c);
        return;
    }
    c->list = FA_POOL_LIST_NONE;
    c->prev = NULL;
    __atomic_store_n(&c->head.owner, FA_OWNER_NONE, __ATOMIC_RELEASE);
    pthread_mutex_lock(&orphan_lock);
    c->next = orphans[c->class_index];
    orphans[c->class_index] = c;
    orphan_total++;
    pthread_mutex_unlock(&orphan_lock);
}

void fa_pool_thread_exit(fa_thread_t *t)
{
    fa_pool_cache_t *pc = &t->pool;
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        /* The cached blocks go back to their chunks first; none is retired here,
         * every chunk is orphaned or released below. */
        fa_pool_chunk_t *c = pc->current[cls];
        for (fa_pool_block_t *b = pc->free[cls], *next; b; b = next) {
            next = b->next;
            fa_pool_chunk_t *owner_chunk = (fa_pool_chunk_t *)fa_chunk_of(b);
            b->next = owner_chunk->local_free;
            owner_chunk->local_free = b;
            owner_chunk->local_free_count++;
            owner_chunk->used--;
        }
        pc->free[cls] = NULL;
        if (c)
            orphan_or_release(c);
        fa_pool_chunk_t *next;
        for (c = pc->avail[cls]; c; c = next) {
            next = c->next;
            orphan_or_release(c);
        }
        for (c = pc->full[cls]; c; c = next) {
            next = c->next;
            orphan_or_release(c);
        }
        exited_allocs[cls] += pc->allocs[cls];
        exited_frees[cls] += pc->frees[cls];
    }
    for (fa_pool_chunk_t *c = pc->empty, *next; c; c = next) {
        next = c->next;
        release_chunk(c);
    }
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

void fa_pool_add_thread(const fa_thread_t *t, fa_pool_totals_t *out)
{
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++)
        add_counts(out, cls, __atomic_load_n(&t->pool.allocs[cls], __ATOMIC_RELAXED),
                   __atomic_load_n(&t->pool.frees[cls], __ATOMIC_RELAXED));
}

void fa_pool_add_exited(fa_pool_totals_t *out)
{
    out->live_bytes = 0;
    for (unsigned cls = 0; cls < FA_POOL_CLASSES; cls++) {
        add_counts(out, cls, exited_allocs[cls], exited_frees[cls]);
        out->live_bytes += out->class_live[cls] * fa_pool_class_size[cls];
    }
    out->chunks = chunks_held;
}

void fa_pool_fork_prepare(void) { pthread_mutex_lock(&orphan_lock); }
void fa_pool_fork_parent(void) { pthread_mutex_unlock(&orphan_lock); }
void fa_pool_fork_child(void) { pthread_mutex_init(&orphan_lock, NULL); }

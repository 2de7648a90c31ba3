/* Frame arena slow paths: chunk hand-out, frame sync and recycling, escapes,
 * orphaned chunks of exited threads, and the checks behind free. */
#include "frame.h"

#include <pthread.h>
#include <string.h>

#include "debug.h"
#include "log.h"
#include "options.h"
#include "os.h"

_Atomic uint64_t fa_frame_number;
size_t fa_frame_max = 65536;
bool fa_frame_strict;
bool fa_frame_rewind = true;
static uint64_t frames_in_flight = 1;
static uint32_t spare_retain = 1;

/* Chunks of exited threads that still held live blocks. */
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static fa_frame_chunk_t *orphans;
static _Atomic uint64_t orphan_count;
static _Atomic uint64_t chunks_held;
static _Atomic uint64_t exited_allocs, exited_bytes, exited_escapes;

void fa_frame_configure(void)
{
    fa_frame_max = (size_t)fa_option(FA_OPT_FRAME_MAX);
    fa_frame_strict = fa_option(FA_OPT_FRAME_MODE) == 1;
    frames_in_flight = (uint64_t)fa_option(FA_OPT_FRAMES_IN_FLIGHT);
    /* Giving freed bytes back early would hide a use after free from the protect mode. */
    fa_frame_rewind = frames_in_flight == 1 && !(fa_debug_flags & FA_DEBUG_PROTECT);
    spare_retain = (uint32_t)fa_option(FA_OPT_FRAME_RETAIN);
}

static char *data_start(fa_frame_chunk_t *c) { return (char *)c + FA_FRAME_DATA_OFFSET; }

static size_t used_words(fa_frame_chunk_t *c)
{
    size_t used = (size_t)(__atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE) - (char *)c);
    return (used + 1023) >> 10;
}

/* Branch-free popcount: __builtin_popcountll is a libgcc call without -mpopcnt. */
static uint64_t popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

static uint64_t live_bits(fa_frame_chunk_t *c, size_t i)
{
    uint64_t freed = __atomic_load_n(&c->bits[i].freed_local, __ATOMIC_RELAXED) |
                     __atomic_load_n(&c->freed_remote[i], __ATOMIC_ACQUIRE);
    return __atomic_load_n(&c->bits[i].starts, __ATOMIC_RELAXED) & ~freed;
}

/* Live blocks in c. The usual answer is 0, found without counting. */
static uint64_t count_live(fa_frame_chunk_t *c)
{
    size_t words = used_words(c);
    uint64_t any = 0;
    for (size_t i = 0; i < words; i++)
        any |= live_bits(c, i);
    if (!any)
        return 0;
    uint64_t live = 0;
    for (size_t i = 0; i < words; i++)
        live += popcount(live_bits(c, i));
    return live;
}

/* Makes a recycled chunk empty again; only called when nothing in it is live. */
static void reset_chunk(fa_frame_chunk_t *c)
{
    size_t words = used_words(c);
    if (fa_debug_flags & FA_DEBUG_POISON)
        memset(data_start(c), FA_POISON_BYTE, (size_t)(__atomic_load_n(&c->used_end, __ATOMIC_RELAXED) - data_start(c)));
    memset(c->bits, 0, words * sizeof c->bits[0]);
    for (size_t i = 0; i < words; i++)
        __atomic_store_n(&c->freed_remote[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->used_end, data_start(c), __ATOMIC_RELAXED);
}

static void release_chunk(fa_frame_chunk_t *c)
{
    chunks_held--;
    fa_region_chunk_free(c);
}

static void set_data_access(fa_frame_chunk_t *c, bool accessible)
{
    fa_os_protect(data_start(c), FA_CHUNK_SIZE - FA_FRAME_DATA_OFFSET, accessible);
}

static void push_spare(fa_frame_arena_t *a, fa_frame_chunk_t *c)
{
    reset_chunk(c);
    c->next = a->spare;
    a->spare = c;
    a->spare_count++;
}

static bool start_chunk(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c = a->spare;
    if (c) {
        a->spare = c->next;
        a->spare_count--;
    } else {
        c = fa_thread_chunk_alloc(t);
        if (!c)
            return false;
        chunks_held++;
        c->head.kind = FA_CHUNK_FRAME;
        __atomic_store_n(&c->used_end, data_start(c), __ATOMIC_RELAXED);
    }
    __atomic_store_n(&c->head.owner, t->id, __ATOMIC_RELAXED);
    c->next = NULL;
    a->chunk = c;
    a->bump = data_start(c);
    a->end = (char *)c + FA_CHUNK_SIZE;
    a->taken_this_frame++;
    return true;
}

/* Moves the current chunk to the retired list, stamped with the last frame its
 * allocations can belong to. An unused current chunk stays current. */
static void retire_current(fa_frame_arena_t *a, uint64_t stamp)
{
    fa_frame_chunk_t *c = a->chunk;
    if (!c)
        return;
    if (a->bump == data_start(c))
        return;
    c->stamp = stamp;
    c->next = NULL;
    if (a->retired_tail)
        a->retired_tail->next = c;
    else
        a->retired_head = c;
    a->retired_tail = c;
    a->chunk = NULL;
    a->bump = a->end = NULL;
}

static void reclaim_orphans(void)
{
    if (!orphan_count || pthread_mutex_trylock(&orphan_lock) != 0)
        return;
    fa_frame_chunk_t **link = &orphans;
    while (*link) {
        fa_frame_chunk_t *c = *link;
        if (count_live(c) == 0) {
            *link = c->next;
            orphan_count--;
            release_chunk(c);
        } else {
            link = &c->next;
        }
    }
    pthread_mutex_unlock(&orphan_lock);
}

static void recycle(fa_thread_t *t, uint64_t now)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c;
    while ((c = a->retired_head) && c->stamp + frames_in_flight <= now) {
        a->retired_head = c->next;
        if (!a->retired_head)
            a->retired_tail = NULL;
        uint64_t live = fa_frame_strict ? 0 : count_live(c);
        if (live == 0 && (fa_debug_flags & FA_DEBUG_PROTECT)) {
            /* Kept inaccessible for a few frames: a use after its frame faults. */
            set_data_access(c, false);
            c->quarantined_at = now;
            c->next = NULL;
            if (a->quarantine_tail)
                a->quarantine_tail->next = c;
            else
                a->quarantine_head = c;
            a->quarantine_tail = c;
        } else if (live == 0) {
            push_spare(a, c);
        } else {
            a->escapes += live;
            c->next = a->escaped;
            a->escaped = c;
        }
    }
    while ((c = a->quarantine_head) && c->quarantined_at + FA_PROTECT_FRAMES <= now) {
        a->quarantine_head = c->next;
        if (!a->quarantine_head)
            a->quarantine_tail = NULL;
        set_data_access(c, true);
        push_spare(a, c);
    }
    for (fa_frame_chunk_t **link = &a->escaped; (c = *link);) {
        if (count_live(c) == 0) {
            *link = c->next;
            push_spare(a, c);
        } else {
            link = &c->next;
        }
    }
    reclaim_orphans();
}

/* Keeps as many spare chunks as the recent frames needed, plus FRAME_RETAIN, and
 * gives the rest back to the OS: a loading spike's memory returns within a few frames. */
static void trim_spares(fa_frame_arena_t *a)
{
    a->recent_need[a->need_slot] = a->taken_this_frame;
    a->need_slot = (a->need_slot + 1) % (sizeof a->recent_need / sizeof a->recent_need[0]);
    a->taken_this_frame = 0;
    uint32_t need = 0;
    for (size_t i = 0; i < sizeof a->recent_need / sizeof a->recent_need[0]; i++)
        if (a->recent_need[i] > need)
            need = a->recent_need[i];
    while (a->spare_count > need + spare_retain) {
        fa_frame_chunk_t *c = a->spare;
        a->spare = c->next;
        a->spare_count--;
        release_chunk(c);
    }
}

static void sync_frame(fa_thread_t *t, uint64_t now, uint64_t stamp)
{
    fa_frame_arena_t *a = &t->frame;
    if (now == a->synced_frame)
        return;
    retire_current(a, stamp);
    recycle(t, now);
    trim_spares(a);
    a->synced_frame = now;
}

void *fa_frame_alloc_slow(fa_thread_t *t, size_t n, size_t align)
{
    if (n == 0)
        n = 1;
    if (n > fa_frame_max || align > FA_FRAME_MAX_ALIGN)
        return NULL;
    if (t->state != FA_THREAD_LIVE && !fa_thread_attach(t))
        return NULL;
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    /* Still inside a frame scope: what is in the current chunk may be from now. */
    sync_frame(t, now, now);
    size_t need = (n + FA_FRAME_GRANULE - 1) & ~(size_t)(FA_FRAME_GRANULE - 1);
    for (;;) {
        if (a->chunk) {
            char *p = (char *)(((uintptr_t)a->bump + align - 1) & ~(uintptr_t)(align - 1));
            if (p <= a->end && need <= (size_t)(a->end - p)) {
                a->bump = p + need;
                a->allocs++;
                a->bytes += need;
                fa_frame_mark_start(a->chunk, p, p + need);
                return p;
            }
            retire_current(a, now);
        }
        if (!start_chunk(t))
            return NULL;
    }
}

static bool is_live_start(fa_frame_chunk_t *c, const void *p, size_t *word, uint64_t *bit)
{
    size_t off = (size_t)((const char *)p - (const char *)c);
    *word = off >> 10;
    *bit = 1ULL << ((off >> 4) & 63);
    if ((off & 15) || off < FA_FRAME_DATA_OFFSET || (const char *)p >= __atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE))
        return false;
    uint64_t freed = __atomic_load_n(&c->bits[*word].freed_local, __ATOMIC_RELAXED) |
                     __atomic_load_n(&c->freed_remote[*word], __ATOMIC_RELAXED);
    return (__atomic_load_n(&c->bits[*word].starts, __ATOMIC_RELAXED) & ~freed & *bit) != 0;
}

FA_COLD static void report_bad_pointer(const char *what, const void *p)
{
    fa_fatal("%s(%p): not a live frame allocation (double free, or a pointer into the middle of a block)", what, p);
}

void fa_frame_free_slow(fa_thread_t *t, fa_frame_chunk_t *c, void *p)
{
    size_t w;
    uint64_t bit;
    if (!is_live_start(c, p, &w, &bit))
        report_bad_pointer("free", p);
    if (__atomic_load_n(&c->head.owner, __ATOMIC_RELAXED) == t->id) {
        __atomic_store_n(&c->bits[w].freed_local, c->bits[w].freed_local | bit, __ATOMIC_RELAXED);
        return;
    }
    uint64_t before = __atomic_fetch_or(&c->freed_remote[w], bit, __ATOMIC_RELEASE);
    if (before & bit)
        report_bad_pointer("free", p);
}

/* Offset of the first block start after the granule at off, or limit. */
static size_t next_start(fa_frame_chunk_t *c, size_t off, size_t limit)
{
    size_t g = (off >> 4) + 1;
    size_t last = limit >> 4;
    while (g < last) {
        uint64_t bits = __atomic_load_n(&c->bits[g >> 6].starts, __ATOMIC_RELAXED) >> (g & 63);
        if (bits) {
            size_t found = g + (size_t)__builtin_ctzll(bits);
            return found < last ? found << 4 : limit;
        }
        g = (g | 63) + 1;
    }
    return limit;
}

static size_t block_size(fa_frame_chunk_t *c, const void *p)
{
    size_t off = (size_t)((const char *)p - (const char *)c);
    size_t limit = (size_t)(__atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE) - (char *)c);
    return next_start(c, off, limit) - off;
}

size_t fa_frame_usable_size(fa_frame_chunk_t *c, const void *p)
{
    size_t w;
    uint64_t bit;
    if (!fa_frame_strict && !is_live_start(c, p, &w, &bit))
        report_bad_pointer("malloc_usable_size", p);
    return block_size(c, p);
}

bool fa_frame_resize_in_place(fa_thread_t *t, fa_frame_chunk_t *c, void *p, size_t n)
{
    size_t w;
    uint64_t bit;
    if (!fa_frame_strict && !is_live_start(c, p, &w, &bit))
        report_bad_pointer("realloc", p);
    size_t have = block_size(c, p);
    fa_frame_arena_t *a = &t->frame;
    bool newest = c == a->chunk && (char *)p + have == a->bump;
    if (!newest)
        return n <= have;
    if (n == 0 || n > fa_frame_max)
        return false;
    size_t need = (n + FA_FRAME_GRANULE - 1) & ~(size_t)(FA_FRAME_GRANULE - 1);
    if (need > (size_t)(a->end - (char *)p))
        return false;
    a->bump = (char *)p + need;
    a->bytes += need - have;
    __atomic_store_n(&c->used_end, a->bump, __ATOMIC_RELEASE);
    return true;
}

void fa_frame_release_spares(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    while (a->spare) {
        fa_frame_chunk_t *c = a->spare;
        a->spare = c->next;
        a->spare_count--;
        release_chunk(c);
    }
}

void fa_frame_end_now(fa_thread_t *t)
{
    /* A main loop may end frames before it ever allocates: initialise first, so
     * that the settings (frame log, frames in flight) are read before use. */
    fa_thread_attach(t);
    uint64_t before = __atomic_fetch_add(&fa_frame_number, 1, __ATOMIC_ACQ_REL);
    if (t->state == FA_THREAD_LIVE)
        sync_frame(t, before + 1, before);
}

void fa_frame_on_intent_change(fa_thread_t *t, bool from_frame, bool to_frame)
{
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    if (from_frame)
        t->frame.scope_end_frame = now;
    if (to_frame && t->state == FA_THREAD_LIVE)
        sync_frame(t, now, from_frame ? now : t->frame.scope_end_frame);
}

static void orphan_or_release(fa_frame_chunk_t *c)
{
    if (fa_frame_strict || count_live(c) == 0) {
        release_chunk(c);
        return;
    }
    __atomic_store_n(&c->head.owner, FA_OWNER_NONE, __ATOMIC_RELEASE);
    pthread_mutex_lock(&orphan_lock);
    c->next = orphans;
    orphans = c;
    orphan_count++;
    pthread_mutex_unlock(&orphan_lock);
}

void fa_frame_thread_exit(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c, *next;
    if (a->chunk)
        orphan_or_release(a->chunk);
    for (c = a->retired_head; c; c = next) {
        next = c->next;
        orphan_or_release(c);
    }
    for (c = a->escaped; c; c = next) {
        next = c->next;
        orphan_or_release(c);
    }
    for (c = a->spare; c; c = next) {
        next = c->next;
        release_chunk(c);
    }
    for (c = a->quarantine_head; c; c = next) {
        next = c->next;
        set_data_access(c, true);
        release_chunk(c);
    }
    exited_allocs += a->allocs;
    exited_bytes += a->bytes;
    exited_escapes += a->escapes;
    memset(a, 0, sizeof *a);
}

uint64_t fa_frame_chunks_held(void) { return chunks_held; }

void fa_frame_exited_totals(uint64_t *allocs, uint64_t *bytes, uint64_t *escapes)
{
    *allocs = exited_allocs;
    *bytes = exited_bytes;
    *escapes = exited_escapes;
}

void fa_frame_fork_prepare(void) { pthread_mutex_lock(&orphan_lock); }
void fa_frame_fork_parent(void) { pthread_mutex_unlock(&orphan_lock); }
void fa_frame_fork_child(void) { pthread_mutex_init(&orphan_lock, NULL); }

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

static char *chunk_end(fa_frame_chunk_t *c) { return (char *)c + FA_CHUNK_SIZE; }

/* Bitmap words that can hold start bits: up to used_end, or all in a partial chunk. */
static size_t used_words(fa_frame_chunk_t *c)
{
    if (c->partial)
        return FA_FRAME_WORDS;
    size_t used = (size_t)(__atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE) - (char *)c);
    return (used + 1023) >> 10;
}

static bool has_start(const fa_frame_chunk_t *c, size_t g) { return (c->bits[g >> 6].starts >> (g & 63)) & 1; }

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
    if (fa_debug_flags & FA_DEBUG_POISON) {
        char *end = c->partial ? chunk_end(c) : __atomic_load_n(&c->used_end, __ATOMIC_RELAXED);
        memset(data_start(c), FA_POISON_BYTE, (size_t)(end - data_start(c)));
    }
    memset(c->bits, 0, words * sizeof c->bits[0]);
    for (size_t i = 0; i < words; i++)
        __atomic_store_n(&c->freed_remote[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&c->used_end, data_start(c), __ATOMIC_RELAXED);
    c->partial = 0;
    c->carried_count = 0;
    c->carried_total = 0;
}

/* ---- partial chunks: reusing the gaps around escaped blocks ---- */

static bool granule_live(fa_frame_chunk_t *c, size_t g) { return (live_bits(c, g >> 6) >> (g & 63)) & 1; }

/* Escapes already counted among the live blocks: the carried-over blocks still
 * alive (exact when they were all listed, else at most as many as were carried). */
static uint64_t carried_alive(fa_frame_chunk_t *c, uint64_t live)
{
    if (c->carried_total > c->carried_count)
        return live < c->carried_total ? live : c->carried_total;
    uint64_t alive = 0;
    for (uint16_t i = 0; i < c->carried_count; i++)
        alive += granule_live(c, c->carried[i]);
    return alive;
}

/* Rewrites the bitmaps of a chunk whose live blocks stay: dead starts go, each gap
 * gets a fence. Returns whether its gaps are worth refilling. Only the owner calls it. */
static bool make_partial(fa_frame_chunk_t *c, uint64_t live)
{
    size_t words = used_words(c);
    char *newest_end = __atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE);
    /* Built aside and published word by word: other threads freeing carried blocks
     * read these words meanwhile, and a live block's bits are the same in both. */
    uint64_t seen_remote[FA_FRAME_WORDS];
    uint64_t starts[FA_FRAME_WORDS], live_mask[FA_FRAME_WORDS];
    uint64_t new_starts[FA_FRAME_WORDS] = {0}, new_freed[FA_FRAME_WORDS] = {0};
    for (size_t i = 0; i < words; i++) {
        seen_remote[i] = __atomic_load_n(&c->freed_remote[i], __ATOMIC_ACQUIRE);
        starts[i] = c->bits[i].starts;
        live_mask[i] = starts[i] & ~(c->bits[i].freed_local | seen_remote[i]);
    }
    const size_t first = FA_FRAME_DATA_OFFSET / FA_FRAME_GRANULE, last = FA_CHUNK_SIZE / FA_FRAME_GRANULE;
    size_t gap = first;   /* start of the current gap, or SIZE_MAX inside a live block */
    size_t last_live = SIZE_MAX;
    uint32_t largest = 0;
    c->carried_count = 0;
    c->carried_total = (uint32_t)live;
    for (size_t i = 0; i < words; i++) {
        for (uint64_t bits = starts[i]; bits; bits &= bits - 1) {
            size_t g = i * 64 + (size_t)__builtin_ctzll(bits);
            if (!((live_mask[i] >> (g & 63)) & 1)) {
                if (gap == SIZE_MAX)
                    gap = g; /* a dead block right after a live one: the live one ends here */
                continue;
            }
            if (gap != SIZE_MAX && gap < g) {
                new_starts[gap >> 6] |= 1ULL << (gap & 63);
                new_freed[gap >> 6] |= 1ULL << (gap & 63);
                if ((g - gap) * FA_FRAME_GRANULE > largest)
                    largest = (uint32_t)((g - gap) * FA_FRAME_GRANULE);
            }
            new_starts[i] |= 1ULL << (g & 63);
            if (c->carried_count < FA_FRAME_CARRIED_MAX)
                c->carried[c->carried_count++] = (uint16_t)g;
            gap = SIZE_MAX;
            last_live = g;
        }
    }
    /* The tail: after the newest live block ends (used_end bounds it when it was
     * the chunk's newest), everything is a gap. */
    if (gap == SIZE_MAX && last_live != SIZE_MAX) {
        char *end = newest_end > (char *)c + last_live * FA_FRAME_GRANULE ? newest_end : chunk_end(c);
        gap = (size_t)(end - (char *)c) / FA_FRAME_GRANULE;
    }
    if (gap < last) {
        new_starts[gap >> 6] |= 1ULL << (gap & 63);
        new_freed[gap >> 6] |= 1ULL << (gap & 63);
        if ((last - gap) * FA_FRAME_GRANULE > largest)
            largest = (uint32_t)((last - gap) * FA_FRAME_GRANULE);
    }
    size_t new_words = gap < last && (gap >> 6) >= words ? (gap >> 6) + 1 : words;
    for (size_t i = 0; i < new_words; i++) {
        __atomic_store_n(&c->bits[i].starts, new_starts[i], __ATOMIC_RELEASE);
        __atomic_store_n(&c->bits[i].freed_local, new_freed[i], __ATOMIC_RELEASE);
    }
    /* Frees seen above are folded in; one racing with us stays set and counts later. */
    for (size_t i = 0; i < words; i++)
        if (seen_remote[i])
            __atomic_fetch_and(&c->freed_remote[i], ~seen_remote[i], __ATOMIC_RELAXED);
    c->partial = 1;
    c->largest_gap = largest;
    __atomic_store_n(&c->used_end, data_start(c), __ATOMIC_RELEASE);
    return largest >= FA_FRAME_MIN_GAP;
}

/* Moves the arena's bump range to the next gap of the current partial chunk that
 * holds need bytes, after the current range. */
static bool enter_next_gap(fa_frame_arena_t *a, size_t need)
{
    fa_frame_chunk_t *c = a->chunk;
    const size_t last = FA_CHUNK_SIZE / FA_FRAME_GRANULE;
    size_t g = (size_t)(a->end - (char *)c) / FA_FRAME_GRANULE;
    while (g < last) {
        size_t w = g >> 6;
        uint64_t fences = c->bits[w].starts & c->bits[w].freed_local & (~0ULL << (g & 63));
        if (!fences) {
            g = (w + 1) * 64;
            continue;
        }
        size_t fence = w * 64 + (size_t)__builtin_ctzll(fences);
        size_t end = fence + 1;
        while (end < last && !has_start(c, end))
            end++;
        if ((end - fence) * FA_FRAME_GRANULE >= need) {
            uint64_t keep = ~(1ULL << (fence & 63));
            __atomic_store_n(&c->bits[fence >> 6].starts, c->bits[fence >> 6].starts & keep, __ATOMIC_RELAXED);
            __atomic_store_n(&c->bits[fence >> 6].freed_local, c->bits[fence >> 6].freed_local & keep,
                             __ATOMIC_RELAXED);
            a->bump = (char *)c + fence * FA_FRAME_GRANULE;
            a->end = (char *)c + end * FA_FRAME_GRANULE;
            return true;
        }
        g = end;
    }
    return false;
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

/* A partial chunk whose largest gap holds need bytes, taken off the list. */
static fa_frame_chunk_t *take_partial(fa_frame_arena_t *a, size_t need)
{
    for (fa_frame_chunk_t **link = &a->partial; *link; link = &(*link)->next) {
        fa_frame_chunk_t *c = *link;
        if (c->largest_gap >= need) {
            *link = c->next;
            return c;
        }
    }
    return NULL;
}

static bool start_chunk(fa_thread_t *t, size_t need)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c = take_partial(a, need);
    if (c) {
        /* An empty range at the start: the slow path moves into the first gap. */
        c->next = NULL;
        a->chunk = c;
        a->bump = a->end = data_start(c);
        a->taken_this_frame++;
        return true;
    }
    c = a->spare;
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
    if (!c->partial && a->bump == data_start(c))
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
        if (live)
            a->escapes += live - carried_alive(c, live);
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
        } else if (make_partial(c, live)) {
            c->next = a->partial;
            a->partial = c;
        } else {
            c->next = a->escaped; /* no gap worth refilling: kept until its blocks are freed */
            a->escaped = c;
        }
    }
    for (fa_frame_chunk_t **link = &a->partial; (c = *link);) {
        if (count_live(c) == 0) {
            *link = c->next;
            push_spare(a, c);
        } else {
            link = &c->next;
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
            if (a->chunk->partial && enter_next_gap(a, need + align - 1))
                continue;
            retire_current(a, now);
        }
        if (!start_chunk(t, need + align - 1))
            return NULL;
    }
}

static bool is_live_start(fa_frame_chunk_t *c, const void *p, size_t *word, uint64_t *bit)
{
    size_t off = (size_t)((const char *)p - (const char *)c);
    *word = off >> 10;
    *bit = 1ULL << ((off >> 4) & 63);
    if ((off & 15) || off < FA_FRAME_DATA_OFFSET || off >= FA_CHUNK_SIZE)
        return false;
    uint64_t freed = __atomic_load_n(&c->bits[*word].freed_local, __ATOMIC_RELAXED) |
                     __atomic_load_n(&c->freed_remote[*word], __ATOMIC_RELAXED);
    return (__atomic_load_n(&c->bits[*word].starts, __ATOMIC_RELAXED) & ~freed & *bit) != 0;
}

FA_COLD static void report_bad_pointer(const char *what, const void *p)
{
    fa_fatal("%s(%p): not a live frame allocation (double free, or a pointer into the middle of a block)", what, p);
}

void fa_frame_free_last_in_word(fa_thread_t *t, fa_frame_chunk_t *c, void *p)
{
    size_t off = (size_t)((char *)p - (char *)c);
    size_t w = off >> 10;
    uint64_t bit = 1ULL << ((off >> 4) & 63);
    fa_frame_arena_t *a = &t->frame;
    /* The newest block: below the bump pointer with no start between them (a partial
     * chunk can hold older blocks above it), and not with more than one frame in
     * flight, where frame memory must outlive the frame. */
    if (fa_frame_rewind && c == a->chunk && (char *)p < a->bump && (size_t)(a->bump - 1 - (char *)c) >> 10 == w) {
        __atomic_store_n(&c->bits[w].starts, c->bits[w].starts & ~bit, __ATOMIC_RELAXED);
        a->bump = p;
        __atomic_store_n(&c->used_end, (char *)p, __ATOMIC_RELEASE);
        return;
    }
    __atomic_store_n(&c->bits[w].freed_local, c->bits[w].freed_local | bit, __ATOMIC_RELAXED);
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

/* To the next start bit; used_end bounds the newest block (blocks above it, in a
 * partial chunk, are bounded by start bits and fences alone). */
static size_t block_size(fa_frame_chunk_t *c, const void *p)
{
    size_t off = (size_t)((const char *)p - (const char *)c);
    const char *newest_end = __atomic_load_n(&c->used_end, __ATOMIC_ACQUIRE);
    size_t limit = newest_end > (const char *)p ? (size_t)(newest_end - (char *)c) : FA_CHUNK_SIZE;
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

static void orphan_or_release_list(fa_frame_chunk_t *c)
{
    for (fa_frame_chunk_t *next; c; c = next) {
        next = c->next;
        orphan_or_release(c);
    }
}

void fa_frame_thread_exit(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c, *next;
    if (a->chunk) {
        a->chunk->next = NULL;
        orphan_or_release_list(a->chunk);
    }
    orphan_or_release_list(a->retired_head);
    orphan_or_release_list(a->escaped);
    orphan_or_release_list(a->partial);
    /* Nothing is live in spare or quarantined chunks. */
    for (c = a->quarantine_head; c; c = next) {
        next = c->next;
        set_data_access(c, true);
        release_chunk(c);
    }
    for (c = a->spare; c; c = next) {
        next = c->next;
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

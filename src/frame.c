/* Frame arena slow paths: generations and their recycling, bump ranges in fresh
 * chunks and in the gaps around escaped blocks, frees that are not the fast path's
 * (other generations, other threads, misuse), orphaned chunks of exited threads.
 * The block header format and the invariants are in frame.h. */
#include "frame.h"

#include <sched.h>
#include <string.h>

#include "chunk_cache.h"
#include "debug.h"
#include "framealloc.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "self_check.h"

FA_EVERY_PROCESS_DATA _Atomic uint64_t fa_frame_number;
FA_EVERY_PROCESS_DATA uint64_t fa_frame_secret;

/* Generation sequence numbers, never reused; 0 means "no generation". */
static _Atomic uint64_t next_seq = 1;

static _Atomic uint64_t exited_allocs, exited_bytes, exited_escapes;

/* "Another thread freed into your chunks": set by a remote free for the chunk's
 * owner, taken by the owner at its next sync, so a sync with nothing to apply does
 * not look at every chunk's list. Threads share a flag when their ids collide,
 * which only costs a look. */
#define REMOTE_FLAGS 64
static struct {
    _Alignas(64) _Atomic uint8_t set;
} remote_flags[REMOTE_FLAGS];

FA_EVERY_PROCESS void fa_frame_configure(void)
{
    if (!fa_frame_secret)
        fa_frame_secret = fa_os_random64();
    fa_region_check_frame_frees(!fa_settings.frame_strict);
}

/* ---- the arena lock (see frame_arena.h) ---- */

static void lock_arena(fa_frame_arena_t *a)
{
    while (__atomic_exchange_n(&a->lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static bool try_lock_arena(fa_frame_arena_t *a) { return !__atomic_exchange_n(&a->lock, 1, __ATOMIC_ACQUIRE); }

static void unlock_arena(fa_frame_arena_t *a) { __atomic_store_n(&a->lock, 0, __ATOMIC_RELEASE); }

/* ---- headers ---- */

#define SPAN_MASK ((uint64_t)0xffff0)
/* Bits that are zero in every well-formed decoded header. */
#define RESERVED_MASK ((uint64_t)0xf | (uint64_t)0x8 << 20)

static uint64_t key_of(uint64_t seq) { return fa_frame_secret ^ (seq << FA_FRAME_SEQ_SHIFT); }

static char *first_slot(fa_frame_chunk_t *c) { return (char *)c + FA_FRAME_DATA_OFFSET + FA_FRAME_HEADER; }

/* The last 8 bytes of a chunk hold no block: headers sit 8 bytes below a multiple of 16. */
static char *slot_limit(fa_frame_chunk_t *c) { return (char *)c + FA_CHUNK_SIZE - FA_FRAME_HEADER; }

static uint64_t *header_at(char *slot) { return (uint64_t *)slot; }

/* The header decoded with the secret alone: span | state | seq << 24. */
static uint64_t decode(char *slot)
{
    uint64_t h = __atomic_load_n(header_at(slot), __ATOMIC_RELAXED);
    return h ^ (uintptr_t)(slot + FA_FRAME_HEADER) ^ fa_frame_secret;
}

static uint64_t span_of(uint64_t decoded) { return decoded & SPAN_MASK; }
static uint64_t state_of(uint64_t decoded) { return decoded & (FA_FRAME_FREED | FA_FRAME_PENDING); }
static uint64_t seq_of(uint64_t decoded) { return decoded >> FA_FRAME_SEQ_SHIFT; }

static void write_header(char *slot, uint64_t span, uint64_t state, uint64_t seq)
{
    __atomic_store_n(header_at(slot), (uintptr_t)(slot + FA_FRAME_HEADER) ^ span ^ state ^ key_of(seq),
                     __ATOMIC_RELAXED);
}

/* A header that a walk can step over: a plausible span inside the chunk. */
static bool well_formed(fa_frame_chunk_t *c, char *slot, uint64_t decoded)
{
    uint64_t span = span_of(decoded);
    return !(decoded & RESERVED_MASK) && span >= 16 && span <= (uint64_t)(slot_limit(c) - slot) &&
           seq_of(decoded) != 0 && seq_of(decoded) < __atomic_load_n(&next_seq, __ATOMIC_RELAXED);
}

/* ---- chunk lists (chunk_list.h; a chunk's link is in its header) ---- */

static fa_frame_chunk_t *first_chunk(const fa_list_t *l) { return fa_chunk_at(l->head); }
static fa_frame_chunk_t *next_chunk(const fa_frame_chunk_t *c) { return fa_chunk_at(c->link.next); }
static fa_frame_chunk_t *pop_chunk(fa_list_t *l) { return fa_chunk_at(fa_list_pop_front(l)); }

/* ---- chunks ---- */

static void set_data_access(fa_frame_chunk_t *c, bool accessible)
{
    fa_os_protect((char *)c + FA_FRAME_DATA_OFFSET, FA_CHUNK_SIZE - FA_FRAME_DATA_OFFSET, accessible);
}

static void push_spare(fa_frame_arena_t *a, fa_frame_chunk_t *c)
{
    if (fa_settings.debug & FA_DEBUG_POISON)
        memset(first_slot(c), FA_POISON_BYTE, (size_t)(slot_limit(c) - first_slot(c)));
    c->live = 0;
    fa_list_push_front(&a->spare, &c->link);
}

/* A chunk whose blocks are all dead: a spare, or inaccessible for a few frames
 * under FRAMEALLOC_DEBUG=protect, so that a use after its frame faults. */
static void retire_empty(fa_frame_arena_t *a, fa_frame_chunk_t *c, uint64_t now)
{
    if (!(fa_settings.debug & FA_DEBUG_PROTECT)) {
        push_spare(a, c);
        return;
    }
    set_data_access(c, false);
    c->quarantined_at = now;
    fa_list_push_back(&a->quarantine, &c->link);
}

static fa_frame_chunk_t *new_chunk(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c = pop_chunk(&a->spare);
    if (!c) {
        c = fa_chunk_alloc(FA_CHUNK_FRAME);
        if (!c)
            return NULL;
        __atomic_store_n(&c->head.owner, t->id, __ATOMIC_RELAXED);
    }
    c->live = 0;
    a->taken_this_frame++;
    return c;
}

/* ---- walks ---- */

/* The live count of a chunk never reused: a header in it did not decode (or, for an
 * orphan, it was not walked yet). */
#define LIVE_FOREVER (UINT64_MAX / 2)

FA_COLD static void report_overwritten(fa_frame_chunk_t *c, char *slot)
{
    static int reported;
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
        return;
    fa_log("error: the frame block header at %p was overwritten (a write past the end of the block before "
           "it); its chunk %p is kept and never reused (reported once)",
           (void *)slot, (void *)c);
}

/* Steps over the dead runs before a live block: each becomes one FREED block. */
static void close_run(char *run, char *end, uint64_t seq, uint32_t *largest)
{
    uint64_t span = (uint64_t)(end - run);
    write_header(run, span, FA_FRAME_FREED, seq);
    if (span > *largest)
        *largest = (uint32_t)span;
}

/* Counts the chunk's live blocks (pending remote frees count as live until applied)
 * into c->live, and makes each dead run one FREED block (a gap). Returns how many
 * live blocks belong to generations first..last. A header that does not decode
 * stops the walk: the chunk is then kept forever. */
static uint64_t walk_chunk(fa_frame_chunk_t *c, uint64_t first, uint64_t last)
{
    uint64_t live = 0, own = 0;
    uint64_t filler_seq = last ? last : 1;
    uint32_t largest = 0;
    char *run = NULL;
    for (char *slot = first_slot(c), *limit = slot_limit(c); slot < limit;) {
        uint64_t d = decode(slot);
        if (!well_formed(c, slot, d)) {
            report_overwritten(c, slot);
            c->live = LIVE_FOREVER;
            c->largest_gap = 0;
            return own;
        }
        if (state_of(d) == FA_FRAME_FREED) {
            if (!run)
                run = slot;
        } else {
            if (run)
                close_run(run, slot, filler_seq, &largest);
            run = NULL;
            live++;
            own += seq_of(d) - first <= last - first;
        }
        slot += span_of(d);
    }
    if (run && live)
        close_run(run, slot_limit(c), filler_seq, &largest);
    c->live = live;
    c->largest_gap = largest;
    return own;
}

/* The first gap at or after slot that holds need bytes, or NULL. */
static char *find_gap(fa_frame_chunk_t *c, char *slot, uint64_t need)
{
    for (char *limit = slot_limit(c); slot < limit;) {
        uint64_t d = decode(slot);
        if (!well_formed(c, slot, d))
            return NULL;
        if (state_of(d) == FA_FRAME_FREED && span_of(d) >= need)
            return slot;
        slot += span_of(d);
    }
    return NULL;
}

/* The block holding addr in c, or NULL (c's data readable meanwhile). */
static char *block_at(fa_frame_chunk_t *c, const char *addr)
{
    for (char *slot = first_slot(c), *limit = slot_limit(c); slot < limit;) {
        uint64_t d = decode(slot);
        if (!well_formed(c, slot, d))
            return NULL;
        if (addr < slot + span_of(d))
            return addr >= slot + FA_FRAME_HEADER ? slot + FA_FRAME_HEADER : NULL;
        slot += span_of(d);
    }
    return NULL;
}

bool fa_frame_fault_at(const char *addr, char **block, uint64_t *quarantined_at)
{
    if (!fa_region_is_frame(addr) || !fa_region_frame_chunk_mapped(addr))
        return false;
    fa_frame_chunk_t *c = (fa_frame_chunk_t *)fa_chunk_of(addr);
    if (c->head.kind != FA_CHUNK_FRAME || (size_t)(addr - (const char *)c) < FA_FRAME_DATA_OFFSET)
        return false;
    /* Readable only for the walk, so the faulting access still faults afterwards. */
    set_data_access(c, true);
    *block = block_at(c, addr);
    set_data_access(c, false);
    *quarantined_at = c->quarantined_at;
    return true;
}

/* ---- generations ---- */

static fa_frame_gen_t *gen_at(fa_frame_arena_t *a, uint32_t i) { return &a->gens[(a->gen_first + i) % FA_FRAME_GENS]; }

static fa_frame_gen_t *find_gen(fa_frame_arena_t *a, uint64_t seq)
{
    for (uint32_t i = 0; i < a->gen_count; i++)
        if (seq - gen_at(a, i)->first <= gen_at(a, i)->last - gen_at(a, i)->first)
            return gen_at(a, i);
    return NULL;
}

/* Counts a free the owner applies to a block of generation seq in chunk c. */
static void count_free(fa_frame_arena_t *a, fa_frame_chunk_t *c, uint64_t seq)
{
    fa_frame_gen_t *g;
    if (a->key && seq == a->seq)
        a->freed++;
    else if ((g = find_gen(a, seq)))
        g->freed++;
    else
        c->live--; /* an escaped block of a recycled generation */
}

/* Applies the frees other threads pushed on c's list. */
static void apply_remote(fa_frame_arena_t *a, fa_frame_chunk_t *c)
{
    uint64_t *p = __atomic_exchange_n(&c->remote, NULL, __ATOMIC_ACQUIRE);
    while (p) {
        uint64_t *next = *(uint64_t **)p;
        char *slot = (char *)(p - 1);
        uint64_t d = decode(slot);
        __atomic_fetch_xor(header_at(slot), FA_FRAME_PENDING | FA_FRAME_FREED, __ATOMIC_RELAXED);
        if (a)
            count_free(a, c, seq_of(d));
        p = next;
    }
}

static void apply_remote_list(fa_frame_arena_t *a, const fa_list_t *l)
{
    for (fa_frame_chunk_t *c = first_chunk(l); c; c = next_chunk(c))
        if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED))
            apply_remote(a, c);
}

static void flag_remote_free(uint64_t owner)
{
    __atomic_store_n(&remote_flags[owner % REMOTE_FLAGS].set, 1, __ATOMIC_RELEASE);
}

/* True when another thread may have freed into owner's chunks since the last call. */
static bool take_remote_flag(uint64_t owner)
{
    _Atomic uint8_t *flag = &remote_flags[owner % REMOTE_FLAGS].set;
    return __atomic_load_n(flag, __ATOMIC_RELAXED) && __atomic_exchange_n(flag, 0, __ATOMIC_ACQUIRE);
}

/* Applies the remote frees in the chunks of finished generations and escapes. */
static void apply_finished_remote(fa_frame_arena_t *a)
{
    for (uint32_t i = 0; i < a->gen_count; i++)
        apply_remote_list(a, &gen_at(a, i)->chunks);
    apply_remote_list(a, &a->escaped);
}

/* Ends the current bump range: the rest of it becomes one FREED block, so the
 * chunk stays walkable. */
static void leave_range(fa_frame_arena_t *a)
{
    if (!a->bump)
        return;
    if (a->bump < a->end)
        write_header(a->bump - FA_FRAME_HEADER, (uint64_t)(a->end - a->bump), FA_FRAME_FREED, a->seq);
    a->bytes += (uint64_t)(a->bump - a->range_start);
    a->bump = a->end = a->range_start = NULL;
    a->chunk = NULL;
}

static void enter_range(fa_frame_arena_t *a, fa_frame_chunk_t *c, char *slot, char *end)
{
    a->chunk = c;
    a->bump = a->range_start = slot + FA_FRAME_HEADER;
    a->end = end + FA_FRAME_HEADER;
}

static void start_generation(fa_frame_arena_t *a)
{
    a->seq = __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED);
    a->key = key_of(a->seq);
    a->free_key = a->key ^ (fa_settings.frame_rewind ? 0 : 8);
    a->made = a->freed = 0;
    a->chunks = (fa_list_t){0};
    a->chunks_have_escapes = false;
}

/* Moves the current generation to the ring, stamped with the last frame its blocks
 * can belong to. */
static void retire_current(fa_frame_arena_t *a, uint64_t stamp)
{
    if (!a->key)
        return;
    leave_range(a);
    __atomic_store_n(&a->allocs, a->allocs + a->made, __ATOMIC_RELAXED);
    if (a->gen_count == FA_FRAME_GENS) {
        /* Many generations in a few frames (large scopes end theirs): the newest
         * entry takes this one too, and is recycled when both could be. */
        fa_frame_gen_t *g = gen_at(a, a->gen_count - 1);
        fa_list_splice_front(&g->chunks, &a->chunks);
        g->has_escapes |= a->chunks_have_escapes;
        g->last = a->seq;
        g->made += a->made;
        g->freed += a->freed;
        g->stamp = stamp > g->stamp ? stamp : g->stamp;
    } else {
        *gen_at(a, a->gen_count++) = (fa_frame_gen_t){
            .first = a->seq,
            .last = a->seq,
            .stamp = stamp,
            .made = a->made,
            .freed = a->freed,
            .chunks = a->chunks,
            .has_escapes = a->chunks_have_escapes};
    }
    a->key = a->free_key = a->seq = a->made = a->freed = 0;
    a->chunks = (fa_list_t){0};
    a->chunks_have_escapes = false;
}

/* A generation whose frame is recycled. Nothing alive (equal counts and no older
 * escapes among its chunks, or strict mode): all its chunks become spares at once,
 * with no work per chunk or per byte. Otherwise its chunks are walked: live blocks
 * stay, and the space around them becomes gaps. */
static void recycle_generation(fa_frame_arena_t *a, fa_frame_gen_t *g, uint64_t now)
{
    bool empty = fa_settings.frame_strict || (g->made == g->freed && !g->has_escapes);
    if (empty && !(fa_settings.debug & (FA_DEBUG_POISON | FA_DEBUG_PROTECT))) {
        fa_list_splice_front(&a->spare, &g->chunks);
        return;
    }
    uint64_t escapes = 0;
    fa_frame_chunk_t *c;
    while ((c = pop_chunk(&g->chunks))) {
        if (!empty)
            escapes += walk_chunk(c, g->first, g->last);
        if (empty || c->live == 0)
            retire_empty(a, c, now);
        else
            fa_list_push_front(&a->escaped, &c->link);
    }
    if (escapes)
        __atomic_store_n(&a->escapes, a->escapes + escapes, __ATOMIC_RELAXED);
}

static void recycle_due(fa_frame_arena_t *a, uint64_t now)
{
    fa_frame_gen_t *g;
    while (a->gen_count && (g = gen_at(a, 0))->stamp + fa_settings.frames_in_flight <= now) {
        recycle_generation(a, g, now);
        a->gen_first = (a->gen_first + 1) % FA_FRAME_GENS;
        a->gen_count--;
    }
}

/* Escaped chunks whose blocks have all been freed become spares. */
static void sweep_escaped(fa_frame_arena_t *a, uint64_t now)
{
    for (fa_frame_chunk_t *c = first_chunk(&a->escaped), *next; c; c = next) {
        next = next_chunk(c);
        if (c->live == 0) {
            fa_list_remove(&a->escaped, &c->link);
            retire_empty(a, c, now);
        }
    }
}

static void expire_quarantine(fa_frame_arena_t *a, uint64_t now)
{
    fa_frame_chunk_t *c;
    while ((c = first_chunk(&a->quarantine)) && c->quarantined_at + FA_PROTECT_FRAMES <= now) {
        fa_list_remove(&a->quarantine, &c->link);
        set_data_access(c, true);
        push_spare(a, c);
    }
}

/* Keeps as many spare chunks as the recent frames needed, plus FRAME_RETAIN, and
 * gives the rest back to the OS: a loading spike's memory returns within a few frames. */
static void trim_spares(fa_frame_arena_t *a)
{
    const size_t slots = sizeof a->recent_need / sizeof a->recent_need[0];
    a->recent_need[a->need_slot] = a->taken_this_frame;
    a->need_slot = (a->need_slot + 1) % slots;
    a->taken_this_frame = 0;
    uint32_t need = 0;
    for (size_t i = 0; i < slots; i++)
        if (a->recent_need[i] > need)
            need = a->recent_need[i];
    if (a->spare.count > need + fa_settings.frame_retain)
        fa_chunk_release_beyond(&a->spare, need + fa_settings.frame_retain);
}

/* ---- validation (FA_CHECK level 2, see self_check.h) ---- */

/* A well-formed list (chunk_list.h) of frame chunks of owner. */
static bool list_valid(const fa_list_t *l, uint64_t owner)
{
    if (!fa_list_valid(l))
        return false;
    for (const fa_frame_chunk_t *c = first_chunk(l); c; c = next_chunk(c))
        if (c->head.kind != FA_CHUNK_FRAME || c->head.owner != owner)
            return false;
    return true;
}

/* Well-formed headers tile [from, to) exactly (a chunk whose walk failed is exempt). */
static bool tiled(fa_frame_chunk_t *c, char *from, char *to)
{
    if (c->live == LIVE_FOREVER)
        return true;
    while (from < to) {
        uint64_t d = decode(from);
        if (!well_formed(c, from, d))
            return false;
        from += span_of(d);
    }
    return from == to;
}

static bool chunks_tiled(const fa_list_t *l)
{
    for (fa_frame_chunk_t *c = first_chunk(l); c; c = next_chunk(c))
        if (!tiled(c, first_slot(c), slot_limit(c)))
            return false;
    return true;
}

/* The current generation and its bump range (only the owner may look: its fast
 * paths change them without the lock). after: every finished sequence number. */
static bool current_valid(const fa_frame_arena_t *a, uint64_t owner, uint64_t after)
{
    if (!a->key)
        return !a->chunks.head && !a->bump && !a->made;
    if (a->key != key_of(a->seq) || a->seq <= after || a->freed > a->made || !list_valid(&a->chunks, owner))
        return false;
    if (!a->bump)
        return true;
    fa_frame_chunk_t *c = a->chunk, *in = first_chunk(&a->chunks);
    while (in && in != c)
        in = next_chunk(in);
    return in && first_slot(c) + FA_FRAME_HEADER <= a->range_start && a->range_start <= a->bump &&
           a->bump <= a->end && a->end <= slot_limit(c) + FA_FRAME_HEADER &&
           tiled(c, first_slot(c), a->bump - FA_FRAME_HEADER) && tiled(c, a->end - FA_FRAME_HEADER, slot_limit(c));
}

/* Every invariant of frame.h that can be checked from t's arena, with its lock held.
 * by_owner: t itself is asking, so its current generation is checked too. */
static bool arena_valid(fa_thread_t *t, bool by_owner)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t last_seq = 0;
    if (a->gen_count > FA_FRAME_GENS)
        return false;
    for (uint32_t i = 0; i < a->gen_count; i++) {
        const fa_frame_gen_t *g = gen_at(a, i);
        if (g->first <= last_seq || g->last < g->first || g->freed > g->made || !list_valid(&g->chunks, t->id) ||
            !chunks_tiled(&g->chunks))
            return false;
        last_seq = g->last;
    }
    for (fa_frame_chunk_t *c = first_chunk(&a->escaped); c; c = next_chunk(c))
        if (c->live == 0)
            return false;
    return list_valid(&a->escaped, t->id) && chunks_tiled(&a->escaped) && list_valid(&a->spare, t->id) &&
           list_valid(&a->quarantine, t->id) && (!by_owner || current_valid(a, t->id, last_seq));
}

/* ---- orphans ---- */

/* An orphan goes back to the region once its frame is recycled and nothing in it
 * is alive; it is walked again only when another thread freed something in it. */
static bool orphan_done(fa_frame_chunk_t *c, uint64_t now)
{
    if (c->stamp + fa_settings.frames_in_flight > now)
        return false;
    if (fa_settings.frame_strict)
        return true;
    if (c->live && !__atomic_load_n(&c->remote, __ATOMIC_ACQUIRE))
        return false;
    apply_remote(NULL, c);
    walk_chunk(c, 0, 0); /* no generation's escapes are counted (seq 0 is none) */
    return c->live == 0;
}

/* Frame orphans are kept in one bin (chunk_cache.h). */
#define ORPHAN_BIN 0

static void reclaim_orphans(uint64_t now)
{
    fa_list_t *orphans;
    if (!fa_chunk_orphans_any(FA_CHUNK_FRAME) || !(orphans = fa_chunk_orphans_try_lock(FA_CHUNK_FRAME, ORPHAN_BIN)))
        return;
    for (fa_frame_chunk_t *c = first_chunk(orphans), *next; c; c = next) {
        next = next_chunk(c);
        if (orphan_done(c, now)) {
            fa_chunk_orphan_remove(FA_CHUNK_FRAME, orphans, &c->link);
            fa_chunk_release(c);
        }
    }
    fa_chunk_orphans_unlock(FA_CHUNK_FRAME);
}

/* Hands every chunk of l to the orphans, stamped with the last frame its blocks can
 * belong to; their live counts are unknown until walked. */
static void orphan_all(fa_list_t *l, uint64_t stamp)
{
    fa_frame_chunk_t *c;
    while ((c = pop_chunk(l))) {
        c->stamp = stamp;
        c->live = LIVE_FOREVER;
        fa_chunk_orphan_put(&c->link, ORPHAN_BIN);
    }
}

/* ---- sync ---- */

static void sync_frame(fa_thread_t *t, uint64_t now, uint64_t stamp)
{
    fa_frame_arena_t *a = &t->frame;
    if (now == a->synced_frame)
        return;
    retire_current(a, stamp);
    if (take_remote_flag(t->id))
        apply_finished_remote(a);
    recycle_due(a, now);
    if (a->escaped.head)
        sweep_escaped(a, now);
    if (a->quarantine.head)
        expire_quarantine(a, now);
    trim_spares(a);
    reclaim_orphans(now);
    a->synced_frame = now;
    FA_CHECK(2, arena_valid(t, true));
}

static void sync_frame_locked(fa_thread_t *t, uint64_t now, uint64_t stamp)
{
    lock_arena(&t->frame);
    sync_frame(t, now, stamp);
    unlock_arena(&t->frame);
}

static bool holds_chunks(const fa_frame_arena_t *a)
{
    return a->key || a->gen_count || a->escaped.head || a->spare.head || a->quarantine.head;
}

FA_EVERY_PROCESS void fa_frame_idle_sync(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    if (now == a->synced_frame || t->state != FA_THREAD_LIVE || !holds_chunks(a))
        return;
    sync_frame_locked(t, now, fa_thread_intent(t) == FA_FRAME ? now : a->scope_end_frame);
}

/* Frames an owner may go without syncing before a thread ending a frame recycles
 * its finished generations and returns its spare chunks for it. */
#define IDLE_FRAMES 4

/* For another thread t that stopped using frame scopes (a worker after a loading
 * spike): its finished generations and spares, never its current generation. */
static void recycle_for_idle(fa_thread_t *t, void *arg)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = *(uint64_t *)arg;
    if (t == fa_thread() || !try_lock_arena(a))
        return;
    /* The owner changes these only with the lock held (an attaching thread's arena
     * is still all zero, an exiting one holds the lock until it is). */
    if (a->synced_frame + IDLE_FRAMES > now ||
        !(a->gen_count || a->escaped.head || a->spare.count > fa_settings.frame_retain || a->quarantine.head ||
          a->taken_this_frame)) {
        unlock_arena(a);
        return;
    }
    /* Frees other threads made meanwhile, so that they are not taken for escapes.
     * These chunks hold no block of the owner's current generation, whose counts
     * only the owner changes. */
    apply_finished_remote(a);
    recycle_due(a, now);
    sweep_escaped(a, now);
    expire_quarantine(a, now);
    /* Each look counts as one frame of its recent need: a worker idle for a few
     * frames keeps its chunks warm; one idle for a few looks gives them back. */
    trim_spares(a);
    FA_CHECK(2, arena_valid(t, false));
    unlock_arena(a);
}

/* ---- allocation ---- */

/* Moves the bump range to where need bytes fit: the next gap of the current chunk,
 * a gap of an escaped chunk, or a fresh chunk. */
static bool next_range(fa_thread_t *t, uint64_t need)
{
    fa_frame_arena_t *a = &t->frame;
    fa_frame_chunk_t *c = a->chunk;
    char *end = c ? a->end - FA_FRAME_HEADER : NULL;
    leave_range(a);
    char *gap;
    if (c && end < slot_limit(c) && (gap = find_gap(c, end, need))) {
        enter_range(a, c, gap, gap + span_of(decode(gap)));
        return true;
    }
    for (c = first_chunk(&a->escaped); c; c = next_chunk(c)) {
        if (c->largest_gap < need || c->largest_gap < FA_FRAME_MIN_GAP)
            continue;
        if (!(gap = find_gap(c, first_slot(c), need))) {
            c->largest_gap = 0; /* stale: its gaps were used; found again at its next walk */
            continue;
        }
        fa_list_remove(&a->escaped, &c->link);
        fa_list_push_front(&a->chunks, &c->link);
        a->chunks_have_escapes = true;
        enter_range(a, c, gap, gap + span_of(decode(gap)));
        return true;
    }
    if (!(c = new_chunk(t)))
        return false;
    fa_list_push_front(&a->chunks, &c->link);
    enter_range(a, c, first_slot(c), slot_limit(c));
    return true;
}

static void *bump_slow(fa_thread_t *t, size_t n, size_t align)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    /* Still inside a frame scope: what the current generation holds may be from now. */
    sync_frame(t, now, now);
    if (!a->key)
        start_generation(a);
    uint64_t span = fa_frame_span(n);
    for (;;) {
        if (a->bump) {
            char *p = (char *)(((uintptr_t)a->bump + align - 1) & ~(uintptr_t)(align - 1));
            if (p + span <= a->end) {
                if (p > a->bump) /* alignment padding: a dead block of its own */
                    write_header(a->bump - FA_FRAME_HEADER, (uint64_t)(p - a->bump), FA_FRAME_FREED, a->seq);
                write_header(p - FA_FRAME_HEADER, span, 0, a->seq);
                a->bump = p + span;
                a->made++;
                return p;
            }
        }
        if (!next_range(t, span + (align > FA_MIN_ALIGN ? align : 0)))
            return NULL;
    }
}

void *fa_frame_alloc_slow(fa_thread_t *t, size_t n, size_t align)
{
    if (n > fa_settings.frame_max || align > FA_FRAME_MAX_ALIGN)
        return NULL;
    if (t->state != FA_THREAD_LIVE) /* the heap serves threads past their exit */
        return NULL;
    lock_arena(&t->frame);
    void *p = bump_slow(t, n, align);
    unlock_arena(&t->frame);
    return p;
}

/* ---- frees, sizes, resizing ---- */

FA_COLD static void report_bad_pointer(const char *what, const void *p, const char *why)
{
    fa_fatal_misuse(p, "%s(%p): %s (frame arena)", what, p, why);
}

/* The decoded header of the live block at p, or an abort naming the misuse. */
static uint64_t live_header(const char *what, void *p)
{
    fa_frame_chunk_t *c = (fa_frame_chunk_t *)fa_chunk_of(p);
    char *slot = (char *)p - FA_FRAME_HEADER;
    if (((uintptr_t)p & 15) || slot < first_slot(c) || slot >= slot_limit(c))
        report_bad_pointer(what, p, "not a pointer returned by malloc");
    uint64_t d = decode(slot);
    if (!well_formed(c, slot, d))
        report_bad_pointer(what, p, "not a pointer returned by malloc (a pointer into the middle of a block?)");
    if (state_of(d))
        report_bad_pointer(what, p, "double free (the block was already freed)");
    return d;
}

void fa_frame_free_slow(fa_thread_t *t, void *p)
{
    fa_frame_chunk_t *c = (fa_frame_chunk_t *)fa_chunk_of(p);
    uint64_t d = live_header("free", p);
    uint64_t *header = (uint64_t *)p - 1;
    uint64_t h = d ^ (uintptr_t)p ^ fa_frame_secret;
    bool own = __atomic_load_n(&c->head.owner, __ATOMIC_ACQUIRE) == t->id;
    if (own) {
        /* Marked and counted under the lock: a thread recycling this generation
         * for us must never walk the block dead before its free is counted (it
         * would be counted twice, and the chunk reused under a live block). */
        lock_arena(&t->frame);
        bool first = __atomic_compare_exchange_n(header, &h, h ^ FA_FRAME_FREED, false, __ATOMIC_RELAXED,
                                                 __ATOMIC_RELAXED);
        if (first)
            count_free(&t->frame, c, seq_of(d));
        unlock_arena(&t->frame);
        if (!first)
            report_bad_pointer("free", p, "double free (the block was already freed)");
        return;
    }
    /* Only a second free can race with this one, and it must lose. */
    if (!__atomic_compare_exchange_n(header, &h, h ^ FA_FRAME_PENDING, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        report_bad_pointer("free", p, "double free (the block was already freed)");
    uint64_t *head = __atomic_load_n(&c->remote, __ATOMIC_RELAXED);
    do
        *(uint64_t **)p = head;
    while (!__atomic_compare_exchange_n(&c->remote, &head, (uint64_t *)p, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    flag_remote_free(__atomic_load_n(&c->head.owner, __ATOMIC_RELAXED));
}

size_t fa_frame_usable_size(const void *p, const char *what)
{
    return span_of(live_header(what, (void *)p)) - FA_FRAME_HEADER;
}

bool fa_frame_resize_in_place(fa_thread_t *t, void *p, size_t n)
{
    uint64_t d = live_header("realloc", p);
    uint64_t span = span_of(d);
    fa_frame_arena_t *a = &t->frame;
    char *slot = (char *)p - FA_FRAME_HEADER;
    bool newest = a->key && seq_of(d) == a->seq && (char *)p + span == a->bump;
    if (!newest || n > fa_settings.frame_max)
        return n <= span - FA_FRAME_HEADER;
    uint64_t want = fa_frame_span(n);
    if (want > (uint64_t)(a->end - (char *)p))
        return false;
    write_header(slot, want, 0, a->seq);
    a->bump = (char *)p + want;
    return true;
}

/* ---- markers, thread life ---- */

void fa_frame_release_spares(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    /* Held already when the frame arena itself runs out (its spares are used up by
     * then), or by a thread returning them anyway. */
    if (!try_lock_arena(a))
        return;
    fa_chunk_release_all(&a->spare);
    unlock_arena(a);
}

void fa_frame_end_now(fa_thread_t *t)
{
    uint64_t before = __atomic_fetch_add(&fa_frame_number, 1, __ATOMIC_ACQ_REL);
    if (t->state != FA_THREAD_LIVE)
        return;
    sync_frame_locked(t, before + 1, before);
    uint64_t now = before + 1;
    if (now % IDLE_FRAMES == 0)
        fa_thread_for_each(recycle_for_idle, &now);
}

void fa_frame_on_intent_change(fa_thread_t *t, bool from_frame, bool to_frame)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    if (from_frame)
        a->scope_end_frame = now;
    /* Leaving the outermost scope after taking more than one chunk (a loading
     * spike) ends the generation: then its memory can be recycled for this thread
     * even if it never syncs again (see recycle_for_idle). Small scopes, and scopes
     * nested in others (FA_DEFAULT inside FA_FRAME), keep bumping where they were. */
    if (from_frame && !to_frame && t->depth == 0 && a->chunks.count > 1) {
        lock_arena(a);
        retire_current(a, now);
        unlock_arena(a);
    }
    if (to_frame && t->state == FA_THREAD_LIVE)
        sync_frame_locked(t, now, from_frame ? now : t->frame.scope_end_frame);
}

/* Every chunk that may still hold a live block waits among the orphans until its
 * frame is recycled: a worker's result stays readable for the rest of the frame,
 * in strict mode too. */
void fa_frame_thread_exit(fa_thread_t *t)
{
    fa_frame_arena_t *a = &t->frame;
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE);
    lock_arena(a); /* held to the end: the memset below also clears it */
    retire_current(a, now);
    for (uint32_t i = 0; i < a->gen_count; i++)
        orphan_all(&gen_at(a, i)->chunks, gen_at(a, i)->stamp);
    orphan_all(&a->escaped, 0);
    for (fa_frame_chunk_t *c = first_chunk(&a->quarantine); c; c = next_chunk(c))
        set_data_access(c, true);
    fa_chunk_release_all(&a->quarantine);
    fa_chunk_release_all(&a->spare);
    FA_CHECK(2, fa_chunk_orphans_valid(FA_CHUNK_FRAME));
    exited_allocs += a->allocs;
    exited_bytes += a->bytes;
    exited_escapes += a->escapes;
    memset(a, 0, sizeof *a);
}

uint64_t fa_frame_chunks_held(void) { return fa_chunk_held(FA_CHUNK_FRAME); }

void fa_frame_exited_totals(uint64_t *allocs, uint64_t *bytes, uint64_t *escapes)
{
    *allocs = exited_allocs;
    *bytes = exited_bytes;
    *escapes = exited_escapes;
}

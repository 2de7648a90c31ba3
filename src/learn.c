/* Learned intent: observes sampled allocations per call site, follows each to its
 * free to learn its lifetime in frames, decides which sites are frame-temporary and
 * publishes the routed set to every thread's table (see learn.h).
 *
 * State: a table of sites and a side table of the observed blocks alive now, both
 * fixed arrays (no allocation on these paths) under one lock. Only observed
 * allocations (about one in FRAMEALLOC_LEARN_RATE), frees of heap blocks and the
 * once-per-frame decision take it. A profile's sites in modules not loaded yet are
 * resolved by learn_profile.c when the frame's decision or an observation asks. */
#include "learn.h"

#include <pthread.h>
#include <string.h>

#include "learn_profile.h"
#include "log.h"
#include "math_lite.h"
#include "options.h"
#include "os.h"

/* A site is routed when the upper bound of its escape share is below ROUTE_BOUND,
 * and demoted when the lower bound rises above DEMOTE_BOUND (Wilson score interval,
 * 95 %). Demotion is stricter: an escape makes its generation's recycling walk
 * every header of its chunks (a few thousand instructions) where a routed
 * pool-sized pair saves about 20, so a site that escapes more than about half a
 * percent costs more than it saves; routing needs only the evidence a few dozen
 * observations give, so that sites are routed soon after the warm-up. */
#define ROUTE_BOUND 0.05
#define DEMOTE_BOUND 0.005
#define WILSON_Z 1.96
/* Fewest observed lifetimes before a site can be routed. */
#define MIN_DECIDED 32
/* The decision window: halved when it grows past this, so recent behaviour counts. */
#define WINDOW 1024

#define SITE_BITS 14
#define SITE_CAP (1u << SITE_BITS)
/* The side table starts small (its entries are spread by hashing, so every page of
 * it is touched) and doubles when three quarters full, up to 2^22 entries. */
#define BLOCK_FIRST_BITS 12
#define BLOCK_MAX_BITS 22

typedef struct {
    uintptr_t site;
    uint64_t samples, allocs, bytes;
    uint64_t freed[FA_LEARN_AGES];
    uint64_t live_samples, live_weight;
    uint64_t young_frame, young; /* live observed blocks made in young_frame */
    uint64_t decided, escaped;   /* lifetimes over the whole run */
    uint32_t window, window_escaped;
    uint8_t state;
    uint8_t from_profile;
} site_t;

typedef struct {
    uintptr_t addr; /* 0: empty */
    uint32_t site;
    uint32_t unused;
    uint64_t frame, weight;
} block_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static site_t sites[SITE_CAP];
static uint32_t site_used[SITE_CAP]; /* indices of the entries in use, in creation order */
static uint32_t site_count;
static block_t *blocks; /* mmap'ed: 1 << block_bits entries */
static uint32_t block_bits, block_mask, block_count;
static uint64_t samples_total, dropped_total, demoted_total;
static uint64_t decided_frame; /* frame of the last decision pass */
static _Atomic uint64_t live_blocks; /* read without the lock by frees */
static FA_EVERY_PROCESS_DATA int paused;

/* The routed set every thread's table copies; epoch counts its changes. */
static uintptr_t routed[FA_LEARN_SLOTS];
static uint32_t routed_count;
static _Atomic uint64_t routed_epoch = 1;

/* A fork while another thread holds the lock must not leave the child's locked. */
static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_parent(void) { pthread_mutex_unlock(&lock); }
static void fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    fa_learn_profile_fork_child();
}

FA_EVERY_PROCESS void fa_learn_configure(void)
{
    static bool fork_handlers;
    /* Called inside init the first time, where the registration's allocation goes to the heap. */
    if (fa_settings.learn && !fork_handlers) {
        fork_handlers = true;
        fa_os_at_fork(fork_prepare, fork_parent, fork_child);
    }
}

FA_EVERY_PROCESS uint8_t fa_learn_thread_intent(void) { return fa_settings.learn ? FA_INTENT_LEARN : 0; }

FA_EVERY_PROCESS void fa_learn_pause(void) { __atomic_store_n(&paused, 1, __ATOMIC_RELEASE); }

static uint64_t frame_now(void) { return __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE); }

/* ---- the site table ---- */

static uint32_t hash_site(uintptr_t site) { return (uint32_t)((site * 0x9E3779B97F4A7C15ull) >> (64 - SITE_BITS)); }

/* The site's entry, created if needed; NULL when the table is full. Lock held. */
static site_t *site_entry(uintptr_t site)
{
    for (uint32_t i = hash_site(site), n = 0; n < SITE_CAP; i = (i + 1) & (SITE_CAP - 1), n++) {
        if (sites[i].site == site)
            return &sites[i];
        if (!sites[i].site) {
            if (site_count >= SITE_CAP / 4 * 3)
                return NULL;
            site_used[site_count++] = i;
            sites[i].site = site;
            return &sites[i];
        }
    }
    return NULL;
}

/* ---- the side table of observed blocks (linear probing, backward-shift deletion) ---- */

static uint32_t hash_block(uintptr_t addr)
{
    return (uint32_t)(((addr >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - block_bits));
}

static block_t *block_find(uintptr_t addr)
{
    if (!blocks)
        return NULL;
    for (uint32_t i = hash_block(addr);; i = (i + 1) & block_mask) {
        if (blocks[i].addr == addr)
            return &blocks[i];
        if (!blocks[i].addr)
            return NULL;
    }
}

static void block_place(block_t b)
{
    uint32_t i = hash_block(b.addr);
    while (blocks[i].addr)
        i = (i + 1) & block_mask;
    blocks[i] = b;
}

/* A table of 1 << bits entries holding the current ones; false when out of memory. */
static bool blocks_resize(uint32_t bits)
{
    size_t bytes = ((size_t)1 << bits) * sizeof(block_t);
    block_t *fresh = fa_os_map_table(bytes);
    if (!fresh)
        return false;
    block_t *old = blocks;
    uint32_t old_size = blocks ? block_mask + 1 : 0;
    blocks = fresh;
    block_bits = bits;
    block_mask = (1u << bits) - 1;
    for (uint32_t i = 0; i < old_size; i++)
        if (old[i].addr)
            block_place(old[i]);
    if (old)
        fa_os_unreserve(old, (size_t)old_size * sizeof(block_t));
    return true;
}

static bool block_insert(block_t b)
{
    if (!blocks && !blocks_resize(BLOCK_FIRST_BITS))
        return false;
    if (block_count >= block_mask / 4 * 3 && (block_bits == BLOCK_MAX_BITS || !blocks_resize(block_bits + 1)))
        return false;
    block_place(b);
    block_count++;
    __atomic_store_n(&live_blocks, block_count, __ATOMIC_RELEASE);
    return true;
}

static void block_remove(block_t *b)
{
    uint32_t hole = (uint32_t)(b - blocks);
    for (uint32_t i = (hole + 1) & block_mask; blocks[i].addr; i = (i + 1) & block_mask) {
        uint32_t home = hash_block(blocks[i].addr);
        /* The entry may move into the hole when its home is not inside (hole, i]. */
        bool between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!between) {
            blocks[hole] = blocks[i];
            hole = i;
        }
    }
    blocks[hole].addr = 0;
    block_count--;
    __atomic_store_n(&live_blocks, block_count, __ATOMIC_RELEASE);
}

/* ---- decisions ---- */

/* Wilson score interval of e escapes in n lifetimes: the upper (sign 1) or lower
 * (sign -1) bound of the escape share. */
static double wilson(uint64_t e, uint64_t n, int sign)
{
    if (n == 0)
        return sign > 0 ? 1.0 : 0.0;
    double p = (double)e / (double)n, z2 = WILSON_Z * WILSON_Z, nn = (double)n;
    double centre = p + z2 / (2 * nn);
    double spread = WILSON_Z * fa_math_sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
    return (centre + sign * spread) / (1 + z2 / nn);
}

/* Observed blocks alive now that were made before the current frame: they outlived
 * their frame, escapes for FRAMES_IN_FLIGHT 1 (counted so for larger values too). */
static uint64_t live_old(const site_t *s, uint64_t now)
{
    return s->live_samples - (s->young_frame == now ? s->young : 0);
}

static bool window_temporary(const site_t *s, uint64_t now)
{
    uint64_t old = live_old(s, now), n = s->window + old;
    return n >= MIN_DECIDED && wilson(s->window_escaped + old, n, 1) <= ROUTE_BOUND;
}

static bool window_escaping(const site_t *s, uint64_t now)
{
    uint64_t old = live_old(s, now);
    return wilson(s->window_escaped + old, s->window + old, -1) > DEMOTE_BOUND;
}

/* Rebuilds the routed set from the site states. Lock held. */
static void publish_routed(void)
{
    routed_count = 0;
    for (uint32_t k = 0; k < site_count && routed_count < FA_LEARN_SLOTS; k++)
        if (sites[site_used[k]].state == FA_LEARN_SITE_ROUTED)
            routed[routed_count++] = sites[site_used[k]].site;
    __atomic_fetch_add(&routed_epoch, 1, __ATOMIC_RELEASE);
}

/* Once per frame: routes the sites that proved temporary after the warm-up, demotes
 * routed sites whose escapes exceed the bound. Lock held. */
static void decide_all(uint64_t now)
{
    decided_frame = now;
    if (fa_settings.learn != FA_LEARN_ROUTE)
        return;
    bool changed = false;
    for (uint32_t k = 0; k < site_count; k++) {
        site_t *s = &sites[site_used[k]];
        /* Not before the first frame end: a thread's frame memory is recycled only
         * by frames, so a program that never ends one must never be routed. */
        if (s->state == FA_LEARN_SITE_OBSERVED && now >= fa_settings.learn_warmup && now > 0 &&
            window_temporary(s, now)) {
            s->state = FA_LEARN_SITE_ROUTED;
            changed = true;
        } else if (s->state == FA_LEARN_SITE_ROUTED && window_escaping(s, now)) {
            s->state = FA_LEARN_SITE_DEMOTED; /* for the rest of the run: no flapping */
            demoted_total++;
            changed = true;
        }
    }
    if (changed)
        publish_routed();
}

/* ---- the profile's sites ---- */

/* Routes the profile's sites from now on (observe: marks them only). */
static void route_loaded(const uintptr_t *loaded, size_t n)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n; i++) {
        site_t *s = site_entry(loaded[i]);
        if (!s)
            continue;
        s->from_profile = 1;
        if (fa_settings.learn == FA_LEARN_ROUTE && s->state == FA_LEARN_SITE_OBSERVED)
            s->state = FA_LEARN_SITE_ROUTED;
    }
    publish_routed();
    pthread_mutex_unlock(&lock);
}

void fa_learn_resolve_profile(void)
{
    uintptr_t loaded[64];
    size_t n;
    if (fa_settings.learn == FA_LEARN_OFF)
        return;
    while ((n = fa_learn_profile_resolve(loaded, sizeof loaded / sizeof *loaded)) > 0)
        route_loaded(loaded, n);
}

/* ---- the slow path ---- */

static uint64_t next_random(fa_learn_thread_t *l)
{
    if (!l->random)
        l->random = (uintptr_t)l * 0x9E3779B97F4A7C15ull | 1;
    l->random ^= l->random << 13;
    l->random ^= l->random >> 7;
    l->random ^= l->random << 17;
    return l->random;
}

/* Once routing has begun, observations serve mostly to catch a routed site that
 * starts escaping: one in 16 as many do (weights keep the estimates unbiased; at the
 * default rate a game making 20 000 allocations a frame still observes about 20). */
#define SETTLED_RATE_FACTOR 16

/* A sampling distance: uniform in 1..2*r-1 (mean r). */
static uint64_t sampling_distance(fa_learn_thread_t *l, uint64_t r)
{
    return r <= 1 ? 1 : 1 + next_random(l) % (2 * r - 1);
}

static void rearm(fa_learn_thread_t *l)
{
    uint64_t rate = fa_settings.learn_rate, r = rate;
    if (rate > 1 && fa_settings.learn == FA_LEARN_ROUTE && frame_now() >= fa_settings.learn_warmup)
        r *= SETTLED_RATE_FACTOR;
    l->weight = sampling_distance(l, r);
    l->countdown = (int64_t)l->weight;
}

/* Allocations above the pools' limit are observed this many times as often. */
#define LARGE_RATE_DIVISOR 16

static void rearm_large(fa_learn_thread_t *l)
{
    l->large_weight = sampling_distance(l, fa_settings.learn_rate / LARGE_RATE_DIVISOR);
    l->large_countdown = (int64_t)l->large_weight;
}

/* True when this allocation is to be observed; its weight (the allocations it
 * stands for) goes to l->observing. Each allocation is counted by one countdown:
 * the fast path's, or for a large one that reached here the large countdown (the
 * fast path's count is given back). */
static bool observation_due(fa_learn_thread_t *l, size_t size)
{
    uint64_t weight;
    if (size > fa_settings.pool_max) {
        l->countdown++;
        if (--l->large_countdown > 0)
            return false;
        weight = l->large_weight;
        rearm_large(l);
    } else {
        if (l->countdown > 0)
            return false;
        weight = l->weight;
        rearm(l);
    }
    if (!weight || __atomic_load_n(&paused, __ATOMIC_ACQUIRE))
        return false; /* a thread's first call arms its countdowns */
    l->observing = weight;
    return true;
}

static void refresh_table(fa_learn_thread_t *l)
{
    pthread_mutex_lock(&lock);
    memset(l->frame_sites, 0, sizeof l->frame_sites);
    for (uint32_t i = 0; i < routed_count; i++) {
        uintptr_t *slot = fa_learn_slot(l, routed[i]);
        if (!*slot)
            *slot = routed[i];
    }
    l->epoch = __atomic_load_n(&routed_epoch, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&lock);
}

fa_learn_use_t fa_learn_decide(fa_thread_t *t, uintptr_t site, size_t size)
{
    fa_learn_thread_t *l = &t->learn;
    if (t->state != FA_THREAD_LIVE)
        return FA_LEARN_USE_DEFAULT;
    uint64_t now = frame_now();
    bool new_frame = false;
    if (__atomic_load_n(&decided_frame, __ATOMIC_RELAXED) != now) {
        pthread_mutex_lock(&lock);
        if ((new_frame = decided_frame != now))
            decide_all(now);
        pthread_mutex_unlock(&lock);
    }
    /* Profile sites in modules not loaded yet: looked for once a frame and at each
     * observation (already the slow path's costly case), so a library dlopen'ed in
     * the middle of a frame is routed within a few observations. */
    if (FA_UNLIKELY(__atomic_load_n(&fa_learn_profile_pending, __ATOMIC_RELAXED)) && (new_frame || l->countdown <= 0))
        fa_learn_resolve_profile();
    /* This thread's routed frame blocks are one frame scope that ends now: its
     * generation is stamped with the current frame (fa_frame_end does this on the
     * thread that ends frames; other threads sync here). */
    if (fa_settings.learn == FA_LEARN_ROUTE && t->frame.synced_frame != now && t->frame.key)
        fa_frame_on_intent_change(t, true, true);
    if (l->epoch != __atomic_load_n(&routed_epoch, __ATOMIC_ACQUIRE))
        refresh_table(l);
    if (observation_due(l, size))
        return FA_LEARN_USE_OBSERVE;
    return *fa_learn_slot(l, site) == site ? FA_LEARN_USE_FRAME : FA_LEARN_USE_DEFAULT;
}

/* This library's own code (linker-defined): its internal calls of fa_malloc (realloc
 * moving a block, memalign with a small alignment) are not the program's call sites. */
extern const char __ehdr_start[] FA_HIDDEN;
extern const char _etext[] FA_HIDDEN;

void fa_learn_observe(void *p, uintptr_t site, size_t size)
{
    if (site >= (uintptr_t)__ehdr_start && site < (uintptr_t)_etext)
        return;
    uint64_t weight = fa_thread()->learn.observing;
    uint64_t now = frame_now();
    pthread_mutex_lock(&lock);
    site_t *s = site_entry(site);
    if (!s || !block_insert((block_t){.addr = (uintptr_t)p, .site = (uint32_t)(s - sites), .frame = now, .weight = weight})) {
        dropped_total++;
        pthread_mutex_unlock(&lock);
        return;
    }
    samples_total++;
    s->samples++;
    s->allocs += weight;
    s->bytes += weight * size;
    s->live_samples++;
    s->live_weight += weight;
    if (s->young_frame != now) {
        s->young_frame = now;
        s->young = 0;
    }
    s->young++;
    pthread_mutex_unlock(&lock);
}

/* The observed block b ends its life now. Lock held. */
static void block_ended(block_t *b)
{
    site_t *s = &sites[b->site];
    uint64_t now = frame_now();
    uint64_t age = now - b->frame;
    s->freed[age < FA_LEARN_AGES - 1 ? age : FA_LEARN_AGES - 1] += b->weight;
    s->live_samples--;
    s->live_weight -= b->weight;
    if (s->young_frame == b->frame && s->young)
        s->young--;
    bool escaped = age >= fa_settings.frames_in_flight;
    s->decided++;
    s->escaped += escaped;
    s->window++;
    s->window_escaped += escaped;
    if (s->window > WINDOW) {
        s->window /= 2;
        s->window_escaped /= 2;
    }
    block_remove(b);
}

void fa_learn_forget(void *p)
{
    if (!__atomic_load_n(&live_blocks, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&lock);
    block_t *b = block_find((uintptr_t)p);
    if (b)
        block_ended(b);
    pthread_mutex_unlock(&lock);
}

void fa_learn_moved(void *from, void *to)
{
    if (from == to || !__atomic_load_n(&live_blocks, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&lock);
    block_t *b = block_find((uintptr_t)from);
    if (b) {
        block_t moved = *b;
        moved.addr = (uintptr_t)to;
        block_remove(b);
        block_insert(moved);
    }
    pthread_mutex_unlock(&lock);
}

/* ---- for the report and the profile ---- */

size_t fa_learn_sites(fa_learn_site_t *out, size_t cap, fa_learn_summary_t *summary)
{
    uint64_t now = frame_now();
    size_t n = 0;
    pthread_mutex_lock(&lock);
    *summary = (fa_learn_summary_t){.frames = now,
                                    .samples = samples_total,
                                    .dropped = dropped_total,
                                    .demoted = demoted_total,
                                    .bound = ROUTE_BOUND};
    for (uint32_t k = 0; k < site_count; k++) {
        const site_t *s = &sites[site_used[k]];
        summary->allocs += s->allocs;
        summary->routed += s->state == FA_LEARN_SITE_ROUTED;
        if (n < cap) {
            /* Over the whole run: every block still alive counts as an escape. */
            uint64_t decided = s->decided + s->live_samples, escaped = s->escaped + s->live_samples;
            fa_learn_site_t *o = &out[n];
            *o = (fa_learn_site_t){.site = s->site, .samples = s->samples, .allocs = s->allocs, .bytes = s->bytes,
                                   .live = s->live_weight, .decided = decided, .escaped = escaped,
                                   .state = (fa_learn_site_state_t)s->state, .from_profile = s->from_profile,
                                   .temporary = decided >= MIN_DECIDED && wilson(escaped, decided, 1) <= ROUTE_BOUND};
            memcpy(o->freed, s->freed, sizeof o->freed);
        }
        n++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

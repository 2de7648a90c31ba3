/* Allocation records: sampling, stack capture, the call-site table, the map of
 * recorded blocks, escapes, tags and budgets. All tables live in lazily touched
 * anonymous mappings, so nothing here calls malloc. */
#include "records.h"

#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "debug.h"
#include "frame.h"
#include "framealloc.h"
#include "log.h"
#include "os.h"
#include "options.h"
#include "symbols.h"

int fa_records_mode;
int fa_records_diverting;
static uint64_t sample_rate = 512 * 1024; /* bytes */
static int stack_depth = 24;

typedef int (*unw_backtrace_fn)(void **buffer, int size);
static unw_backtrace_fn unwind;

/* ---- per-thread state ---- */

static __thread uint8_t in_records __attribute__((tls_model("initial-exec")));
static __thread uint64_t rng __attribute__((tls_model("initial-exec")));

static uint64_t next_random(void)
{
    /* splitmix64: a thread-local stream seeded from its address and the clock */
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Bytes to the next sample: exponential with mean sample_rate (a Poisson process
 * over allocated bytes, so every byte has the same chance). */
static uint64_t draw_interval(void)
{
    if (!rng)
        rng = (uint64_t)(uintptr_t)&in_records ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    double u = ((double)(next_random() >> 11) + 0.5) / 9007199254740992.0;
    return (uint64_t)(-log(u) * (double)sample_rate) + 1;
}

void fa_records_rearm(fa_thread_t *t, size_t size)
{
    if (fa_records_mode != FA_RECORDS_SAMPLE) {
        t->sample_left = FA_SAMPLE_NEVER;
        return;
    }
    /* Allocations made while recording this one may have re-armed it already. */
    if (t->sample_left > size)
        return;
    /* The sample point fell inside this allocation; the next one is an exponential
     * distance further on (several may fall inside one large block; for a huge one
     * only the remainder matters). */
    uint64_t over = size - t->sample_left;
    if (over > sample_rate * 64)
        over %= sample_rate;
    uint64_t next = draw_interval();
    while (next <= over) {
        over -= next;
        next = draw_interval();
    }
    t->sample_left = next - over;
}

/* ---- call sites ---- */

#define MAX_SITES (1u << 20)
#define SITE_INDEX_SLOTS (MAX_SITES * 2)
#define FRAME_POOL_WORDS ((size_t)MAX_SITES * 16)

typedef struct {
    uint64_t hash;
    uint32_t depth;
    uint32_t first_frame; /* index into frame_pool */
    _Atomic uint64_t alloc_count, alloc_bytes, live_count, live_bytes, escape_count, escape_bytes, samples;
    _Atomic uint8_t intent;
    _Atomic uint16_t tag;
} site_t;

static site_t *sites;
static _Atomic uint32_t *site_index; /* 0: empty; else site id + 1 */
static uintptr_t *frame_pool;
static _Atomic uint32_t site_count;
static size_t frame_pool_used;
static pthread_mutex_t site_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t hash_frames(const uintptr_t *frames, int depth)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        h ^= frames[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static bool same_site(const site_t *s, uint64_t hash, const uintptr_t *frames, int depth)
{
    return s->hash == hash && s->depth == (uint32_t)depth &&
           memcmp(&frame_pool[s->first_frame], frames, (size_t)depth * sizeof *frames) == 0;
}

/* The site id for this stack, adding it if new; UINT32_MAX when the table is full.
 * Readers need no lock: a slot is published only after its site is complete. */
static uint32_t intern_site(const uintptr_t *frames, int depth)
{
    uint64_t hash = hash_frames(frames, depth);
    size_t mask = SITE_INDEX_SLOTS - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t slot = __atomic_load_n(&site_index[i], __ATOMIC_ACQUIRE);
        if (!slot)
            break;
        if (same_site(&sites[slot - 1], hash, frames, depth))
            return slot - 1;
    }
    pthread_mutex_lock(&site_lock);
    uint32_t id = UINT32_MAX;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t slot = __atomic_load_n(&site_index[i], __ATOMIC_ACQUIRE);
        if (slot && same_site(&sites[slot - 1], hash, frames, depth)) {
            id = slot - 1;
            break;
        }
        if (!slot) {
            uint32_t n = site_count;
            if (n >= MAX_SITES || frame_pool_used + (size_t)depth > FRAME_POOL_WORDS)
                break;
            site_t *s = &sites[n];
            s->hash = hash;
            s->depth = (uint32_t)depth;
            s->first_frame = (uint32_t)frame_pool_used;
            memcpy(&frame_pool[frame_pool_used], frames, (size_t)depth * sizeof *frames);
            frame_pool_used += (size_t)depth;
            __atomic_store_n(&site_count, n + 1, __ATOMIC_RELEASE);
            __atomic_store_n(&site_index[i], n + 1, __ATOMIC_RELEASE);
            id = n;
            break;
        }
    }
    pthread_mutex_unlock(&site_lock);
    return id;
}

/* ---- tags ---- */

#define MAX_TAGS 255

typedef struct {
    const char *name;
    _Atomic int64_t live_bytes;
    _Atomic uint64_t peak_bytes, alloc_bytes, budget;
    _Atomic uint8_t warned;
} tag_t;

static tag_t tags[MAX_TAGS + 1]; /* 0: no tag */
static _Atomic uint32_t tag_count = 1;
static pthread_mutex_t tag_lock = PTHREAD_MUTEX_INITIALIZER;

static uint16_t intern_tag(const char *name)
{
    if (!name)
        return 0;
    uint32_t n = __atomic_load_n(&tag_count, __ATOMIC_ACQUIRE);
    for (uint32_t i = 1; i < n; i++)
        if (tags[i].name == name || strcmp(tags[i].name, name) == 0)
            return (uint16_t)i;
    pthread_mutex_lock(&tag_lock);
    uint16_t id = 0;
    n = tag_count;
    for (uint32_t i = 1; i < n && !id; i++)
        if (strcmp(tags[i].name, name) == 0)
            id = (uint16_t)i;
    if (!id && n <= MAX_TAGS) {
        tags[n].name = name;
        __atomic_store_n(&tag_count, n + 1, __ATOMIC_RELEASE);
        id = (uint16_t)n;
    }
    pthread_mutex_unlock(&tag_lock);
    return id;
}

/* ---- the map of recorded blocks ---- */

#define SHARDS 64

typedef struct {
    uintptr_t ptr; /* 0: empty slot */
    uint64_t size;
    uint64_t weight; /* bytes this record stands for */
    uint64_t frame;  /* global frame number when allocated */
    uint32_t site;
    uint16_t tag;
    uint8_t intent;
    uint8_t escaped;
} record_t;

typedef struct {
    pthread_mutex_t lock;
    record_t *slots;
    size_t capacity; /* power of two, or 0 */
    size_t used;
} shard_t;

static shard_t shards[SHARDS];
static _Atomic uint64_t live_records;

static size_t shard_of(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ULL >> 58); }
static size_t slot_of(uintptr_t p, size_t capacity) { return (size_t)((p >> 4) * 0xff51afd7ed558ccdULL >> 20) & (capacity - 1); }

static bool shard_grow(shard_t *s)
{
    size_t capacity = s->capacity ? s->capacity * 2 : 1024;
    record_t *slots = fa_os_map_table(capacity * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->capacity; i++) {
        record_t *r = &s->slots[i];
        if (!r->ptr)
            continue;
        size_t j = slot_of(r->ptr, capacity);
        while (slots[j].ptr)
            j = (j + 1) & (capacity - 1);
        slots[j] = *r;
    }
    if (s->slots)
        fa_os_unreserve(s->slots, s->capacity * sizeof *s->slots);
    s->slots = slots;
    s->capacity = capacity;
    return true;
}

static void map_insert(const record_t *r)
{
    shard_t *s = &shards[shard_of(r->ptr)];
    pthread_mutex_lock(&s->lock);
    if ((s->used + 1) * 4 > s->capacity * 3 && !shard_grow(s)) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    size_t i = slot_of(r->ptr, s->capacity);
    while (s->slots[i].ptr)
        i = (i + 1) & (s->capacity - 1);
    s->slots[i] = *r;
    s->used++;
    live_records++;
    pthread_mutex_unlock(&s->lock);
}

/* Removes p's record into *out (linear probing with backward shift). */
static bool map_remove(uintptr_t p, record_t *out)
{
    shard_t *s = &shards[shard_of(p)];
    pthread_mutex_lock(&s->lock);
    bool found = false;
    if (s->capacity) {
        size_t mask = s->capacity - 1;
        size_t i = slot_of(p, s->capacity);
        for (; s->slots[i].ptr; i = (i + 1) & mask) {
            if (s->slots[i].ptr != p)
                continue;
            *out = s->slots[i];
            found = true;
            size_t hole = i;
            for (size_t j = (i + 1) & mask; s->slots[j].ptr; j = (j + 1) & mask) {
                size_t home = slot_of(s->slots[j].ptr, s->capacity);
                /* Move j into the hole if its home is not between hole and j. */
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                    s->slots[hole] = s->slots[j];
                    hole = j;
                }
            }
            s->slots[hole].ptr = 0;
            s->used--;
            live_records--;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Marks p's record as escaped if it is still the frame block made in frame. */
static bool map_mark_escaped(uintptr_t p, uint64_t frame, record_t *out)
{
    shard_t *s = &shards[shard_of(p)];
    pthread_mutex_lock(&s->lock);
    bool marked = false;
    if (s->capacity) {
        for (size_t i = slot_of(p, s->capacity); s->slots[i].ptr; i = (i + 1) & (s->capacity - 1)) {
            record_t *r = &s->slots[i];
            if (r->ptr == p) {
                if (r->intent == FA_FRAME && r->frame == frame && !r->escaped) {
                    r->escaped = 1;
                    *out = *r;
                    marked = true;
                }
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return marked;
}

/* ---- recorded frame blocks waiting for their frame to be recycled ---- */

typedef struct {
    uintptr_t ptr;
    uint64_t frame;
} pending_t;

#define MAX_PENDING ((size_t)1 << 24)
static pending_t *pending;
static size_t pending_count;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- accounting ---- */

/* Sampled counts are kept in thousandths of an allocation: a sample of a block near
 * the sampling rate stands for, say, 1.42 allocations, and rounding each sample to a
 * whole number would bias the totals. */
#define COUNT_UNIT 1000
static uint64_t count_weight(const record_t *r)
{
    return r->size ? (r->weight * COUNT_UNIT + r->size / 2) / r->size : 0;
}

static uint64_t whole_count(uint64_t thousandths) { return (thousandths + COUNT_UNIT / 2) / COUNT_UNIT; }

static void account(const record_t *r, int sign)
{
    site_t *s = &sites[r->site];
    uint64_t count = count_weight(r);
    if (sign > 0) {
        s->alloc_count += count;
        s->alloc_bytes += r->weight;
        s->live_count += count;
        s->live_bytes += r->weight;
        s->samples++;
        s->intent = r->intent;
        s->tag = r->tag;
    } else {
        s->live_count -= count;
        s->live_bytes -= r->weight;
    }
    if (r->tag) {
        tag_t *t = &tags[r->tag];
        int64_t live = (t->live_bytes += sign * (int64_t)r->weight);
        if (sign > 0) {
            t->alloc_bytes += r->weight;
            uint64_t peak = t->peak_bytes;
            while (live > 0 && (uint64_t)live > peak &&
                   !__atomic_compare_exchange_n(&t->peak_bytes, &peak, (uint64_t)live, true, __ATOMIC_RELAXED,
                                                __ATOMIC_RELAXED))
                ;
        }
    }
}

static void check_budget(const record_t *r, const uintptr_t *frames, int depth)
{
    tag_t *t = &tags[r->tag];
    uint64_t budget = t->budget;
    if (!budget || t->live_bytes <= (int64_t)budget || __atomic_exchange_n(&t->warned, 1, __ATOMIC_RELAXED))
        return;
    fa_log("tag \"%s\" is over its budget: %lld bytes live, budget %llu; the allocation that crossed it:", t->name,
           (long long)t->live_bytes, (unsigned long long)budget);
    fa_symbols_log_stack(frames, (uint32_t)depth, 8);
}

/* ---- the recording path ---- */

/* This library's code: frames inside it are the allocator's own. Found once at
 * start-up, so capture() skips them with two compares instead of dladdr (which scans
 * symbol tables and dominated the cost of full recording). */
static uintptr_t self_start, self_end;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    uintptr_t here = (uintptr_t)find_self;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && here >= start && here < start + ph->p_memsz) {
            self_start = start;
            self_end = start + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* The stack above the allocator's own frames (malloc, fa_malloc, the slow paths). */
static int capture(uintptr_t *frames)
{
    void *raw[FA_RECORDS_MAX_DEPTH + 8];
    int n = unwind(raw, stack_depth + 8);
    int skip = 0;
    while (skip < n && (uintptr_t)raw[skip] - self_start < self_end - self_start)
        skip++;
    int depth = n - skip < stack_depth ? n - skip : stack_depth;
    for (int i = 0; i < depth; i++)
        frames[i] = (uintptr_t)raw[skip + i];
    return depth;
}

void *fa_records_alloc(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment, fa_route_fn route)
{
    if (in_records || !unwind)
        return route(t, intent, size, alignment);
    size_t body = size ? size : 1; /* a record's size; its guard bytes follow it */
    uint64_t weight = body;
    if (fa_records_mode == FA_RECORDS_SAMPLE) {
        /* A block of s bytes is sampled with probability 1 - exp(-s / rate). */
        double p = 1.0 - exp(-(double)weight / (double)sample_rate);
        weight = (uint64_t)((double)weight / p + 0.5);
    }
    in_records = 1;
    uintptr_t frames[FA_RECORDS_MAX_DEPTH];
    int depth = capture(frames);
    uint32_t site = intern_site(frames, depth);
    /* route keeps the block in the arena the intent names and makes its frees
     * reach fa_records_forget. */
    bool guarded = (fa_debug_flags & FA_DEBUG_GUARDS) && body <= SIZE_MAX - FA_GUARD_BYTES;
    void *p = route(t, intent, guarded ? body + FA_GUARD_BYTES : size, alignment);
    if (p && guarded)
        memset((char *)p + body, FA_GUARD_BYTE, FA_GUARD_BYTES);
    if (p && site != UINT32_MAX) {
        record_t r = {
            .ptr = (uintptr_t)p,
            .size = body,
            .weight = weight,
            .frame = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE),
            .site = site,
            .tag = intern_tag(fa_tag_current()),
            .intent = intent,
        };
        map_insert(&r);
        account(&r, +1);
        if (r.tag)
            check_budget(&r, frames, depth);
        if (intent == FA_FRAME) {
            pthread_mutex_lock(&pending_lock);
            if (pending_count < MAX_PENDING)
                pending[pending_count++] = (pending_t){r.ptr, r.frame};
            pthread_mutex_unlock(&pending_lock);
        }
    }
    in_records = 0;
    return p;
}

void fa_records_pause(int paused) { in_records = (uint8_t)(paused != 0); }

FA_COLD static void report_overrun(const record_t *r, size_t at)
{
    fa_log("error: free(%p): the program wrote past the end of this %llu-byte block (guard byte %zu changed); "
           "the block was allocated:",
           (void *)r->ptr, (unsigned long long)r->size, at);
    in_records = 1;
    fa_symbols_log_stack(&frame_pool[sites[r->site].first_frame], sites[r->site].depth, 16);
    fa_fatal("heap overrun detected (FRAMEALLOC_DEBUG=guards)");
}

bool fa_records_forget(void *p)
{
    if (!__atomic_load_n(&live_records, __ATOMIC_RELAXED))
        return false;
    record_t r;
    if (!map_remove((uintptr_t)p, &r))
        return false;
    account(&r, -1);
    if (fa_debug_flags & FA_DEBUG_GUARDS) {
        const unsigned char *guard = (const unsigned char *)p + r.size;
        for (size_t i = 0; i < FA_GUARD_BYTES; i++)
            if (guard[i] != FA_GUARD_BYTE)
                report_overrun(&r, i);
    }
    if (fa_debug_flags & FA_DEBUG_POISON)
        memset(p, FA_POISON_BYTE, r.size);
    return true;
}

bool fa_records_requested_size(void *p, size_t *size)
{
    uintptr_t ptr = (uintptr_t)p;
    shard_t *s = &shards[shard_of(ptr)];
    bool found = false;
    pthread_mutex_lock(&s->lock);
    if (s->capacity) {
        for (size_t i = slot_of(ptr, s->capacity); s->slots[i].ptr; i = (i + 1) & (s->capacity - 1)) {
            if (s->slots[i].ptr == ptr) {
                *size = s->slots[i].size;
                found = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

uint32_t fa_records_capture_site(void)
{
    if (in_records || !unwind)
        return UINT32_MAX;
    in_records = 1;
    uintptr_t frames[FA_RECORDS_MAX_DEPTH];
    int depth = capture(frames);
    uint32_t site = intern_site(frames, depth);
    in_records = 0;
    return site;
}

uint32_t fa_records_site_frames(uint32_t site, const uintptr_t **frames)
{
    if (site >= __atomic_load_n(&site_count, __ATOMIC_ACQUIRE))
        return 0;
    *frames = &frame_pool[sites[site].first_frame];
    return sites[site].depth;
}

void fa_records_frame_ended(uint64_t now, uint64_t frames_in_flight)
{
    pthread_mutex_lock(&pending_lock);
    size_t kept = 0;
    for (size_t i = 0; i < pending_count; i++) {
        pending_t e = pending[i];
        if (e.frame + frames_in_flight > now) {
            pending[kept++] = e;
            continue;
        }
        record_t r;
        if (fa_frame_strict()) {
            /* Strict mode's frees of frame blocks do nothing, so records never see
             * them: every recorded block of a recycled frame is gone now. */
            if (map_remove(e.ptr, &r)) {
                if (r.intent == FA_FRAME && r.frame == e.frame)
                    account(&r, -1);
                else
                    map_insert(&r); /* not that block: keep it */
            }
            continue;
        }
        if (map_mark_escaped(e.ptr, e.frame, &r)) {
            site_t *s = &sites[r.site];
            s->escape_count += count_weight(&r);
            s->escape_bytes += r.weight;
        }
    }
    pending_count = kept;
    pthread_mutex_unlock(&pending_lock);
}

/* ---- start-up ---- */

uint8_t fa_records_intent_flag(void) { return fa_records_diverting ? FA_INTENT_RECORDS : 0; }

static bool load_unwinder(void)
{
    /* RTLD_LOCAL keeps libunwind's own _Unwind_* names out of the global scope,
     * where they would replace the C++ runtime's exception unwinder. */
    void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fa_log("FRAMEALLOC_RECORDS: cannot load libunwind.so.8 (install libunwind8); records are off");
        return false;
    }
    unw_backtrace_fn fn = (unw_backtrace_fn)dlsym(lib, "unw_backtrace");
    if (!fn) {
        fa_log("FRAMEALLOC_RECORDS: libunwind.so.8 has no unw_backtrace; records are off");
        return false;
    }
    /* The first unwind takes the loader's lock and fills libunwind's caches: do it
     * now, outside any allocation. */
    void *warm[8];
    fn(warm, 8);
    unwind = fn;
    return true;
}

static bool map_tables(void)
{
    sites = fa_os_map_table(MAX_SITES * sizeof *sites);
    site_index = fa_os_map_table(SITE_INDEX_SLOTS * sizeof *site_index);
    frame_pool = fa_os_map_table(FRAME_POOL_WORDS * sizeof *frame_pool);
    pending = fa_os_map_table(MAX_PENDING * sizeof *pending);
    if (!sites || !site_index || !frame_pool || !pending) {
        fa_log("FRAMEALLOC_RECORDS: cannot map the record tables; records are off");
        return false;
    }
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    return true;
}

void fa_records_start(void)
{
    int mode = (int)fa_option(FA_OPT_RECORDS);
    sample_rate = (uint64_t)fa_option(FA_OPT_RECORDS_RATE) * 1024;
    stack_depth = (int)fa_option(FA_OPT_RECORDS_DEPTH);
    /* Guards and poison check every block on free: every block must be recorded. */
    if (fa_debug_flags & (FA_DEBUG_GUARDS | FA_DEBUG_POISON))
        mode = FA_RECORDS_FULL;
    bool protect = (fa_debug_flags & FA_DEBUG_PROTECT) != 0;
    if ((mode == FA_RECORDS_OFF && !protect) || fa_records_diverting)
        return;
    in_records = 1; /* allocations made while loading libunwind are not recorded */
    dl_iterate_phdr(find_self, NULL);
    bool ok = map_tables() && load_unwinder();
    in_records = 0;
    if (!ok)
        return;
    __atomic_store_n(&fa_records_mode, mode, __ATOMIC_RELEASE);
    /* Sampling needs no detour: the fast paths count down sample_left. Full records
     * and protect see every allocation, so those send every allocation to the slow path. */
    if (mode == FA_RECORDS_FULL || protect)
        __atomic_store_n(&fa_records_diverting, 1, __ATOMIC_RELEASE);
    /* Threads attached from now on get the flag at attach and sample_left at their
     * first slow path; the constructor's own thread (usually the only one so far) may
     * already have both. */
    fa_thread_t *self = fa_thread();
    if (self->state == FA_THREAD_LIVE)
        self->intent |= fa_records_intent_flag();
    self->sample_left = 0;
}

/* ---- reports ---- */

static void fill_site(uint32_t id, fa_site_t *out)
{
    site_t *s = &sites[id];
    out->id = id;
    out->depth = s->depth;
    out->frames = &frame_pool[s->first_frame];
    out->alloc_count = whole_count(s->alloc_count);
    out->alloc_bytes = s->alloc_bytes;
    out->live_count = whole_count(s->live_count);
    out->live_bytes = s->live_bytes;
    out->escape_count = whole_count(s->escape_count);
    out->escape_bytes = s->escape_bytes;
    out->samples = s->samples;
    out->intent = s->intent;
    out->tag = s->tag ? tags[s->tag].name : NULL;
}

void fa_records_for_each_site(void (*fn)(const fa_site_t *site, void *arg), void *arg)
{
    uint32_t n = __atomic_load_n(&site_count, __ATOMIC_ACQUIRE);
    for (uint32_t id = 0; id < n; id++) {
        fa_site_t site;
        fill_site(id, &site);
        if (site.samples)
            fn(&site, arg);
    }
}

void fa_records_for_each_tag(void (*fn)(const fa_tag_totals_t *tag, void *arg), void *arg)
{
    uint32_t n = __atomic_load_n(&tag_count, __ATOMIC_ACQUIRE);
    for (uint32_t i = 1; i < n; i++) {
        int64_t live = tags[i].live_bytes;
        fa_tag_totals_t t = {tags[i].name, live > 0 ? (uint64_t)live : 0, tags[i].peak_bytes, tags[i].alloc_bytes,
                             tags[i].budget};
        fn(&t, arg);
    }
}

void fa_records_summary(uint64_t *samples, uint64_t *estimated_bytes, uint64_t *rate)
{
    uint64_t n = 0, bytes = 0;
    uint32_t count = __atomic_load_n(&site_count, __ATOMIC_ACQUIRE);
    for (uint32_t id = 0; id < count; id++) {
        n += sites[id].samples;
        bytes += sites[id].alloc_bytes;
    }
    *samples = n;
    *estimated_bytes = bytes;
    *rate = fa_records_mode == FA_RECORDS_SAMPLE ? sample_rate : 0;
}

void fa_records_set_budget(const char *tag, uint64_t bytes)
{
    if (fa_records_mode == FA_RECORDS_OFF) {
        static int said;
        if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
            fa_log("fa_budget_set: tag budgets are checked when FRAMEALLOC_RECORDS=sample or full (reported once)");
        return;
    }
    uint16_t id = intern_tag(tag);
    if (id) {
        tags[id].budget = bytes;
        tags[id].warned = 0;
    }
}

/* ---- fork ---- */

void fa_records_fork_prepare(void)
{
    pthread_mutex_lock(&site_lock);
    pthread_mutex_lock(&tag_lock);
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

void fa_records_fork_parent(void)
{
    for (int i = SHARDS - 1; i >= 0; i--)
        pthread_mutex_unlock(&shards[i].lock);
    pthread_mutex_unlock(&pending_lock);
    pthread_mutex_unlock(&tag_lock);
    pthread_mutex_unlock(&site_lock);
}

void fa_records_fork_child(void)
{
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    pthread_mutex_init(&pending_lock, NULL);
    pthread_mutex_init(&tag_lock, NULL);
    pthread_mutex_init(&site_lock, NULL);
}

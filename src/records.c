/* Allocation records, the observer alloc.c calls: start-up, the life of one record
 * (begin, end, forget), escapes of recorded frame blocks, the allocating stack of a
 * misused block, and the report's view of the call sites. Stack capture, the block
 * map, tags, sampling and guards are in their own files (records.h lists them).
 * Nothing here calls malloc (the symbolizer, called for error messages, does). */
#include "records.h"

#include <pthread.h>

#include "debug.h"
#include "frame.h"
#include "framealloc.h"
#include "guards.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "record_map.h"
#include "sampling.h"
#include "symbols.h"
#include "tags.h"

int fa_records_mode;
int fa_records_diverting;

/* Set while this thread is inside records (or a report): its allocations are not
 * recorded. */
static __thread uint8_t in_records __attribute__((tls_model("initial-exec")));

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
static uint64_t count_weight(const fa_record_t *r)
{
    return r->size ? (r->weight * COUNT_UNIT + r->size / 2) / r->size : 0;
}

static uint64_t whole_count(uint64_t thousandths) { return (thousandths + COUNT_UNIT / 2) / COUNT_UNIT; }

static void account(const fa_record_t *r, int sign)
{
    fa_site_totals_t *s = fa_sites_totals(r->site);
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
    if (r->tag)
        fa_tags_account(r->tag, sign * (int64_t)r->weight);
}

/* ---- one record's life ---- */

bool fa_records_begin(fa_record_draft_t *d, size_t size)
{
    if (in_records || !fa_sites_ready())
        return false;
    d->size = size ? size : 1; /* a record's size; its guard bytes follow it */
    d->weight = fa_records_mode == FA_RECORDS_SAMPLE ? fa_sampling_weight(d->size) : d->size;
    d->block_size = fa_guards_block_size(size);
    in_records = 1;
    d->depth = fa_sites_capture(d->frames);
    d->site = fa_sites_intern(d->frames, d->depth);
    return true;
}

void fa_records_end(fa_thread_t *t, const fa_record_draft_t *d, uint8_t intent, void *p)
{
    if (p)
        fa_guards_write(p, d->size);
    if (p && d->site != UINT32_MAX) {
        fa_record_t r = {
            .ptr = (uintptr_t)p,
            .size = d->size,
            .weight = d->weight,
            .frame = __atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE),
            .site = d->site,
            .tag = fa_tags_intern(fa_thread_tag(t)),
            .intent = intent,
        };
        fa_record_map_insert(&r);
        account(&r, +1);
        if (r.tag)
            fa_tags_check_budget(r.tag, d->frames, d->depth);
        if (intent == FA_FRAME) {
            pthread_mutex_lock(&pending_lock);
            if (pending_count < MAX_PENDING)
                pending[pending_count++] = (pending_t){r.ptr, r.frame};
            pthread_mutex_unlock(&pending_lock);
        }
    }
    in_records = 0;
}

void fa_records_pause(int paused) { in_records = (uint8_t)(paused != 0); }

bool fa_records_forget(void *p)
{
    if (fa_record_map_empty())
        return false;
    fa_record_t r;
    if (!fa_record_map_remove((uintptr_t)p, &r))
        return false;
    account(&r, -1);
    fa_record_map_note_freed(r.ptr, r.site);
    size_t at = fa_guards_check(p, r.size);
    if (at < FA_GUARD_BYTES) {
        const uintptr_t *frames = NULL;
        uint32_t depth = fa_sites_frames(r.site, &frames);
        in_records = 1; /* the symbolizer allocates */
        fa_guards_report_overrun(p, r.size, at, frames, depth);
    }
    fa_guards_poison(p, r.size);
    return true;
}

bool fa_records_requested_size(void *p, size_t *size)
{
    uint64_t recorded;
    if (!fa_record_map_size((uintptr_t)p, &recorded))
        return false;
    *size = recorded;
    return true;
}

uint32_t fa_records_capture_site(void)
{
    if (in_records || !fa_sites_ready())
        return UINT32_MAX;
    in_records = 1;
    uintptr_t frames[FA_SITES_MAX_DEPTH];
    int depth = fa_sites_capture(frames);
    uint32_t site = fa_sites_intern(frames, depth);
    in_records = 0;
    return site;
}

void fa_records_frame_ended(uint64_t now)
{
    pthread_mutex_lock(&pending_lock);
    size_t kept = 0;
    for (size_t i = 0; i < pending_count; i++) {
        pending_t e = pending[i];
        if (e.frame + fa_settings.frames_in_flight > now) {
            pending[kept++] = e;
            continue;
        }
        fa_record_t r;
        if (fa_settings.frame_strict) {
            /* Strict mode's frees of frame blocks do nothing, so records never see
             * them: every recorded block of a recycled frame is gone now. */
            if (fa_record_map_remove(e.ptr, &r)) {
                if (r.intent == FA_FRAME && r.frame == e.frame)
                    account(&r, -1);
                else
                    fa_record_map_insert(&r); /* not that block: keep it */
            }
            continue;
        }
        if (fa_record_map_mark_escaped(e.ptr, e.frame, &r)) {
            fa_site_totals_t *s = fa_sites_totals(r.site);
            s->escape_count += count_weight(&r);
            s->escape_bytes += r.weight;
        }
    }
    pending_count = kept;
    pthread_mutex_unlock(&pending_lock);
}

/* ---- misuse reports ---- */

/* Frames of an allocating stack shown after a misuse message. */
#define MISUSE_STACK_FRAMES 16

/* The misuse observer (log.h): after the message about p, the allocating stack of
 * the recorded block p points into while it is live (sampled or full records) or,
 * with full records, of the block recorded at p and freed since (a double free,
 * a use after free). With full records every block at p since was recorded and its
 * free noted, so the last note is that block's; sampling leaves most blocks
 * unrecorded, so a freed sample's note may be older than the block p last was, and
 * is not shown. Symbolizing allocates: the arena reported before changing anything
 * and holds no lock, so the allocator serves it as usual (unrecorded). */
static void describe_misused_pointer(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    fa_record_t r;
    uint32_t site;
    bool live = fa_record_map_find_holding(a, &r);
    if (live)
        site = r.site;
    else if (fa_records_mode != FA_RECORDS_FULL || !fa_record_map_freed_site(a, &site))
        return;
    const uintptr_t *frames = NULL;
    uint32_t depth = fa_sites_frames(site, &frames);
    if (!depth)
        return;
    if (!live)
        fa_log("the block at %p, freed before, was allocated at:", p);
    else if (r.ptr == a)
        fa_log("the live %zu-byte block at %p was allocated at:", (size_t)r.size, p);
    else
        fa_log("%p is %zu bytes into the live %zu-byte block at %p, allocated at:", p, (size_t)(a - r.ptr),
               (size_t)r.size, (void *)r.ptr);
    in_records = 1; /* the symbolizer's allocations are not recorded */
    fa_symbols_log_stack(frames, depth, MISUSE_STACK_FRAMES);
}

/* ---- start-up ---- */

FA_EVERY_PROCESS uint8_t fa_records_intent_flag(void) { return fa_records_diverting ? FA_INTENT_RECORDS : 0; }

static bool map_tables(void)
{
    bool sites = fa_sites_map();
    pending = fa_os_map_table(MAX_PENDING * sizeof *pending);
    if (!sites || !pending) {
        fa_log("FRAMEALLOC_RECORDS: cannot map the record tables; records are off");
        return false;
    }
    fa_record_map_start();
    return true;
}

FA_EVERY_PROCESS void fa_records_start(void)
{
    int mode = fa_settings.records;
    bool protect = (fa_settings.debug & FA_DEBUG_PROTECT) != 0;
    if ((mode == FA_RECORDS_OFF && !protect) || fa_records_diverting)
        return;
    in_records = 1; /* allocations made while loading libunwind are not recorded */
    bool ok = map_tables() && fa_sites_load_unwinder(fa_settings.records_depth);
    in_records = 0;
    if (!ok)
        return;
    if (mode == FA_RECORDS_SAMPLE)
        fa_sampling_start(fa_settings.records_rate_bytes);
    if (mode != FA_RECORDS_OFF)
        fa_log_set_misuse_observer(describe_misused_pointer);
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
    const fa_site_totals_t *s = fa_sites_totals(id);
    out->id = id;
    out->depth = fa_sites_frames(id, &out->frames);
    out->alloc_count = whole_count(s->alloc_count);
    out->alloc_bytes = s->alloc_bytes;
    out->live_count = whole_count(s->live_count);
    out->live_bytes = s->live_bytes;
    out->escape_count = whole_count(s->escape_count);
    out->escape_bytes = s->escape_bytes;
    out->samples = s->samples;
    out->intent = s->intent;
    out->tag = fa_tags_name(s->tag);
}

void fa_records_for_each_site(void (*fn)(const fa_site_t *site, void *arg), void *arg)
{
    uint32_t n = fa_sites_count();
    for (uint32_t id = 0; id < n; id++) {
        fa_site_t site;
        fill_site(id, &site);
        if (site.samples)
            fn(&site, arg);
    }
}

void fa_records_summary(uint64_t *samples, uint64_t *estimated_bytes, uint64_t *rate)
{
    uint64_t n = 0, bytes = 0;
    uint32_t count = fa_sites_count();
    for (uint32_t id = 0; id < count; id++) {
        n += fa_sites_totals(id)->samples;
        bytes += fa_sites_totals(id)->alloc_bytes;
    }
    *samples = n;
    *estimated_bytes = bytes;
    *rate = fa_sampling_rate();
}

void fa_records_set_budget(const char *tag, uint64_t bytes)
{
    if (fa_records_mode == FA_RECORDS_OFF) {
        static int said;
        if (!__atomic_exchange_n(&said, 1, __ATOMIC_RELAXED))
            fa_log("fa_budget_set: tag budgets are checked when FRAMEALLOC_RECORDS=sample or full (reported once)");
        return;
    }
    fa_tags_set_budget(tag, bytes);
}

/* ---- fork ---- */

void fa_records_fork_prepare(void)
{
    fa_sites_fork_prepare();
    fa_tags_fork_prepare();
    pthread_mutex_lock(&pending_lock);
    fa_record_map_fork_prepare();
}

void fa_records_fork_parent(void)
{
    fa_record_map_fork_parent();
    pthread_mutex_unlock(&pending_lock);
    fa_tags_fork_parent();
    fa_sites_fork_parent();
}

void fa_records_fork_child(void)
{
    fa_record_map_fork_child();
    pthread_mutex_init(&pending_lock, NULL);
    fa_tags_fork_child();
    fa_sites_fork_child();
}

/* Allocation records: sampled or full callstacks for allocations, per call site.
 *
 * Off by default and then free: no fast path looks at it. When on, each attached
 * thread's intent carries FA_INTENT_RECORDS (full records, protect), or its
 * sample_left runs out (sampling), so the allocation reaches alloc.c's slow path.
 * Records are an observer: alloc.c calls fa_records_begin, allocates the block
 * itself (route_recorded keeps it in the arena its intent names and makes its frees
 * reach the slow path), then calls fa_records_end; records never allocate or route.
 * Frees of recorded blocks call fa_records_forget, which finds them again in the
 * map of recorded blocks; unrecorded blocks never need a look-up.
 *
 * The parts: sites.c (stack capture, call sites), record_map.c (recorded blocks),
 * tags.c (tags and budgets), sampling.c (sampling by bytes), guards.c (guard bytes
 * and poison). This file ties them together: start-up, one record's life,
 * escapes, and the report's view of the sites. */
#ifndef FA_RECORDS_H
#define FA_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "sites.h"
#include "thread.h"



extern int fa_records_mode; /* FA_RECORDS_*; fixed after start-up */
/* True when allocations leave the fast paths for records or FRAMEALLOC_DEBUG=protect. */
extern int fa_records_diverting;

/* Reads the settings and, when records are on, loads and warms the unwinder.
 * Called from the library constructor, outside any allocation. */
void fa_records_start(void);

/* The flag a newly attached thread's intent carries. */
uint8_t fa_records_intent_flag(void);

/* A record being taken: what fa_records_begin found before the block exists. */
typedef struct {
    uintptr_t frames[FA_SITES_MAX_DEPTH];
    int depth;
    uint32_t site;        /* UINT32_MAX: the site table is full, nothing is kept */
    size_t size;          /* the record's size: the request, at least 1 */
    uint64_t weight;      /* bytes the record stands for */
    size_t block_size;    /* bytes to allocate: the request, with guard bytes */
} fa_record_draft_t;

/* Starts recording an allocation of size bytes by the calling thread (every one
 * in full mode, the sampled ones in sample mode): captures its stack. Returns
 * false when this allocation cannot be recorded (records' own allocations, no
 * unwinder); then the caller allocates normally and calls nothing else. Otherwise
 * the caller allocates d->block_size bytes and must call fa_records_end. */
bool fa_records_begin(fa_record_draft_t *d, size_t size);
/* Records p (NULL: the allocation failed), allocated for thread t under intent
 * (flag bit removed), and ends what fa_records_begin started. */
void fa_records_end(fa_thread_t *t, const fa_record_draft_t *d, uint8_t intent, void *p);

/* For a heap pointer being freed or resized: forgets its record if it has one,
 * checking its guard bytes and poisoning it under FRAMEALLOC_DEBUG. Returns true if
 * p was recorded. Cheap when nothing recorded is live. */
bool fa_records_forget(void *p);

/* The size the program asked for, when p is a recorded block (guards make the
 * heap block larger). */
bool fa_records_requested_size(void *p, size_t *size);

/* The call site of the caller of the allocator (stack captured now), or UINT32_MAX
 * when none can be taken. For FRAMEALLOC_DEBUG=protect. */
uint32_t fa_records_capture_site(void);

/* Called at every frame end: recorded frame-scope blocks of recycled frames that are
 * still alive are escapes, attributed to their allocating stack. */
void fa_records_frame_ended(uint64_t now);

/* ---- for reports ---- */

typedef struct {
    uint32_t id;
    uint32_t depth;
    const uintptr_t *frames;  /* return addresses, innermost first */
    uint64_t alloc_count, alloc_bytes;   /* estimated totals (weights) */
    uint64_t live_count, live_bytes;     /* estimated, now */
    uint64_t escape_count, escape_bytes; /* estimated */
    uint64_t samples;                    /* records taken here */
    uint8_t intent;                      /* intent of the most recent record */
    const char *tag;                     /* tag of the most recent record, or NULL */
} fa_site_t;

/* Calls fn for every call site with at least one record. */
void fa_records_for_each_site(void (*fn)(const fa_site_t *site, void *arg), void *arg);
/* Totals: samples taken, bytes sampled (estimated), the sampling rate in bytes. */
void fa_records_summary(uint64_t *samples, uint64_t *estimated_bytes, uint64_t *rate);

/* Recording off (1) or back on (0) for the calling thread: reports allocate. */
void fa_records_pause(int paused);

/* Per-tag budgets (fa_budget_set): one warning the first time a tag goes over. */
void fa_records_set_budget(const char *tag, uint64_t bytes);

void fa_records_fork_prepare(void);
void fa_records_fork_parent(void);
void fa_records_fork_child(void);

#endif

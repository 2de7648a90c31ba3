/* Allocation records: sampled or full callstacks for allocations, per call site.
 *
 * Off by default and then free: no fast path looks at it. When on, each attached
 * thread's intent carries FA_INTENT_RECORDS, so the fast-path compares fail into
 * the slow path, which calls fa_records_alloc; heap-sized requests check
 * fa_records_mode there.
 *
 * Recorded blocks stay in the arena their intent names (alloc.c's route_recorded),
 * made so that their frees reach the slow path, where a sharded map from address to
 * record finds them again; unrecorded blocks never need a look-up. A
 * sample stands for weight bytes (unbiased sampling by bytes, as in tcmalloc's and
 * jemalloc's heap profilers); in full mode the weight is the size.
 *
 * Stacks are captured with libunwind before any lock is taken, behind a per-thread
 * recursion guard; libunwind is loaded with RTLD_LOCAL so that its _Unwind_* names
 * never replace the C++ runtime's. */
#ifndef FA_RECORDS_H
#define FA_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thread.h"

enum { FA_RECORDS_OFF, FA_RECORDS_SAMPLE, FA_RECORDS_FULL };

#define FA_RECORDS_MAX_DEPTH 64

extern int fa_records_mode; /* FA_RECORDS_*; fixed after start-up */
/* True when allocations leave the fast paths for records or FRAMEALLOC_DEBUG=protect. */
extern int fa_records_diverting;

/* Reads the settings and, when records are on, loads and warms the unwinder.
 * Called from the library constructor, outside any allocation. */
void fa_records_start(void);

/* The flag a newly attached thread's intent carries. */
uint8_t fa_records_intent_flag(void);

/* Allocates size bytes aligned to alignment for thread t under intent (flag bit
 * removed) and records it: every allocation in full mode, the sampled ones (those
 * that used up t->sample_left) in sample mode. route() is the normal allocation path. */
typedef void *(*fa_route_fn)(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment);
void *fa_records_alloc(fa_thread_t *t, uint8_t intent, size_t size, size_t alignment, fa_route_fn route);

/* Sets t->sample_left after an allocation of size bytes used it up: the distance to
 * the next sample, or all ones when sampling is off. */
void fa_records_rearm(fa_thread_t *t, size_t size);

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
/* The frames of a site (innermost first); returns the depth. */
uint32_t fa_records_site_frames(uint32_t site, const uintptr_t **frames);


/* Called at every frame end: recorded frame-scope blocks of recycled frames that are
 * still alive are escapes, attributed to their allocating stack. */
void fa_records_frame_ended(uint64_t now, uint64_t frames_in_flight);

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

typedef struct {
    const char *name;
    uint64_t live_bytes, peak_bytes, alloc_bytes; /* estimated */
    uint64_t budget;                              /* 0: none */
} fa_tag_totals_t;

/* Calls fn for every call site with at least one record (stack table locked). */
void fa_records_for_each_site(void (*fn)(const fa_site_t *site, void *arg), void *arg);
/* Calls fn for every tag seen. */
void fa_records_for_each_tag(void (*fn)(const fa_tag_totals_t *tag, void *arg), void *arg);
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

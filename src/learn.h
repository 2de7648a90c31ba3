/* Learned intent (FRAMEALLOC_LEARN): frames for programs that mark no scopes.
 *
 * With learning on, a thread outside every scope has the internal intent
 * FA_INTENT_LEARN instead of FA_DEFAULT. The malloc fast path tests it after its two
 * existing compares, so with learning off (the intent is never set) nothing changes.
 * Under FA_INTENT_LEARN the fast path reads the caller's return address (the call
 * site) and asks this thread's table whether the site is routed to the frame arena;
 * every other site gets the pools, as under FA_DEFAULT.
 *
 * About one allocation in FRAMEALLOC_LEARN_RATE (a per-thread countdown) is observed
 * instead: served by the heap and kept in a side table keyed by address, so its free
 * (which reaches the heap slow path) tells its age in frames. Per site that gives the
 * share of blocks freed within the frame they were made in, within 1, 2, ... frames.
 * In route mode a site is routed once, after the warm-up, the upper confidence bound
 * of its escape share (blocks alive when their frame is recycled) is small; it is
 * demoted when the lower bound grows large. Routed frame blocks are safe-mode frame
 * blocks: an escaped one stays alive, so no decision can lose data. */
#ifndef FA_LEARN_H
#define FA_LEARN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "config.h"
#include "frame.h"
#include "pool.h"
#include "thread.h"

/* The thread intent when learning is on and no scope is open (not a public fa_intent). */
#define FA_INTENT_LEARN 4



/* Bits 3 to 11 of a return address, as a byte offset into the thread's table
 * (one AND, no shift): call sites a multiple of 4 KiB apart are rare enough to
 * share a slot. */
FA_INLINE uintptr_t *fa_learn_slot(fa_learn_thread_t *l, uintptr_t site)
{
    return (uintptr_t *)((char *)l->frame_sites + (site & ((FA_LEARN_SLOTS - 1) * sizeof(uintptr_t))));
}

/* One off the thread's countdown; true when an observation is due. One
 * read-modify-write subtract and one branch (as fa_sample_countdown). */
FA_INLINE bool fa_learn_countdown(fa_learn_thread_t *l)
{
    __asm__ goto("subq $1, %0\n\tjle %l[due]" : : "m"(l->countdown) : "cc", "memory" : due);
    return false;
due:
    return true;
}

/* The fast path under FA_INTENT_LEARN: NULL when an observation is due, the site's
 * arena has no room, or the table is stale (the slow path sorts those out). */
FA_INLINE void *fa_learn_try_alloc(fa_thread_t *t, size_t size, uintptr_t site)
{
    fa_learn_thread_t *l = &t->learn;
    if (FA_UNLIKELY(fa_learn_countdown(l)))
        return NULL;
    if (*fa_learn_slot(l, site) == site)
        return fa_frame_try_alloc(t, size);
    return fa_pool_try_alloc(t, size);
}

/* ---- for alloc.c's learn slow path ---- */

/* What the slow path does with one allocation from site. */
typedef enum {
    FA_LEARN_USE_DEFAULT, /* the normal FA_DEFAULT routing */
    FA_LEARN_USE_FRAME,   /* the thread's frame arena (routed site) */
    FA_LEARN_USE_OBSERVE, /* the heap, then fa_learn_observe */
} fa_learn_use_t;

/* Reads the settings (called by init). */
void fa_learn_configure(void);
/* The intent bits a thread gets when it attaches: FA_INTENT_LEARN, or 0 when off. */
uint8_t fa_learn_thread_intent(void);
/* Start-up outside any allocation: loads FRAMEALLOC_LEARN_PROFILE. */
void fa_learn_start(void);
/* Exit: the report (stderr, and FRAMEALLOC_REPORT's directory) and the profile. */
void fa_learn_finish(void);

/* The slow path's decision for an allocation of size bytes from site on thread t
 * (also brings the thread's table and frame generation up to date). */
fa_learn_use_t fa_learn_decide(fa_thread_t *t, uintptr_t site, size_t size);
/* p (from the heap) is observed: remembered until its free. */
void fa_learn_observe(void *p, uintptr_t site, size_t size);
/* A heap block is being freed: its age is counted if it was observed. */
void fa_learn_forget(void *p);
/* A heap block moved (realloc): an observed one is followed to its new address. */
void fa_learn_moved(void *from, void *to);

/* ---- for the report and the profile (learn_report.c) ---- */

/* Ages in frames at which observed blocks were freed: 0 (the frame they were made
 * in) to FA_LEARN_AGES - 2, and the last one for everything older. */
#define FA_LEARN_AGES 10

typedef enum { FA_LEARN_SITE_OBSERVED, FA_LEARN_SITE_ROUTED, FA_LEARN_SITE_DEMOTED } fa_learn_site_state_t;

/* One call site as the report sees it (a copy). Estimated counts are sums of the
 * observed blocks' weights (each stands for the allocations sampled over). */
typedef struct {
    uintptr_t site;                   /* return address into the program */
    uint64_t samples;                 /* observed allocations */
    uint64_t allocs, bytes;           /* estimated allocations and bytes */
    uint64_t freed[FA_LEARN_AGES];    /* estimated allocations freed at each age */
    uint64_t live;                    /* estimated allocations still alive */
    uint64_t decided, escaped;        /* observed blocks freed or aged out; of them, escapes */
    fa_learn_site_state_t state;
    bool from_profile;
    bool temporary;                   /* passes the routing bound now */
} fa_learn_site_t;

typedef struct {
    uint64_t frames;                  /* frames ended so far (the settings are fa_settings) */
    uint64_t samples, allocs;         /* observed; estimated allocations of every site */
    uint64_t dropped;                 /* observations lost to a full side table */
    uint64_t routed, demoted;         /* sites routed now; demotions so far */
    double bound;                     /* escape share a routed site's bound must stay under */
} fa_learn_summary_t;

/* Copies up to cap sites into out (the most allocating first is not guaranteed);
 * returns how many there are. Fills *summary. */
size_t fa_learn_sites(fa_learn_site_t *out, size_t cap, fa_learn_summary_t *summary);
/* Routes the profile's sites whose modules are loaded now and were not before (at
 * start, then from the slow path when the loader added modules). */
void fa_learn_resolve_profile(void);
/* Stops observing (the report and the profile allocate). */
void fa_learn_pause(void);

#endif

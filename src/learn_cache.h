/* The per-thread part of learned intent (lives inside fa_thread_t, so the malloc
 * fast path reaches it %fs-relative, like the pool bins): the sampling countdown
 * and the table of call sites routed to the frame arena (learn.h). */
#ifndef FA_LEARN_CACHE_H
#define FA_LEARN_CACHE_H

#include <stdint.h>

/* A direct-mapped set of the call sites routed to the frame arena (a site that
 * collides with another is simply not routed on this thread). */
#define FA_LEARN_SLOT_BITS 9
#define FA_LEARN_SLOTS (1u << FA_LEARN_SLOT_BITS)

typedef struct {
    int64_t countdown;  /* allocations left before the next observed one; <= 0: due */
    uint64_t epoch;     /* version of the routed set that frame_sites holds */
    uint64_t random;    /* xorshift state for the sampling distances */
    uint64_t weight;    /* allocations the next observed one stands for */
    uint64_t observing; /* weight of the observation under way (decide to observe) */
    /* Allocations the pools do not serve (the heap's, unless routed) have their own,
     * denser countdown: each costs a heap pair, so routing one saves ten times what a
     * pool-sized one saves, and an observation costs little next to it. */
    int64_t large_countdown;
    uint64_t large_weight;
    uintptr_t frame_sites[FA_LEARN_SLOTS];
} fa_learn_thread_t;

#endif

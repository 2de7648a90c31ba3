/* Sampling for FRAMEALLOC_RECORDS=sample: unbiased sampling by bytes, as in
 * tcmalloc's and jemalloc's heap profilers. Each thread counts down sample_left in
 * its state (the fast paths do the subtraction); the allocation that uses it up is
 * sampled and stands for weight bytes. */
#ifndef FA_SAMPLING_H
#define FA_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "thread.h"

/* Sampling on, one sample every rate bytes on average. Called once at start-up. */
void fa_sampling_start(uint64_t rate);
/* The mean distance between samples in bytes, 0 when sampling is off. */
uint64_t fa_sampling_rate(void);

/* Sets t->sample_left after an allocation of size bytes used it up: the distance to
 * the next sample, or FA_SAMPLE_NEVER when sampling is off. */
void fa_sampling_rearm(fa_thread_t *t, size_t size);

/* The bytes a sampled block of size bytes (at least 1) stands for. */
uint64_t fa_sampling_weight(size_t size);

#endif

/* Sampling by bytes: exponential distances between sample points, drawn from a
 * per-thread random stream, and the weight of a sample. */
#include "sampling.h"

#include <time.h>

#include "math_lite.h"

static uint64_t sample_rate; /* bytes; 0: sampling off */

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
        rng = (uint64_t)(uintptr_t)&rng ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    double u = ((double)(next_random() >> 11) + 0.5) / 9007199254740992.0;
    return (uint64_t)(-fa_math_log(u) * (double)sample_rate) + 1;
}

void fa_sampling_start(uint64_t rate) { sample_rate = rate; }

uint64_t fa_sampling_rate(void) { return sample_rate; }

FA_EVERY_PROCESS void fa_sampling_rearm(fa_thread_t *t, size_t size)
{
    if (!sample_rate) {
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

uint64_t fa_sampling_weight(size_t size)
{
    /* A block of s bytes is sampled with probability 1 - exp(-s / rate). */
    double p = 1.0 - fa_math_exp(-(double)size / (double)sample_rate);
    return (uint64_t)((double)size / p + 0.5);
}

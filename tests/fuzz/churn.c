/* Thread-churn stress test in the manner of mimalloc's test-stress: every iteration
 * starts a fresh set of threads that allocate (sizes spread over powers of two, a few
 * ten or a hundred times larger), free, and swap blocks with each other through
 * lock-free transfer slots; blocks outlive the threads that made them, so later
 * threads free memory of exited ones. Every block's words hold a pattern derived from
 * its address and length, written at allocation and checked in full when it is freed,
 * resized or taken from a slot.
 *
 *   fa_churn [--threads N] [--scale PERCENT] [--iterations N] [--frames] [--seed N]
 *            [--require-library] [--require-frames]
 *
 * --frames: threads work in bursts inside frame scopes while the main thread ends
 * frames as fast as it can, and frame blocks travel to other threads and outlive
 * their frames (escapes): safe mode only (FRAMEALLOC_FRAME_MODE=strict recycles them).
 * Runs unchanged under glibc, which proves the test itself right. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "framealloc.h"

enum { TRANSFERS = 1000, MAX_THREADS = 32 };

static unsigned n_threads = 4, scale = 50, iterations = 10;
static int frames_mode;
static uint64_t seed = 0x6a09e667f3bcc908ULL;
static _Atomic(uintptr_t) transfer[TRANSFERS];
static atomic_int workers_running;
static atomic_ullong blocks_made, blocks_swapped;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r) { return mix64(r->s += 0x9E3779B97F4A7C15ULL); }
static int chance(rng_t *r, unsigned percent) { return rnd(r) % 100 < percent; }

__attribute__((noreturn)) static void fail(const char *what, const void *p, size_t word, uint64_t got, uint64_t want)
{
    /* dprintf: the heap may be what is broken. */
    dprintf(2, "fa_churn: FAIL: %s: block %p, word %zu is %#llx, expected %#llx\n", what, p, word,
            (unsigned long long)got, (unsigned long long)want);
    abort();
}

/* ---- blocks: word 0 holds the length in words, the others the pattern ---- */

static uint64_t cookie(const uint64_t *p, size_t words) { return mix64((uintptr_t)p ^ (words << 40) ^ seed); }

static uint64_t pattern(const uint64_t *p, size_t words, size_t i) { return cookie(p, words) + (words - i) * 0x9E37ULL; }

static void fill(uint64_t *p, size_t words, size_t from)
{
    p[0] = words ^ cookie(p, 0);
    for (size_t i = from ? from : 1; i < words; i++)
        p[i] = pattern(p, words, i);
}

static size_t words_of(const uint64_t *p, const char *what)
{
    size_t words = (size_t)(p[0] ^ cookie(p, 0));
    if (words == 0 || words > ((size_t)64 << 20))
        fail(what, p, 0, p[0], cookie(p, 0));
    return words;
}

static void check(const uint64_t *p, const char *what)
{
    if (!p)
        return;
    size_t words = words_of(p, what);
    for (size_t i = 1; i < words; i++)
        if (p[i] != pattern(p, words, i))
            fail(what, p, i, p[i], pattern(p, words, i));
}

/* Powers of two up to 32 KiB, one in a hundred ten times larger, one in ten thousand
 * a hundred times larger (as test-stress). */
static size_t pick_words(rng_t *r)
{
    size_t words = (size_t)1 << (rnd(r) % 12);
    words += rnd(r) % words;
    if (rnd(r) % 100 == 0)
        words *= 10;
    if (rnd(r) % 10000 == 0)
        words *= 100;
    return words + 1;
}

static uint64_t *make(rng_t *r)
{
    size_t words = pick_words(r);
    uint64_t *p;
    switch (rnd(r) % 8) {
    case 0:
        p = calloc(words, 8);
        if (p)
            for (size_t i = 0; i < words; i++)
                if (p[i])
                    fail("calloc memory not zeroed", p, i, p[i], 0);
        break;
    case 1:
        p = aligned_alloc(64 << (rnd(r) % 4), words * 8);
        break;
    default:
        p = malloc(words * 8);
    }
    if (!p) {
        dprintf(2, "fa_churn: FAIL: allocating %zu bytes: %s\n", words * 8, strerror(errno));
        abort();
    }
    fill(p, words, 0);
    atomic_fetch_add_explicit(&blocks_made, 1, memory_order_relaxed);
    return p;
}

static void release(uint64_t *p)
{
    check(p, "before free");
    free(p);
}

/* Grows or shrinks a block, checking the kept words. */
static uint64_t *resize(rng_t *r, uint64_t *p)
{
    check(p, "before realloc");
    size_t old_words = words_of(p, "before realloc"), words = pick_words(r);
    uint64_t old_cookie = cookie(p, old_words);
    uint64_t *q = realloc(p, words * 8);
    if (!q) {
        dprintf(2, "fa_churn: FAIL: realloc to %zu bytes: %s\n", words * 8, strerror(errno));
        abort();
    }
    size_t kept = old_words < words ? old_words : words;
    for (size_t i = 1; i < kept; i++)
        if (q[i] != old_cookie + (old_words - i) * 0x9E37ULL)
            fail("after realloc (kept words)", q, i, q[i], old_cookie + (old_words - i) * 0x9E37ULL);
    fill(q, words, 0);
    return q;
}

/* ---- one thread's work ---- */

typedef struct {
    unsigned id, iteration;
} job_t;

static void *worker(void *arg)
{
    job_t *job = arg;
    rng_t r = { mix64(seed ^ ((uint64_t)job->iteration << 32) ^ job->id) };
    size_t allocs = (size_t)100 * scale * (job->id % 8 + 1) / 100, retain = allocs / 2;
    size_t cap = allocs + retain + 1, top = 0, kept = 0;
    uint64_t **data = calloc(cap, sizeof *data), **retained = calloc(retain + 1, sizeof *retained);
    if (!data || !retained) {
        dprintf(2, "fa_churn: FAIL: out of memory for the test's own tables\n");
        abort();
    }
    int in_frame = 0;
    while (allocs > 0 || retain > 0) {
        /* Bursts in and out of frame scopes; a frame block may go anywhere below. */
        if (frames_mode && rnd(&r) % 64 == 0) {
            if (in_frame)
                fa_scope_pop();
            else
                fa_scope_push(FA_FRAME);
            in_frame = !in_frame;
        }
        if (retain == 0 || (allocs > 0 && chance(&r, 50))) {
            data[top++] = make(&r);
            allocs--;
        } else {
            retained[kept++] = make(&r);
            retain--;
        }
        if (top > 0 && chance(&r, 66)) {
            size_t i = rnd(&r) % top;
            release(data[i]);
            data[i] = data[--top];
        }
        if (top > 0 && chance(&r, 25)) {
            /* Swap with a transfer slot: what comes back was made by any thread, maybe
             * one that has exited. */
            size_t i = rnd(&r) % top;
            uintptr_t got = atomic_exchange(&transfer[rnd(&r) % TRANSFERS], (uintptr_t)data[i]);
            check((uint64_t *)got, "taken from a transfer slot");
            atomic_fetch_add_explicit(&blocks_swapped, 1, memory_order_relaxed);
            if (got)
                data[i] = (uint64_t *)got;
            else
                data[i] = data[--top];
        }
        if (top > 0 && chance(&r, 3)) {
            size_t i = rnd(&r) % top;
            data[i] = resize(&r, data[i]);
        }
    }
    if (in_frame)
        fa_scope_pop();
    for (size_t i = 0; i < top; i++)
        release(data[i]);
    /* Half the threads free what they retained; the others leave it in the slots for
     * the next iteration's threads. */
    for (size_t i = 0; i < kept; i++) {
        if (job->id % 2) {
            release(retained[i]);
        } else {
            uintptr_t got = atomic_exchange(&transfer[rnd(&r) % TRANSFERS], (uintptr_t)retained[i]);
            release((uint64_t *)got);
        }
    }
    free(retained);
    free(data);
    atomic_fetch_sub(&workers_running, 1);
    return NULL;
}

static void sleep_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

static void run_iteration(unsigned iteration)
{
    pthread_t tids[MAX_THREADS];
    job_t jobs[MAX_THREADS];
    atomic_store(&workers_running, (int)n_threads);
    for (unsigned i = 0; i < n_threads; i++) {
        jobs[i] = (job_t){ i, iteration };
        int err = pthread_create(&tids[i], NULL, worker, &jobs[i]);
        if (err) {
            fprintf(stderr, "fa_churn: FAIL: pthread_create: %s\n", strerror(err));
            abort();
        }
    }
    /* The main loop ends frames while the workers run. */
    while (frames_mode && atomic_load(&workers_running) > 0) {
        fa_frame_end();
        sleep_us(100);
    }
    for (unsigned i = 0; i < n_threads; i++)
        pthread_join(tids[i], NULL);
}

int main(int argc, char **argv)
{
    int require = 0, require_frames = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--threads") && has_value)
            n_threads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--scale") && has_value)
            scale = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--iterations") && has_value)
            iterations = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && has_value)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--frames"))
            frames_mode = 1;
        else if (!strcmp(a, "--require-library"))
            require = 1;
        else if (!strcmp(a, "--require-frames"))
            require_frames = 1;
        else {
            fprintf(stderr, "usage: %s [--threads 1-%d] [--scale PERCENT] [--iterations N] [--frames] [--seed N] "
                            "[--require-library] [--require-frames]\n", argv[0], MAX_THREADS);
            return 2;
        }
    }
    if (n_threads < 1 || n_threads > MAX_THREADS) {
        fprintf(stderr, "fa_churn: --threads must be 1-%d\n", MAX_THREADS);
        return 2;
    }
    if (require && !fa_active()) {
        fprintf(stderr, "fa_churn: libframealloc is not loaded (run with LD_PRELOAD)\n");
        return 1;
    }
    for (unsigned it = 0; it < iterations; it++)
        run_iteration(it);
    for (size_t i = 0; i < TRANSFERS; i++)
        release((uint64_t *)atomic_exchange(&transfer[i], 0));

    fa_stats st;
    printf("fa_churn: ok: %u iterations of %u threads, %llu blocks, %llu swapped", iterations, n_threads,
           (unsigned long long)blocks_made, (unsigned long long)blocks_swapped);
    if (fa_stats_get(&st) == 0)
        printf(" (framealloc: %llu frames, %llu frame allocations, %llu escapes)", (unsigned long long)st.frame,
               (unsigned long long)st.frame_allocs, (unsigned long long)st.frame_escapes);
    printf("\n");
    if (require_frames && (!fa_active() || st.frame_allocs == 0)) {
        fprintf(stderr, "fa_churn: FAIL: --require-frames, but no allocation was served by a frame arena\n");
        return 1;
    }
    return 0;
}

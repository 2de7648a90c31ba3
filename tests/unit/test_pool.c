/* Size-class pools through the core's entry points: routing, class sizes, reuse,
 * cross-thread frees with bounded memory, thread churn and misuse detection. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "api.h"
#include "stats.h"
#include "config.h"
#include "options.h"
#include "pool.h"
#include "region.h"

static int is_pool(const void *p)
{
    return fa_region_owns(p) && fa_chunk_of(p)->kind == FA_CHUNK_POOL;
}

static fa_stats stats(void)
{
    fa_stats s;
    fa_stats_fill(&s, sizeof s);
    return s;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 31);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 31))
            return 0;
    return 1;
}

START_TEST(small_sizes_route_to_pools)
{
    fa_free(fa_malloc(1)); /* the first call reads the settings */
    ck_assert_uint_eq(fa_settings.pool_max, FA_POOL_LARGEST); /* the default */
    for (size_t n = 0; n <= FA_POOL_LARGEST; n += n < 1024 ? 1 : 61) {
        void *p = fa_malloc(n);
        ck_assert_msg(is_pool(p), "size %zu not from a pool", n);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        ck_assert_uint_ge(fa_malloc_usable_size(p), n);
        memset(p, 0xee, fa_malloc_usable_size(p));
        fa_free(p);
    }
    void *big = fa_malloc(FA_POOL_LARGEST + 1);
    ck_assert(!is_pool(big));
    fa_free(big);
}
END_TEST

START_TEST(pool_scope_serves_up_to_largest_class)
{
    setenv("FRAMEALLOC_POOL_MAX", "256", 1);
    void *outside = fa_malloc(257);
    ck_assert(!is_pool(outside));
    fa_free(outside);
    fa_scope_push(FA_POOL);
    void *p = fa_malloc(FA_POOL_LARGEST);
    void *q = fa_malloc(FA_POOL_LARGEST + 1);
    fa_scope_pop();
    ck_assert(is_pool(p));
    ck_assert(!is_pool(q));
    fa_scope_push(FA_HEAP);
    void *h = fa_malloc(32);
    fa_scope_pop();
    ck_assert(!is_pool(h));
    fa_free(p);
    fa_free(q);
    fa_free(h);
}
END_TEST

START_TEST(pool_max_setting_is_honoured)
{
    setenv("FRAMEALLOC_POOL_MAX", "0", 1);
    void *p = fa_malloc(16);
    ck_assert(!is_pool(p));
    fa_free(p);
}
END_TEST

START_TEST(usable_size_is_the_class_size)
{
    for (unsigned c = 0; c < FA_POOL_CLASSES; c++) {
        size_t size = fa_pool_class_size[c];
        fa_scope_push(FA_POOL);
        void *exact = fa_malloc(size);
        void *above_previous = fa_malloc(c ? fa_pool_class_size[c - 1] + 1 : 1);
        fa_scope_pop();
        ck_assert_uint_eq(fa_malloc_usable_size(exact), size);
        ck_assert_uint_eq(fa_malloc_usable_size(above_previous), size);
        fa_free(exact);
        fa_free(above_previous);
    }
}
END_TEST

START_TEST(freed_block_is_reused)
{
    void *p = fa_malloc(40);
    fa_free(p);
    void *q = fa_malloc(48);
    ck_assert_ptr_eq(p, q);
    fa_free(q);
}
END_TEST

START_TEST(many_blocks_keep_their_contents)
{
    enum { N = 60000 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        sizes[i] = x % 1025;
        blocks[i] = fa_malloc(sizes[i]);
        fill(blocks[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int j = (int)(x % N); /* free in a scrambled order */
        if (!blocks[j])
            continue;
        ck_assert(intact(blocks[j], sizes[j], (unsigned)j));
        fa_free(blocks[j]);
        blocks[j] = NULL;
    }
    for (int i = 0; i < N; i++)
        if (blocks[i]) {
            ck_assert(intact(blocks[i], sizes[i], (unsigned)i));
            fa_free(blocks[i]);
        }
    fa_stats s = stats();
    ck_assert_uint_eq(s.pool_live_bytes, 0);
}
END_TEST

/* Frees everything it allocated: ~40 chunks of 1 KiB blocks. */
static void allocate_and_free_batch(void)
{
    enum { N = 10000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(1000);
    for (int i = 0; i < N; i++)
        fa_free(blocks[i]);
}

START_TEST(emptied_chunks_are_kept_for_reuse)
{
    allocate_and_free_batch();
    uint64_t held = stats().pool_chunks;
    ck_assert_uint_ge(held, 30); /* kept: the next batch finds its pages */
    allocate_and_free_batch();
    ck_assert_uint_eq(stats().pool_chunks, held);
    ck_assert_uint_le(stats().region_peak_bytes, (held + 2) * FA_CHUNK_SIZE);
}
END_TEST

START_TEST(emptied_chunks_go_back_after_the_decay)
{
    setenv("FRAMEALLOC_POOL_DECAY_MS", "50", 1);
    allocate_and_free_batch();
    ck_assert_uint_ge(stats().pool_chunks, 30);
    struct timespec pause = {0, 120 * 1000000};
    nanosleep(&pause, NULL);
    /* Any slow path that empties a chunk or needs a new one releases the expired ones. */
    void *p[70];
    fa_scope_push(FA_POOL);
    for (int i = 0; i < 70; i++)
        p[i] = fa_malloc(4096);
    fa_scope_pop();
    for (int i = 0; i < 70; i++)
        fa_free(p[i]);
    ck_assert_uint_le(stats().pool_chunks, 4 + 4);
}
END_TEST

START_TEST(decay_zero_releases_at_once)
{
    setenv("FRAMEALLOC_POOL_DECAY_MS", "0", 1);
    allocate_and_free_batch();
    ck_assert_uint_le(stats().pool_chunks, 2 + 4);
}
END_TEST

START_TEST(realloc_within_class_keeps_block)
{
    char *p = fa_malloc(100); /* class 112 */
    strcpy(p, "pool");
    ck_assert_ptr_eq(fa_realloc(p, 112), p);
    ck_assert_ptr_eq(fa_realloc(p, 60), p);
    char *q = fa_realloc(p, FA_POOL_LARGEST + 100);
    ck_assert_str_eq(q, "pool");
    ck_assert(!is_pool(q));
    char *r = fa_realloc(q, 20); /* a heap block stays on the heap, as jemalloc would keep it */
    ck_assert_str_eq(r, "pool");
    fa_free(r);
}
END_TEST

START_TEST(calloc_zeroes_reused_blocks)
{
    unsigned char *p = fa_malloc(256);
    memset(p, 0x77, 256);
    fa_free(p);
    unsigned char *q = fa_calloc(16, 16);
    ck_assert_ptr_eq(p, q);
    for (int i = 0; i < 256; i++)
        ck_assert_uint_eq(q[i], 0);
    fa_free(q);
}
END_TEST

START_TEST(stats_count_pool_allocations)
{
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = fa_malloc(64);
    fa_stats s = stats();
    ck_assert_uint_eq(s.pool_allocs, 10);
    ck_assert_uint_eq(s.pool_live_bytes, 640);
    for (int i = 0; i < 10; i++)
        fa_free(p[i]);
    ck_assert_uint_eq(stats().pool_live_bytes, 0);
}
END_TEST

/* One thread only allocates, another only frees: memory must stay bounded. */
enum { RING = 4096, ROUNDS = 300 };
static void *ring[RING];
static _Atomic unsigned ring_head, ring_tail;

static void *consumer(void *arg)
{
    unsigned long total = (unsigned long)(uintptr_t)arg;
    for (unsigned long done = 0; done < total;) {
        unsigned tail = __atomic_load_n(&ring_tail, __ATOMIC_RELAXED);
        if (tail == __atomic_load_n(&ring_head, __ATOMIC_ACQUIRE))
            continue;
        unsigned char *p = ring[tail % RING];
        if (p[0] != (unsigned char)(tail & 0xff) || p[47] != 0x5a)
            abort();
        fa_free(p);
        __atomic_store_n(&ring_tail, tail + 1, __ATOMIC_RELEASE);
        done++;
    }
    return NULL;
}

START_TEST(producer_consumer_stays_bounded)
{
    unsigned long total = (unsigned long)RING * ROUNDS;
    pthread_t th;
    pthread_create(&th, NULL, consumer, (void *)(uintptr_t)total);
    for (unsigned long i = 0; i < total; i++) {
        while (__atomic_load_n(&ring_head, __ATOMIC_RELAXED) - __atomic_load_n(&ring_tail, __ATOMIC_ACQUIRE) >= RING)
            ;
        unsigned char *p = fa_malloc(48);
        p[0] = (unsigned char)(i & 0xff);
        p[47] = 0x5a;
        ring[i % RING] = p;
        __atomic_store_n(&ring_head, (unsigned)(i + 1), __ATOMIC_RELEASE);
    }
    pthread_join(th, NULL);
    /* 1.2 million blocks went through; at most RING were live at once (~200 KiB). */
    ck_assert_uint_le(stats().region_peak_bytes, 16 * FA_CHUNK_SIZE);
    ck_assert_uint_eq(stats().pool_live_bytes, 0);
}
END_TEST

static void *short_lived(void *arg)
{
    void **keep = arg;
    for (int i = 0; i < 64; i++) {
        void *p = fa_malloc(16 + (size_t)i * 8);
        if (i % 2)
            fa_free(p);
        else
            keep[i / 2] = p;
    }
    return NULL;
}

START_TEST(thread_churn_reuses_orphaned_chunks)
{
    static void *kept[32];
    for (int round = 0; round < 2000; round++) {
        pthread_t th;
        pthread_create(&th, NULL, short_lived, kept);
        pthread_join(th, NULL);
        for (int i = 0; i < 32; i++)
            fa_free(kept[i]); /* frees into the exited thread's (orphaned or adopted) chunks */
    }
    ck_assert_uint_le(stats().region_peak_bytes, 128 * FA_CHUNK_SIZE);
    ck_assert_uint_eq(stats().pool_live_bytes, 0);
}
END_TEST

START_TEST(double_free_is_reported)
{
    void *p = fa_malloc(32);
    void *q = fa_malloc(32); /* p is no longer at the head of the free list */
    fa_free(p);
    fa_free(q);
    fa_free(p);
}
END_TEST

START_TEST(interior_pointer_is_reported)
{
    char *p = fa_malloc(64);
    fa_free(p + 16);
}
END_TEST

static void *free_twice_remotely(void *p)
{
    fa_free(p);
    fa_free(p);
    return NULL;
}

START_TEST(remote_double_free_is_reported)
{
    void *p = fa_malloc(32);
    pthread_t th;
    pthread_create(&th, NULL, free_twice_remotely, p);
    pthread_join(th, NULL);
}
END_TEST

START_TEST(user_data_that_looks_like_a_cookie_is_not_a_double_free)
{
    uintptr_t *p = fa_malloc(32);
    p[1] = fa_pool_cookie(); /* legal, if unlikely, contents */
    fa_free(p);
    void *q = fa_malloc(32);
    ck_assert_ptr_eq(q, p);
    fa_free(q);
}
END_TEST

/* The block-start test multiplies instead of dividing; it is claimed exact for
 * every offset below 2^32. Check every offset a chunk can give, for every class. */
START_TEST(multiply_test_is_exact_for_every_offset)
{
    for (unsigned c = 0; c < FA_POOL_CLASSES; c++) {
        uint32_t size = fa_pool_class_size[c];
        uint64_t div = fa_pool_div_of(size);
        for (uint64_t off = 0; off < FA_CHUNK_SIZE; off++)
            if (fa_pool_is_multiple(off, div) != (off % size == 0))
                ck_abort_msg("class %u B, offset %llu", size, (unsigned long long)off);
    }
}
END_TEST

/* Every address of a real chunk of every class: a block start below the carve
 * line, nothing else (header, interiors, uncarved blocks, the tail). */
START_TEST(block_start_test_accepts_exactly_carved_starts)
{
    for (unsigned c = 0; c < FA_POOL_CLASSES; c++) {
        uint32_t size = fa_pool_class_size[c];
        fa_scope_push(FA_POOL);
        char *p = fa_malloc(size);
        fa_scope_pop();
        fa_pool_chunk_t *chunk = (fa_pool_chunk_t *)fa_chunk_of(p);
        char *data = (char *)chunk + FA_POOL_DATA_OFFSET;
        uint64_t carved = chunk->carved;
        ck_assert_uint_gt(carved, 0);
        ck_assert_uint_lt(carved, chunk->area); /* some blocks stay uncarved */
        for (size_t i = 0; i < FA_CHUNK_SIZE; i++) {
            char *q = (char *)chunk + i;
            int expected = q >= data && (uint64_t)(q - data) < carved && (q - data) % size == 0;
            if (fa_pool_is_block_start(chunk, q) != expected)
                ck_abort_msg("class %u B, chunk offset %zu", size, i);
        }
        fa_free(p);
    }
}
END_TEST

/* A write after free (or an overflow from the block before) that replaces a freed
 * block's link with a chosen address: malloc must stop with a message, never hand
 * out that address. */
static char target[64] __attribute__((aligned(16)));

START_TEST(overwritten_link_is_reported)
{
    void **p = fa_malloc(32);
    void *q = fa_malloc(32);
    fa_free(q);
    fa_free(p); /* the list is now p -> q */
    p[0] = target;
    void *a = fa_malloc(32);
    ck_assert_ptr_eq(a, p);
    void *b = fa_malloc(32); /* the link of p decodes to garbage: abort here */
    ck_assert_ptr_ne(b, target);
}
END_TEST

/* Changing only the low byte of a link must not move it onto a neighbouring block
 * (an xor encoding would allow that without knowing the secret). */
START_TEST(partly_overwritten_link_is_reported)
{
    unsigned char *p = fa_malloc(32);
    void *q = fa_malloc(32);
    fa_free(q);
    fa_free(p);
    p[0] ^= 0x20; /* q + 32 if the link were a plain or xor-ed pointer */
    ck_assert_ptr_eq(fa_malloc(32), p);
    fa_malloc(32);
}
END_TEST

/* The same for a link on a chunk's list of blocks freed by other threads. */
static void *free_remotely(void *p)
{
    fa_free(p);
    return NULL;
}

START_TEST(overwritten_remote_link_is_reported)
{
    enum { N = 2000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(32);
    pthread_t th;
    pthread_create(&th, NULL, free_remotely, blocks[N - 1]);
    pthread_join(th, NULL);
    pthread_create(&th, NULL, free_remotely, blocks[N - 2]);
    pthread_join(th, NULL);
    /* The chunk's remote list is blocks[N-2] -> blocks[N-1]. */
    ((void **)blocks[N - 2])[0] = target;
    for (int i = 0; i < 3 * N; i++) /* refills collect the remote list */
        ck_assert_ptr_ne(fa_malloc(32), target);
}
END_TEST

/* fa_stats counts are derived from the bins and the slow paths' counts, not counted
 * per call: they must stay exact through refills, flushes, remote frees and exits. */
enum { STAT_N = 3000 };
static void *stat_blocks[STAT_N];

static void *allocate_half_free_some(void *arg)
{
    (void)arg;
    for (int i = 0; i < STAT_N; i++)
        stat_blocks[i] = fa_malloc(48);
    for (int i = 0; i < STAT_N; i += 3)
        fa_free(stat_blocks[i]); /* the owner's own frees */
    return NULL;
}

START_TEST(stats_stay_exact_through_every_path)
{
    fa_stats s0 = stats();
    void *mine[STAT_N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < STAT_N; i++)
            mine[i] = fa_malloc(100); /* class 112: several refills */
        ck_assert_uint_eq(stats().pool_allocs, s0.pool_allocs + (uint64_t)(round + 1) * STAT_N);
        ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes + (uint64_t)STAT_N * 112);
        for (int i = 0; i < STAT_N; i++)
            fa_free(mine[i]); /* beyond the bin's limit: flushes */
        ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes);
    }
    uint64_t before = stats().pool_allocs;
    pthread_t th;
    pthread_create(&th, NULL, allocate_half_free_some, NULL);
    pthread_join(th, NULL);
    fa_stats s = stats(); /* the thread exited: its counts were folded in */
    ck_assert_uint_eq(s.pool_allocs, before + STAT_N);
    ck_assert_uint_eq(s.pool_live_bytes, s0.pool_live_bytes + (uint64_t)(STAT_N - STAT_N / 3) * 48);
    for (int i = 0; i < STAT_N; i++)
        if (i % 3)
            fa_free(stat_blocks[i]); /* frees into an exited thread's chunks */
    ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes);
    ck_assert_uint_eq(stats().pool_allocs, before + STAT_N);
}
END_TEST

/* A thread that frees everything before it exits (a short-lived worker): its
 * emptied chunks wait, with their pages, for the next thread instead of going back
 * to the OS (a system call and fresh page faults for every chunk of every thread). */
static void *batch_worker(void *arg)
{
    (void)arg;
    allocate_and_free_batch();
    return NULL;
}

static void run_batch_worker(void)
{
    pthread_t th;
    pthread_create(&th, NULL, batch_worker, NULL);
    pthread_join(th, NULL);
}

START_TEST(exited_threads_leave_their_chunks_to_the_next)
{
    run_batch_worker();
    fa_stats s = stats();
    ck_assert_uint_ge(s.pool_chunks, 30); /* parked, not released */
    ck_assert_uint_ge(s.region_bytes, 30 * FA_CHUNK_SIZE);
    for (int i = 0; i < 5; i++)
        run_batch_worker();
    ck_assert_uint_eq(stats().region_peak_bytes, s.region_peak_bytes); /* reused */
    ck_assert_uint_eq(stats().pool_chunks, s.pool_chunks);
}
END_TEST

/* Parked chunks are bounded: a thread that emptied many gives the rest back. */
static void *big_batch_worker(void *arg)
{
    (void)arg;
    enum { N = 2000 }; /* 15 blocks of 16 KiB a chunk: 134 chunks */
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(16384);
    for (int i = 0; i < N; i++)
        fa_free(blocks[i]);
    return NULL;
}

START_TEST(parked_chunks_are_bounded)
{
    pthread_t th;
    pthread_create(&th, NULL, big_batch_worker, NULL);
    pthread_join(th, NULL);
    ck_assert_uint_ge(stats().region_peak_bytes, 130 * FA_CHUNK_SIZE);
    ck_assert_uint_le(stats().pool_chunks, FA_POOL_SPARE_MAX);
}
END_TEST

START_TEST(decay_zero_parks_nothing)
{
    setenv("FRAMEALLOC_POOL_DECAY_MS", "0", 1);
    run_batch_worker();
    ck_assert_uint_eq(stats().pool_chunks, 0);
}
END_TEST

/* A parked chunk is reused by a thread of another size class. */
static void *small_worker(void *arg)
{
    (void)arg;
    void *p = fa_malloc(24);
    fa_free(p);
    return NULL;
}

START_TEST(parked_chunks_serve_any_class)
{
    run_batch_worker();
    uint64_t peak = stats().region_peak_bytes;
    pthread_t th;
    pthread_create(&th, NULL, small_worker, NULL);
    pthread_join(th, NULL);
    ck_assert_uint_eq(stats().region_peak_bytes, peak);
}
END_TEST

/* ---- parked caches: an exited thread's whole cache goes to the next thread ---- */

enum { PARK_N = 100 };
static void *park_blocks[PARK_N];
static uint32_t exited_bin_blocks, adopter_bin_blocks;

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    pthread_create(&th, NULL, fn, arg);
    pthread_join(th, NULL);
}

/* Blocks on the calling thread's bin for size. */
static uint32_t bin_blocks(size_t size)
{
    fa_pool_bin_t *bin = &fa_thread()->pool.bins[fa_pool_class_of[(size + 15) / 16]];
    return (uint32_t)(bin->limit - bin->room);
}

static void *allocate_and_free_48(void *arg)
{
    (void)arg;
    for (int i = 0; i < PARK_N; i++)
        park_blocks[i] = fa_malloc(48);
    for (int i = 0; i < PARK_N; i++)
        fa_free(park_blocks[i]);
    exited_bin_blocks = bin_blocks(48);
    return NULL;
}

static void *allocate_one_48(void *arg)
{
    void **out = arg;
    *out = fa_malloc(48);
    adopter_bin_blocks = bin_blocks(48);
    fa_free(*out);
    return NULL;
}

START_TEST(next_thread_adopts_an_exited_threads_cache)
{
    run_thread(allocate_and_free_48, NULL);
    fa_stats s = stats();
    void *first = NULL;
    run_thread(allocate_one_48, &first);
    /* The new thread starts with the exited thread's bin: its first block is the
     * last one freed there, and the rest stay cached, no chunk carved again. */
    ck_assert_ptr_eq(first, park_blocks[PARK_N - 1]);
    ck_assert_uint_gt(exited_bin_blocks, PARK_N);
    ck_assert_uint_eq(adopter_bin_blocks, exited_bin_blocks - 1);
    ck_assert_uint_eq(stats().region_peak_bytes, s.region_peak_bytes);
    /* Counted once: the exited thread's counts are not carried into the new one's. */
    ck_assert_uint_eq(stats().pool_allocs, s.pool_allocs + 1);
    ck_assert_uint_eq(stats().pool_live_bytes, s.pool_live_bytes);
}
END_TEST

START_TEST(double_free_into_a_parked_cache_is_reported)
{
    run_thread(allocate_and_free_48, NULL);
    fa_free(park_blocks[PARK_N / 2]); /* it waits on the parked cache's bin */
}
END_TEST

static void *allocate_and_keep_48(void *arg)
{
    (void)arg;
    for (int i = 0; i < PARK_N; i++)
        park_blocks[i] = fa_malloc(48);
    return NULL;
}

static void *allocate_and_free_many_48(void *arg)
{
    (void)arg;
    enum { N = 400 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(48);
    for (int i = 0; i < N; i++)
        fa_free(blocks[i]);
    return NULL;
}

/* Blocks handed out by an exited thread and freed by another while its cache is
 * parked come back to the thread that adopts it. */
START_TEST(frees_into_a_parked_cache_reach_the_adopter)
{
    fa_stats s0 = stats();
    run_thread(allocate_and_keep_48, NULL);
    ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes + PARK_N * 48);
    for (int i = 0; i < PARK_N; i++)
        fa_free(park_blocks[i]);
    ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes);
    uint64_t peak = stats().region_peak_bytes;
    run_thread(allocate_and_free_many_48, NULL);
    ck_assert_uint_eq(stats().region_peak_bytes, peak);
    ck_assert_uint_eq(stats().pool_live_bytes, s0.pool_live_bytes);
}
END_TEST

/* A parked cache nobody adopts goes back after FRAMEALLOC_POOL_DECAY_MS: a live
 * thread that needs a chunk then reuses its emptied chunk. */
START_TEST(parked_caches_expire_after_the_decay)
{
    setenv("FRAMEALLOC_POOL_DECAY_MS", "50", 1);
    void *mine = fa_malloc(48); /* this thread has its own cache: it adopts none */
    run_thread(allocate_and_free_48, NULL);
    uint64_t chunks = stats().pool_chunks;
    uint64_t peak = stats().region_peak_bytes;
    struct timespec pause = {0, 120 * 1000000};
    nanosleep(&pause, NULL);
    void *other = fa_malloc(1000); /* another class: a chunk is needed */
    ck_assert_uint_eq(stats().pool_chunks, chunks);
    ck_assert_uint_eq(stats().region_peak_bytes, peak);
    fa_free(other);
    fa_free(mine);
}
END_TEST

/* The owner's free takes one unit of the bin's room (an asm decrement-and-branch
 * on GCC): at 0 it must go to the slow path, which flushes, never below 0. */
START_TEST(bin_room_never_goes_below_zero)
{
    enum { N = 3000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(64);
    fa_pool_bin_t *bin = &fa_thread()->pool.bins[fa_pool_class_of[64 / 16]];
    for (int i = 0; i < N; i++) {
        fa_free(blocks[i]);
        ck_assert_int_ge(bin->room, 0);
        ck_assert_int_le(bin->room, bin->limit);
    }
    ck_assert_int_gt(bin->limit, 0);
    /* Every block is still handed out once each. */
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(64);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < i + 8 && j < N; j++)
            ck_assert_ptr_ne(blocks[i], blocks[j]);
}
END_TEST


/* Blocks freed back into an older chunk are handed out again before the current
 * chunk carves fresh pages: a population that falls and rises again (a level
 * unloaded, the next one loaded) reuses its memory instead of faulting in more. */
START_TEST(freed_blocks_are_reused_before_carving)
{
    enum { N = 8000, SIZE = 48 }; /* a chunk holds more blocks of 48 than a bin */
    static void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = fa_malloc(SIZE);
    fa_pool_chunk_t *first = (fa_pool_chunk_t *)fa_chunk_of(blocks[0]);
    fa_pool_chunk_t *last = (fa_pool_chunk_t *)fa_chunk_of(blocks[N - 1]);
    ck_assert_ptr_ne(first, last);
    ck_assert_uint_lt(last->carved, last->area); /* fresh blocks left to carve */
    /* Free every block of the first chunk but one (it stays in use), more than the
     * bin holds: the surplus goes back to the chunk. */
    uint32_t freed = 0;
    for (int i = 1; i < N; i++)
        if (fa_chunk_of(blocks[i]) == (void *)first) {
            fa_free(blocks[i]);
            blocks[i] = NULL;
            freed++;
        }
    ck_assert_uint_gt(freed, (uint32_t)fa_pool_cache_limit[first->class_index]);
    uint64_t carved = last->carved;
    uint64_t peak = stats().region_peak_bytes;
    for (uint32_t i = 0; i < freed; i++)
        fa_malloc(SIZE);
    ck_assert_uint_eq(last->carved, carved);
    ck_assert_uint_eq(stats().region_peak_bytes, peak);
}
END_TEST

/* The core's validators (src/self_check.h), compiled into the core these tests link:
 * a chunk whose count of blocks in use is impossible is caught at the next refill. */
START_TEST(validator_catches_a_broken_chunk)
{
    fa_pool_chunk_t *c = (fa_pool_chunk_t *)fa_chunk_of(fa_malloc(64));
    c->used = UINT32_MAX / 2;
    for (int i = 0; i < 100000; i++)
        fa_malloc(64); /* the bin runs dry and refills from c */
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pools");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, small_sizes_route_to_pools);
    tcase_add_test(tc, pool_scope_serves_up_to_largest_class);
    tcase_add_test(tc, pool_max_setting_is_honoured);
    tcase_add_test(tc, usable_size_is_the_class_size);
    tcase_add_test(tc, freed_block_is_reused);
    tcase_add_test(tc, many_blocks_keep_their_contents);
    tcase_add_test(tc, emptied_chunks_are_kept_for_reuse);
    tcase_add_test(tc, emptied_chunks_go_back_after_the_decay);
    tcase_add_test(tc, decay_zero_releases_at_once);
    tcase_add_test(tc, realloc_within_class_keeps_block);
    tcase_add_test(tc, calloc_zeroes_reused_blocks);
    tcase_add_test(tc, stats_count_pool_allocations);
    tcase_add_test(tc, producer_consumer_stays_bounded);
    tcase_add_test(tc, thread_churn_reuses_orphaned_chunks);
    tcase_add_test_raise_signal(tc, double_free_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, interior_pointer_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, remote_double_free_is_reported, SIGABRT);
    tcase_add_test(tc, user_data_that_looks_like_a_cookie_is_not_a_double_free);
    tcase_add_test(tc, multiply_test_is_exact_for_every_offset);
    tcase_add_test(tc, block_start_test_accepts_exactly_carved_starts);
    tcase_add_test_raise_signal(tc, overwritten_link_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, partly_overwritten_link_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, overwritten_remote_link_is_reported, SIGABRT);
    tcase_add_test(tc, stats_stay_exact_through_every_path);
    tcase_add_test(tc, exited_threads_leave_their_chunks_to_the_next);
    tcase_add_test(tc, parked_chunks_are_bounded);
    tcase_add_test(tc, decay_zero_parks_nothing);
    tcase_add_test(tc, parked_chunks_serve_any_class);
    tcase_add_test(tc, bin_room_never_goes_below_zero);
    tcase_add_test(tc, next_thread_adopts_an_exited_threads_cache);
    tcase_add_test_raise_signal(tc, double_free_into_a_parked_cache_is_reported, SIGABRT);
    tcase_add_test(tc, frees_into_a_parked_cache_reach_the_adopter);
    tcase_add_test(tc, parked_caches_expire_after_the_decay);
    tcase_add_test(tc, freed_blocks_are_reused_before_carving);
    suite_add_tcase(s, tc);
    TCase *validators = tcase_create("validators");
    tcase_add_test_raise_signal(validators, validator_catches_a_broken_chunk, SIGABRT);
    suite_add_tcase(s, validators);
    return s;
}

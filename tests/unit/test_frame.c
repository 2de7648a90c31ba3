/* Frame arena semantics through the core's entry points. */
#include <check.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "api.h"
#include "stats.h"
#include "config.h"
#include "region.h"
#include "thread.h"

/* True when all n bytes at p equal value (one assertion per block, not per byte). */
static int all_bytes_are(const unsigned char *p, size_t n, unsigned value)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != value)
            return 0;
    return 1;
}

/* True when p was served by a frame arena (pools share the region). */
static int is_frame(const void *p)
{
    return fa_region_owns(p) && fa_chunk_of(p)->kind == FA_CHUNK_FRAME;
}

static fa_stats stats(void)
{
    fa_stats s;
    fa_stats_fill(&s, sizeof s);
    return s;
}

START_TEST(frame_scope_serves_from_region)
{
    fa_scope_push(FA_FRAME);
    char *p = fa_malloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert(is_frame(p));
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    ck_assert_uint_ge(fa_malloc_usable_size(p), 100);
    memset(p, 0x5a, fa_malloc_usable_size(p));
    fa_free(p);
    fa_scope_pop();
    char *q = fa_malloc(100);
    ck_assert(!is_frame(q));
    fa_free(q);
    ck_assert_uint_eq(stats().frame_allocs, 1);
}
END_TEST

START_TEST(consecutive_blocks_do_not_overlap)
{
    fa_scope_push(FA_FRAME);
    enum { N = 5000 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    for (int i = 0; i < N; i++) {
        sizes[i] = 1 + (size_t)(i * 7919) % 3000;
        blocks[i] = fa_malloc(sizes[i]);
        ck_assert_ptr_nonnull(blocks[i]);
        memset(blocks[i], i & 0xff, sizes[i]);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_uint_ge(fa_malloc_usable_size(blocks[i]), sizes[i]);
        ck_assert(all_bytes_are(blocks[i], sizes[i], (unsigned)(i & 0xff)));
        fa_free(blocks[i]);
    }
    fa_scope_pop();
}
END_TEST

START_TEST(alignment_is_honoured_in_frame_scope)
{
    fa_scope_push(FA_FRAME);
    for (size_t align = 1; align <= 65536; align *= 2) {
        void *p = fa_malloc_aligned(align, 24);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % align, 0);
        if (align <= 4096)
            ck_assert(is_frame(p));
        fa_free(p);
    }
    fa_scope_pop();
}
END_TEST

/* A request above FRAMEALLOC_FRAME_MAX never takes a new frame chunk: when it does
 * not fit where the bump range already is, it goes to the heap. */
START_TEST(large_requests_go_to_heap_even_in_frame_scope)
{
    fa_frame_end(); /* a fresh range */
    fa_scope_push(FA_FRAME);
    void *small[3];
    for (int i = 0; i < 3; i++) {
        small[i] = fa_malloc(65536);
        ck_assert(is_frame(small[i]));
    }
    void *big = fa_malloc(65537); /* 61 KiB are left in the chunk */
    ck_assert(!is_frame(big));
    void *huge = fa_malloc(300000);
    ck_assert(!is_frame(huge));
    for (int i = 0; i < 3; i++)
        fa_free(small[i]);
    fa_free(big);
    fa_free(huge);
    fa_scope_pop();
}
END_TEST

START_TEST(freed_frame_memory_is_reused_next_frame)
{
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(64);
    fa_free(p);
    fa_scope_pop();
    fa_frame_end();
    fa_scope_push(FA_FRAME);
    void *q = fa_malloc(64);
    ck_assert_ptr_eq(p, q);
    fa_free(q);
    fa_scope_pop();
    ck_assert_uint_eq(stats().frame_escapes, 0);
}
END_TEST

START_TEST(freeing_the_newest_block_gives_it_back)
{
    fa_scope_push(FA_FRAME);
    char *a = fa_malloc(100);
    char *b = fa_malloc(200);
    fa_free(b); /* newest: its bytes go back */
    char *c = fa_malloc(200);
    ck_assert_ptr_eq(c, b);
    fa_free(a); /* not newest: only marked free */
    char *d = fa_malloc(16);
    ck_assert_ptr_ne(d, a);
    fa_free(d);
    fa_free(c);
    fa_scope_pop();
    fa_frame_end();
    ck_assert_uint_eq(stats().frame_escapes, 0);
}
END_TEST

START_TEST(double_free_after_rewind_is_reported)
{
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(48);
    fa_free(p); /* rewinds: the start bit is cleared */
    fa_free(p);
}
END_TEST

START_TEST(escapes_stay_intact_and_are_counted)
{
    fa_scope_push(FA_FRAME);
    char *kept[3];
    for (int i = 0; i < 3; i++) {
        kept[i] = fa_malloc(200);
        memset(kept[i], 'a' + i, 200);
    }
    void *freed = fa_malloc(200);
    fa_free(freed);
    fa_scope_pop();
    for (int frame = 0; frame < 5; frame++) {
        fa_frame_end();
        fa_scope_push(FA_FRAME);
        for (int i = 0; i < 1000; i++)
            memset(fa_malloc(200), 0xee, 200); /* frees nothing: these escape too */
        fa_scope_pop();
    }
    for (int i = 0; i < 3; i++)
        ck_assert(all_bytes_are((unsigned char *)kept[i], 200, (unsigned)('a' + i)));
    fa_stats s = stats();
    ck_assert_uint_eq(s.frame, 5);
    /* 3 from frame 0 and 1000 from each of frames 1..4 (frame 5 not recycled yet). */
    ck_assert_uint_eq(s.frame_escapes, 3 + 4 * 1000);
    for (int i = 0; i < 3; i++)
        fa_free(kept[i]);
}
END_TEST

/* A persistent container that grows inside frame scopes: one block escapes every
 * frame. The gaps around escaped blocks are reused, so memory stays bounded. */
START_TEST(escapes_do_not_pin_a_chunk_per_frame)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1); /* bounds below: recent need + 1 spare */
    enum { FRAMES = 500 };
    static unsigned char *kept[FRAMES];
    for (int f = 0; f < FRAMES; f++) {
        fa_scope_push(FA_FRAME);
        for (int i = 0; i < 1000; i++) {
            unsigned char *tmp = fa_malloc(48 + (size_t)(i % 7) * 16);
            tmp[0] = (unsigned char)i;
            fa_free(tmp);
        }
        kept[f] = fa_malloc(40);
        memset(kept[f], f & 0xff, 40);
        fa_scope_pop();
        fa_frame_end();
    }
    fa_stats s = stats();
    ck_assert_uint_eq(s.frame_escapes, FRAMES); /* each counted once, not once per recycle */
    ck_assert_uint_le(s.frame_chunks, 12);
    for (int f = 0; f < FRAMES; f++) {
        ck_assert(all_bytes_are(kept[f], 40, (unsigned)(f & 0xff)));
        ck_assert_uint_ge(fa_malloc_usable_size(kept[f]), 40);
        ck_assert_uint_lt(fa_malloc_usable_size(kept[f]), 4096);
        fa_free(kept[f]);
    }
    fa_frame_end();
    fa_frame_end();
    ck_assert_uint_le(stats().frame_chunks, 4);
}
END_TEST

/* Random lifetimes across frames with gaps being refilled (several seeds, aligned
 * blocks and in-place growth too): every payload survives and no two live blocks
 * ever overlap. */
enum { SLOTS = 256 };
static unsigned char *slot[SLOTS];
static size_t slot_size[SLOTS];

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)slot[*(const int *)a], y = (uintptr_t)slot[*(const int *)b];
    return x < y ? -1 : x > y;
}

static void assert_no_overlap(void)
{
    static int order[SLOTS];
    int n = 0;
    for (int k = 0; k < SLOTS; k++)
        if (slot[k])
            order[n++] = k;
    qsort(order, (size_t)n, sizeof order[0], by_address);
    for (int i = 0; i + 1 < n; i++)
        ck_assert_msg(slot[order[i]] + slot_size[order[i]] <= slot[order[i + 1]], "blocks %d and %d overlap",
                      order[i], order[i + 1]);
}

START_TEST(partial_chunks_keep_every_live_block_intact)
{
    const uint64_t seeds[] = {0x2545F4914F6CDD1DULL, 7, 0xdeadbeefcafeULL, 123456789};
    for (size_t seed = 0; seed < 4; seed++) {
        uint64_t x = seeds[seed];
        for (int f = 0; f < 200; f++) {
            fa_scope_push(FA_FRAME);
            for (int i = 0; i < 400; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                int k = (int)(x % SLOTS);
                if (slot[k]) {
                    ck_assert(all_bytes_are(slot[k], slot_size[k], (unsigned)k));
                    ck_assert_uint_ge(fa_malloc_usable_size(slot[k]), slot_size[k]);
                    if ((x >> 20) % 8 == 0) { /* grow, in place when it is the newest */
                        size_t grown = slot_size[k] + 64;
                        slot[k] = fa_realloc(slot[k], grown);
                        memset(slot[k], k, grown);
                        slot_size[k] = grown;
                        continue;
                    }
                    fa_free(slot[k]);
                }
                slot_size[k] = 1 + (size_t)(x >> 40) % 2000;
                slot[k] = (x >> 30) % 5 == 0 ? fa_malloc_aligned(256, slot_size[k]) : fa_malloc(slot_size[k]);
                memset(slot[k], k, slot_size[k]);
            }
            assert_no_overlap();
            fa_scope_pop();
            fa_frame_end();
        }
    }
    for (int k = 0; k < SLOTS; k++)
        if (slot[k]) {
            ck_assert(all_bytes_are(slot[k], slot_size[k], (unsigned)k));
            fa_free(slot[k]);
        }
    ck_assert_uint_le(stats().region_peak_bytes, 64 * FA_CHUNK_SIZE);
}
END_TEST

/* Escaped blocks freed by another thread while their chunk is being reused. */
enum { HANDOFF = 4096 };
static unsigned char *_Atomic handoff_ring[HANDOFF];
static _Atomic unsigned ring_in, ring_out;
static _Atomic int producer_done;

static void *remote_freer(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned out = __atomic_load_n(&ring_out, __ATOMIC_RELAXED);
        if (out == __atomic_load_n(&ring_in, __ATOMIC_ACQUIRE)) {
            if (__atomic_load_n(&producer_done, __ATOMIC_ACQUIRE))
                return NULL;
            continue;
        }
        unsigned char *p = __atomic_load_n(&handoff_ring[out % HANDOFF], __ATOMIC_ACQUIRE);
        if (!all_bytes_are(p, 64, p[0]) || p[0] != (unsigned char)(out & 0x7f))
            abort();
        fa_free(p);
        __atomic_store_n(&ring_out, out + 1, __ATOMIC_RELEASE);
    }
}

START_TEST(remote_frees_of_escaped_blocks_during_reuse)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1); /* bounds below: recent need + 1 spare */
    pthread_t th;
    pthread_create(&th, NULL, remote_freer, NULL);
    unsigned sent = 0;
    for (int f = 0; f < 300; f++) {
        fa_scope_push(FA_FRAME);
        for (int i = 0; i < 200; i++) {
            unsigned char *tmp = fa_malloc(32 + (size_t)(i % 5) * 48);
            memset(tmp, 0x11, 32);
            if (i % 4 == 0) { /* escapes: handed to the other thread, freed there later */
                while (sent - __atomic_load_n(&ring_out, __ATOMIC_ACQUIRE) >= HANDOFF)
                    ;
                unsigned char *kept = fa_malloc(64);
                memset(kept, (int)(sent & 0x7f), 64);
                __atomic_store_n(&handoff_ring[sent % HANDOFF], kept, __ATOMIC_RELEASE);
                __atomic_store_n(&ring_in, ++sent, __ATOMIC_RELEASE);
            }
            fa_free(tmp);
        }
        fa_scope_pop();
        fa_frame_end();
    }
    __atomic_store_n(&producer_done, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    for (int f = 0; f < 3; f++)
        fa_frame_end();
    ck_assert_uint_le(stats().frame_chunks, 8);
}
END_TEST

START_TEST(escaped_chunk_is_reused_once_freed)
{
    fa_scope_push(FA_FRAME);
    void *kept = fa_malloc(64);
    fa_scope_pop();
    fa_frame_end();
    fa_frame_end();
    uint64_t chunks_with_escape = stats().frame_chunks;
    fa_free(kept);
    fa_frame_end();
    fa_scope_push(FA_FRAME);
    void *again = fa_malloc(64);
    fa_scope_pop();
    ck_assert_ptr_eq(again, kept);
    ck_assert_uint_le(stats().frame_chunks, chunks_with_escape);
}
END_TEST

START_TEST(strict_mode_recycles_unconditionally)
{
    setenv("FRAMEALLOC_FRAME_MODE", "strict", 1);
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(64); /* never freed */
    fa_scope_pop();
    fa_frame_end();
    fa_scope_push(FA_FRAME);
    void *q = fa_malloc(64);
    fa_scope_pop();
    ck_assert_ptr_eq(p, q);
    fa_free(q); /* a no-op in strict mode */
    fa_free(q);
    ck_assert_uint_eq(stats().frame_escapes, 0);
}
END_TEST

START_TEST(frames_in_flight_delay_recycling)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGHT", "2", 1);
    fa_scope_push(FA_FRAME);
    void *f0 = fa_malloc(64);
    fa_free(f0);
    fa_scope_pop();
    fa_frame_end(); /* frame 1 begins: frame 0 still in flight */
    fa_scope_push(FA_FRAME);
    void *f1 = fa_malloc(64);
    ck_assert_ptr_ne(f1, f0);
    fa_free(f1);
    fa_scope_pop();
    fa_frame_end(); /* frame 2 begins: frame 0's memory is recycled */
    fa_scope_push(FA_FRAME);
    void *f2 = fa_malloc(64);
    ck_assert_ptr_eq(f2, f0);
    fa_free(f2);
    fa_scope_pop();
}
END_TEST

START_TEST(nested_scopes_restore_outer_intent)
{
    fa_scope_push(FA_FRAME);
    void *a = fa_malloc(32);
    fa_scope_push(FA_HEAP);
    void *b = fa_malloc(32);
    fa_scope_push(FA_FRAME);
    void *c = fa_malloc(32);
    fa_scope_pop();
    void *d = fa_malloc(32);
    fa_scope_pop();
    void *e = fa_malloc(32);
    fa_scope_pop();
    void *f = fa_malloc(32);
    ck_assert(is_frame(a));
    ck_assert(!is_frame(b));
    ck_assert(is_frame(c));
    ck_assert(!is_frame(d));
    ck_assert(is_frame(e));
    ck_assert(!is_frame(f));
    void *all[] = {a, b, c, d, e, f};
    for (int i = 0; i < 6; i++)
        fa_free(all[i]);
}
END_TEST

START_TEST(unbalanced_pop_is_ignored)
{
    fa_scope_pop();
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(16);
    ck_assert(is_frame(p));
    fa_free(p);
    fa_scope_pop();
}
END_TEST

START_TEST(realloc_of_newest_grows_in_place)
{
    fa_scope_push(FA_FRAME);
    char *p = fa_malloc(16);
    memcpy(p, "0123456789abcde", 16);
    for (size_t n = 32; n <= 32768; n *= 2) {
        char *q = fa_realloc(p, n);
        ck_assert_ptr_eq(q, p);
        ck_assert_uint_ge(fa_malloc_usable_size(q), n);
        memset(q + n / 2, 'x', n / 2);
    }
    ck_assert_int_eq(memcmp(p, "0123456789abcde", 16), 0);
    char *other = fa_malloc(16);
    char *moved = fa_realloc(p, 65536); /* no longer newest: must move, contents kept */
    ck_assert_ptr_ne(moved, p);
    ck_assert_int_eq(memcmp(moved, "0123456789abcde", 16), 0);
    fa_free(moved);
    fa_free(other);
    fa_scope_pop();
}
END_TEST

START_TEST(realloc_of_frame_block_outside_scope_moves_it)
{
    fa_scope_push(FA_FRAME);
    char *p = fa_malloc(40);
    strcpy(p, "frame data");
    fa_scope_pop();
    char *q = fa_realloc(p, 100000);
    ck_assert(!is_frame(q));
    ck_assert_str_eq(q, "frame data");
    fa_free(q);
}
END_TEST

START_TEST(calloc_zeroes_recycled_memory)
{
    fa_scope_push(FA_FRAME);
    unsigned char *p = fa_malloc(4096);
    memset(p, 0xab, 4096);
    fa_free(p);
    fa_scope_pop();
    fa_frame_end();
    fa_scope_push(FA_FRAME);
    unsigned char *q = fa_calloc(64, 64);
    ck_assert_ptr_eq(q, p);
    ck_assert(all_bytes_are(q, 4096, 0));
    fa_free(q);
    fa_scope_pop();
}
END_TEST

START_TEST(memory_returns_after_spike)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1); /* bounds below: recent need + 1 spare */
    /* A loading frame takes ~200 chunks; afterwards the spares go back within a few frames. */
    /* Freed in allocation order: only the last could give its bytes back at once. */
    static void *spike[800];
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < 800; i++)
        spike[i] = fa_malloc(60000);
    for (int i = 0; i < 800; i++)
        fa_free(spike[i]);
    fa_scope_pop();
    fa_frame_end();
    uint64_t after_spike = stats().frame_chunks;
    ck_assert_uint_ge(after_spike, 150);
    for (int frame = 0; frame < 8; frame++) {
        fa_scope_push(FA_FRAME);
        fa_free(fa_malloc(1000));
        fa_scope_pop();
        fa_frame_end();
    }
    ck_assert_uint_le(stats().frame_chunks, 8);
    ck_assert_uint_le(stats().region_bytes, 8 * FA_CHUNK_SIZE);
}
END_TEST

/* Workers allocate in frame scopes; the main thread frees what they made. */
enum { WORKERS = 4, PER_WORKER = 2000, FRAMES = 20 };
static void *handoff[WORKERS][PER_WORKER];

static void *worker(void *arg)
{
    intptr_t id = (intptr_t)arg;
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < PER_WORKER; i++) {
        size_t n = 8 + (size_t)(i * 31 + id) % 500;
        unsigned char *p = fa_malloc(n);
        memset(p, (int)(id * 16 + (i & 15)), n);
        handoff[id][i] = p;
    }
    fa_scope_pop();
    return NULL;
}

START_TEST(workers_follow_global_frames_and_main_frees)
{
    for (int frame = 0; frame < FRAMES; frame++) {
        pthread_t th[WORKERS];
        for (intptr_t w = 0; w < WORKERS; w++)
            pthread_create(&th[w], NULL, worker, (void *)w);
        for (int w = 0; w < WORKERS; w++)
            pthread_join(th[w], NULL);
        for (int w = 0; w < WORKERS; w++)
            for (int i = 0; i < PER_WORKER; i++) {
                unsigned char *p = handoff[w][i];
                ck_assert(is_frame(p));
                ck_assert_uint_eq(p[0], (unsigned)(w * 16 + (i & 15)));
                fa_free(p);
            }
        fa_frame_end();
    }
    fa_stats s = stats();
    ck_assert_uint_eq(s.frame_allocs, (uint64_t)FRAMES * WORKERS * PER_WORKER);
    ck_assert_uint_eq(s.frame_escapes, 0);
}
END_TEST

/* Long-lived workers that stay attached across frames. */
static volatile int stop_workers;
static void *persistent_worker(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_workers, __ATOMIC_ACQUIRE)) {
        fa_scope_push(FA_FRAME);
        unsigned char *blocks[64];
        for (int i = 0; i < 64; i++) {
            blocks[i] = fa_malloc(48 + i);
            memset(blocks[i], i, 48 + (size_t)i);
        }
        for (int i = 0; i < 64; i++) {
            for (int k = 0; k < 48 + i; k++)
                if (blocks[i][k] != i)
                    abort();
            fa_free(blocks[i]);
        }
        fa_scope_pop();
    }
    return NULL;
}

START_TEST(persistent_workers_stay_bounded)
{
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, persistent_worker, NULL);
    for (int frame = 0; frame < 300; frame++)
        fa_frame_end();
    __atomic_store_n(&stop_workers, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(stats().frame_escapes, 0);
    ck_assert_uint_le(stats().region_peak_bytes, 64 * FA_CHUNK_SIZE);
}
END_TEST

START_TEST(double_free_is_reported)
{
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(32);
    fa_free(p);
    fa_free(p);
}
END_TEST

START_TEST(interior_pointer_free_is_reported)
{
    fa_scope_push(FA_FRAME);
    char *p = fa_malloc(64);
    fa_free(p + 16);
}
END_TEST

static void *remote_double_free(void *p)
{
    fa_free(p);
    fa_free(p);
    return NULL;
}

START_TEST(remote_double_free_is_reported)
{
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(32);
    pthread_t th;
    pthread_create(&th, NULL, remote_double_free, p);
    pthread_join(th, NULL);
}
END_TEST


/* ---- defects of the bitmap arena (issue 9), each impossible by design now ---- */

/* 1. Size queries and realloc from another thread while the owner keeps allocating
 * and freeing right behind the block: the size is the block's own, never the
 * owner's newest state, and realloc never grows over the owner's next block. */
static unsigned char *shared_block;
static int owner_done;

static void *query_sizes(void *arg)
{
    size_t expected = (size_t)(uintptr_t)arg;
    while (!__atomic_load_n(&owner_done, __ATOMIC_ACQUIRE))
        if (fa_malloc_usable_size(shared_block) != expected)
            return (void *)1;
    return NULL;
}

START_TEST(remote_size_queries_race_with_owner)
{
    fa_scope_push(FA_FRAME);
    shared_block = fa_malloc(100);
    size_t expected = fa_malloc_usable_size(shared_block);
    ck_assert_uint_ge(expected, 100);
    pthread_t th;
    pthread_create(&th, NULL, query_sizes, (void *)(uintptr_t)expected);
    for (int i = 0; i < 200000; i++) {
        unsigned char *q = fa_malloc(16 + (size_t)(i % 7) * 16);
        q[0] = 1;
        fa_free(q); /* the newest block: its bytes go back at once */
    }
    __atomic_store_n(&owner_done, 1, __ATOMIC_RELEASE);
    void *failed;
    pthread_join(th, &failed);
    ck_assert_ptr_null(failed);
    fa_scope_pop();
}
END_TEST

static void *grow_remotely(void *arg)
{
    unsigned char *p = fa_realloc(arg, 300);
    memset(p, 0x11, 300);
    return p;
}

START_TEST(remote_realloc_never_grows_over_the_owners_next_block)
{
    fa_scope_push(FA_FRAME);
    unsigned char *p = fa_malloc(100);
    memset(p, 0x22, 100);
    unsigned char *next = fa_malloc(100);
    memset(next, 0x33, 100);
    pthread_t th;
    void *grown;
    pthread_create(&th, NULL, grow_remotely, p);
    pthread_join(th, &grown);
    ck_assert(all_bytes_are(next, 100, 0x33));
    ck_assert(all_bytes_are(grown, 300, 0x11));
    fa_free(grown);
    fa_free(next);
    fa_scope_pop();
}
END_TEST

/* 2. Freed by another thread, then by its owner: a double free, reported. */
static void *free_remotely(void *p)
{
    fa_free(p);
    return NULL;
}

START_TEST(remote_then_owner_free_is_a_double_free)
{
    fa_scope_push(FA_FRAME);
    void *p = fa_malloc(48);
    pthread_t th;
    pthread_create(&th, NULL, free_remotely, p);
    pthread_join(th, NULL);
    fa_free(p);
}
END_TEST

/* 3. Strict mode: a worker's frame memory stays readable for the rest of the frame
 * after the worker exits. */
static void *make_result(void *arg)
{
    (void)arg;
    fa_scope_push(FA_FRAME);
    unsigned char *p = fa_malloc(4000);
    memset(p, 0x5a, 4000);
    fa_scope_pop();
    return p;
}

START_TEST(strict_worker_result_survives_worker_exit)
{
    setenv("FRAMEALLOC_FRAME_MODE", "strict", 1);
    fa_frame_end();
    for (int i = 0; i < 20; i++) {
        pthread_t th;
        void *result;
        pthread_create(&th, NULL, make_result, NULL);
        pthread_join(th, &result);
        /* Other threads start and exit meanwhile, as in a job system. */
        pthread_create(&th, NULL, make_result, NULL);
        pthread_join(th, NULL);
        ck_assert(all_bytes_are(result, 4000, 0x5a));
        fa_frame_end();
    }
}
END_TEST

/* 4. Strict mode: freeing a frame pointer after its frame was recycled does nothing,
 * also once its memory was given back and pools took over the address space. */
START_TEST(strict_free_after_recycle_is_a_no_op)
{
    setenv("FRAMEALLOC_FRAME_MODE", "strict", 1);
    setenv("FRAMEALLOC_FRAME_RETAIN", "0", 1);
    enum { SPIKE = 200, SMALL = 20000 };
    static void *stale[SPIKE];
    static unsigned char *small[SMALL];
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < SPIKE; i++)
        stale[i] = fa_malloc(60000);
    fa_scope_pop();
    for (int i = 0; i < 8; i++)
        fa_frame_end(); /* recycled, then the spike's chunks go back */
    for (int i = 0; i < SMALL; i++) {
        small[i] = fa_malloc(256);
        memset(small[i], i & 0xff, 256);
    }
    for (int i = 0; i < SPIKE; i++)
        fa_free(stale[i]);
    for (int i = 0; i < SMALL; i++) {
        unsigned char *fresh = fa_malloc(256);
        memset(fresh, 0xee, 256);
        ck_assert(all_bytes_are(small[i], 256, (unsigned)(i & 0xff)));
    }
}
END_TEST


/* 5. A worker that made a loading spike in frame scopes and then only allocates
 * outside them (pool fast paths, no frame sync of its own) still gives the spike's
 * memory back within a few frames. */
static pthread_barrier_t frame_barrier;
static volatile int spike_frames;

static void *spike_then_pools(void *arg)
{
    (void)arg;
    static void *spike[300];
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < 300; i++)
        spike[i] = fa_malloc(60000);
    for (int i = 0; i < 300; i++)
        fa_free(spike[i]);
    fa_scope_pop();
    for (int frame = 0; frame < spike_frames; frame++) {
        pthread_barrier_wait(&frame_barrier);
        fa_free(fa_malloc(64)); /* a pool pair: a fast path, never a frame sync */
        pthread_barrier_wait(&frame_barrier);
    }
    return NULL;
}

START_TEST(idle_worker_returns_spike_memory)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1); /* bounds below: recent need + 1 spare */
    spike_frames = 30; /* idle threads are looked at every 4 frames; a look ages their need by a frame */
    pthread_barrier_init(&frame_barrier, NULL, 2);
    pthread_t th;
    fa_malloc(16); /* attach this thread */
    pthread_create(&th, NULL, spike_then_pools, NULL);
    for (int frame = 0; frame < spike_frames; frame++) {
        pthread_barrier_wait(&frame_barrier);
        pthread_barrier_wait(&frame_barrier);
        if (frame == 0)
            ck_assert_uint_ge(stats().frame_chunks, 60);
        fa_frame_end();
    }
    ck_assert_uint_le(stats().frame_chunks, 4);
    pthread_join(th, NULL);
}
END_TEST

/* 6. The owner frees a block of a finished generation while a thread ending a frame
 * recycles that generation for it (the owner had stopped syncing). The recycling
 * walk must not see the block dead before the free is counted, or the free is
 * counted twice and the chunk is reused under the owner's other live block. The
 * interleaving is forced: the test holds the owner's arena lock while the owner
 * frees, parks the owner in a signal handler, then ends frames. */
static struct {
    fa_thread_t *owner;
    unsigned char *freed, *kept;
    pthread_barrier_t made, locked;
    sem_t parked, resume;
} race;

static void park_owner(int sig)
{
    (void)sig;
    sem_post(&race.parked);
    while (sem_wait(&race.resume) != 0)
        continue;
}

static void *free_during_idle_recycle(void *arg)
{
    (void)arg;
    race.owner = fa_thread();
    fa_scope_push(FA_FRAME);
    race.freed = fa_malloc(64);
    race.kept = fa_malloc(64);
    memset(race.kept, 0x5a, 64);
    /* More than a chunk: leaving the scope then finishes the generation, which
     * stays waiting for its frame to be recycled (this thread never syncs again
     * before its free below). */
    static void *fill[2 * FA_CHUNK_SIZE / 60000];
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++)
        fill[i] = fa_malloc(60000);
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++)
        fa_free(fill[i]);
    fa_scope_pop();
    pthread_barrier_wait(&race.made);
    pthread_barrier_wait(&race.locked);
    fa_free(race.freed);
    fa_scope_push(FA_FRAME); /* a sync, then new blocks: they must not land on kept */
    for (int i = 0; i < 64; i++)
        memset(fa_malloc(1000), 0xee, 1000);
    fa_scope_pop();
    return NULL;
}

START_TEST(owner_free_during_idle_recycle_keeps_other_blocks)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1);
    pthread_barrier_init(&race.made, NULL, 2);
    pthread_barrier_init(&race.locked, NULL, 2);
    sem_init(&race.parked, 0, 0);
    sem_init(&race.resume, 0, 0);
    struct sigaction park = {.sa_handler = park_owner};
    sigaction(SIGUSR1, &park, NULL);
    fa_malloc(16); /* attach this thread: its frame ends look at idle threads */
    pthread_t th;
    pthread_create(&th, NULL, free_during_idle_recycle, NULL);
    pthread_barrier_wait(&race.made);
    _Atomic uint8_t *lock = &race.owner->frame.lock;
    ck_assert(!__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE));
    uint64_t *header = (uint64_t *)race.freed - 1;
    uint64_t before = __atomic_load_n(header, __ATOMIC_RELAXED);
    pthread_barrier_wait(&race.locked);
    /* The owner's free now waits for the lock; give it time to get there. */
    for (int ms = 0; ms < 200 && __atomic_load_n(header, __ATOMIC_RELAXED) == before; ms++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    pthread_kill(th, SIGUSR1);
    while (sem_wait(&race.parked) != 0)
        continue;
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < 8; i++)
        fa_frame_end(); /* one of these recycles the owner's generation for it */
    sem_post(&race.resume);
    pthread_join(th, NULL);
    ck_assert(all_bytes_are(race.kept, 64, 0x5a));
}
END_TEST


/* Many scopes that each take several chunks in one frame: each ends a generation,
 * more than a thread keeps apart, so the newest are merged; every block stays
 * intact and the memory comes back once freed. */
START_TEST(many_large_scopes_in_one_frame)
{
    setenv("FRAMEALLOC_FRAME_RETAIN", "1", 1); /* bounds below: recent need + 1 spare */
    enum { SCOPES = 120, EACH = 5, SIZE = 60000 };
    static unsigned char *kept[SCOPES];
    for (int s = 0; s < SCOPES; s++) {
        fa_scope_push(FA_FRAME);
        unsigned char *blocks[EACH];
        for (int i = 0; i < EACH; i++) {
            blocks[i] = fa_malloc(SIZE);
            ck_assert(is_frame(blocks[i]));
            memset(blocks[i], (s + i) & 0xff, SIZE);
        }
        kept[s] = blocks[2]; /* escapes its frame */
        for (int i = 0; i < EACH; i++)
            if (i != 2)
                fa_free(blocks[i]);
        fa_scope_pop();
    }
    fa_frame_end();
    fa_frame_end();
    for (int s = 0; s < SCOPES; s++) {
        ck_assert(all_bytes_are(kept[s], SIZE, (unsigned)((s + 2) & 0xff)));
        fa_free(kept[s]);
    }
    for (int i = 0; i < 6; i++)
        fa_frame_end();
    ck_assert_uint_eq(stats().frame_escapes, SCOPES);
    ck_assert_uint_le(stats().frame_chunks, 4);
}
END_TEST


/* ---- the core's validators (src/check.h), compiled into the core these tests link ---- */

/* A chunk list whose count disagrees with its links is caught at the next sync. */
START_TEST(validator_catches_a_miscounted_list)
{
    fa_scope_push(FA_FRAME);
    fa_free(fa_malloc(64));
    fa_scope_pop();
    fa_frame_end();
    fa_frame_end(); /* the generation's chunk is a spare now */
    ck_assert_uint_ge(fa_thread()->frame.spare.count, 1);
    fa_thread()->frame.spare.count++;
    fa_frame_end();
}
END_TEST

/* A block header of a generation waiting for its frame, overwritten (a span that
 * no longer tiles the chunk), is caught at the next sync, before any recycling. */
START_TEST(validator_catches_a_broken_header)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGHT", "2", 1);
    fa_scope_push(FA_FRAME);
    fa_malloc(64);
    uint64_t *q = fa_malloc(64);
    fa_scope_pop();
    q[-1] ^= 0x100; /* a span 256 bytes off */
    fa_frame_end();
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("semantics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, frame_scope_serves_from_region);
    tcase_add_test(tc, consecutive_blocks_do_not_overlap);
    tcase_add_test(tc, alignment_is_honoured_in_frame_scope);
    tcase_add_test(tc, large_requests_go_to_heap_even_in_frame_scope);
    tcase_add_test(tc, freed_frame_memory_is_reused_next_frame);
    tcase_add_test(tc, freeing_the_newest_block_gives_it_back);
    tcase_add_test_raise_signal(tc, double_free_after_rewind_is_reported, SIGABRT);
    tcase_add_test(tc, escapes_stay_intact_and_are_counted);
    tcase_add_test(tc, escapes_do_not_pin_a_chunk_per_frame);
    tcase_add_test(tc, partial_chunks_keep_every_live_block_intact);
    tcase_add_test(tc, remote_frees_of_escaped_blocks_during_reuse);
    tcase_add_test(tc, escaped_chunk_is_reused_once_freed);
    tcase_add_test(tc, strict_mode_recycles_unconditionally);
    tcase_add_test(tc, frames_in_flight_delay_recycling);
    tcase_add_test(tc, nested_scopes_restore_outer_intent);
    tcase_add_test(tc, unbalanced_pop_is_ignored);
    tcase_add_test(tc, realloc_of_newest_grows_in_place);
    tcase_add_test(tc, realloc_of_frame_block_outside_scope_moves_it);
    tcase_add_test(tc, calloc_zeroes_recycled_memory);
    tcase_add_test(tc, memory_returns_after_spike);
    tcase_add_test(tc, workers_follow_global_frames_and_main_frees);
    tcase_add_test(tc, persistent_workers_stay_bounded);
    tcase_add_test_raise_signal(tc, double_free_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, interior_pointer_free_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, remote_double_free_is_reported, SIGABRT);
    suite_add_tcase(s, tc);
    TCase *defects = tcase_create("defects");
    tcase_set_timeout(defects, 60);
    tcase_add_test(defects, remote_size_queries_race_with_owner);
    tcase_add_test(defects, remote_realloc_never_grows_over_the_owners_next_block);
    tcase_add_test_raise_signal(defects, remote_then_owner_free_is_a_double_free, SIGABRT);
    tcase_add_test(defects, strict_worker_result_survives_worker_exit);
    tcase_add_test(defects, strict_free_after_recycle_is_a_no_op);
    tcase_add_test(defects, idle_worker_returns_spike_memory);
    tcase_add_test(defects, owner_free_during_idle_recycle_keeps_other_blocks);
    tcase_add_test(defects, many_large_scopes_in_one_frame);
    suite_add_tcase(s, defects);
    TCase *validators = tcase_create("validators");
    tcase_add_test_raise_signal(validators, validator_catches_a_miscounted_list, SIGABRT);
    tcase_add_test_raise_signal(validators, validator_catches_a_broken_header, SIGABRT);
    suite_add_tcase(s, validators);
    return s;
}

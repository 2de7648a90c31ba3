/* Frame arena semantics through the core's entry points. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "api.h"
#include "config.h"
#include "region.h"

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

START_TEST(large_requests_go_to_heap_even_in_frame_scope)
{
    fa_scope_push(FA_FRAME);
    void *small = fa_malloc(65536);
    void *big = fa_malloc(65537);
    ck_assert(is_frame(small));
    ck_assert(!is_frame(big));
    fa_free(small);
    fa_free(big);
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
    /* A loading frame takes ~200 chunks; afterwards the spares go back within a few frames. */
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < 800; i++)
        fa_free(fa_malloc(60000));
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
    return s;
}

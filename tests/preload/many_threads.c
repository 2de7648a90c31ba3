/* Many short-lived threads: 2000 threads, a few at a time, each allocate in frame
 * scopes (and from the pools), free most of it, hand a few blocks to the main
 * thread and exit, some still inside a frame scope. The main thread checks and
 * frees what it was handed (their owners are gone by then) and ends frames.
 * Afterwards every block was intact, every frame allocation was counted, the
 * exited threads are unregistered, and their memory went back. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "preload_test.h"

enum {
    THREADS = 2000,
    WAVE = 8,            /* threads alive at once */
    BLOCKS = 40,         /* frame allocations per thread */
    HANDED = 3,          /* blocks each thread leaves to the main thread */
    REGION_BOUND = 64,   /* chunks of 256 KiB allowed to stay held at the end */
};

struct handoff {
    int id;
    unsigned char *blocks[HANDED];
    size_t sizes[HANDED];
    int ok;
};

static size_t block_size(int id, int i) { return 16 + (size_t)(id * 31 + i * 977) % 5000; }

static void *short_thread(void *arg)
{
    struct handoff *h = arg;
    unsigned char value = (unsigned char)h->id;
    unsigned char *blocks[BLOCKS];
    h->ok = 1;
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(block_size(h->id, i));
        if (!blocks[i]) {
            h->ok = 0;
            return NULL;
        }
        memset(blocks[i], value, block_size(h->id, i));
    }
    for (int i = 0; i < BLOCKS; i++)
        h->ok &= all_bytes_are(blocks[i], block_size(h->id, i), value);
    for (int i = 0; i < BLOCKS - (HANDED - 1); i++)
        free(blocks[i]);
    for (int k = 0; k < HANDED - 1; k++) {
        h->blocks[k] = blocks[BLOCKS - (HANDED - 1) + k];
        h->sizes[k] = block_size(h->id, BLOCKS - (HANDED - 1) + k);
    }
    if (h->id % 3 == 0)
        return NULL; /* exits inside its frame scope */
    fa_scope_pop();
    /* One small block from the pools too. */
    h->blocks[HANDED - 1] = memset(malloc(48), value, 48);
    h->sizes[HANDED - 1] = 48;
    return NULL;
}

START_TEST(two_thousand_short_threads)
{
    static struct handoff handoffs[THREADS];
    fa_stats start;
    fa_stats_get(&start);
    for (int first = 0; first < THREADS; first += WAVE) {
        pthread_t threads[WAVE];
        for (int i = 0; i < WAVE; i++) {
            handoffs[first + i].id = first + i;
            ck_assert_int_eq(pthread_create(&threads[i], NULL, short_thread, &handoffs[first + i]), 0);
        }
        for (int i = 0; i < WAVE; i++)
            ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        for (int i = 0; i < WAVE; i++) {
            struct handoff *h = &handoffs[first + i];
            ck_assert_msg(h->ok, "thread %d found its own blocks damaged", h->id);
            for (int k = 0; k < HANDED; k++) {
                if (!h->blocks[k])
                    continue; /* the thread exited in its scope before the pool block */
                ck_assert_msg(all_bytes_are(h->blocks[k], h->sizes[k], (unsigned char)h->id),
                              "block %d of thread %d changed after the thread exited", k, h->id);
                free(h->blocks[k]);
            }
        }
        fa_frame_end();
    }
    /* A few frames with some frame work on this thread: recycling picks up the
     * chunks that exited threads left behind. */
    for (int frame = 0; frame < 4; frame++) {
        FA_FRAME_SCOPE {
            free(malloc(100));
        }
        fa_frame_end();
    }
    fa_stats end;
    fa_stats_get(&end);
    uint64_t frame_allocs = end.frame_allocs - start.frame_allocs;
    ck_assert_msg(frame_allocs >= (uint64_t)THREADS * BLOCKS, "only %llu frame allocations were counted",
                  (unsigned long long)frame_allocs);
    ck_assert_msg(end.threads <= 1, "%llu threads still registered", (unsigned long long)end.threads);
    ck_assert_msg(end.region_bytes <= (uint64_t)REGION_BOUND << 18, "%llu KiB of frame and pool memory still held",
                  (unsigned long long)(end.region_bytes >> 10));
    ck_assert_uint_eq(end.frame_escapes, start.frame_escapes);
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("many threads");
    TCase *tc = tcase_create("short threads");
    tcase_set_timeout(tc, 40);
    tcase_add_test(tc, two_thousand_short_threads);
    suite_add_tcase(s, tc);
    return s;
}

/* The record of live heap blocks (src/heap_blocks.h) on its own, and through the
 * heap functions: exact under concurrent use, no false reports, misuse reported,
 * realloc keeping the old block valid until the new one is recorded. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "heap.h"
#include "heap_blocks.h"

/* An address range no heap block uses: a private mapping (the record never touches it). */
static uintptr_t unused_range(size_t size)
{
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return (uintptr_t)p;
}

static bool is_live(uintptr_t a)
{
    const uint64_t *word = fa_heap_blocks_word(a);
    return word && (__atomic_load_n(word, __ATOMIC_RELAXED) & fa_heap_blocks_bit(a));
}

START_TEST(added_addresses_are_live_until_removed)
{
    uintptr_t base = unused_range((size_t)16 << 20);
    ck_assert(!is_live(base));
    ck_assert_ptr_null(fa_heap_blocks_word(base)); /* no node for an untouched range */
    for (uintptr_t a = base; a < base + 4096; a += 16)
        ck_assert(fa_heap_blocks_add((void *)a));
    ck_assert(fa_heap_blocks_add((void *)(base + ((size_t)12 << 20)))); /* another leaf */
    for (uintptr_t a = base; a < base + 4096; a += 16) {
        ck_assert(is_live(a));
        fa_heap_blocks_check((void *)a, "test");
    }
    for (uintptr_t a = base; a < base + 4096; a += 32)
        fa_heap_blocks_remove((void *)a, "test");
    for (uintptr_t a = base; a < base + 4096; a += 16)
        ck_assert(is_live(a) == ((a - base) % 32 != 0)); /* neighbours in the same word stay */
    ck_assert(is_live(base + ((size_t)12 << 20)));
}
END_TEST

START_TEST(addresses_beyond_user_space_are_never_live)
{
    uintptr_t far = (uintptr_t)1 << FA_HEAP_BLOCKS_ADDRESS_BITS;
    ck_assert_ptr_null(fa_heap_blocks_word(far));
    ck_assert(!fa_heap_blocks_add((void *)far));
}
END_TEST

START_TEST(removing_twice_is_reported)
{
    uintptr_t a = unused_range(4096);
    ck_assert(fa_heap_blocks_add((void *)a));
    fa_heap_blocks_remove((void *)a, "free");
    fa_heap_blocks_remove((void *)a, "free");
}
END_TEST

/* A block of the heap itself: the report asks jemalloc for the size of the live block
 * the pointer lies in, which jemalloc answers only for its own blocks (an address it
 * never mapped crashed its look-up, depending on where the range happened to lie). */
START_TEST(unaligned_pointer_into_a_live_granule_is_reported)
{
    char *block = fa_je_malloc(4096);
    ck_assert_ptr_nonnull(block);
    ck_assert(fa_heap_blocks_add(block));
    fa_heap_blocks_check(block + 8, "malloc_usable_size");
}
END_TEST

START_TEST(pointer_in_a_range_without_nodes_is_reported)
{
    fa_heap_blocks_check((void *)unused_range(4096), "realloc");
}
END_TEST

/* Threads set and clear bits of the same words at once: every bit ends as its
 * own thread left it (an OR or AND-NOT never loses a neighbour's update). */
#define THREADS 4
#define ROUNDS 20000
static uintptr_t shared_base;

static void *toggle_own_granules(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    for (int round = 0; round < ROUNDS; round++) {
        for (uintptr_t g = id; g < 256; g += THREADS) {
            void *a = (void *)(shared_base + g * 16);
            if (!fa_heap_blocks_add(a))
                return (void *)1;
            if (round + 1 < ROUNDS || g % 2)
                fa_heap_blocks_remove(a, "free");
        }
    }
    return NULL;
}

START_TEST(concurrent_updates_of_one_word_are_exact)
{
    shared_base = unused_range(4096);
    pthread_t threads[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, toggle_own_granules, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failed;
        pthread_join(threads[i], &failed);
        ck_assert_ptr_null(failed);
    }
    for (uintptr_t g = 0; g < 256; g++)
        ck_assert_msg(is_live(shared_base + g * 16) == (g % 2 == 0), "granule %lu", (unsigned long)g);
}
END_TEST

/* Through the heap functions: every block handed out is live, every freed one is not. */
START_TEST(heap_functions_keep_the_record)
{
    size_t sizes[] = {1, 16, 100, 20000, 70000, (size_t)1 << 20, (size_t)5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *p = fa_heap_malloc(sizes[i]);
        char *z = fa_heap_calloc(1, sizes[i]);
        char *a = fa_heap_aligned(4096, sizes[i]);
        ck_assert(is_live((uintptr_t)p) && is_live((uintptr_t)z) && is_live((uintptr_t)a));
        ck_assert_uint_ge(fa_heap_usable_size(p, "malloc_usable_size"), sizes[i]);
        fa_heap_free(p);
        fa_heap_free(z);
        fa_heap_free(a);
        ck_assert(!is_live((uintptr_t)p) && !is_live((uintptr_t)z) && !is_live((uintptr_t)a));
    }
}
END_TEST

/* realloc in place keeps the block live; a move records the new block and drops the old. */
START_TEST(heap_realloc_moves_the_record_with_the_block)
{
    char *p = fa_heap_malloc(100);
    memset(p, 7, 100);
    for (size_t size = 200; size <= ((size_t)8 << 20); size *= 3) {
        char *q = fa_heap_realloc(p, size);
        ck_assert_ptr_nonnull(q);
        ck_assert_int_eq(q[0], 7);
        ck_assert_int_eq(q[99], 7);
        ck_assert(is_live((uintptr_t)q));
        if (q != p)
            ck_assert(!is_live((uintptr_t)p));
        p = q;
    }
    char *small = fa_heap_realloc(p, 50); /* shrinking a large block moves it to a small class */
    ck_assert_int_eq(small[49], 7);
    ck_assert(is_live((uintptr_t)small));
    ck_assert(small == p || !is_live((uintptr_t)p));
    fa_heap_free(small);
}
END_TEST

START_TEST(heap_double_free_is_reported)
{
    void *p = fa_heap_malloc((size_t)1 << 20);
    fa_heap_free(p);
    fa_heap_free(p);
}
END_TEST

START_TEST(heap_realloc_of_a_moved_block_is_reported)
{
    char *p = fa_heap_malloc(64);
    char *q = fa_heap_realloc(p, (size_t)1 << 20);
    ck_assert_ptr_ne(p, q);
    fa_heap_realloc(p, 10);
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("heap_blocks");
    TCase *tc = tcase_create("record");
    tcase_add_test(tc, added_addresses_are_live_until_removed);
    tcase_add_test(tc, addresses_beyond_user_space_are_never_live);
    tcase_add_test_raise_signal(tc, removing_twice_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, unaligned_pointer_into_a_live_granule_is_reported, SIGABRT);
    tcase_add_test_raise_signal(tc, pointer_in_a_range_without_nodes_is_reported, SIGABRT);
    tcase_add_test(tc, concurrent_updates_of_one_word_are_exact);
    suite_add_tcase(s, tc);
    TCase *heap = tcase_create("heap");
    tcase_add_test(heap, heap_functions_keep_the_record);
    tcase_add_test(heap, heap_realloc_moves_the_record_with_the_block);
    tcase_add_test_raise_signal(heap, heap_double_free_is_reported, SIGABRT);
    tcase_add_test_raise_signal(heap, heap_realloc_of_a_moved_block_is_reported, SIGABRT);
    suite_add_tcase(s, heap);
    return s;
}

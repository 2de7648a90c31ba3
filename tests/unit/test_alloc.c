/* The core's libc contract (errno, overflow, alignment, realloc and zero sizes),
 * called directly; tests/preload checks the same through the libc names. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "heap.h"

START_TEST(malloc_zero_returns_unique_pointers)
{
    void *a = fa_malloc(0), *b = fa_malloc(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    fa_free(a);
    fa_free(b);
}
END_TEST

START_TEST(huge_malloc_fails_with_enomem)
{
    errno = 0;
    ck_assert_ptr_null(fa_malloc(SIZE_MAX - 100));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(fa_malloc((size_t)PTRDIFF_MAX + 1));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(calloc_overflow_fails_with_enomem)
{
    errno = 0;
    ck_assert_ptr_null(fa_calloc(SIZE_MAX / 2, 3));
    ck_assert_int_eq(errno, ENOMEM);
    unsigned char *p = fa_calloc(1000, 10);
    for (int i = 0; i < 10000; i++)
        ck_assert_uint_eq(p[i], 0);
    fa_free(p);
}
END_TEST

START_TEST(free_keeps_errno)
{
    for (size_t n = 1; n < (1 << 22); n *= 3) {
        void *p = fa_malloc(n);
        errno = 1234;
        fa_free(p);
        ck_assert_int_eq(errno, 1234);
    }
    errno = 77;
    fa_free(NULL);
    ck_assert_int_eq(errno, 77);
}
END_TEST

START_TEST(posix_memalign_rules)
{
    void *p = (void *)0x1;
    ck_assert_int_eq(fa_posix_memalign(&p, 3, 16), EINVAL);
    ck_assert_int_eq(fa_posix_memalign(&p, 4, 16), EINVAL); /* not a multiple of sizeof(void *) */
    ck_assert_int_eq(fa_posix_memalign(&p, 0, 16), EINVAL);
    ck_assert_ptr_eq(p, (void *)0x1);
    ck_assert_int_eq(fa_posix_memalign(&p, 64, SIZE_MAX / 2), ENOMEM);
    ck_assert_ptr_eq(p, (void *)0x1);
    for (size_t a = sizeof(void *); a <= 65536; a *= 2) {
        ck_assert_int_eq(fa_posix_memalign(&p, a, 100), 0);
        ck_assert_uint_eq((uintptr_t)p % a, 0);
        fa_free(p);
    }
}
END_TEST

/* glibc 2.36: aligned_alloc is memalign (rounds the alignment up); C17's EINVAL
 * for an alignment that is not a power of two came in glibc 2.38. */
START_TEST(aligned_alloc_and_memalign_rules)
{
    errno = 0;
    void *p = fa_aligned_alloc(24, 48);
    ck_assert(p && errno == 0 && (uintptr_t)p % 32 == 0);
    fa_free(p);
    p = fa_aligned_alloc(0, 48);
    ck_assert(p && errno == 0 && (uintptr_t)p % 16 == 0);
    fa_free(p);
    errno = 0;
    ck_assert_ptr_null(fa_memalign((size_t)1 << 40, 10)); /* more than the machine can map */
    ck_assert_int_eq(errno, ENOMEM);
    p = fa_aligned_alloc(256, 10); /* size need not be a multiple (C17) */
    ck_assert_uint_eq((uintptr_t)p % 256, 0);
    fa_free(p);
    p = fa_memalign(24, 10); /* glibc rounds the alignment up to 32 */
    ck_assert_uint_eq((uintptr_t)p % 32, 0);
    fa_free(p);
    errno = 0;
    ck_assert_ptr_null(fa_memalign(SIZE_MAX / 2 + 2, 10));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(valloc_and_pvalloc_are_page_aligned)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = fa_valloc(10);
    ck_assert_uint_eq((uintptr_t)p % page, 0);
    fa_free(p);
    p = fa_pvalloc(0);
    ck_assert_uint_eq((uintptr_t)p % page, 0);
    ck_assert_uint_ge(fa_malloc_usable_size(p), page);
    fa_free(p);
    p = fa_pvalloc(page + 1);
    ck_assert_uint_ge(fa_malloc_usable_size(p), 2 * page);
    fa_free(p);
    errno = 0;
    ck_assert_ptr_null(fa_pvalloc(SIZE_MAX - 10));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(realloc_semantics)
{
    char *p = fa_realloc(NULL, 10);
    ck_assert_ptr_nonnull(p);
    memcpy(p, "abcdefghi", 10);
    p = fa_realloc(p, 100000);
    ck_assert_str_eq(p, "abcdefghi");
    p = fa_realloc(p, 5);
    ck_assert_int_eq(memcmp(p, "abcde", 5), 0);
    errno = 0;
    char *q = fa_realloc(p, SIZE_MAX - 10);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_eq(memcmp(p, "abcde", 5), 0); /* the original is untouched */
    ck_assert_ptr_null(fa_realloc(p, 0));          /* glibc: frees, returns NULL */
}
END_TEST

/* Pages of p's first size bytes that are resident. */
static size_t resident_pages(const void *p, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), count = 0;
    unsigned char vec[1024];
    ck_assert_uint_le(size / page, sizeof vec);
    ck_assert_int_eq(mincore((void *)p, size, vec), 0);
    for (size_t i = 0; i < size / page; i++)
        count += vec[i] & 1;
    return count;
}

/* For tests of jemalloc's blocks: starts it (after the library's start, which
 * writes its settings), so that it serves even the first heap blocks instead of
 * the direct mappings of a process's first few (heap.h, FA_HEAP_EARLY_BLOCKS). */
static void start_jemalloc(void)
{
    fa_free(fa_malloc(1));
    fa_heap_start();
}

/* Moves realloc to a larger block (with something after p, so that p cannot grow in
 * place) and returns the new block, p's first size bytes copied; *moved says
 * whether it moved. */
static char *grow_past_a_blocker(char *p, size_t size, int *moved)
{
    void *blocker = fa_malloc(32768);
    char *q = fa_realloc(p, 2 * size);
    ck_assert_int_eq(q[size - 1], 1);
    *moved = q != p;
    fa_free(blocker);
    return q;
}

/* A large block that realloc moves gives its pages back (glibc moves it with
 * mremap): a buffer grown by doubling leaves none of its old sizes resident. */
START_TEST(realloc_gives_back_a_moved_large_block)
{
    start_jemalloc();
    size_t size = FA_HEAP_MOVED_PURGE_MIN;
    char *p = fa_malloc(size);
    memset(p, 1, size);
    int moves = 0;
    for (int i = 0; i < 5; i++, size *= 2) {
        int moved;
        char *q = grow_past_a_blocker(p, size, &moved);
        if (moved) {
            moves++;
            ck_assert_uint_eq(resident_pages(p, size), 0);
        }
        memset(q, 1, 2 * size);
        p = q;
    }
    ck_assert_int_gt(moves, 0);
    fa_free(p);
}
END_TEST

/* As glibc raises its mmap threshold when the program frees a mapped block: once
 * the program frees a block itself, moved blocks up to that size keep their pages
 * (a buffer grown and freed over and over is not faulted in again each time). */
START_TEST(realloc_keeps_moved_blocks_the_program_frees_itself)
{
    start_jemalloc();
    size_t size = FA_HEAP_MOVED_PURGE_MIN;
    char *p = fa_malloc(size);
    memset(p, 1, size);
    int moved = 0;
    for (int i = 0; i < 4 && !moved; i++) { /* until one moved block was given back */
        char *q = grow_past_a_blocker(p, size, &moved);
        if (moved)
            ck_assert_uint_eq(resident_pages(p, size), 0);
        size *= 2;
        memset(q, 1, size);
        p = q;
    }
    ck_assert(moved);
    fa_free(fa_malloc((size_t)1 << 20)); /* the program frees a 1 MiB block itself */
    int kept = 0;
    for (int i = 0; i < 8 && !kept; i++) {
        char *small = fa_malloc(FA_HEAP_MOVED_PURGE_MIN);
        memset(small, 1, FA_HEAP_MOVED_PURGE_MIN);
        char *q = grow_past_a_blocker(small, FA_HEAP_MOVED_PURGE_MIN, &moved);
        if (moved) {
            ck_assert_uint_eq(resident_pages(small, FA_HEAP_MOVED_PURGE_MIN), FA_HEAP_MOVED_PURGE_MIN / (size_t)sysconf(_SC_PAGESIZE));
            kept = 1;
        }
        fa_free(q);
    }
    ck_assert(kept);
    fa_free(p);
}
END_TEST

START_TEST(reallocarray_overflow)
{
    void *p = fa_malloc(8);
    errno = 0;
    ck_assert_ptr_null(fa_reallocarray(p, SIZE_MAX / 4, 8));
    ck_assert_int_eq(errno, ENOMEM);
    p = fa_reallocarray(p, 100, 8);
    ck_assert_uint_ge(fa_malloc_usable_size(p), 800);
    fa_free(p);
}
END_TEST

START_TEST(usable_size_is_writable)
{
    ck_assert_uint_eq(fa_malloc_usable_size(NULL), 0);
    for (size_t n = 1; n < 300000; n = n * 2 + 1) {
        unsigned char *p = fa_malloc(n);
        size_t usable = fa_malloc_usable_size(p);
        ck_assert_uint_ge(usable, n);
        memset(p, 0xcd, usable);
        fa_free(p);
    }
}
END_TEST

/* jemalloc 5.3's own flag, set as it starts (whatever starts it). */
extern bool je_tsd_booted;

/* jemalloc's start costs a process about 660 KiB resident: a program whose blocks
 * all fit the pools never pays it, nor one that asks for a few blocks above the
 * pools' limit (mapped directly), and the block after FA_HEAP_EARLY_BLOCKS of
 * those starts it. */
/* A program that keeps replacing large blocks gets jemalloc, which reuses their
 * pages, once it has freed FA_HEAP_EARLY_CHURN bytes of early blocks: each early
 * block faults and zeroes all its pages again (fabench bigbuf took 12x glibc's time
 * with its first 32 blocks mapped directly). */
START_TEST(heap_starts_when_early_blocks_are_replaced)
{
    size_t size = (size_t)4 << 20;
    int rounds = 0;
    while (!fa_heap_started && rounds < FA_HEAP_EARLY_BLOCKS) {
        char *p = fa_calloc(1, size);
        ck_assert_ptr_nonnull(p);
        p[size - 1] = 1;
        fa_free(p);
        rounds++;
    }
    ck_assert(fa_heap_started);
    ck_assert_int_eq(rounds, (int)(FA_HEAP_EARLY_CHURN / size) + 1);
}
END_TEST

START_TEST(heap_starts_after_the_early_blocks)
{
    for (size_t size = 16; size <= 16384; size *= 2) {
        void *p = fa_malloc(size);
        ck_assert_ptr_nonnull(p);
        memset(p, 1, size);
        fa_free(p);
    }
    void *early[FA_HEAP_EARLY_BLOCKS];
    for (int i = 0; i < FA_HEAP_EARLY_BLOCKS; i++) {
        early[i] = fa_malloc((size_t)1 << 20);
        ck_assert_ptr_nonnull(early[i]);
        memset(early[i], i, (size_t)1 << 20);
    }
    ck_assert(!fa_heap_started);
    ck_assert(!je_tsd_booted);
    void *big = fa_malloc((size_t)1 << 20);
    ck_assert_ptr_nonnull(big);
    ck_assert(fa_heap_started);
    memset(big, 1, (size_t)1 << 20);
    fa_free(big);
    /* The early blocks stay usable and go back as themselves after the start. */
    for (int i = 0; i < FA_HEAP_EARLY_BLOCKS; i++) {
        ck_assert_uint_eq(fa_malloc_usable_size(early[i]), (size_t)1 << 20);
        ck_assert_int_eq(((unsigned char *)early[i])[12345], i);
        fa_free(early[i]);
    }
}
END_TEST

/* What python3 -c pass asks for above the pools' limit (18-256 KiB blocks, zeroed
 * ones, a realloc'd one) and aligned blocks: all served, none starts jemalloc. */
START_TEST(a_few_blocks_above_the_pools_do_not_start_the_heap)
{
    char *p = fa_malloc(32816);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(fa_malloc_usable_size(p), 32816);
    memset(p, 7, 32816);
    unsigned char *zeroed = fa_calloc(1, 262144);
    ck_assert_ptr_nonnull(zeroed);
    for (size_t i = 0; i < 262144; i += 512)
        ck_assert_int_eq(zeroed[i], 0);
    char *grown = fa_malloc(18793);
    memset(grown, 3, 18793);
    grown = fa_realloc(grown, 103792);
    ck_assert_ptr_nonnull(grown);
    ck_assert_int_eq(grown[18792], 3);
    memset(grown, 4, 103792);
    void *aligned = NULL;
    ck_assert_int_eq(fa_posix_memalign(&aligned, 4096, 20000), 0);
    ck_assert_uint_eq((uintptr_t)aligned % 4096, 0);
    void *aligned_far = fa_aligned_alloc((size_t)1 << 16, 70000);
    ck_assert_ptr_nonnull(aligned_far);
    ck_assert_uint_eq((uintptr_t)aligned_far % ((size_t)1 << 16), 0);
    memset(aligned_far, 5, 70000);
    ck_assert_int_eq(p[32815], 7);
    fa_free(aligned_far);
    fa_free(aligned);
    fa_free(grown);
    fa_free(zeroed);
    fa_free(p);
    ck_assert(!fa_heap_started);
    ck_assert(!je_tsd_booted);
}
END_TEST

/* A block mapped before jemalloc's start has every check a heap block has. */
START_TEST(an_early_block_freed_twice_is_reported)
{
    void *p = fa_malloc(32768);
    ck_assert_ptr_nonnull(p);
    ck_assert(!fa_heap_started);
    fa_free(p);
    fa_free(p);
}
END_TEST

static void *small_blocks(void *arg)
{
    for (int i = 0; i < 100; i++)
        fa_free(fa_malloc(64 + (size_t)i * 8));
    return arg;
}

/* Nor does a second thread start it: the extent hooks a second thread calls for wait
 * until jemalloc runs, and come with its start. */
START_TEST(a_second_thread_does_not_start_the_heap)
{
    fa_free(fa_malloc(32));
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, small_blocks, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert(!je_tsd_booted);
    void *early = fa_malloc((size_t)1 << 20); /* mapped directly */
    ck_assert(!je_tsd_booted);
    for (int i = 1; i < FA_HEAP_EARLY_BLOCKS; i++)
        fa_free(fa_malloc((size_t)1 << 20));
    void *big = fa_malloc((size_t)1 << 20);
    ck_assert_ptr_nonnull(big);
    ck_assert(fa_heap_started);
    ck_assert(fa_heap_thread_ready);
    fa_free(big);
    fa_free(early);
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("libc contract");
    tcase_add_test(tc, malloc_zero_returns_unique_pointers);
    tcase_add_test(tc, huge_malloc_fails_with_enomem);
    tcase_add_test(tc, calloc_overflow_fails_with_enomem);
    tcase_add_test(tc, free_keeps_errno);
    tcase_add_test(tc, posix_memalign_rules);
    tcase_add_test(tc, aligned_alloc_and_memalign_rules);
    tcase_add_test(tc, valloc_and_pvalloc_are_page_aligned);
    tcase_add_test(tc, realloc_semantics);
    tcase_add_test(tc, reallocarray_overflow);
    tcase_add_test(tc, realloc_gives_back_a_moved_large_block);
    tcase_add_test(tc, realloc_keeps_moved_blocks_the_program_frees_itself);
    tcase_add_test(tc, usable_size_is_writable);
    tcase_add_test(tc, heap_starts_after_the_early_blocks);
    tcase_add_test(tc, a_few_blocks_above_the_pools_do_not_start_the_heap);
    tcase_add_test_raise_signal(tc, an_early_block_freed_twice_is_reported, SIGABRT);
    tcase_add_test(tc, a_second_thread_does_not_start_the_heap);
    tcase_add_test(tc, heap_starts_when_early_blocks_are_replaced);
    suite_add_tcase(s, tc);
    return s;
}

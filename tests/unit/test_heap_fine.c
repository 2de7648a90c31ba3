/* The finely rounded heap for address-space limits (src/heap_fine.h): which blocks
 * it takes, that its blocks keep their bytes through merges, splits and resizes,
 * that its spans go back to the kernel, and that misuse of its blocks gets the same
 * message as any heap block. Each test runs in its own process (Check forks), so a
 * test that sets RLIMIT_AS leaves the others alone. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "heap.h"
#include "heap_fine.h"
#include "os.h"

/* An address-space limit far above what the test maps, so that only the heap's
 * choice changes. */
static void set_loose_limit(void)
{
    rlim_t bytes = (rlim_t)fa_os_mapped_bytes() + ((rlim_t)64 << 30);
    struct rlimit limit = {bytes, bytes};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &limit), 0);
}

static void fill(unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(seed * 131 + i * 7);
}

static bool holds(const unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        if (p[i] != (unsigned char)(seed * 131 + i * 7))
            return false;
    return true;
}

static bool all_zero(const unsigned char *p, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (p[i])
            return false;
    return true;
}

START_TEST(without_a_limit_jemalloc_serves_every_size)
{
    size_t sizes[] = {16400, 20000, 32800, 100000, 131100, (size_t)1 << 20 | 100};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *p = fa_malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(fa_heap_fine_size(p), 0);
        fa_free(p);
    }
}
END_TEST

/* Under a limit: sizes jemalloc rounds up by more than a 64th come here, sizes on
 * one of its classes stay with jemalloc, and every block is rounded to 16 bytes
 * (a page from FA_HEAP_FINE_BIG on). */
START_TEST(under_a_limit_sizes_between_classes_are_rounded_finely)
{
    set_loose_limit();
    size_t fine[] = {16400, 20000, 32800, 65600, 81930, 100000, 131100, (size_t)1 << 20 | 100, (size_t)5 << 20 | 1};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        size_t size = fine[i];
        void *p = fa_malloc(size);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        size_t usable = fa_malloc_usable_size(p);
        size_t slack = size + 16 < FA_HEAP_FINE_BIG ? 16 : 4096;
        ck_assert_msg(usable >= size && usable < size + slack, "%zu bytes: usable %zu", size, usable);
        ck_assert_uint_eq(fa_heap_fine_size(p), usable);
        fill(p, usable, (unsigned)i);
        fa_free(p);
    }
    size_t on_a_class[] = {16384, 20480, 32768, 65536, (size_t)1 << 20};
    for (size_t i = 0; i < sizeof on_a_class / sizeof *on_a_class; i++) {
        void *p = fa_malloc(on_a_class[i]);
        ck_assert_uint_eq(fa_heap_fine_size(p), 0);
        ck_assert_uint_eq(fa_malloc_usable_size(p), on_a_class[i]);
        fa_free(p);
    }
}
END_TEST

/* Many blocks of mixed sizes, freed in a scattered order and allocated again: every
 * block keeps its bytes while its neighbours are split and merged. */
START_TEST(blocks_keep_their_bytes_through_splits_and_merges)
{
    enum { COUNT = 3000 };
    static unsigned char *blocks[COUNT];
    static size_t sizes[COUNT];
    unsigned seed = 12345;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < COUNT; i++) {
            if (blocks[i] && (seed = seed * 1103515245 + 12345) % 3)
                continue;
            if (blocks[i]) {
                ck_assert_msg(holds(blocks[i], sizes[i], (unsigned)i), "block %d", i);
                fa_heap_free(blocks[i]);
            }
            seed = seed * 1103515245 + 12345;
            sizes[i] = 1000 + (seed >> 8) % 120000;
            blocks[i] = fa_heap_fine_alloc(sizes[i], round % 2);
            ck_assert_ptr_nonnull(blocks[i]);
            if (round % 2)
                ck_assert_msg(all_zero(blocks[i], sizes[i]), "zeroed block %d", i);
            fill(blocks[i], sizes[i], (unsigned)i);
        }
    }
    for (int i = 0; i < COUNT; i++) {
        ck_assert_msg(holds(blocks[i], sizes[i], (unsigned)i), "block %d", i);
        fa_heap_free(blocks[i]);
    }
}
END_TEST

/* Freeing everything gives the spans back (one is kept), so a limit gets its address
 * space back as it does under glibc. */
START_TEST(empty_spans_go_back_to_the_kernel)
{
    enum { COUNT = 2000 };
    static void *blocks[COUNT];
    size_t before = fa_os_mapped_bytes();
    for (int i = 0; i < COUNT; i++)
        ck_assert_ptr_nonnull(blocks[i] = fa_heap_fine_alloc(20000, false));
    ck_assert_uint_ge(fa_os_mapped_bytes(), before + (size_t)COUNT * 20000);
    for (int i = 0; i < COUNT; i++)
        fa_heap_free(blocks[i]);
    ck_assert_uint_le(fa_os_mapped_bytes(), before + ((size_t)10 << 20)); /* the kept span, the tables */
    void *big = fa_heap_fine_alloc((size_t)64 << 20, false);
    ck_assert_uint_ge(fa_os_mapped_bytes(), before + ((size_t)64 << 20));
    fa_heap_free(big);
    ck_assert_uint_le(fa_os_mapped_bytes(), before + ((size_t)10 << 20)); /* the kept span, the tables */
}
END_TEST

/* realloc shrinks in place (the tail goes back), grows in place into a free
 * neighbour, and moves otherwise, keeping the bytes. */
START_TEST(realloc_resizes_in_place_when_it_can)
{
    set_loose_limit();
    unsigned char *a = fa_malloc(40000), *b = fa_malloc(20000), *c = fa_malloc(20000);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_gt(fa_heap_fine_size(b), 0);
    fill(b, 20000, 2);
    ck_assert_ptr_eq(fa_realloc(b, 10000), b);
    ck_assert_uint_lt(fa_malloc_usable_size(b), 10016);
    ck_assert(holds(b, 10000, 2));
    fill(b, 10000, 3);
    ck_assert_ptr_eq(fa_realloc(b, 18000), b); /* into the tail it gave back */
    ck_assert(holds(b, 10000, 3));
    fill(b, 18000, 4);
    unsigned char *moved = fa_realloc(b, 300000); /* a large block of its own */
    ck_assert_ptr_ne(moved, b);
    ck_assert(holds(moved, 18000, 4));
    fill(moved, 300000, 5);
    ck_assert_ptr_eq(fa_realloc(moved, 250000), moved);
    ck_assert(holds(moved, 250000, 5));
    fa_free(moved);
    fa_free(a);
    fa_free(c);
}
END_TEST

/* The first and last 256 bytes of a block (enough to see two blocks overlap, and
 * quick under ThreadSanitizer). */
static void fill_ends(unsigned char *p, size_t size, unsigned seed)
{
    size_t end = size < 256 ? size : 256;
    fill(p + size - end, end, seed + 1);
    fill(p, end, seed);
}

static bool holds_ends(const unsigned char *p, size_t size, unsigned seed)
{
    size_t end = size < 256 ? size : 256;
    return holds(p, end, seed) && (size < 512 || holds(p + size - end, end, seed + 1));
}

/* Threads allocate, check and free fine blocks at once (one lock serves them). */
static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned char *held[64] = {0};
    size_t sizes[64];
    for (int i = 0; i < 20000; i++) {
        int k = (int)((seed = seed * 1103515245 + 12345) >> 16) % 64;
        if (held[k]) {
            if (!holds_ends(held[k], sizes[k], (unsigned)k))
                return (void *)1;
            fa_heap_free(held[k]);
        }
        sizes[k] = 16 + (seed >> 4) % 70000;
        if (!(held[k] = fa_heap_fine_alloc(sizes[k], false)))
            return (void *)1;
        fill_ends(held[k], sizes[k], (unsigned)k);
    }
    for (int k = 0; k < 64; k++)
        if (held[k])
            fa_heap_free(held[k]);
    return NULL;
}

START_TEST(threads_share_the_spans)
{
    pthread_t threads[4];
    for (uintptr_t i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *failed;
        pthread_join(threads[i], &failed);
        ck_assert_ptr_null(failed);
    }
}
END_TEST

/* Runs misuse in a child and returns its first line on stderr; the child must abort. */
static void misuse_message(void (*misuse)(void *), void *arg, char *line, size_t cap)
{
    int pipe_fds[2];
    ck_assert_int_eq(pipe(pipe_fds), 0);
    pid_t child = fork();
    if (child == 0) {
        dup2(pipe_fds[1], 2);
        misuse(arg);
        _exit(0);
    }
    close(pipe_fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(pipe_fds[0], line + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    line[n] = '\0';
    close(pipe_fds[0]);
    int status;
    waitpid(child, &status, 0);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %d, stderr %s", status, line);
    char *end = strchr(line, '\n');
    ck_assert_msg(end && !end[1], "want one line: %s", line);
    *end = '\0';
}

static void free_twice(void *p)
{
    fa_heap_free(p);
    fa_heap_free(p);
}

static void free_inside(void *p) { fa_heap_free((char *)p + 4096); }
static void size_of_inside(void *p) { fa_heap_usable_size((char *)p + 16, "malloc_usable_size"); }

/* Through the heap's own functions (what fa_free calls for a heap block), so that
 * jemalloc never starts: it locks all its mutexes around fork, more than
 * ThreadSanitizer's deadlock detector can hold. */
START_TEST(misuse_of_fine_blocks_is_reported_as_for_any_heap_block)
{
    size_t sizes[] = {20000, 300000};
    for (size_t i = 0; i < 2; i++) {
        char *p = fa_heap_fine_alloc(sizes[i], false), line[512], want[256];
        ck_assert_ptr_nonnull(p);
        size_t usable = fa_heap_usable_size(p, "malloc_usable_size");
        misuse_message(free_twice, p, line, sizeof line);
        snprintf(want, sizeof want,
                 "framealloc: error: free(%p): not a live heap block (already freed: a double free; or never "
                 "returned by malloc)",
                 (void *)p);
        ck_assert_str_eq(line, want);
        misuse_message(free_inside, p, line, sizeof line);
        snprintf(want, sizeof want,
                 "framealloc: error: free(%p): a pointer into the middle of a heap block (4096 bytes into the live "
                 "%zu-byte block at %p)",
                 (void *)(p + 4096), usable, (void *)p);
        ck_assert_str_eq(line, want);
        misuse_message(size_of_inside, p, line, sizeof line);
        ck_assert_ptr_nonnull(strstr(line, "malloc_usable_size("));
        ck_assert_ptr_nonnull(strstr(line, "16 bytes into the live"));
        fa_heap_free(p);
    }
}
END_TEST

/* fork while another thread keeps taking the spans' lock: the child can allocate
 * (process.c takes the lock around fork). Not under ThreadSanitizer: jemalloc locks
 * all its mutexes around fork, more than its deadlock detector can hold. */
#ifndef __SANITIZE_THREAD__
static _Atomic bool stop_churning;

static void *churn_until_stopped(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_churning, __ATOMIC_RELAXED))
        fa_heap_free(fa_heap_fine_alloc(20000, false));
    return NULL;
}
#endif

START_TEST(a_forked_child_can_allocate)
{
#ifndef __SANITIZE_THREAD__
    set_loose_limit();
    void *p = fa_malloc(20000);
    ck_assert_uint_gt(fa_heap_fine_size(p), 0);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, churn_until_stopped, NULL), 0);
    for (int i = 0; i < 50; i++) {
        pid_t child = fork();
        if (child == 0) {
            void *q = fa_malloc(30000);
            _exit(q && fa_heap_fine_size(q) ? 0 : 1);
        }
        int status;
        waitpid(child, &status, 0);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&stop_churning, true, __ATOMIC_RELAXED);
    pthread_join(thread, NULL);
    fa_free(p);
#endif
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("heap_fine");
    TCase *tc = tcase_create("fine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, without_a_limit_jemalloc_serves_every_size);
    tcase_add_test(tc, under_a_limit_sizes_between_classes_are_rounded_finely);
    tcase_add_test(tc, blocks_keep_their_bytes_through_splits_and_merges);
    tcase_add_test(tc, empty_spans_go_back_to_the_kernel);
    tcase_add_test(tc, realloc_resizes_in_place_when_it_can);
    tcase_add_test(tc, threads_share_the_spans);
    tcase_add_test(tc, misuse_of_fine_blocks_is_reported_as_for_any_heap_block);
    tcase_add_test(tc, a_forked_child_can_allocate);
    suite_add_tcase(s, tc);
    return s;
}

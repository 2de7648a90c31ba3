/* glibc's heap-inspection and tuning calls (mallinfo2, mallinfo, malloc_trim,
 * mallopt, malloc_stats, malloc_info) describe framealloc's arenas under the
 * preload: they never reach glibc's unused heap. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_test.h"

static const char *const inspection_names[] = {
    "mallinfo2", "mallinfo", "malloc_trim", "mallopt", "malloc_stats", "malloc_info",
};

START_TEST(inspection_names_resolve_to_framealloc)
{
    for (size_t i = 0; i < sizeof inspection_names / sizeof inspection_names[0]; i++)
        ck_assert_msg(defined_by_framealloc(inspection_names[i]), "%s resolves to '%s', not libframealloc.so",
                      inspection_names[i], object_defining(inspection_names[i]));
}
END_TEST

enum { SMALL_BLOCKS = 16384, SMALL_SIZE = 256, LARGE_SIZE = 16 << 20 };
static void *small_blocks[SMALL_BLOCKS];

static void allocate_and_touch(void **large)
{
    for (int i = 0; i < SMALL_BLOCKS; i++) {
        small_blocks[i] = malloc(SMALL_SIZE);
        memset(small_blocks[i], 1, SMALL_SIZE);
    }
    *large = malloc(LARGE_SIZE);
    memset(*large, 1, LARGE_SIZE);
}

static void free_all(void *large)
{
    for (int i = 0; i < SMALL_BLOCKS; i++)
        free(small_blocks[i]);
    free(large);
}

START_TEST(mallinfo2_counts_live_blocks)
{
    const size_t live = (size_t)SMALL_BLOCKS * SMALL_SIZE + LARGE_SIZE;
    struct mallinfo2 before = mallinfo2();
    void *large;
    allocate_and_touch(&large);
    struct mallinfo2 during = mallinfo2();
    free_all(large);
    struct mallinfo2 after = mallinfo2();
    ck_assert_uint_ge(during.uordblks, before.uordblks + live);
    ck_assert_uint_le(after.uordblks + live, during.uordblks);
    ck_assert_uint_ge(during.arena, during.uordblks);
    ck_assert_uint_eq(during.fordblks, during.arena - during.uordblks);
    ck_assert_uint_eq(after.fordblks, after.arena - after.uordblks);
}
END_TEST

START_TEST(mallinfo_matches_mallinfo2_while_small)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
    struct mallinfo2 m2 = mallinfo2();
    ck_assert_int_gt(m.uordblks, 0);
    ck_assert_int_gt(m.arena, 0);
    /* Taken one after the other: the same order of magnitude, not the same bytes. */
    ck_assert_uint_le((size_t)m.uordblks, 2 * m2.uordblks + (1 << 20));
}
END_TEST

static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    size_t pages = 0, resident = 0;
    ck_assert_int_eq(fscanf(f, "%zu %zu", &pages, &resident), 2);
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

START_TEST(malloc_trim_gives_freed_memory_back)
{
    void *large;
    allocate_and_touch(&large);
    free_all(large);
    size_t before = resident_bytes();
    int released = malloc_trim(0);
    int again = malloc_trim(0); /* before resident_bytes' stdio allocates anything */
    size_t after = resident_bytes();
    ck_assert_int_eq(released, 1);
    ck_assert_int_eq(again, 0); /* nothing left to give */
    /* The freed small blocks' chunks (4 MiB), all but one 256 KiB chunk, which may
     * still hold other live blocks of the class (the test harness's); the large
     * block's pages may already have gone back when it was freed (as a process's
     * first heap blocks are, mapped directly before jemalloc starts). */
    ck_assert_uint_le(after + ((size_t)SMALL_BLOCKS * SMALL_SIZE) - ((size_t)256 << 10), before);
    void *p = malloc(100);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(mallopt_returns_what_glibc_returns)
{
    ck_assert_int_eq(mallopt(M_ARENA_MAX, 1), 1);
    ck_assert_int_eq(mallopt(M_TRIM_THRESHOLD, 128 << 10), 1);
    ck_assert_int_eq(mallopt(M_MXFAST, 64), 1);
    ck_assert_int_eq(mallopt(M_MXFAST, -1), 0);
    ck_assert_int_eq(mallopt(M_MXFAST, 4096), 0);
}
END_TEST

START_TEST(malloc_info_writes_framealloc_figures)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_int_eq(malloc_info(0, out), 0);
    fclose(out);
    ck_assert_msg(strstr(text, "allocator=\"framealloc\"") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "</malloc>") != NULL, "%s", text);
    free(text);
    errno = 0;
    ck_assert_int_eq(malloc_info(1, stdout), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static void print_stats(void *arg)
{
    (void)arg;
    malloc_stats();
}

START_TEST(malloc_stats_prints_framealloc_figures)
{
    char err[8192];
    int status = run_in_child_capturing_stderr(print_stats, NULL, err, sizeof err);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(strstr(err, "in use bytes") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "framealloc:") != NULL, "%s", err);
}
END_TEST

/* Threads making the process's first inspection calls at the same moment: glibc
 * would race in setting up its heap (found by the fuzzer: a crash in mallinfo2,
 * or an assertion at thread exit). */
enum { RACING_THREADS = 4, RACES = 40 };
static pthread_barrier_t start_line;

static void *first_calls(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start_line);
    (void)mallopt(M_TRIM_THRESHOLD, 1 << 20);
    (void)mallinfo2();
    (void)malloc_trim(0);
    return NULL;
}

static void race_first_calls(void)
{
    pthread_t threads[RACING_THREADS];
    pthread_barrier_init(&start_line, NULL, RACING_THREADS);
    for (int i = 0; i < RACING_THREADS; i++)
        if (pthread_create(&threads[i], NULL, first_calls, NULL) != 0)
            _exit(2);
    for (int i = 0; i < RACING_THREADS; i++)
        pthread_join(threads[i], NULL);
    _exit(0);
}

START_TEST(first_inspection_calls_from_many_threads)
{
    for (int race = 0; race < RACES; race++) {
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0)
            race_first_calls();
        int status = 0;
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "race %d: status %#x", race, status);
    }
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("heap_inspection");
    TCase *tc = tcase_create("heap_inspection");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, inspection_names_resolve_to_framealloc);
    tcase_add_test(tc, mallinfo2_counts_live_blocks);
    tcase_add_test(tc, mallinfo_matches_mallinfo2_while_small);
    tcase_add_test(tc, malloc_trim_gives_freed_memory_back);
    tcase_add_test(tc, mallopt_returns_what_glibc_returns);
    tcase_add_test(tc, malloc_info_writes_framealloc_figures);
    tcase_add_test(tc, malloc_stats_prints_framealloc_figures);
    tcase_add_test(tc, first_inspection_calls_from_many_threads);
    suite_add_tcase(s, tc);
    return s;
}

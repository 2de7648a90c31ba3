/* Misuse must fail loudly: a double free or a free of an interior pointer of a
 * frame, pool or heap block aborts with one line on stderr that starts with
 * "framealloc: error: " and names the function and the pointer; where records know
 * the block, its allocating stack follows ("framealloc: ..." lines). Each misuse runs
 * in a forked child whose stderr the test reads. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <malloc.h>

#include "preload_test.h"

/* True when every block is recorded (full records; guards and poison turn them on):
 * then every misuse of a block here is followed by the block's allocating stack. */
static bool every_block_recorded(void)
{
    const char *records = getenv("FRAMEALLOC_RECORDS");
    const char *debug = getenv("FRAMEALLOC_DEBUG");
    return (records && !strcmp(records, "full")) || (debug && (strstr(debug, "guards") || strstr(debug, "poison")));
}

/* Runs misuse(block) in a child; it must abort, and its stderr must start with
 * "framealloc: error: <function>(<pointer>)" on one line. Any further lines are the
 * block's allocating stack ("framealloc: ... allocated at:" and "framealloc:   at"
 * lines), required when every block is recorded, allowed when sampling. */
static void expect_abort_naming(void (*misuse)(void *), void *block, const char *function, const void *pointer)
{
    char err[8192];
    int status = run_in_child_capturing_stderr(misuse, block, err, sizeof err);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "the misuse did not abort (wait status %#x); stderr: '%s'", status, err);
    char expected[128];
    snprintf(expected, sizeof expected, "framealloc: error: %s(%p)", function, pointer);
    ck_assert_msg(strncmp(err, expected, strlen(expected)) == 0, "stderr is '%s', want it to start with '%s'", err,
                  expected);
    char *stack = strchr(err, '\n') + 1;
    ck_assert_msg(stack != err && err[strlen(err) - 1] == '\n', "stderr does not end its lines: '%s'", err);
    if (every_block_recorded())
        ck_assert_msg(*stack, "want the block's allocating stack after the message, got '%s'", err);
    else if (!getenv("FRAMEALLOC_RECORDS"))
        ck_assert_msg(!*stack, "want exactly one line on stderr, got '%s'", err);
    if (!*stack)
        return;
    char *heading_end = strchr(stack, '\n');
    ck_assert_msg(!strncmp(stack, "framealloc: ", 12) && !strncmp(heading_end - 13, "allocated at:", 13),
                  "want 'framealloc: ... allocated at:' after the message, got '%s'", err);
    for (char *line = heading_end + 1; *line; line = strchr(line, '\n') + 1)
        ck_assert_msg(!strncmp(line, "framealloc:   at ", 17), "want 'framealloc:   at' stack lines, got '%s'", err);
    ck_assert_msg(strstr(heading_end, "at frame_block") || strstr(heading_end, "at pool_block") ||
                      strstr(heading_end, "at heap_block"),
                  "the stack does not name the allocating function: '%s'", err);
}

/* The allocating functions are not inlined: the stack after a message names them. */
__attribute__((noinline)) static char *frame_block(size_t size)
{
    fa_scope_push(FA_FRAME);
    uint64_t before = frame_allocs_now();
    char *p = malloc(size);
    uint64_t served = frame_allocs_now() - before;
    fa_scope_pop();
    ck_assert_msg(served == 1, "the frame arena did not serve the block");
    memset(p, 0x21, size);
    return p;
}

/* Outside scopes, small requests come from the size-class pools. */
__attribute__((noinline)) static char *pool_block(size_t size)
{
    fa_stats before, after;
    fa_stats_get(&before);
    char *p = malloc(size);
    fa_stats_get(&after);
    ck_assert_msg(after.pool_allocs == before.pool_allocs + 1, "the pools did not serve the block");
    memset(p, 0x22, size);
    return p;
}

/* Above the pools' limit and the frame maximum: the heap. */
__attribute__((noinline)) static char *heap_block(size_t size)
{
    fa_stats before, after;
    fa_stats_get(&before);
    char *p = malloc(size);
    fa_stats_get(&after);
    ck_assert_msg(after.pool_allocs == before.pool_allocs && after.frame_allocs == before.frame_allocs,
                  "an arena served the block, not the heap");
    memset(p, 0x23, size);
    return p;
}

static void free_twice(void *p)
{
    free(p);
    free(p);
}

static void free_plus_16(void *p) { free((char *)p + 16); }

static void free_then_realloc(void *p)
{
    free(p);
    p = realloc(p, 10);
}

static void free_then_usable_size(void *p)
{
    free(p);
    (void)malloc_usable_size(p);
}

static void *free_in_thread(void *p)
{
    free(p);
    return NULL;
}

static void *free_twice_in_thread(void *p)
{
    free_twice(p);
    return NULL;
}

/* The owner frees the block, then another thread frees it again. */
static void remote_free_after_owner_free(void *p)
{
    free(p);
    pthread_t thread;
    pthread_create(&thread, NULL, free_in_thread, p);
    pthread_join(thread, NULL);
}

/* Another thread frees the block twice. */
static void remote_thread_frees_twice(void *p)
{
    pthread_t thread;
    pthread_create(&thread, NULL, free_twice_in_thread, p);
    pthread_join(thread, NULL);
}

/* Two other threads free the same block, one after the other. */
static void two_remote_threads_free(void *p)
{
    pthread_t first, second;
    pthread_create(&first, NULL, free_in_thread, p);
    pthread_join(first, NULL);
    pthread_create(&second, NULL, free_in_thread, p);
    pthread_join(second, NULL);
}

START_TEST(double_free_of_frame_block_aborts)
{
    char *p = frame_block(64);
    expect_abort_naming(free_twice, p, "free", p);
}
END_TEST

START_TEST(interior_pointer_free_of_frame_block_aborts)
{
    char *p = frame_block(64);
    expect_abort_naming(free_plus_16, p, "free", p + 16);
}
END_TEST

START_TEST(remote_free_of_freed_frame_block_aborts)
{
    char *p = frame_block(64);
    expect_abort_naming(remote_free_after_owner_free, p, "free", p);
}
END_TEST

START_TEST(remote_double_free_of_frame_block_aborts)
{
    char *p = frame_block(64);
    expect_abort_naming(remote_thread_frees_twice, p, "free", p);
    expect_abort_naming(two_remote_threads_free, p, "free", p);
}
END_TEST

START_TEST(realloc_and_usable_size_of_freed_frame_block_abort)
{
    char *p = frame_block(64);
    expect_abort_naming(free_then_realloc, p, "realloc", p);
    expect_abort_naming(free_then_usable_size, p, "malloc_usable_size", p);
}
END_TEST

START_TEST(double_free_of_pool_block_aborts)
{
    char *p = pool_block(64);
    expect_abort_naming(free_twice, p, "free", p);
}
END_TEST

START_TEST(interior_pointer_free_of_pool_block_aborts)
{
    char *p = pool_block(64);
    expect_abort_naming(free_plus_16, p, "free", p + 16);
}
END_TEST

START_TEST(remote_double_free_of_pool_block_aborts)
{
    char *p = pool_block(64);
    expect_abort_naming(remote_free_after_owner_free, p, "free", p);
    expect_abort_naming(remote_thread_frees_twice, p, "free", p);
}
END_TEST

/* The heap's record of live blocks is shared by all threads: a second free from
 * another thread, or two threads freeing the same block, is caught like the owner's. */
START_TEST(remote_double_free_of_heap_block_aborts)
{
    char *p = heap_block(1 << 20);
    expect_abort_naming(remote_free_after_owner_free, p, "free", p);
    expect_abort_naming(remote_thread_frees_twice, p, "free", p);
    expect_abort_naming(two_remote_threads_free, p, "free", p);
}
END_TEST

static void free_once(void *p) { free(p); }

static void free_once_in_thread(void *p)
{
    pthread_t thread;
    pthread_create(&thread, NULL, free_in_thread, p);
    pthread_join(thread, NULL);
}

/* Control: the same blocks and the same harness, used correctly: no abort, no output. */
START_TEST(correct_frees_do_not_abort)
{
    char *blocks[] = {frame_block(64), pool_block(64), heap_block(1 << 20)};
    void (*frees[])(void *) = {free_once, free_once_in_thread};
    for (int b = 0; b < 3; b++) {
        for (int f = 0; f < 2; f++) {
            char err[256];
            int status = run_in_child_capturing_stderr(frees[f], blocks[b], err, sizeof err);
            ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status %#x, stderr '%s'", status, err);
            ck_assert_str_eq(err, "");
        }
    }
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("misuse");
    TCase *frame = tcase_create("frame blocks");
    tcase_add_test(frame, double_free_of_frame_block_aborts);
    tcase_add_test(frame, interior_pointer_free_of_frame_block_aborts);
    tcase_add_test(frame, remote_free_of_freed_frame_block_aborts);
    tcase_add_test(frame, remote_double_free_of_frame_block_aborts);
    tcase_add_test(frame, realloc_and_usable_size_of_freed_frame_block_abort);
    suite_add_tcase(s, frame);
    TCase *pool = tcase_create("pool blocks");
    tcase_add_test(pool, double_free_of_pool_block_aborts);
    tcase_add_test(pool, interior_pointer_free_of_pool_block_aborts);
    tcase_add_test(pool, remote_double_free_of_pool_block_aborts);
    suite_add_tcase(s, pool);
    TCase *heap = tcase_create("heap blocks");
    tcase_add_test(heap, remote_double_free_of_heap_block_aborts);
    suite_add_tcase(s, heap);
    TCase *control = tcase_create("control");
    tcase_add_test(control, correct_frees_do_not_abort);
    suite_add_tcase(s, control);
    return s;
}

/* Memory that libc and the dynamic loader allocate for themselves inside a frame
 * scope (a stream's buffer, the environment, a dlopened library's thread-local
 * block) lives as long as they need it, however the frames go. Run with
 * FRAMEALLOC_FRAME_MODE=strict, where frame memory is recycled at frame end
 * whatever happened to it: each case makes libc allocate inside a scope, ends
 * frames, writes new frame blocks full of junk, and then checks libc's data. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload_test.h"

/* Ends the frame and writes over what the next frames hand out, so that anything
 * of libc's left in a recycled frame chunk is overwritten. */
static void end_frames_and_scribble(void)
{
    for (int frame = 0; frame < 3; frame++) {
        fa_frame_end();
        fa_scope_push(FA_FRAME);
        for (int i = 0; i < 512; i++) {
            size_t n = 16 + (size_t)(i % 32) * 16;
            memset(malloc(n), 'X', n);
        }
        fa_scope_pop();
    }
    fa_frame_end();
}

START_TEST(stream_buffer_allocated_in_a_scope_survives)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    FILE *out = fdopen(fds[1], "w"); /* a pipe: fully buffered, buffer allocated at first write */
    ck_assert_ptr_nonnull(out);
    fa_scope_push(FA_FRAME);
    fprintf(out, "frame %d says hello", 42);
    fa_scope_pop();
    end_frames_and_scribble();
    fclose(out);
    char got[64] = {0};
    ssize_t n = read(fds[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(got, "frame 42 says hello");
}
END_TEST

START_TEST(environment_set_in_a_scope_survives)
{
    fa_scope_push(FA_FRAME);
    for (int i = 0; i < 8; i++) { /* grows the environment array too */
        char name[32];
        snprintf(name, sizeof name, "FA_SYSTEM_ALLOCATIONS_%d", i);
        ck_assert_int_eq(setenv(name, "a value libc keeps", 1), 0);
    }
    fa_scope_pop();
    end_frames_and_scribble();
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "FA_SYSTEM_ALLOCATIONS_%d", i);
        const char *value = getenv(name);
        ck_assert_ptr_nonnull(value);
        ck_assert_str_eq(value, "a value libc keeps");
    }
}
END_TEST

/* The loader allocates a dlopened library's thread-local block at the thread's
 * first access to it. preload_argv[0] is the library's path. */
START_TEST(dynamic_tls_first_touched_in_a_scope_survives)
{
    ck_assert_int_ge(preload_argc, 1);
    void *library = dlopen(preload_argv[0], RTLD_NOW);
    ck_assert_msg(library != NULL, "dlopen: %s", dlerror());
    char *(*block)(void) = (char *(*)(void))dlsym(library, "tls_module_block");
    ck_assert_ptr_nonnull(block);
    fa_scope_push(FA_FRAME);
    char *mine = block();
    strcpy(mine, "thread-local data");
    fa_scope_pop();
    end_frames_and_scribble();
    ck_assert_ptr_eq(block(), mine);
    ck_assert_str_eq(block(), "thread-local data");
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("system allocations in frame scopes");
    TCase *tc = tcase_create("strict");
    tcase_add_test(tc, stream_buffer_allocated_in_a_scope_survives);
    tcase_add_test(tc, environment_set_in_a_scope_survives);
    tcase_add_test(tc, dynamic_tls_first_touched_in_a_scope_survives);
    suite_add_tcase(s, tc);
    return s;
}

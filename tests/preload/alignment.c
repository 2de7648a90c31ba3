/* Alignment of every pointer the malloc family returns, for many sizes and every
 * power-of-two alignment, on every route: the default intent, FA_HEAP, FA_POOL and
 * frame scopes (meson runs it again with the pools off). Blocks are kept alive in
 * batches: freeing each at once would test one slot over and over. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "preload_test.h"

/* glibc's guarantee for every malloc block on x86_64, and framealloc's contract
 * (FA_MIN_ALIGN): the alignment of max_align_t. */
#define MALLOC_ALIGN alignof(max_align_t)

enum { BATCH = 8 };

static void enter_heap_scope(void) { fa_scope_push(FA_HEAP); }
static void enter_pool_scope(void) { fa_scope_push(FA_POOL); }
static void enter_frame_scope(void) { fa_scope_push(FA_FRAME); }
static void leave_scope(void) { fa_scope_pop(); }

/* 0..300 one by one, then 2^k - 1, 2^k, 2^k + 1 and a few between, up to 1 MiB. */
static size_t test_sizes(size_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t s = 0; s <= 300 && n < cap; s++)
        out[n++] = s;
    for (size_t p = 512; p <= ((size_t)1 << 20) && n + 5 <= cap; p *= 2) {
        out[n++] = p - 1;
        out[n++] = p;
        out[n++] = p + 1;
        out[n++] = p + p / 3;
        out[n++] = p + p / 2 + 7;
    }
    return n;
}

/* align: the alignment the call must give (asked for, or malloc's guarantee). */
static void check_block(const char *what, void *p, size_t size, size_t align)
{
    ck_assert_msg(p != NULL, "%s(size %zu), alignment %zu: returned NULL", what, size, align);
    ck_assert_msg((uintptr_t)p % align == 0, "%s(size %zu), alignment %zu: returned %p", what, size, align, p);
    ck_assert_msg(malloc_usable_size(p) >= size, "%s(size %zu): usable size %zu", what, size, malloc_usable_size(p));
    memset(p, 0x5c, size);
}

START_TEST(malloc_calloc_realloc_align_every_size_to_max_align_t)
{
    size_t sizes[400];
    size_t count = test_sizes(sizes, sizeof sizes / sizeof sizes[0]);
    for (size_t i = 0; i < count; i++) {
        size_t n = sizes[i];
        void *batch[3 * BATCH];
        for (int k = 0; k < BATCH; k++) {
            batch[3 * k] = malloc(n);
            batch[3 * k + 1] = calloc(n, 1);
            batch[3 * k + 2] = realloc(NULL, n);
            check_block("malloc", batch[3 * k], n, MALLOC_ALIGN);
            check_block("calloc", batch[3 * k + 1], n, MALLOC_ALIGN);
            check_block("realloc(NULL)", batch[3 * k + 2], n, MALLOC_ALIGN);
        }
        for (int k = 0; k < 3 * BATCH; k++)
            free(batch[k]);
    }
}
END_TEST

START_TEST(realloc_keeps_alignment_while_growing_and_shrinking)
{
    /* A batch of blocks walks the same sizes, so that each size has several live. */
    void *batch[BATCH] = {NULL};
    size_t n;
    for (n = 1; n <= ((size_t)1 << 20); n = n * 2 + 3) {
        for (int k = 0; k < BATCH; k++) {
            batch[k] = realloc(batch[k], n);
            check_block("realloc", batch[k], n, MALLOC_ALIGN);
        }
    }
    for (; n > 0; n /= 3) {
        for (int k = 0; k < BATCH; k++) {
            batch[k] = realloc(batch[k], n);
            check_block("realloc", batch[k], n, MALLOC_ALIGN);
        }
    }
    for (int k = 0; k < BATCH; k++)
        free(batch[k]);
}
END_TEST

/* Sizes around and below the alignment, where an allocator is most tempted to
 * hand out a smaller size class. */
static size_t sizes_for_alignment(size_t align, size_t *out)
{
    size_t n = 0;
    static const size_t fixed[] = {0, 1, 8, 24, 100};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        out[n++] = fixed[i];
    out[n++] = align - 1;
    out[n++] = align + 1;
    out[n++] = 3 * align + 5;
    return n;
}

START_TEST(every_power_of_two_alignment_is_honoured)
{
    void *(*libc_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_memalign");
    int (*posix_memalign_alias)(void **, size_t, size_t) =
        (int (*)(void **, size_t, size_t))dlsym(RTLD_DEFAULT, "__posix_memalign");
    ck_assert_ptr_nonnull(libc_memalign);
    ck_assert_ptr_nonnull(posix_memalign_alias);
    for (size_t align = 1; align <= 65536; align *= 2) {
        size_t sizes[8];
        size_t count = sizes_for_alignment(align, sizes);
        for (size_t i = 0; i < count; i++) {
            size_t n = sizes[i];
            void *batch[5 * BATCH];
            int held = 0;
            for (int k = 0; k < BATCH; k++) {
                void *p = aligned_alloc(align, n);
                check_block("aligned_alloc", p, n, align);
                batch[held++] = p;
                p = memalign(align, n);
                check_block("memalign", p, n, align);
                batch[held++] = p;
                p = libc_memalign(align, n);
                check_block("__libc_memalign", p, n, align);
                batch[held++] = p;
                if (align < sizeof(void *))
                    continue; /* posix_memalign rejects these (see contract.c) */
                ck_assert_int_eq(posix_memalign(&p, align, n), 0);
                check_block("posix_memalign", p, n, align);
                batch[held++] = p;
                ck_assert_int_eq(posix_memalign_alias(&p, align, n), 0);
                check_block("__posix_memalign", p, n, align);
                batch[held++] = p;
            }
            for (int k = 0; k < held; k++)
                free(batch[k]);
        }
    }
}
END_TEST

static void add_route(Suite *s, const char *name, void (*enter)(void))
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 30);
    if (enter)
        tcase_add_checked_fixture(tc, enter, leave_scope);
    tcase_add_test(tc, malloc_calloc_realloc_align_every_size_to_max_align_t);
    tcase_add_test(tc, realloc_keeps_alignment_while_growing_and_shrinking);
    tcase_add_test(tc, every_power_of_two_alignment_is_honoured);
    suite_add_tcase(s, tc);
}

Suite *preload_suite(void)
{
    Suite *s = suite_create("alignment");
    add_route(s, "default", NULL);
    add_route(s, "heap scope", enter_heap_scope);
    add_route(s, "pool scope", enter_pool_scope);
    add_route(s, "frame scope", enter_frame_scope);
    return s;
}

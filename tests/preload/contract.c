/* The libc allocation contract (glibc's semantics) through the public names, with
 * libframealloc.so preloaded. Every test runs once per route: the default intent
 * (pools for small sizes, the heap for the rest), an FA_HEAP scope, an FA_POOL
 * scope, and a frame scope where the frame arena serves the small requests.
 * meson runs the whole file a second time with the pools turned off. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_test.h"

/* 1 in the "frame scope" test case (its fixture pushes FA_FRAME). */
static int in_frame_scope;

static void enter_heap_scope(void) { fa_scope_push(FA_HEAP); }
static void enter_pool_scope(void) { fa_scope_push(FA_POOL); }
static void enter_frame_scope(void)
{
    fa_scope_push(FA_FRAME);
    in_frame_scope = 1;
}
static void leave_scope(void) { fa_scope_pop(); }

/* glibc's internal names and cfree are not declared by the headers: look them up
 * the way a program that calls them would be linked, in the global scope. */
static void *global_symbol(const char *name)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    if (!sym) /* no passing assertion: it would allocate (see frame_allocs_now) */
        ck_abort_msg("%s is not defined", name);
    return sym;
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static void fill_pattern(unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = (unsigned char)(i * 7 + 3);
}

static int has_pattern(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 3))
            return 0;
    return 1;
}

START_TEST(malloc_zero_returns_unique_pointers)
{
    enum { N = 64 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(0);
        ck_assert_ptr_nonnull(blocks[i]);
        for (int j = 0; j < i; j++)
            ck_assert_ptr_ne(blocks[i], blocks[j]);
    }
    for (int i = 0; i < N; i++)
        free(blocks[i]);
}
END_TEST

/* Frame memory comes in 256 KiB chunks aligned to their size (see README). */
static int same_frame_chunk(const void *a, const void *b) { return ((uintptr_t)a >> 18) == ((uintptr_t)b >> 18); }

START_TEST(calloc_zeroes_reused_dirty_memory)
{
    /* Dirty about 100 KiB of blocks and free them all. */
    enum { DIRTY = 100 };
    unsigned char *dirty[DIRTY];
    for (int i = 0; i < DIRTY; i++) {
        dirty[i] = malloc(1000);
        memset(dirty[i], 0xab, 1000);
    }
    for (int i = 0; i < DIRTY; i++)
        free(dirty[i]);
    /* Ends the frame: inside a frame scope the dirtied chunk is now recycled. */
    fa_frame_end();
    static const size_t sizes[] = {1, 16, 100, 4000, 65536, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = calloc(sizes[i], 1);
        ck_assert_ptr_nonnull(p);
        if (i == 0 && in_frame_scope) /* the test really reads recycled memory */
            ck_assert(same_frame_chunk(p, dirty[0]) || same_frame_chunk(p, dirty[DIRTY - 1]));
        ck_assert_msg(all_bytes_are(p, sizes[i], 0), "calloc(%zu, 1) is not zeroed", sizes[i]);
        memset(p, 0xcd, sizes[i]);
        free(p);
        p = calloc(1, sizes[i]);
        ck_assert_msg(all_bytes_are(p, sizes[i], 0), "calloc(1, %zu) is not zeroed", sizes[i]);
        free(p);
    }
}
END_TEST

START_TEST(calloc_overflow_fails_with_enomem)
{
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2, 3}, {SIZE_MAX, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32}, {3, SIZE_MAX / 2}, {1, SIZE_MAX}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        ck_assert_ptr_null(calloc(pairs[i][0], pairs[i][1]));
        ck_assert_msg(errno == ENOMEM, "calloc(%zu, %zu): errno %d, want ENOMEM", pairs[i][0], pairs[i][1], errno);
    }
}
END_TEST

START_TEST(impossible_malloc_fails_with_enomem)
{
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        ck_assert_ptr_null(malloc(sizes[i]));
        ck_assert_msg(errno == ENOMEM, "malloc(%zu): errno %d, want ENOMEM", sizes[i], errno);
    }
}
END_TEST

START_TEST(posix_memalign_rejects_bad_alignment)
{
    /* Not a power of two, or not a multiple of sizeof(void *). */
    static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 48, 100, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = (void *)0x5a5a;
        errno = 4321;
        ck_assert_msg(posix_memalign(&out, bad[i], 64) == EINVAL, "posix_memalign alignment %zu", bad[i]);
        ck_assert_ptr_eq(out, (void *)0x5a5a);
        ck_assert_int_eq(errno, 4321); /* reports through the return value only */
    }
    void *out = (void *)0x5a5a;
    ck_assert_int_eq(posix_memalign(&out, 64, SIZE_MAX - 100), ENOMEM);
    ck_assert_ptr_eq(out, (void *)0x5a5a);
    ck_assert_int_eq(posix_memalign(&out, SIZE_MAX / 2 + 1, 16), ENOMEM);
    ck_assert_ptr_eq(out, (void *)0x5a5a);
    errno = 4321;
    ck_assert_int_eq(posix_memalign(&out, 64, 100), 0);
    ck_assert_int_eq(errno, 4321);
    ck_assert_uint_eq((uintptr_t)out % 64, 0);
    free(out);
}
END_TEST

/* glibc 2.36's aligned_alloc is memalign: an alignment that is not a power of two
 * is rounded up (C17's EINVAL came in glibc 2.38); only one above SIZE_MAX/2+1 fails. */
START_TEST(aligned_alloc_rounds_alignment_up_as_glibc_2_36)
{
    static const size_t odd[][2] = {{0, 16}, {3, 16}, {24, 32}, {48, 64}, {100, 128}, {4097, 8192}};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        errno = 0;
        void *q = aligned_alloc(odd[i][0], 64);
        ck_assert_msg(q && errno == 0, "aligned_alloc(%zu, 64): %p, errno %d", odd[i][0], q, errno);
        ck_assert_uint_eq((uintptr_t)q % odd[i][1], 0);
        free(q);
    }
    errno = 0;
    ck_assert_ptr_null(aligned_alloc(SIZE_MAX, 64));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(aligned_alloc(64, SIZE_MAX - 100));
    ck_assert_int_eq(errno, ENOMEM);
    void *p = aligned_alloc(256, 10); /* the size need not be a multiple (C17) */
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 256, 0);
    free(p);
}
END_TEST

START_TEST(memalign_rounds_alignment_up_to_a_power_of_two)
{
    static const size_t asked[][2] = {{3, 4}, {24, 32}, {48, 64}, {100, 128}, {1000, 1024}, {4097, 8192}, {40000, 65536}};
    void *(*libc_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))global_symbol("__libc_memalign");
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        void *p = memalign(asked[i][0], 40);
        void *q = libc_memalign(asked[i][0], 40);
        ck_assert_ptr_nonnull(p);
        ck_assert_ptr_nonnull(q);
        ck_assert_msg((uintptr_t)p % asked[i][1] == 0, "memalign(%zu) gave %p", asked[i][0], p);
        ck_assert_msg((uintptr_t)q % asked[i][1] == 0, "__libc_memalign(%zu) gave %p", asked[i][0], q);
        memset(p, 1, 40);
        memset(q, 2, 40);
        free(p);
        free(q);
    }
    void *p = memalign(0, 40); /* glibc: treated as the minimum alignment */
    ck_assert_ptr_nonnull(p);
    free(p);
    errno = 0;
    ck_assert_ptr_null(memalign(SIZE_MAX / 2 + 2, 16)); /* no power of two is that large */
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(valloc_and_pvalloc_are_page_aligned)
{
    size_t page = page_size();
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *v = valloc(n);
        ck_assert_ptr_nonnull(v);
        ck_assert_msg((uintptr_t)v % page == 0, "valloc(%zu) gave %p", n, (void *)v);
        ck_assert_uint_ge(malloc_usable_size(v), n);
        memset(v, 0x11, n);
        unsigned char *pv = pvalloc(n);
        ck_assert_ptr_nonnull(pv);
        ck_assert_msg((uintptr_t)pv % page == 0, "pvalloc(%zu) gave %p", n, (void *)pv);
        /* pvalloc rounds the size up to whole pages; pvalloc(0) gives one page. */
        size_t rounded = n ? (n + page - 1) / page * page : page;
        ck_assert_uint_ge(malloc_usable_size(pv), rounded);
        memset(pv, 0x22, rounded);
        free(v);
        free(pv);
    }
    errno = 0;
    ck_assert_ptr_null(pvalloc(SIZE_MAX - 10));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

START_TEST(realloc_of_null_is_malloc)
{
    for (size_t n = 0; n < 300000; n = n * 3 + 1) {
        unsigned char *p = realloc(NULL, n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_ge(malloc_usable_size(p), n);
        memset(p, 0x33, n);
        free(p);
    }
}
END_TEST

static void free_again(void *p) { free(p); }

START_TEST(realloc_to_zero_frees_and_returns_null)
{
    /* A large block (the heap serves it even in a frame scope): the heap shrinks. */
    fa_stats before, after;
    void *big = malloc(8 << 20);
    ck_assert_ptr_nonnull(big);
    fa_stats_get(&before);
    ck_assert_ptr_null(realloc(big, 0));
    fa_stats_get(&after);
    ck_assert_uint_ge(before.heap_bytes - after.heap_bytes, 8 << 20);

    void *small = malloc(32);
    ck_assert_ptr_null(realloc(small, 0));
    if (in_frame_scope) {
        /* A frame block: freeing it again must now be caught as a double free. */
        char err[512];
        int status = run_in_child_capturing_stderr(free_again, small, err, sizeof err);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "second free did not abort: %s", err);
    }
}
END_TEST

START_TEST(realloc_keeps_contents_when_growing_and_shrinking)
{
    static const size_t steps[] = {1, 17, 100, 4000, 4001, 70000, 1 << 20, 3 << 20, 300, 5, 64, 65536, 1};
    unsigned char *p = NULL;
    size_t have = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        size_t n = steps[i];
        unsigned char *q = realloc(p, n);
        ck_assert_ptr_nonnull(q);
        size_t kept = have < n ? have : n;
        ck_assert_msg(has_pattern(q, kept), "realloc to %zu lost the first %zu bytes", n, kept);
        ck_assert_uint_ge(malloc_usable_size(q), n);
        fill_pattern(q, kept, n);
        p = q;
        have = n;
    }
    free(p);
}
END_TEST

START_TEST(failed_realloc_leaves_original_intact)
{
    static const size_t impossible[] = {SIZE_MAX - 10, (size_t)PTRDIFF_MAX + 1, SIZE_MAX / 2};
    unsigned char *p = malloc(100);
    fill_pattern(p, 0, 100);
    for (size_t i = 0; i < sizeof impossible / sizeof impossible[0]; i++) {
        errno = 0;
        ck_assert_ptr_null(realloc(p, impossible[i]));
        ck_assert_msg(errno == ENOMEM, "realloc(p, %zu): errno %d, want ENOMEM", impossible[i], errno);
        ck_assert(has_pattern(p, 100));
    }
    p = realloc(p, 200); /* still a live block the allocator knows */
    ck_assert(has_pattern(p, 100));
    free(p);
}
END_TEST

START_TEST(reallocarray_checks_overflow)
{
    unsigned char *p = malloc(64);
    fill_pattern(p, 0, 64);
    errno = 0;
    ck_assert_ptr_null(reallocarray(p, SIZE_MAX / 4, 8));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(reallocarray(p, (size_t)1 << 33, (size_t)1 << 33));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert(has_pattern(p, 64));
    p = reallocarray(p, 1000, 8);
    ck_assert_ptr_nonnull(p);
    ck_assert(has_pattern(p, 64));
    ck_assert_uint_ge(malloc_usable_size(p), 8000);
    memset(p + 64, 0, 8000 - 64);
    free(p);
    p = reallocarray(NULL, 3, 5);
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(usable_size_covers_request_and_is_all_writable)
{
    ck_assert_uint_eq(malloc_usable_size(NULL), 0);
    /* All blocks live at once, so neighbours would be damaged if a usable size
     * reached into the next block. */
    enum { N = 40 };
    unsigned char *blocks[N];
    size_t usable[N];
    size_t n = 1;
    for (int i = 0; i < N; i++, n = n * 3 / 2 + 1) {
        blocks[i] = malloc(n);
        ck_assert_ptr_nonnull(blocks[i]);
        usable[i] = malloc_usable_size(blocks[i]);
        ck_assert_msg(usable[i] >= n, "malloc(%zu): usable size %zu", n, usable[i]);
        memset(blocks[i], i + 1, usable[i]);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(all_bytes_are(blocks[i], usable[i], (unsigned char)(i + 1)), "block %d was overwritten", i);
        free(blocks[i]);
    }
}
END_TEST

START_TEST(free_keeps_errno)
{
    for (size_t n = 1; n <= ((size_t)64 << 20); n *= 4) {
        void *p = malloc(n);
        ck_assert_ptr_nonnull(p);
        memset(p, 1, n < 4096 ? n : 4096);
        errno = 1234;
        free(p);
        ck_assert_msg(errno == 1234, "free of a %zu-byte block changed errno to %d", n, errno);
    }
    errno = 77;
    free(NULL);
    ck_assert_int_eq(errno, 77);
}
END_TEST

START_TEST(glibc_aliases_and_cfree_work)
{
    void *(*libc_malloc)(size_t) = (void *(*)(size_t))global_symbol("__libc_malloc");
    void *(*libc_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))global_symbol("__libc_calloc");
    void *(*libc_realloc)(void *, size_t) = (void *(*)(void *, size_t))global_symbol("__libc_realloc");
    void *(*libc_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))global_symbol("__libc_memalign");
    void (*libc_free)(void *) = (void (*)(void *))global_symbol("__libc_free");
    int (*posix_memalign_alias)(void **, size_t, size_t) =
        (int (*)(void **, size_t, size_t))global_symbol("__posix_memalign");
    void (*cfree_fn)(void *) = (void (*)(void *))global_symbol("cfree");

    unsigned char *a = libc_malloc(100);
    ck_assert_ptr_nonnull(a);
    fill_pattern(a, 0, 100);
    a = libc_realloc(a, 5000);
    ck_assert_ptr_nonnull(a);
    ck_assert(has_pattern(a, 100));
    unsigned char *b = libc_calloc(100, 10);
    ck_assert(all_bytes_are(b, 1000, 0));
    void *c = libc_memalign(256, 100);
    ck_assert_uint_eq((uintptr_t)c % 256, 0);
    void *d = (void *)0x5a5a;
    ck_assert_int_eq(posix_memalign_alias(&d, 3, 100), EINVAL);
    ck_assert_ptr_eq(d, (void *)0x5a5a);
    ck_assert_int_eq(posix_memalign_alias(&d, 128, 100), 0);
    ck_assert_uint_eq((uintptr_t)d % 128, 0);
    memset(c, 1, 100);
    memset(d, 2, 100);
    libc_free(a);
    cfree_fn(b);
    /* Mixed: a block from one name freed by another, as libc itself does. */
    libc_free(c);
    cfree_fn(d);
    void *e = malloc(10);
    libc_free(e);
    e = libc_malloc(10);
    free(e);
}
END_TEST

/* Each entry point allocates once; inside a frame scope the frame arena must
 * serve it (the counter goes up by one), outside it must not. */
typedef void *(*allocate_fn)(void);
static void *call_malloc(void) { return malloc(100); }
static void *call_calloc(void) { return calloc(10, 10); }
static void *call_realloc_null(void) { return realloc(NULL, 100); }
static void *call_reallocarray_null(void) { return reallocarray(NULL, 10, 10); }
static void *call_posix_memalign(void)
{
    void *p = NULL;
    return posix_memalign(&p, 64, 100) == 0 ? p : NULL;
}
static void *call_aligned_alloc(void) { return aligned_alloc(256, 100); }
static void *call_memalign(void) { return memalign(32, 100); }
static void *call_valloc(void) { return valloc(100); }
static void *call_pvalloc(void) { return pvalloc(100); }
static void *call_libc_malloc(void) { return ((void *(*)(size_t))global_symbol("__libc_malloc"))(100); }
static void *call_libc_calloc(void) { return ((void *(*)(size_t, size_t))global_symbol("__libc_calloc"))(10, 10); }
static void *call_libc_realloc(void) { return ((void *(*)(void *, size_t))global_symbol("__libc_realloc"))(NULL, 100); }
static void *call_libc_memalign(void) { return ((void *(*)(size_t, size_t))global_symbol("__libc_memalign"))(64, 100); }
static void *call_posix_memalign_alias(void)
{
    void *p = NULL;
    return ((int (*)(void **, size_t, size_t))global_symbol("__posix_memalign"))(&p, 64, 100) == 0 ? p : NULL;
}

START_TEST(frame_scope_routes_every_entry_point)
{
    static const struct {
        const char *name;
        allocate_fn fn;
    } calls[] = {
        {"malloc", call_malloc},
        {"calloc", call_calloc},
        {"realloc(NULL)", call_realloc_null},
        {"reallocarray(NULL)", call_reallocarray_null},
        {"posix_memalign", call_posix_memalign},
        {"aligned_alloc", call_aligned_alloc},
        {"memalign", call_memalign},
        {"valloc", call_valloc},
        {"pvalloc", call_pvalloc},
        {"__libc_malloc", call_libc_malloc},
        {"__libc_calloc", call_libc_calloc},
        {"__libc_realloc(NULL)", call_libc_realloc},
        {"__libc_memalign", call_libc_memalign},
        {"__posix_memalign", call_posix_memalign_alias},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        uint64_t before = frame_allocs_now();
        void *p = calls[i].fn();
        uint64_t served = frame_allocs_now() - before;
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(served == (uint64_t)in_frame_scope, "%s: %llu frame allocations, want %d", calls[i].name,
                      (unsigned long long)served, in_frame_scope);
        memset(p, 0x44, 100);
        free(p);
    }
}
END_TEST

/* One test case per route, each with every contract test. */
static void add_route(Suite *s, const char *name, void (*enter)(void))
{
    TCase *tc = tcase_create(name);
    if (enter)
        tcase_add_checked_fixture(tc, enter, leave_scope);
    tcase_add_test(tc, malloc_zero_returns_unique_pointers);
    tcase_add_test(tc, calloc_zeroes_reused_dirty_memory);
    tcase_add_test(tc, calloc_overflow_fails_with_enomem);
    tcase_add_test(tc, impossible_malloc_fails_with_enomem);
    tcase_add_test(tc, posix_memalign_rejects_bad_alignment);
    tcase_add_test(tc, aligned_alloc_rounds_alignment_up_as_glibc_2_36);
    tcase_add_test(tc, memalign_rounds_alignment_up_to_a_power_of_two);
    tcase_add_test(tc, valloc_and_pvalloc_are_page_aligned);
    tcase_add_test(tc, realloc_of_null_is_malloc);
    tcase_add_test(tc, realloc_to_zero_frees_and_returns_null);
    tcase_add_test(tc, realloc_keeps_contents_when_growing_and_shrinking);
    tcase_add_test(tc, failed_realloc_leaves_original_intact);
    tcase_add_test(tc, reallocarray_checks_overflow);
    tcase_add_test(tc, usable_size_covers_request_and_is_all_writable);
    tcase_add_test(tc, free_keeps_errno);
    tcase_add_test(tc, glibc_aliases_and_cfree_work);
    tcase_add_test(tc, frame_scope_routes_every_entry_point);
    suite_add_tcase(s, tc);
}

Suite *preload_suite(void)
{
    Suite *s = suite_create("libc contract");
    add_route(s, "default", NULL);
    add_route(s, "heap scope", enter_heap_scope);
    add_route(s, "pool scope", enter_pool_scope);
    add_route(s, "frame scope", enter_frame_scope);
    return s;
}

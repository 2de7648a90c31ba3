/* Out of memory: each test (in its own forked child) lowers RLIMIT_AS to a little
 * above what the process uses, then allocates until the allocator says no. The
 * malloc family must then return NULL (or ENOMEM) with errno ENOMEM, never crash,
 * and work again once memory is freed.
 *
 * meson starts this program under a low `ulimit -v` (with_address_space_limit.sh):
 * the frame and pool region is reserved at start-up, so only a small reservation
 * lets small requests really run out instead of using real memory without end. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "preload_test.h"

/* The runner's address-space limit; every test lowers its own soft limit below it. */
#define MAX_START_LIMIT ((rlim_t)1 << 30)

static void require_low_start_limit(void)
{
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &limit), 0);
    if (limit.rlim_max > MAX_START_LIMIT)
        ck_abort_msg("start this test under with_address_space_limit.sh (ulimit -v at most 1 GiB), "
                     "or small allocations would not run out before real memory does");
}

static void enter_heap_scope(void)
{
    require_low_start_limit();
    fa_scope_push(FA_HEAP);
}
static void enter_frame_scope(void)
{
    require_low_start_limit();
    fa_scope_push(FA_FRAME);
}
static void leave_scope(void) { fa_scope_pop(); }

/* Blocks are chained through their first word, so holding them needs no memory. */
static void hold(void **chain, void *p)
{
    *(void **)p = *chain;
    *chain = p;
}

static void release_all(void **chain)
{
    while (*chain) {
        void *next = *(void **)*chain;
        free(*chain);
        *chain = next;
    }
}

/* Requests: small (pool classes and frame arena), 1 MiB and 64 MiB (heap), each
 * with the headroom it gets above the current address space. */
static const struct {
    size_t size, headroom;
} cases[] = {
    {24, 4 << 20}, {1000, 4 << 20}, {1 << 20, 32 << 20}, {(size_t)64 << 20, 100 << 20},
};
enum { CASES = sizeof cases / sizeof cases[0] };

static void *by_malloc(size_t n) { return malloc(n); }
static void *by_calloc(size_t n) { return calloc(1, n); }
static void *by_aligned_alloc(size_t n) { return aligned_alloc(64, n); }
static void *by_memalign(size_t n) { return memalign(4096, n); }
static void *by_valloc(size_t n) { return valloc(n); }

static const struct {
    const char *name;
    void *(*allocate)(size_t n);
} allocators[] = {
    {"malloc", by_malloc}, {"calloc", by_calloc}, {"aligned_alloc", by_aligned_alloc},
    {"memalign", by_memalign}, {"valloc", by_valloc},
};
enum { ALLOCATORS = sizeof allocators / sizeof allocators[0] };

/* One (allocator, size) pair per forked child (a loop test), so that memory the
 * heap keeps after one exhaustion cannot starve the next. Allocates until the call
 * fails, checks the failure, frees everything and checks that it works again. */
START_TEST(allocation_fails_with_enomem_and_recovers)
{
    const char *name = allocators[_i / CASES].name;
    void *(*allocate)(size_t) = allocators[_i / CASES].allocate;
    size_t n = cases[_i % CASES].size;
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    limit_address_space(cases[_i % CASES].headroom);
    void *chain = NULL;
    size_t count = 0;
    void *p;
    errno = 0;
    while ((p = allocate(n)) != NULL) {
        hold(&chain, p);
        count++;
        errno = 0;
    }
    int failure_errno = errno;
    release_all(&chain);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);
    ck_assert_msg(failure_errno == ENOMEM, "%s(%zu) failed after %zu blocks with errno %d, want ENOMEM", name, n,
                  count, failure_errno);
    ck_assert_msg(count > 0, "%s(%zu): not even one block fitted", name, n); /* it really allocated */
    p = allocate(n);
    ck_assert_msg(p != NULL, "%s(%zu): no memory after freeing everything", name, n);
    free(p);
}
END_TEST

static const size_t memalign_alignments[] = {16, 256, 65536};
enum { ALIGNMENTS = sizeof memalign_alignments / sizeof memalign_alignments[0] };

START_TEST(posix_memalign_returns_enomem)
{
    size_t align = memalign_alignments[_i / CASES];
    size_t n = cases[_i % CASES].size;
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    limit_address_space(cases[_i % CASES].headroom);
    void *chain = NULL;
    void *p = (void *)0x5a5a;
    size_t count = 0;
    int rc;
    while ((rc = posix_memalign(&p, align, n)) == 0) {
        hold(&chain, p);
        p = (void *)0x5a5a;
        count++;
    }
    release_all(&chain);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0); /* before any assertion: they allocate */
    ck_assert_msg(rc == ENOMEM, "posix_memalign(%zu, %zu) returned %d, want ENOMEM", align, n, rc);
    ck_assert_ptr_eq(p, (void *)0x5a5a); /* *out untouched on failure */
    ck_assert_uint_gt(count, 0);
}
END_TEST

/* A block that cannot grow any more stays as it was. */
START_TEST(realloc_failure_keeps_the_block)
{
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
    limit_address_space(100 << 20);
    size_t size = 64;
    unsigned char *p = malloc(size);
    memset(p, 0x77, size);
    int failure_errno;
    for (;;) {
        errno = 0;
        unsigned char *bigger = realloc(p, size * 2);
        if (!bigger) {
            failure_errno = errno;
            break;
        }
        memset(bigger + size, 0x77, size);
        p = bigger;
        size *= 2;
    }
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);
    ck_assert_int_eq(failure_errno, ENOMEM);
    ck_assert_uint_ge(size, 1 << 20);
    ck_assert_msg(all_bytes_are(p, size, 0x77), "the %zu-byte block changed when realloc failed", size);
    free(p);
}
END_TEST

static void enter_default(void) { require_low_start_limit(); }
static void leave_default(void) {}

static void add_route(Suite *s, const char *name, void (*enter)(void), void (*leave)(void))
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, enter, leave);
    tcase_add_loop_test(tc, allocation_fails_with_enomem_and_recovers, 0, ALLOCATORS * CASES);
    tcase_add_loop_test(tc, posix_memalign_returns_enomem, 0, ALIGNMENTS * CASES);
    tcase_add_test(tc, realloc_failure_keeps_the_block);
    suite_add_tcase(s, tc);
}

Suite *preload_suite(void)
{
    Suite *s = suite_create("out of memory");
    add_route(s, "default", enter_default, leave_default);
    add_route(s, "heap scope", enter_heap_scope, leave_scope);
    add_route(s, "frame scope", enter_frame_scope, leave_scope);
    return s;
}

/* Alignment requests must behave as under glibc 2.36 (issue 10 item 9). The same
 * program runs under plain glibc (where it must pass: that checks the expectations)
 * and under LD_PRELOAD=libframealloc.so. What glibc 2.36 does (malloc/malloc.c):
 * - aligned_alloc is memalign (the C17 EINVAL check came in 2.38): an alignment of
 *   at most 16 is plain malloc; any other alignment that is not a power of two is
 *   rounded up to the next power of two (at least 32); above SIZE_MAX/2+1: EINVAL.
 * - memalign(2^40, 10) needs more than the machine can map: NULL with ENOMEM; so do
 *   alignments 2^41..2^63 (the request overflows PTRDIFF_MAX: ENOMEM, not EINVAL).
 * - posix_memalign keeps its own check: EINVAL unless a power of two multiple of
 *   sizeof(void *); ENOMEM returned (and errno set to ENOMEM as a side effect, *p
 *   untouched) when it cannot be met.
 * - An aligned block's extra address space goes back with the block: allocating and
 *   freeing 1 GiB-aligned blocks again and again leaves no address space behind.
 * Prints one line per failed check and "N passed, N failed". */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL: %s\n", what);
    }
}

static size_t vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kib = strtoul(line + 7, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void aligned_alloc_rounds_up(size_t alignment, size_t expected)
{
    char what[128];
    errno = 0;
    void *p = aligned_alloc(alignment, 10);
    snprintf(what, sizeof what, "aligned_alloc(%zu, 10) succeeds (glibc 2.36 rounds the alignment up)", alignment);
    check(p != NULL && errno == 0, what);
    snprintf(what, sizeof what, "aligned_alloc(%zu, 10) is %zu-aligned", alignment, expected);
    check(((uintptr_t)p & (expected - 1)) == 0, what);
    free(p);
}

static void memalign_fails_with(size_t alignment, int error)
{
    char what[128];
    errno = 0;
    void *p = memalign(alignment, 10);
    snprintf(what, sizeof what, "memalign(%#zx, 10) fails with %s (errno %d)", alignment,
             error == ENOMEM ? "ENOMEM" : "EINVAL", errno);
    check(p == NULL && errno == error, what);
    free(p);
}

int main(void)
{
    aligned_alloc_rounds_up(24, 32);
    aligned_alloc_rounds_up(48, 64);
    aligned_alloc_rounds_up(3, 16);
    aligned_alloc_rounds_up(0, 16);
    aligned_alloc_rounds_up(4097, 8192);
    aligned_alloc_rounds_up(100000, 131072);

    memalign_fails_with((size_t)1 << 40, ENOMEM);
    memalign_fails_with((size_t)1 << 50, ENOMEM);
    memalign_fails_with((size_t)1 << 63, ENOMEM);
    memalign_fails_with(((size_t)1 << 63) + 1, EINVAL);
    memalign_fails_with(SIZE_MAX, EINVAL);
    errno = 0;
    check(aligned_alloc((size_t)1 << 40, 10) == NULL && errno == ENOMEM, "aligned_alloc(2^40, 10) fails with ENOMEM");

    void *p = (void *)1;
    int rc = posix_memalign(&p, (size_t)1 << 40, 10);
    check(rc == ENOMEM && p == (void *)1, "posix_memalign(2^40) returns ENOMEM and leaves p");
    check(posix_memalign(&p, 24, 10) == EINVAL, "posix_memalign(24) returns EINVAL");

    /* Repeated huge alignments: what stays reserved after the frees. */
    size_t before = vm_size_kib();
    for (int i = 0; i < 16; i++) {
        free(memalign((size_t)1 << 40, 10));
        void *q = memalign((size_t)1 << 30, 10);
        check(q != NULL && ((uintptr_t)q & (((size_t)1 << 30) - 1)) == 0, "memalign(1 GiB, 10) succeeds, aligned");
        free(q);
    }
    size_t after = vm_size_kib();
    char what[160];
    snprintf(what, sizeof what, "16 rounds of 1 GiB-aligned blocks (and failed 2^40 ones) leave %zu MiB of address space behind (at most 64)",
             (after > before ? after - before : 0) / 1024);
    check(after <= before + 64 * 1024, what);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* ref_test: checks that a reference allocator (bench/libref_*.so, given as LD_PRELOAD by
 * bench/meson.build) is a correct enough malloc for the benchmark binaries: sizes kept,
 * realloc copies, calloc zeroes, alignments honoured, impossible sizes refused, frame
 * scopes (linear) reuse memory only after a frame ends, threads allocate on their own. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <framealloc.h>

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "ref_test: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static void check_malloc_family(void)
{
    char *p = malloc(100);
    CHECK(p && (uintptr_t)p % 16 == 0 && malloc_usable_size(p) >= 100);
    memset(p, 'x', 100);
    char *q = realloc(p, 5000);
    CHECK(q && q[0] == 'x' && q[99] == 'x' && malloc_usable_size(q) >= 5000);
    free(q);
    CHECK(realloc(malloc(8), 0) == NULL);

    /* calloc zeroes even memory that was written before (the linear buffer is reused). */
    for (int i = 0; i < 3; i++) {
        unsigned char *z = calloc(1000, 3);
        CHECK(z);
        for (int k = 0; z && k < 3000; k++)
            if (z[k]) {
                CHECK(!"calloc memory not zero");
                break;
            }
        if (z)
            memset(z, 0xff, 3000);
        free(z);
    }

    void *a = NULL;
    CHECK(posix_memalign(&a, 4096, 10) == 0 && (uintptr_t)a % 4096 == 0);
    CHECK(posix_memalign(&a, 24, 10) == EINVAL);
    void *b = aligned_alloc(64, 64);
    CHECK(b && (uintptr_t)b % 64 == 0);
    void *c = memalign(1 << 16, 100);
    CHECK(c && (uintptr_t)c % (1 << 16) == 0 && malloc_usable_size(c) >= 100);
    void *v = valloc(1);
    CHECK(v && (uintptr_t)v % 4096 == 0);

    volatile size_t huge = SIZE_MAX; /* volatile: the compiler would warn about the constants */
    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM);
    CHECK(malloc(huge - 20) == NULL);
    CHECK(calloc(huge / 2, 3) == NULL);

    /* A large block gets a mapping of its own and is usable to its end. */
    char *big = malloc(100 << 20);
    CHECK(big && malloc_usable_size(big) >= (100u << 20));
    if (big) {
        big[0] = 1;
        big[(100 << 20) - 1] = 2;
    }
    CHECK(malloc_usable_size(NULL) == 0);

    /* 80 MiB of small blocks: crosses the end of a 64 MiB slab; every block is usable
     * to its last byte (a bump past a slab's end faults here). */
    for (int i = 0; i < 20000; i++) {
        size_t n = 3990 + (size_t)(i % 20);
        char *s = malloc(n);
        CHECK(s && malloc_usable_size(s) >= n);
        if (!s)
            break;
        s[0] = 1;
        s[n - 1] = 2;
    }
}

/* Blocks of one frame never overlap; after fa_frame_end the next frame scope starts
 * over (the linear reference), or never reuses (the naive bump, or no library). */
static void check_frames(void)
{
    char *first[100];
    FA_FRAME_SCOPE {
        for (int i = 0; i < 100; i++) {
            first[i] = malloc(40);
            memset(first[i], i, 40);
        }
        for (int i = 0; i < 100; i++)
            for (int k = 0; k < 40; k++)
                if (first[i][k] != (char)i) {
                    CHECK(!"frame blocks overlap");
                    i = 100;
                    break;
                }
    }
    char *outside = malloc(40);
    memset(outside, 7, 40);
    fa_frame_end();
    char *again = NULL;
    FA_FRAME_SCOPE {
        again = malloc(40);
        memset(again, 9, 40);
    }
    if (fa_active())
        CHECK(again == first[0]); /* the linear buffer was reset */
    else
        CHECK(again != first[0]);
    CHECK(outside[0] == 7 && outside[39] == 7); /* outside scopes: never reused */
}

static void *thread_work(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc(16 + i % 200);
        memset(blocks[i], (int)id, 16 + i % 200);
    }
    for (int i = 0; i < 1000; i++)
        if (blocks[i][0] != (char)id || blocks[i][15 + i % 200] != (char)id)
            return (void *)1;
    return NULL;
}

static void check_threads(void)
{
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, thread_work, (void *)(i + 1)) == 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
}

int main(void)
{
    check_malloc_family();
    check_frames();
    check_threads();
    if (failures)
        return 1;
    printf("ref_test: ok (%s)\n", fa_active() ? "frame table present" : "no frame table");
    return 0;
}

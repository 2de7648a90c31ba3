/* A fixed workload for FRAMEALLOC_RECORDS=sample: one million allocations from three
 * sites of one size each, freed at once. It prints the true totals per site; the
 * checker compares them with the report's estimates. */
#include <stdio.h>
#include <stdlib.h>

enum { ROUNDS = 100000 }; /* per round: 6 small, 3 medium, 1 large */

static volatile unsigned char sink;

__attribute__((noinline)) static void small_site(void)
{
    unsigned char *p = malloc(64); /* @site:small */
    p[0] = 1;
    sink += p[0];
    free(p);
}

__attribute__((noinline)) static void medium_site(void)
{
    unsigned char *p = malloc(1000); /* @site:medium */
    p[0] = 2;
    sink += p[0];
    free(p);
}

__attribute__((noinline)) static void large_site(void)
{
    unsigned char *p = malloc(20000); /* @site:large */
    p[0] = 3;
    sink += p[0];
    free(p);
}

int main(void)
{
    /* Interleaved, so that the three sizes share one sampler stream. */
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < 6; i++)
            small_site();
        for (int i = 0; i < 3; i++)
            medium_site();
        large_site();
    }
    printf("truth small_site count=%d bytes=%lld\n", 6 * ROUNDS, 64LL * 6 * ROUNDS);
    printf("truth medium_site count=%d bytes=%lld\n", 3 * ROUNDS, 1000LL * 3 * ROUNDS);
    printf("truth large_site count=%d bytes=%lld\n", ROUNDS, 20000LL * ROUNDS);
    return 0;
}

/* Two runs for framealloc-diff: grow_site allocates N blocks (N from the command
 * line), steady_site the same in every run, leak_site leaks only when N > 100.
 * One frame per round, so a frame log has rows. Usage: diff N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <framealloc.h>

enum { ROUNDS = 20, BLOCK = 1000, STEADY = 50, STEADY_SIZE = 200, LEAKS = 5, LEAK_SIZE = 4000 };

static void *leaked[LEAKS];

__attribute__((noinline)) static void grow_site(int n)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(BLOCK); /* @site:grow */
        memset(p, 1, BLOCK);
        free(p);
    }
}

__attribute__((noinline)) static void steady_site(void)
{
    for (int i = 0; i < STEADY; i++) {
        char *p = malloc(STEADY_SIZE); /* @site:steady */
        memset(p, 2, STEADY_SIZE);
        free(p);
    }
}

__attribute__((noinline)) static void leak_site(int i)
{
    leaked[i] = malloc(LEAK_SIZE); /* @site:leak */
    memset(leaked[i], 3, LEAK_SIZE);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: diff N\n");
        return 2;
    }
    int n = atoi(argv[1]);
    for (int round = 0; round < ROUNDS; round++) {
        fa_frame_begin();
        grow_site(n / ROUNDS);
        steady_site();
        fa_frame_end();
    }
    if (n > 100)
        for (int i = 0; i < LEAKS; i++)
            leak_site(i);
    printf("grow %d blocks of %d B\n", n / ROUNDS * ROUNDS, BLOCK);
    return 0;
}

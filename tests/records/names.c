/* Where reports go: two fa_report(NULL) snapshots, then, with a DIR argument,
 * fa_report(DIR), then the exit report. A leak site grows by BATCH blocks before
 * each report, so the checker can tell which report it reads and that none
 * replaced another. Usage: names [DIR]. Prints its pid and each result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <framealloc.h>

enum { BATCH = 10, SIZE = 320 };

static void *kept[4 * BATCH];
static int made;

__attribute__((noinline)) static void names_site(void)
{
    kept[made] = malloc(SIZE); /* @site:names */
    memset(kept[made++], 5, SIZE);
}

static void grow(void)
{
    for (int i = 0; i < BATCH; i++)
        names_site();
}

int main(int argc, char **argv)
{
    printf("pid %d\n", (int)getpid());
    grow();
    printf("snapshot 1 = %d\n", fa_report(NULL));
    grow();
    printf("snapshot 2 = %d\n", fa_report(NULL));
    grow();
    if (argc > 1)
        printf("fa_report(dir) = %d\n", fa_report(argv[1]));
    grow(); /* the exit report has 4 * BATCH */
    return 0;
}

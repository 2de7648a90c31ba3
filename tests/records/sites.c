/* A leak site, a frame-escape site and a churn site, for the records report.
 * The checker finds each site's line through the "@site:" marker on it; the site
 * functions are noinline so that each is its own frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <framealloc.h>

enum { LEAK_COUNT = 100, LEAK_SIZE = 320, ESCAPE_COUNT = 7, ESCAPE_SIZE = 96, CHURN_COUNT = 1000, CHURN_SIZE = 200 };

static void *leaked[LEAK_COUNT];
static void *escaped[ESCAPE_COUNT];

/* Kept until exit: the report's leaks. */
__attribute__((noinline)) static void leak_site(int i)
{
    leaked[i] = malloc(LEAK_SIZE); /* @site:leak */
    memset(leaked[i], 1, LEAK_SIZE);
}

/* Made in a frame scope and freed only after the frame has ended: escapes. */
__attribute__((noinline)) static void escape_site(int i)
{
    escaped[i] = malloc(ESCAPE_SIZE); /* @site:escape */
    memset(escaped[i], 2, ESCAPE_SIZE);
}

/* Allocated and freed at once: nothing left live. */
__attribute__((noinline)) static void churn_site(void)
{
    char *p = malloc(CHURN_SIZE); /* @site:churn */
    memset(p, 3, CHURN_SIZE);
    free(p);
}

int main(void)
{
    for (int i = 0; i < LEAK_COUNT; i++)
        leak_site(i);
    FA_FRAME_SCOPE {
        for (int i = 0; i < ESCAPE_COUNT; i++)
            escape_site(i);
    }
    /* The escape frame is recycled when the next frame begins (frames in flight: 1). */
    fa_frame_end();
    fa_frame_end();
    for (int i = 0; i < CHURN_COUNT; i++)
        churn_site();
    for (int i = 0; i < ESCAPE_COUNT; i++)
        free(escaped[i]);
    fa_frame_end();
    printf("expect leak count=%d bytes=%d\n", LEAK_COUNT, LEAK_COUNT * LEAK_SIZE);
    printf("expect escape count=%d bytes=%d\n", ESCAPE_COUNT, ESCAPE_COUNT * ESCAPE_SIZE);
    printf("expect churn count=%d bytes=%d\n", CHURN_COUNT, CHURN_COUNT * CHURN_SIZE);
    return 0;
}

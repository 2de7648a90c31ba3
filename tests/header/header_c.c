/* framealloc.h in a plain C program, built as a non-PIE executable (where a weak
 * undefined symbol would be fixed to 0 at link time). Run with --expect-active=0
 * without the library and --expect-active=1 under LD_PRELOAD. */
#include <elf.h>
#include <framealloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "header_c: FAILED: %s\n", what);
        failures++;
    }
}

/* ET_EXEC means the executable is not position-independent. */
static int built_non_pie(void)
{
    FILE *f = fopen("/proc/self/exe", "rb");
    Elf64_Ehdr header;
    int ok = f && fread(&header, sizeof header, 1, f) == 1 && header.e_type == ET_EXEC;
    if (f)
        fclose(f);
    return ok;
}

int main(int argc, char **argv)
{
    int expect_active = argc > 1 && strcmp(argv[1], "--expect-active=1") == 0;
    check(built_non_pie(), "the test program is a non-PIE executable");
    check(fa_active() == expect_active, "fa_active() reports whether the library is loaded");

    long sum = 0;
    for (int frame = 0; frame < 10; frame++) {
        fa_frame_begin();
        FA_FRAME_SCOPE {
            for (int i = 0; i < 100; i++) {
                char *p = malloc(64);
                snprintf(p, 64, "item %d", i);
                sum += (long)strlen(p);
                free(p);
            }
        }
        FA_SCOPE(FA_HEAP) {
            char *q = malloc(32);
            sum += q != NULL;
            free(q);
        }
        fa_tag_push("header-test");
        fa_tag_pop();
        fa_frame_end();
    }
    /* "item 0".."item 99" is 10 x 6 + 90 x 7 = 690 characters a frame, plus one heap block. */
    check(sum == 10 * (690 + 1), "every block held its contents");

    /* In C, break inside FA_FRAME_SCOPE leaves the scope only (documented); with
     * FA_SCOPE_HERE it leaves the enclosing loop. Either way the intent is popped. */
    int passes = 0;
    for (int i = 0; i < 5; i++) {
        FA_FRAME_SCOPE {
            if (i == 1)
                break;
        }
        passes++;
    }
    check(passes == 5, "in C, break inside FA_FRAME_SCOPE leaves only the scope");
    int reached = -1;
    for (int i = 0; i < 5; i++) {
        FA_SCOPE_HERE(FA_FRAME);
        reached = i;
        if (i == 2)
            break;
        if (i < 5)
            continue;
        reached = 100;
    }
    check(reached == 2, "break and continue after FA_SCOPE_HERE act on the enclosing loop");
    fa_stats before_plain, after_plain;
    fa_stats_get(&before_plain);
    free(malloc(48));
    fa_stats_get(&after_plain);
    check(after_plain.frame_allocs == before_plain.frame_allocs, "the scopes left by break were popped");

    fa_stats stats;
    memset(&stats, 0xff, sizeof stats);
    int rc = fa_stats_get(&stats);
    if (expect_active) {
        check(rc == 0, "fa_stats_get succeeds under the library");
        check(stats.frame == 10, "ten frames ended");
        check(stats.frame_allocs == 1000, "1000 frame allocations counted");
    } else {
        check(rc == -1, "fa_stats_get returns -1 without the library");
        check(stats.frame == 0 && stats.frame_allocs == 0 && stats.heap_bytes == 0, "stats zeroed without the library");
    }
    printf("header_c: active=%d frames=%llu frame_allocs=%llu\n", fa_active(), (unsigned long long)stats.frame,
           (unsigned long long)stats.frame_allocs);
    return failures ? 1 : 0;
}

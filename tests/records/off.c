/* Records off: fa_report must return -1 and write nothing, and the program's output
 * must be the same with and without the library.
 * Usage: off DIR STATEFILE. STATEFILE receives "active=0|1" (kept out of stdout so
 * that stdout can be compared between runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <framealloc.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: off DIR STATEFILE\n");
        return 2;
    }
    const char *dir = argv[1];
    FILE *state = fopen(argv[2], "w");
    if (!state)
        return 2;
    fprintf(state, "active=%d\n", fa_active());
    fclose(state);

    /* Some allocation work with a checksum that does not depend on addresses. */
    unsigned long sum = 0;
    for (int frame = 0; frame < 50; frame++) {
        FA_FRAME_SCOPE {
            for (int i = 0; i < 200; i++) {
                size_t n = 16 + (size_t)((frame * 31 + i * 7) % 900);
                unsigned char *p = malloc(n);
                memset(p, (frame + i) & 0xff, n);
                for (size_t k = 0; k < n; k += 64)
                    sum += p[k];
                free(p);
            }
        }
        fa_frame_end();
    }
    fa_tag_push("ui");
    char *kept = strdup("tagged");
    fa_tag_pop();
    printf("checksum %lu %s\n", sum, kept);
    printf("fa_report(dir) = %d\n", fa_report(dir));
    printf("fa_report(NULL) = %d\n", fa_report(NULL));
    printf("report directory exists: %s\n", access(dir, F_OK) == 0 ? "yes" : "no");
    free(kept);
    return 0;
}

/* A C program under the preload: the library must not bring the C++ runtime, libm
 * or the unwinder into it (their pages were most of a small program's extra
 * resident memory: libstdc++ 0.85 MiB, libm 0.3 MiB, libgcc_s 0.08 MiB). Links
 * nothing but libc; reads its own /proc/self/maps after some allocations and exits
 * non-zero, naming the library, when one of them is mapped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const unwanted[] = {"libstdc++", "libc++", "libm.so", "libgcc_s"};

int main(void)
{
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = malloc((size_t)16 << (i % 16)); /* pools and heap */
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) {
        perror("/proc/self/maps");
        return 2;
    }
    char line[4096];
    int found = 0, framealloc = 0;
    while (fgets(line, sizeof line, maps)) {
        if (strstr(line, "libframealloc"))
            framealloc = 1;
        for (size_t i = 0; i < sizeof unwanted / sizeof unwanted[0]; i++) {
            if (strstr(line, unwanted[i])) {
                fprintf(stderr, "mapped in a C program under the preload: %s", strchr(line, '/') ? strchr(line, '/') : line);
                found = 1;
            }
        }
    }
    fclose(maps);
    if (!framealloc) {
        fprintf(stderr, "libframealloc.so is not mapped: not run under the preload\n");
        return 2;
    }
    return found;
}

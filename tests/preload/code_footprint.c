/* Footprint: a program that stays on the malloc family's common paths keeps one
 * 64 KiB window of framealloc's code resident. Linux maps a library's text 64 KiB
 * around each page a program touches, so the code every process runs has to sit
 * together (FA_EVERY_PROCESS in src/config.h, and src/rename-jemalloc.sh keeping
 * jemalloc's cold code out of the way); before it did, `sleep` kept five windows
 * (304 KiB) of it. Reads the resident size of the library's executable mapping from
 * /proc/self/smaps after the calls a small C program makes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WINDOW_KIB = 64 };

/* Resident KiB of the executable mapping of a library whose path contains name, or -1. */
static long text_resident_kib(const char *name)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    long kib = -1;
    int in_text = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*x-%*x %7s", perms) == 1) { /* a mapping's first line */
            in_text = strcmp(perms, "r-xp") == 0 && strstr(line, name) != NULL;
            continue;
        }
        long rss;
        if (in_text && sscanf(line, "Rss: %ld kB", &rss) == 1)
            kib = (kib < 0 ? 0 : kib) + rss;
    }
    fclose(f);
    return kib;
}

int main(void)
{
    /* What a small program does: blocks of every pool size, grown, zeroed, aligned, freed. */
    void *blocks[64];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 64; i++) {
            size_t size = (size_t)16 << (i % 11); /* 16 B to 16 KiB */
            blocks[i] = i % 3 == 0 ? calloc(1, size) : malloc(size);
            if (!blocks[i])
                return 2;
            memset(blocks[i], i, size);
        }
        for (int i = 0; i < 64; i += 2) {
            void *grown = realloc(blocks[i], 300 + (size_t)i * 40);
            if (!grown)
                return 2;
            blocks[i] = grown;
        }
        for (int i = 0; i < 64; i++)
            free(blocks[i]);
    }
    void *aligned = NULL; /* larger alignments go to the heap, and start jemalloc */
    if (posix_memalign(&aligned, 16, 200) != 0)
        return 2;
    free(aligned);
    char *copy = strdup("a string");
    printf("copied %s\n", copy);
    free(copy);

    long kib = text_resident_kib("libframealloc");
    if (kib < 0) {
        fprintf(stderr, "code_footprint: libframealloc's code is not mapped (not preloaded?)\n");
        return 1;
    }
    printf("framealloc's code resident: %ld KiB (at most %d)\n", kib, WINDOW_KIB);
    if (kib > WINDOW_KIB) {
        fprintf(stderr, "code_footprint: %ld KiB of framealloc's code resident, more than one %d KiB window:\n"
                        "a function every process runs is missing FA_EVERY_PROCESS\n",
                kib, WINDOW_KIB);
        return 1;
    }
    return 0;
}

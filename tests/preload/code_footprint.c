/* Footprint: a program that stays on the malloc family's common paths keeps one
 * 64 KiB window of framealloc's code resident, and none of its read-only data.
 * Linux maps a library's text 64 KiB around each page a program touches, so the code
 * every process runs has to sit together (FA_EVERY_PROCESS in src/config.h, and
 * src/rename-jemalloc.sh keeping jemalloc's cold code out of the way); before it
 * did, `sleep` kept five windows (304 KiB) of it. Read-only data is mapped the same
 * way: one read of a string constant or a table there costs 36-64 KiB, so the
 * common paths read none (their tables are FA_EVERY_PROCESS_DATA). Reads the
 * resident sizes of the library's mappings from /proc/self/smaps after the calls a
 * small C program makes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WINDOW_KIB = 64 };

/* Resident KiB of a library whose path contains name: of its executable mapping
 * (text) and of the read-only mapping right after it (rodata, with the unwind
 * tables); -1 when not mapped. */
static void resident_kib(const char *name, long *text, long *rodata)
{
    *text = *rodata = -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return;
    char line[512];
    long *counting = NULL;
    int after_text = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*x-%*x %7s", perms) == 1) { /* a mapping's first line */
            int ours = strstr(line, name) != NULL;
            counting = NULL;
            if (ours && strcmp(perms, "r-xp") == 0)
                counting = text;
            else if (ours && after_text && strcmp(perms, "r--p") == 0)
                counting = rodata;
            after_text = ours && strcmp(perms, "r-xp") == 0;
            if (counting && *counting < 0)
                *counting = 0;
            continue;
        }
        long rss;
        if (counting && sscanf(line, "Rss: %ld kB", &rss) == 1)
            *counting += rss;
    }
    fclose(f);
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

    long text, rodata;
    resident_kib("libframealloc", &text, &rodata);
    if (text < 0 || rodata < 0) {
        fprintf(stderr, "code_footprint: libframealloc's code is not mapped (not preloaded?)\n");
        return 1;
    }
    printf("framealloc's code resident: %ld KiB (at most %d), read-only data: %ld KiB (none)\n", text, WINDOW_KIB,
           rodata);
    int failed = 0;
    if (text > WINDOW_KIB) {
        fprintf(stderr, "code_footprint: %ld KiB of framealloc's code resident, more than one %d KiB window:\n"
                        "a function every process runs is missing FA_EVERY_PROCESS\n",
                text, WINDOW_KIB);
        failed = 1;
    }
    if (rodata > 0) {
        fprintf(stderr, "code_footprint: %ld KiB of framealloc's read-only data resident: a path every process\n"
                        "runs reads a constant or a table there (make it FA_EVERY_PROCESS_DATA)\n",
                rodata);
        failed = 1;
    }
    return failed;
}

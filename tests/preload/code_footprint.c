/* Footprint: a program that stays on the malloc family's common paths keeps one
 * 64 KiB window of framealloc's code resident, and none of its read-only data.
 * Linux maps a library's text 64 KiB around each page a program touches (fault-
 * around, in windows of 64 KiB), so the code every process runs
 * has to sit together (FA_EVERY_PROCESS in src/config.h, and src/rename-jemalloc.sh
 * keeping jemalloc's cold code out of the way); before it did, `sleep` kept five
 * windows (304 KiB) of it. Read-only data is mapped the same way: one read of a
 * string constant or a table there costs 36-64 KiB, so the common paths read none
 * (their tables are FA_EVERY_PROCESS_CONST). After the calls a small C program
 * makes, reads which of the library's pages are resident from /proc/self/pagemap.
 * Fault-around maps a page-cache folio whole, so a folio that straddles the hot
 * window's edge makes a page or three of the next window resident without any code
 * there running: a window counts as used from 4 resident pages on. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WINDOW_PAGES = 16, USED_WINDOW_PAGES = 4, MAX_WINDOWS = 64 };

typedef struct {
    long pages;                      /* resident pages */
    int windows;                     /* 64 KiB windows with USED_WINDOW_PAGES or more */
    int per_window[MAX_WINDOWS];     /* resident pages per window, from the first */
    int window_count;
} residency_t;

/* Adds the resident pages of [start, end) to r (pagemap's present bit, which needs
 * no privilege). */
static void count_resident(int pagemap, uintptr_t start, uintptr_t end, residency_t *r)
{
    long page = sysconf(_SC_PAGESIZE);
    for (uintptr_t a = start; a < end; a += (uintptr_t)page) {
        uint64_t entry = 0;
        if (pread(pagemap, &entry, sizeof entry, (off_t)(a / (uintptr_t)page * sizeof entry)) != sizeof entry)
            continue;
        if (!(entry >> 63))
            continue;
        r->pages++;
        /* From the mapping's start, as the kernel's first window is (clipped there). */
        uintptr_t w = (a - start) / (page * WINDOW_PAGES);
        if (w < MAX_WINDOWS) {
            r->per_window[w]++;
            if ((int)w + 1 > r->window_count)
                r->window_count = (int)w + 1;
        }
    }
    r->windows = 0;
    for (int w = 0; w < r->window_count; w++)
        r->windows += r->per_window[w] >= USED_WINDOW_PAGES;
}

/* The resident pages of a library whose path contains name: of its executable
 * mapping (text) and of the read-only mapping after it (rodata, with the unwind
 * tables; the loader may map gaps between them). False when it is not mapped. */
static int measure(const char *name, residency_t *text, residency_t *rodata)
{
    memset(text, 0, sizeof *text);
    memset(rodata, 0, sizeof *rodata);
    FILE *maps = fopen("/proc/self/maps", "r");
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    if (!maps || pagemap < 0)
        return 0;
    char line[512];
    int found = 0, after_text = 0;
    while (fgets(line, sizeof line, maps)) {
        uintptr_t start, end;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
            continue;
        int ours = strstr(line, name) != NULL;
        if (ours && strcmp(perms, "r-xp") == 0) {
            count_resident(pagemap, start, end, text);
            found = 1;
        } else if (ours && after_text && strcmp(perms, "r--p") == 0) {
            count_resident(pagemap, start, end, rodata);
        }
        if (!ours || strcmp(perms, "---p") != 0) /* the loader's gaps between segments */
            after_text = ours && strcmp(perms, "r-xp") == 0;
    }
    fclose(maps);
    close(pagemap);
    return found;
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

    residency_t text, rodata;
    if (!measure("libframealloc", &text, &rodata)) {
        fprintf(stderr, "code_footprint: libframealloc's code is not mapped (not preloaded?)\n");
        return 1;
    }
    long kib = sysconf(_SC_PAGESIZE) / 1024;
    printf("framealloc's code resident: %ld KiB in %d window(s) of 64 KiB (at most 1), read-only data: %ld KiB "
           "(none)\n", text.pages * kib, text.windows, rodata.pages * kib);
    int failed = 0;
    if (text.windows > 1) {
        fprintf(stderr, "code_footprint: framealloc's code is resident in %d windows of 64 KiB (pages per window:",
                text.windows);
        for (int w = 0; w < text.window_count; w++)
            fprintf(stderr, " %d", text.per_window[w]);
        fprintf(stderr, "):\na function every process runs is missing FA_EVERY_PROCESS\n");
        failed = 1;
    }
    if (rodata.pages > 0) {
        fprintf(stderr, "code_footprint: %ld KiB of framealloc's read-only data resident: a path every process\n"
                        "runs reads a constant or a table there (make it FA_EVERY_PROCESS_CONST)\n",
                rodata.pages * kib);
        failed = 1;
    }
    return failed;
}

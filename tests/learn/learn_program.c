/* A game loop without scopes for the FRAMEALLOC_LEARN tests: one call site whose
 * blocks die within their frame (temp_alloc), one whose blocks live for the whole
 * run (persist_alloc). Prints, per phase, how many allocations of each site the
 * frame arenas served (the change in fa_stats.frame_allocs around them).
 *
 *   learn_program plain FRAMES     temporary and persistent sites
 *   learn_program escape FRAMES    then the temporary site's blocks start to outlive
 *                                  their frames; their contents are checked at the end
 *   learn_program scoped FRAMES    then 10 more frames with the temporary site inside an
 *                                  explicit fa_scope_push(FA_DEFAULT)
 *   learn_program plugin FRAMES LIB  and from frame PLUGIN_FRAME on, LIB (dlopen'ed in
 *                                  that frame) makes temporary blocks too */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framealloc.h"

#define TEMP_PER_FRAME 200
#define PERSIST_PER_FRAME 2
#define PLUGIN_FRAME 5
#define PLUGIN_PER_FRAME 200

static uint64_t frame_allocs(void)
{
    fa_stats s;
    memset(&s, 0, sizeof s);
    fa_stats_get(&s);
    return s.frame_allocs;
}

/* The call sites (not inlined, not tail calls: the return address into each is what
 * learning keys on; each counts its calls so that no two are folded into one). */
static volatile unsigned calls[3];
__attribute__((noinline)) static void *temp_alloc(size_t n)
{
    calls[0]++;
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

__attribute__((noinline)) static void *persist_alloc(size_t n)
{
    calls[1]++;
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

__attribute__((noinline)) static void *churn_alloc(size_t n)
{
    calls[2]++;
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i);
}

static int intact(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31 + i))
            return 0;
    return 1;
}

/* One frame of the plain loop; adds the frame allocations of each site. */
static void plain_frame(int f, void **kept, size_t *nkept, uint64_t *temp_frame, uint64_t *persist_frame)
{
    void *temp[TEMP_PER_FRAME];
    uint64_t before = frame_allocs();
    for (int i = 0; i < TEMP_PER_FRAME; i++) {
        temp[i] = temp_alloc(16 + (size_t)(i % 8) * 24);
        fill(temp[i], 16, (unsigned)i);
    }
    uint64_t middle = frame_allocs();
    for (int i = 0; i < PERSIST_PER_FRAME; i++) {
        kept[*nkept] = persist_alloc(48);
        fill(kept[*nkept], 48, (unsigned)*nkept);
        (*nkept)++;
    }
    uint64_t after = frame_allocs();
    for (int i = 0; i < TEMP_PER_FRAME; i++)
        free(temp[i]);
    *temp_frame += middle - before;
    *persist_frame += after - middle;
    (void)f;
}

int main(int argc, char **argv)
{
    bool plugin = argc == 4 && !strcmp(argv[1], "plugin");
    if (!plugin && (argc != 3 || (strcmp(argv[1], "plain") && strcmp(argv[1], "escape") && strcmp(argv[1], "scoped")))) {
        fprintf(stderr, "usage: %s plain|escape|scoped FRAMES, or %s plugin FRAMES LIB\n", argv[0], argv[0]);
        return 2;
    }
    int frames = atoi(argv[2]);
    void **kept = malloc(sizeof(void *) * ((size_t)frames + 10) * PERSIST_PER_FRAME);
    size_t nkept = 0;
    uint64_t temp_frame = 0, persist_frame = 0;
    uint64_t first_temp = 0, plugin_first = 0, plugin_total = 0;
    void (*plugin_frame)(unsigned) = NULL;
    for (int f = 0; f < frames; f++) {
        plain_frame(f, kept, &nkept, &temp_frame, &persist_frame);
        if (f == 0)
            first_temp = temp_frame;
        if (plugin && f == PLUGIN_FRAME) {
            /* Loaded in the middle of a frame, as a game loads a level's code. */
            void *lib = dlopen(argv[3], RTLD_NOW | RTLD_LOCAL);
            if (!lib || !(plugin_frame = (void (*)(unsigned))dlsym(lib, "plugin_frame"))) {
                fprintf(stderr, "%s: %s\n", argv[3], dlerror());
                return 1;
            }
        }
        if (plugin_frame) {
            uint64_t before = frame_allocs();
            plugin_frame(PLUGIN_PER_FRAME);
            uint64_t used = frame_allocs() - before;
            if (f == PLUGIN_FRAME)
                plugin_first = used;
            plugin_total += used;
        }
        fa_frame_end();
    }
    if (plugin)
        printf("plugin: first frame temp %llu of %d, temp %llu of %llu from frames\n",
               (unsigned long long)plugin_first, PLUGIN_PER_FRAME, (unsigned long long)plugin_total,
               (unsigned long long)(frames - PLUGIN_FRAME) * PLUGIN_PER_FRAME);
    printf("first frame: temp %llu of %d from frames\n", (unsigned long long)first_temp, TEMP_PER_FRAME);
    printf("plain: temp %llu of %llu from frames, persist %llu of %llu from frames\n",
           (unsigned long long)temp_frame, (unsigned long long)frames * TEMP_PER_FRAME,
           (unsigned long long)persist_frame, (unsigned long long)frames * PERSIST_PER_FRAME);
    if (!strcmp(argv[1], "scoped")) {
        /* An explicit scope wins over what was learned. */
        uint64_t scoped_temp = 0, scoped_persist = 0;
        for (int f = 0; f < 10; f++) {
            fa_scope_push(FA_DEFAULT);
            plain_frame(f, kept, &nkept, &scoped_temp, &scoped_persist);
            fa_scope_pop();
            fa_frame_end();
        }
        printf("scoped: temp %llu of %d from frames\n", (unsigned long long)scoped_temp, 10 * TEMP_PER_FRAME);
    }
    if (!strcmp(argv[1], "escape")) {
        /* The temporary site's blocks now live on; other frame work reuses memory. */
        enum { KEEP = 50 };
        void **escaped = malloc(sizeof(void *) * (size_t)frames * KEEP);
        size_t nescaped = 0;
        uint64_t escape_frame = 0, last_escape_frame = 0;
        for (int f = 0; f < frames; f++) {
            uint64_t before = frame_allocs();
            for (int i = 0; i < KEEP; i++) {
                escaped[nescaped] = temp_alloc(64);
                fill(escaped[nescaped], 64, (unsigned)nescaped);
                nescaped++;
            }
            uint64_t used = frame_allocs() - before;
            escape_frame += used;
            if (f >= frames - 10)
                last_escape_frame += used;
            void *churn[100];
            for (int i = 0; i < 100; i++)
                fill(churn[i] = churn_alloc(64), 64, 7);
            for (int i = 0; i < 100; i++)
                free(churn[i]);
            fa_frame_end();
        }
        size_t bad = 0;
        for (size_t i = 0; i < nescaped; i++)
            bad += !intact(escaped[i], 64, (unsigned)i);
        printf("escape: kept %zu, frame-served %llu, in the last 10 frames %llu, corrupted %zu\n", nescaped,
               (unsigned long long)escape_frame, (unsigned long long)last_escape_frame, bad);
        for (size_t i = 0; i < nescaped; i++)
            free(escaped[i]);
        free(escaped);
    }
    size_t bad = 0;
    for (size_t i = 0; i < nkept; i++)
        bad += !intact(kept[i], 48, (unsigned)i);
    printf("persistent corrupted %zu\n", bad);
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    free(kept);
    return 0;
}

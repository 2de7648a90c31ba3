/* One misuse of the allocator, in the manner of mimalloc's misuse programs, for
 * run_misuse.py, which runs every case in every arena and mode and checks that the
 * process aborts with one clear line.
 *
 *   fa_misuse CASE ARENA
 *     CASE:  double-free, double-free-not-last, interior-free, foreign-free,
 *            write-after-free, realloc-after-free, overflow
 *     ARENA: pool (64 B), frame (64 B in a frame scope), heap (100000 B),
 *            aligned (memalign(4096, 64))
 *
 * Prints "misuse: FUNCTION(POINTER)" first, the call the error message must name
 * (nothing for write-after-free and overflow, which a later call may find). Exits 0
 * when the misuse went unnoticed, 2 on bad arguments. */
#include <malloc.h> /* memalign */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framealloc.h"

enum { SIZE_POOL = 64, SIZE_HEAP = 100000, REUSE = 64 };

static size_t block_size;

static char *make(const char *arena)
{
    if (!strcmp(arena, "pool")) {
        block_size = SIZE_POOL;
        return malloc(block_size);
    }
    if (!strcmp(arena, "frame")) {
        block_size = SIZE_POOL;
        fa_scope_push(FA_FRAME);
        char *p = malloc(block_size);
        fa_scope_pop();
        return p;
    }
    if (!strcmp(arena, "heap")) {
        block_size = SIZE_HEAP;
        return malloc(block_size);
    }
    if (!strcmp(arena, "aligned")) {
        block_size = SIZE_POOL;
        return memalign(4096, block_size);
    }
    return NULL;
}

/* Allocates and writes REUSE blocks of the same kind (kept: they must not overlap). */
static void reuse(const char *arena)
{
    for (int i = 0; i < REUSE; i++) {
        char *q = make(arena);
        if (!q)
            return;
        memset(q, 0x5a, block_size);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CASE ARENA\n", argv[0]);
        return 2;
    }
    const char *what = argv[1], *arena = argv[2];
    char *p = make(arena);
    if (!p) {
        fprintf(stderr, "fa_misuse: unknown arena '%s' or out of memory\n", arena);
        return 2;
    }
    memset(p, 0x11, block_size);
    static char never_allocated[256] __attribute__((aligned(64)));
    /* The call and pointer the error message must name, for run_misuse.py. */
    if (!strcmp(what, "interior-free"))
        printf("misuse: free(%p)\n", (void *)(p + 16));
    else if (!strcmp(what, "foreign-free"))
        printf("misuse: free(%p)\n", (void *)(never_allocated + 64));
    else if (!strcmp(what, "realloc-after-free"))
        printf("misuse: realloc(%p)\n", (void *)p);
    else if (!strcmp(what, "double-free") || !strcmp(what, "double-free-not-last"))
        printf("misuse: free(%p)\n", (void *)p);
    fflush(stdout);

    if (!strcmp(what, "double-free")) {
        free(p);
        free(p);
    } else if (!strcmp(what, "double-free-not-last")) {
        /* Another block of the same kind was freed in between: p is no longer the
         * newest free block (mimalloc's double_free2). */
        char *q = make(arena);
        free(p);
        free(q);
        free(p);
    } else if (!strcmp(what, "interior-free")) {
        free(p + 16);
    } else if (!strcmp(what, "foreign-free")) {
        /* A pointer no allocator handed out: the middle of a static array. */
        free(never_allocated + 64);
    } else if (!strcmp(what, "write-after-free")) {
        /* Overwrites what a free list keeps in a freed block, then allocates on. */
        free(p);
        memset(p, 0x41, 16);
        reuse(arena);
    } else if (!strcmp(what, "realloc-after-free")) {
        free(p);
        p = realloc(p, 200);
    } else if (!strcmp(what, "overflow")) {
        /* 16 bytes past the requested size: into a guard, where there is one. */
        memset(p + block_size, 0x77, 16);
        free(p);
    } else {
        fprintf(stderr, "fa_misuse: unknown case '%s'\n", what);
        return 2;
    }
    /* Anything the misuse broke may show on the way out. */
    reuse(arena);
    return 0;
}

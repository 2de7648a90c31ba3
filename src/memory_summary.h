/* What glibc's heap-inspection calls (mallinfo2, malloc_trim) answer for
 * framealloc's arenas, so that a program asking never reaches glibc's own heap. */
#ifndef FA_MEMORY_SUMMARY_H
#define FA_MEMORY_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t held_bytes;     /* from the system: frame and pool chunks, the heap's mappings */
    uint64_t in_use_bytes;   /* live pool blocks, live heap bytes, frame chunks held */
    uint64_t direct_blocks;  /* heap blocks mapped on their own (large alignments) */
} fa_memory_summary_t;

/* Frame chunks count whole as in use: their blocks all go at once at frame end. */
void fa_memory_summary(fa_memory_summary_t *out);

/* Gives back what nothing uses: this thread's cached pool chunks and spare frame
 * chunks, and every heap arena's dirty pages. True if resident memory went down. */
bool fa_memory_release_unused(void);

#endif

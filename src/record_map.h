/* The map of recorded blocks: from a block's address to its record, in 64 shards
 * each with its own lock and an open-addressing table in an anonymous mapping
 * (nothing here calls malloc). Unrecorded blocks are never looked up. Beside it, the
 * allocating site of each recently freed recorded block, for misuse reports. */
#ifndef FA_RECORD_MAP_H
#define FA_RECORD_MAP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uintptr_t ptr; /* 0: empty slot */
    uint64_t size;   /* bytes the program asked for (at least 1) */
    uint64_t weight; /* bytes this record stands for */
    uint64_t frame;  /* global frame number when allocated */
    uint32_t site;
    uint16_t tag;
    uint8_t intent;
    uint8_t escaped;
} fa_record_t;

void fa_record_map_start(void);

/* Adds r (dropped when its shard cannot grow). */
void fa_record_map_insert(const fa_record_t *r);
/* Removes p's record into *out; false when p has none. */
bool fa_record_map_remove(uintptr_t p, fa_record_t *out);
/* Marks p's record as escaped, copied into *out, if it is still the frame block
 * allocated in frame and not marked yet. */
bool fa_record_map_mark_escaped(uintptr_t p, uint64_t frame, fa_record_t *out);
/* The requested size of p's record. */
bool fa_record_map_size(uintptr_t p, uint64_t *size);
/* True when no record is in the map (cheap, no lock). */
bool fa_record_map_empty(void);

/* ---- for misuse reports ---- */

/* The live record whose block holds address a (from its start to its requested
 * size), copied into *out. Walks every shard: only for a misuse report. */
bool fa_record_map_find_holding(uintptr_t a, fa_record_t *out);
/* Notes that the block recorded at p (allocated at site) was freed: a later misuse
 * of p can still name its allocating stack. One word per address in a fixed table,
 * so a note lasts until a free of another address that shares its slot. */
void fa_record_map_note_freed(uintptr_t p, uint32_t site);
/* The site of the last block noted freed at p. */
bool fa_record_map_freed_site(uintptr_t p, uint32_t *site);

void fa_record_map_fork_prepare(void);
void fa_record_map_fork_parent(void);
void fa_record_map_fork_child(void);

#endif

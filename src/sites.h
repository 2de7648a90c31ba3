/* Call sites for allocation records: stack capture with libunwind, and the table of
 * distinct stacks, each with the totals of the records taken there.
 *
 * libunwind is loaded with RTLD_LOCAL so that its _Unwind_* names never replace the
 * C++ runtime's. The tables live in lazily touched anonymous mappings: nothing here
 * calls malloc. */
#ifndef FA_SITES_H
#define FA_SITES_H

#include <stdbool.h>
#include <stdint.h>

#define FA_SITES_MAX_DEPTH 64

/* The totals of one site; counts are in thousandths of an allocation (a sample
 * stands for a fractional number of allocations). */
typedef struct {
    _Atomic uint64_t alloc_count, alloc_bytes, live_count, live_bytes, escape_count, escape_bytes, samples;
    _Atomic uint8_t intent; /* of the most recent record */
    _Atomic uint16_t tag;   /* of the most recent record (tags.h id) */
} fa_site_totals_t;

/* Maps the tables; false (nothing usable) when the kernel refuses. */
bool fa_sites_map(void);
/* Loads and warms the unwinder (stacks of at most depth frames); false, with a
 * message, when libunwind is missing. Called outside any allocation. */
bool fa_sites_load_unwinder(int depth);
/* True once the unwinder is loaded. */
bool fa_sites_ready(void);

/* The stack above the allocator's own frames into frames[FA_SITES_MAX_DEPTH];
 * returns its depth. Only when fa_sites_ready(). */
int fa_sites_capture(uintptr_t *frames);
/* The site id for this stack, adding it if new; UINT32_MAX when the table is full. */
uint32_t fa_sites_intern(const uintptr_t *frames, int depth);

/* Sites so far (ids are 0 .. count - 1). */
uint32_t fa_sites_count(void);
/* The frames of a site (innermost first); returns the depth, 0 for an unknown id. */
uint32_t fa_sites_frames(uint32_t site, const uintptr_t **frames);
fa_site_totals_t *fa_sites_totals(uint32_t site);

void fa_sites_fork_prepare(void);
void fa_sites_fork_parent(void);
void fa_sites_fork_child(void);

#endif

/* Tags and budgets for allocation records: the table of tag names (fa_tag_push),
 * the estimated bytes live under each, and a warning the first time a tag goes over
 * the budget fa_budget_set gave it. The tag stack itself is in the thread state. */
#ifndef FA_TAGS_H
#define FA_TAGS_H

#include <stdint.h>

/* The id of a tag name (the same for equal strings), 0 for NULL or when the table
 * is full. */
uint16_t fa_tags_intern(const char *name);
const char *fa_tags_name(uint16_t tag);

/* Adds bytes (negative: takes them off) to the estimated bytes live under tag; an
 * addition also counts as allocated and may raise the peak. */
void fa_tags_account(uint16_t tag, int64_t bytes);
/* After an addition: the first time tag is over its budget, one warning naming the
 * stack of the allocation that crossed it. */
void fa_tags_check_budget(uint16_t tag, const uintptr_t *frames, int depth);
/* A budget of bytes for the tag name (0: none); it may warn again. */
void fa_tags_set_budget(const char *name, uint64_t bytes);

/* ---- for reports ---- */

typedef struct {
    const char *name;
    uint64_t live_bytes, peak_bytes, alloc_bytes; /* estimated */
    uint64_t budget;                              /* 0: none */
} fa_tag_totals_t;

/* Calls fn for every tag seen. */
void fa_tags_for_each(void (*fn)(const fa_tag_totals_t *tag, void *arg), void *arg);

void fa_tags_fork_prepare(void);
void fa_tags_fork_parent(void);
void fa_tags_fork_child(void);

#endif

/* Tags and budgets: tag names interned once, the estimated bytes under each, and
 * the budget warnings. A fixed table in static memory: nothing here calls malloc. */
#include "tags.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "log.h"
#include "symbols.h"

#define MAX_TAGS 255

typedef struct {
    const char *name;
    _Atomic int64_t live_bytes;
    _Atomic uint64_t peak_bytes, alloc_bytes, budget;
    _Atomic uint8_t warned;
} tag_t;

static tag_t tags[MAX_TAGS + 1]; /* 0: no tag */
static _Atomic uint32_t tag_count = 1;
static pthread_mutex_t tag_lock = PTHREAD_MUTEX_INITIALIZER;

uint16_t fa_tags_intern(const char *name)
{
    if (!name)
        return 0;
    uint32_t n = __atomic_load_n(&tag_count, __ATOMIC_ACQUIRE);
    for (uint32_t i = 1; i < n; i++)
        if (tags[i].name == name || strcmp(tags[i].name, name) == 0)
            return (uint16_t)i;
    pthread_mutex_lock(&tag_lock);
    uint16_t id = 0;
    n = tag_count;
    for (uint32_t i = 1; i < n && !id; i++)
        if (strcmp(tags[i].name, name) == 0)
            id = (uint16_t)i;
    if (!id && n <= MAX_TAGS) {
        tags[n].name = name;
        __atomic_store_n(&tag_count, n + 1, __ATOMIC_RELEASE);
        id = (uint16_t)n;
    }
    pthread_mutex_unlock(&tag_lock);
    return id;
}

const char *fa_tags_name(uint16_t tag) { return tag ? tags[tag].name : NULL; }

void fa_tags_account(uint16_t tag, int64_t bytes)
{
    tag_t *t = &tags[tag];
    int64_t live = (t->live_bytes += bytes);
    if (bytes <= 0)
        return;
    t->alloc_bytes += (uint64_t)bytes;
    uint64_t peak = t->peak_bytes;
    while (live > 0 && (uint64_t)live > peak &&
           !__atomic_compare_exchange_n(&t->peak_bytes, &peak, (uint64_t)live, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

void fa_tags_check_budget(uint16_t tag, const uintptr_t *frames, int depth)
{
    tag_t *t = &tags[tag];
    uint64_t budget = t->budget;
    if (!budget || t->live_bytes <= (int64_t)budget || __atomic_exchange_n(&t->warned, 1, __ATOMIC_RELAXED))
        return;
    fa_log("tag \"%s\" is over its budget: %lld bytes live, budget %llu; the allocation that crossed it:", t->name,
           (long long)t->live_bytes, (unsigned long long)budget);
    fa_symbols_log_stack(frames, (uint32_t)depth, 8);
}

void fa_tags_set_budget(const char *name, uint64_t bytes)
{
    uint16_t id = fa_tags_intern(name);
    if (id) {
        tags[id].budget = bytes;
        tags[id].warned = 0;
    }
}

void fa_tags_for_each(void (*fn)(const fa_tag_totals_t *tag, void *arg), void *arg)
{
    uint32_t n = __atomic_load_n(&tag_count, __ATOMIC_ACQUIRE);
    for (uint32_t i = 1; i < n; i++) {
        int64_t live = tags[i].live_bytes;
        fa_tag_totals_t t = {tags[i].name, live > 0 ? (uint64_t)live : 0, tags[i].peak_bytes, tags[i].alloc_bytes,
                             tags[i].budget};
        fn(&t, arg);
    }
}

void fa_tags_fork_prepare(void) { pthread_mutex_lock(&tag_lock); }
void fa_tags_fork_parent(void) { pthread_mutex_unlock(&tag_lock); }
void fa_tags_fork_child(void) { pthread_mutex_init(&tag_lock, NULL); }

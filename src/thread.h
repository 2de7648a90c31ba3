/* Per-thread state in initial-exec TLS (design contract 4). A new thread starts
 * from all-zero state: intent FA_DEFAULT, no frame chunk, empty pool caches, so its
 * first allocation misses into a slow path that attaches it; the fast paths never
 * ask "am I initialised?". */
#ifndef FA_THREAD_H
#define FA_THREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "chunk_list.h"
#include "config.h"
#include "frame_arena.h"
#include "learn_cache.h"
#include "pool_cache.h"
#include "region.h"

typedef enum {
    FA_THREAD_FRESH = 0, /* never attached: static empty state */
    FA_THREAD_LIVE,      /* attached and registered */
    FA_THREAD_DEAD,      /* torn down at thread exit: everything goes to the heap */
} fa_thread_state_t;

/* Set in fa_thread_t.intent on every attached thread while allocation records are
 * on: no fast-path compare matches, so every allocation reaches the slow path. */
#define FA_INTENT_RECORDS 0x80
#define FA_INTENT_MASK 0x7f

/* sample_left when sampling is off: never used up (2^62 bytes), and a bound that
 * lets the fast paths do size arithmetic without overflow tests. */
#define FA_SAMPLE_NEVER ((uint64_t)1 << 62)

/* Tags kept per thread (fa_tag_push); deeper pushes are counted, not kept. */
#define FA_TAG_MAX 32

typedef struct fa_thread {
    /* Read by every malloc: the intent at the top of the scope stack (an fa_intent),
     * with FA_INTENT_RECORDS or'ed in while records are on. */
    uint8_t intent;
    uint8_t state;
    uint8_t in_init; /* set while this thread runs global init: route to the heap */
    uint8_t depth;
    uint32_t scope_overflow; /* pushes beyond FA_SCOPE_MAX, ignored but balanced */
    /* Bytes the thread may still allocate before the next sample (FRAMEALLOC_RECORDS=
     * sample); FA_SAMPLE_NEVER when sampling is off. 0 in a new thread, so its first
     * allocation reaches the slow path, which sets it. */
    uint64_t sample_left;
    uint64_t id;             /* unique, from 1; 0 until attached (owns no chunk) */
    fa_frame_arena_t frame;
    fa_pool_cache_t pool;
    uint8_t scopes[FA_SCOPE_MAX];
    fa_list_link_t registry_link; /* on the registry of live threads */
    /* fa_tag_push's stack, for records: after the fields the fast paths read, and
     * usable before the thread attaches. */
    uint32_t tag_depth;
    const char *tags[FA_TAG_MAX];
    fa_learn_thread_t learn;       /* last: 4 KiB the other fields need not share lines with */
} fa_thread_t;

extern __thread fa_thread_t fa_thread_self FA_HIDDEN __attribute__((tls_model("initial-exec")));

FA_INLINE fa_thread_t *fa_thread(void) { return &fa_thread_self; }

/* The thread's intent without the records flag. */
FA_INLINE uint8_t fa_thread_intent(const fa_thread_t *t) { return t->intent & FA_INTENT_MASK; }

/* The innermost tag pushed on t, or NULL. */
FA_INLINE const char *fa_thread_tag(const fa_thread_t *t)
{
    if (!t->tag_depth)
        return NULL;
    return t->tags[(t->tag_depth <= FA_TAG_MAX ? t->tag_depth : FA_TAG_MAX) - 1];
}

/* Adds t to the registry and gives it its id (process.c's attach). */
void fa_thread_register(fa_thread_t *t);
/* Takes t out of the registry (process.c's thread exit). */
void fa_thread_unregister(fa_thread_t *t);
/* Calls fn for every live thread with the registry locked (statistics). */
void fa_thread_for_each(void (*fn)(fa_thread_t *t, void *arg), void *arg);
/* The registry's lock across fork; in the child only the forking thread stays. */
void fa_thread_fork_prepare(void);
void fa_thread_fork_parent(void);
void fa_thread_fork_child(void);

#endif

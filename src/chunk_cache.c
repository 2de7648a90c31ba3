/* Chunks between the region and the arenas: hand-out and release with the count
 * held per kind, and the orphans of exited threads with their locks (see
 * chunk_cache.h). */
#include "chunk_cache.h"

#include <pthread.h>

/* Orphans of one kind: bins of chunks, newest first, under one lock. Their total
 * is the kind's fa_chunk_orphan_counts entry, changed only with the lock held. */
typedef struct {
    pthread_mutex_t lock;
    fa_list_t bins[FA_CHUNK_ORPHAN_BINS];
} orphans_t;

/* By kind: [0] frame chunks, [1] pool chunks. */
static orphans_t orphans[2] = {{.lock = PTHREAD_MUTEX_INITIALIZER}, {.lock = PTHREAD_MUTEX_INITIALIZER}};
_Atomic uint64_t fa_chunk_orphan_counts[2];
static _Atomic uint64_t held[2];

static unsigned index_of(unsigned kind) { return kind == FA_CHUNK_POOL; }

FA_EVERY_PROCESS void *fa_chunk_alloc(fa_chunk_kind_t kind)
{
    fa_chunk_head_t *head = fa_region_chunk_alloc(kind);
    if (!head)
        return NULL;
    head->kind = (uint8_t)kind;
    held[index_of(kind)]++;
    return head;
}

void fa_chunk_release(void *chunk)
{
    held[index_of(((fa_chunk_head_t *)chunk)->kind)]--;
    fa_region_chunk_free(chunk);
}

void fa_chunk_release_beyond(fa_list_t *l, uint32_t keep)
{
    while (l->count > keep)
        fa_chunk_release(fa_chunk_at(fa_list_pop_front(l)));
}

void fa_chunk_release_all(fa_list_t *l) { fa_chunk_release_beyond(l, 0); }

uint64_t fa_chunk_held(fa_chunk_kind_t kind) { return held[index_of(kind)]; }

/* ---- orphans ---- */

void fa_chunk_orphan_put(fa_list_link_t *link, unsigned bin)
{
    fa_chunk_head_t *head = fa_chunk_at(link);
    unsigned i = index_of(head->kind);
    __atomic_store_n(&head->owner, FA_OWNER_NONE, __ATOMIC_RELEASE);
    pthread_mutex_lock(&orphans[i].lock);
    fa_list_push_front(&orphans[i].bins[bin], link);
    fa_chunk_orphan_counts[i]++;
    pthread_mutex_unlock(&orphans[i].lock);
}

fa_list_link_t *fa_chunk_orphan_take(fa_chunk_kind_t kind, unsigned bin)
{
    unsigned i = index_of(kind);
    if (!fa_chunk_orphan_counts[i])
        return NULL;
    pthread_mutex_lock(&orphans[i].lock);
    fa_list_link_t *link = fa_list_pop_front(&orphans[i].bins[bin]);
    if (link)
        fa_chunk_orphan_counts[i]--;
    pthread_mutex_unlock(&orphans[i].lock);
    return link;
}

fa_list_t *fa_chunk_orphans_try_lock(fa_chunk_kind_t kind, unsigned bin)
{
    unsigned i = index_of(kind);
    if (!fa_chunk_orphan_counts[i] || pthread_mutex_trylock(&orphans[i].lock) != 0)
        return NULL;
    return &orphans[i].bins[bin];
}

void fa_chunk_orphan_remove(fa_chunk_kind_t kind, fa_list_t *list, fa_list_link_t *link)
{
    fa_list_remove(list, link);
    fa_chunk_orphan_counts[index_of(kind)]--;
}

void fa_chunk_orphans_unlock(fa_chunk_kind_t kind) { pthread_mutex_unlock(&orphans[index_of(kind)].lock); }

bool fa_chunk_orphans_valid(fa_chunk_kind_t kind)
{
    unsigned i = index_of(kind);
    orphans_t *o = &orphans[i];
    bool valid = true;
    uint64_t total = 0;
    pthread_mutex_lock(&o->lock);
    for (unsigned bin = 0; bin < FA_CHUNK_ORPHAN_BINS && valid; bin++) {
        valid = fa_list_valid(&o->bins[bin]);
        for (fa_list_link_t *link = o->bins[bin].head; link && valid; link = link->next) {
            fa_chunk_head_t *head = fa_chunk_at(link);
            valid = head->kind == kind && __atomic_load_n(&head->owner, __ATOMIC_RELAXED) == FA_OWNER_NONE;
        }
        total += o->bins[bin].count;
    }
    valid = valid && total == fa_chunk_orphan_counts[i];
    pthread_mutex_unlock(&o->lock);
    return valid;
}

/* ---- fork ---- */

void fa_chunk_fork_prepare(void)
{
    pthread_mutex_lock(&orphans[0].lock);
    pthread_mutex_lock(&orphans[1].lock);
}

void fa_chunk_fork_parent(void)
{
    pthread_mutex_unlock(&orphans[1].lock);
    pthread_mutex_unlock(&orphans[0].lock);
}

/* The vanished threads held no lock here (prepare took them all), so the lists are
 * whole; only the locks are made new. */
void fa_chunk_fork_child(void)
{
    pthread_mutex_init(&orphans[1].lock, NULL);
    pthread_mutex_init(&orphans[0].lock, NULL);
}

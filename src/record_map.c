/* The map of recorded blocks: sharded open addressing with linear probing and
 * backward-shift deletion, grown by doubling into a fresh mapping; and the notes of
 * freed recorded blocks that misuse reports read. */
#include "record_map.h"

#include <pthread.h>

#include "framealloc.h"
#include "os.h"

#define SHARDS 64

typedef struct {
    pthread_mutex_t lock;
    fa_record_t *slots;
    size_t capacity; /* power of two, or 0 */
    size_t used;
} shard_t;

static shard_t shards[SHARDS];
static _Atomic uint64_t live_records;

static size_t shard_of(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ULL >> 58); }
static size_t slot_of(uintptr_t p, size_t capacity)
{
    return (size_t)((p >> 4) * 0xff51afd7ed558ccdULL >> 20) & (capacity - 1);
}

/* Freed recorded blocks: one word per slot, (address / 16) << SITE_BITS | site, so
 * that a note is written and read whole without a lock. Addresses are 16-aligned
 * user addresses (below 2^48) and site ids are below 2^20 (sites.c's MAX_SITES). */
#define FREED_SLOTS ((size_t)1 << 18)
#define FREED_SITE_BITS 20
static _Atomic uint64_t *freed;

void fa_record_map_start(void)
{
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
    freed = fa_os_map_table(FREED_SLOTS * sizeof *freed); /* NULL: no notes kept */
}

static bool shard_grow(shard_t *s)
{
    size_t capacity = s->capacity ? s->capacity * 2 : 1024;
    fa_record_t *slots = fa_os_map_table(capacity * sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < s->capacity; i++) {
        fa_record_t *r = &s->slots[i];
        if (!r->ptr)
            continue;
        size_t j = slot_of(r->ptr, capacity);
        while (slots[j].ptr)
            j = (j + 1) & (capacity - 1);
        slots[j] = *r;
    }
    if (s->slots)
        fa_os_unreserve(s->slots, s->capacity * sizeof *s->slots);
    s->slots = slots;
    s->capacity = capacity;
    return true;
}

void fa_record_map_insert(const fa_record_t *r)
{
    shard_t *s = &shards[shard_of(r->ptr)];
    pthread_mutex_lock(&s->lock);
    if ((s->used + 1) * 4 > s->capacity * 3 && !shard_grow(s)) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    size_t i = slot_of(r->ptr, s->capacity);
    while (s->slots[i].ptr)
        i = (i + 1) & (s->capacity - 1);
    s->slots[i] = *r;
    s->used++;
    live_records++;
    pthread_mutex_unlock(&s->lock);
}

/* The slot holding p in s (locked), or NULL. */
static fa_record_t *find(shard_t *s, uintptr_t p)
{
    if (!s->capacity)
        return NULL;
    for (size_t i = slot_of(p, s->capacity); s->slots[i].ptr; i = (i + 1) & (s->capacity - 1))
        if (s->slots[i].ptr == p)
            return &s->slots[i];
    return NULL;
}

/* Empties slot i of s, moving later entries of its probe run back into the hole. */
static void remove_slot(shard_t *s, size_t i)
{
    size_t mask = s->capacity - 1;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; s->slots[j].ptr; j = (j + 1) & mask) {
        size_t home = slot_of(s->slots[j].ptr, s->capacity);
        /* Move j into the hole if its home is not between hole and j. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            s->slots[hole] = s->slots[j];
            hole = j;
        }
    }
    s->slots[hole].ptr = 0;
    s->used--;
    live_records--;
}

bool fa_record_map_remove(uintptr_t p, fa_record_t *out)
{
    shard_t *s = &shards[shard_of(p)];
    pthread_mutex_lock(&s->lock);
    fa_record_t *r = find(s, p);
    if (r) {
        *out = *r;
        remove_slot(s, (size_t)(r - s->slots));
    }
    pthread_mutex_unlock(&s->lock);
    return r != NULL;
}

bool fa_record_map_mark_escaped(uintptr_t p, uint64_t frame, fa_record_t *out)
{
    shard_t *s = &shards[shard_of(p)];
    pthread_mutex_lock(&s->lock);
    fa_record_t *r = find(s, p);
    bool marked = r && r->intent == FA_FRAME && r->frame == frame && !r->escaped;
    if (marked) {
        r->escaped = 1;
        *out = *r;
    }
    pthread_mutex_unlock(&s->lock);
    return marked;
}

bool fa_record_map_size(uintptr_t p, uint64_t *size)
{
    shard_t *s = &shards[shard_of(p)];
    pthread_mutex_lock(&s->lock);
    fa_record_t *r = find(s, p);
    if (r)
        *size = r->size;
    pthread_mutex_unlock(&s->lock);
    return r != NULL;
}

bool fa_record_map_empty(void) { return __atomic_load_n(&live_records, __ATOMIC_RELAXED) == 0; }

/* ---- for misuse reports ---- */

bool fa_record_map_find_holding(uintptr_t a, fa_record_t *out)
{
    bool found = false;
    for (int i = 0; i < SHARDS && !found; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t k = 0; k < s->capacity; k++) {
            const fa_record_t *r = &s->slots[k];
            if (r->ptr && a >= r->ptr && a - r->ptr < r->size) {
                *out = *r;
                found = true;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return found;
}

static size_t freed_slot(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ULL >> 46) & (FREED_SLOTS - 1); }

static bool freed_notable(uintptr_t p) { return freed && !(p & 15) && !(p >> 48); }

void fa_record_map_note_freed(uintptr_t p, uint32_t site)
{
    if (freed_notable(p) && site < ((uint32_t)1 << FREED_SITE_BITS))
        __atomic_store_n(&freed[freed_slot(p)], (uint64_t)(p >> 4) << FREED_SITE_BITS | site, __ATOMIC_RELAXED);
}

bool fa_record_map_freed_site(uintptr_t p, uint32_t *site)
{
    if (!freed_notable(p))
        return false;
    uint64_t note = __atomic_load_n(&freed[freed_slot(p)], __ATOMIC_RELAXED);
    if (!note || note >> FREED_SITE_BITS != (uint64_t)(p >> 4))
        return false;
    *site = (uint32_t)(note & (((uint64_t)1 << FREED_SITE_BITS) - 1));
    return true;
}

void fa_record_map_fork_prepare(void)
{
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

void fa_record_map_fork_parent(void)
{
    for (int i = SHARDS - 1; i >= 0; i--)
        pthread_mutex_unlock(&shards[i].lock);
}

void fa_record_map_fork_child(void)
{
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);
}

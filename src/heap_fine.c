/* The finely rounded heap for address-space limits (heap_fine.h): the limit watch,
 * the owner table, spans with boundary tags, and large blocks mapped one by one. */
#include "heap_fine.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "heap.h"
#include "jemalloc.h"
#include "os.h"

/* Every block of this heap follows a 16-byte header (its chunk's, or its mapping's). */
#define HEADER 16

/* ---- the watch ---- */

/* Heap bytes a thread allocates between two looks at the limit while there is none:
 * a look is one getrlimit call, and a limit set at run time leaves at most this
 * much per thread to jemalloc's rounding before blocks come here. */
#define WATCH_BYTES ((size_t)16 << 20)

__thread size_t fa_heap_fine_watch_left;

/* Once a limit is seen, every heap allocation is weighed (a limit raised to
 * infinity later still gets correct blocks, only slower ones). */
static _Atomic bool limited;

/* What this heap takes for a block of size bytes (size below 2^62). */
static size_t chunk_bytes(size_t size);
static size_t big_bytes(size_t size);
static size_t cost(size_t size) { return size + HEADER < FA_HEAP_FINE_BIG ? chunk_bytes(size) : big_bytes(size); }

bool fa_heap_fine_chosen(size_t size)
{
    if (!__atomic_load_n(&limited, __ATOMIC_RELAXED)) {
        if (fa_os_address_limit() == SIZE_MAX) {
            fa_heap_fine_watch_left = WATCH_BYTES;
            return false;
        }
        __atomic_store_n(&limited, true, __ATOMIC_RELAXED);
        /* Any free extent may serve any request (a limit needs reach more than
         * unfragmented free ranges); a plain store, as jemalloc reads it plainly. */
        je_opt_lg_extent_max_active_fit = 63;
    }
    fa_heap_fine_watch_left = 0;
    if (size >> 62)
        return false;
    size_t jemalloc_takes = fa_je_nallocx(fa_heap_size(size), 0);
    return jemalloc_takes && cost(size) + (size >> 6) < jemalloc_takes;
}

/* ---- the owner table: one 16-bit entry per 128 KiB of address space ---- */

#define OWNER_SHIFT 17
#define OWNER_NODE_SHIFT 34 /* a node covers 16 GiB */
#define OWNER_NODE_ENTRIES ((size_t)1 << (OWNER_NODE_SHIFT - OWNER_SHIFT))
#define OWNER_ROOT_ENTRIES ((size_t)1 << (FA_HEAP_BLOCKS_ADDRESS_BITS - OWNER_NODE_SHIFT))
/* An entry: 0 (none of this heap's blocks start in its 128 KiB), OWNER_SPAN (they
 * are part of a span), or 1 + the 4 KiB unit where a large block's mapping starts
 * (at most one can: each is at least FA_HEAP_FINE_BIG long). */
#define OWNER_SPAN UINT16_MAX
#define OWNER_UNIT_SHIFT 12

static _Atomic(uint16_t *) owner_root[OWNER_ROOT_ENTRIES];

/* The entry for address a, creating its node when create; NULL when there is none. */
static _Atomic uint16_t *owner_entry(uintptr_t a, bool create)
{
    if (a >> FA_HEAP_BLOCKS_ADDRESS_BITS)
        return NULL;
    _Atomic(uint16_t *) *slot = &owner_root[a >> OWNER_NODE_SHIFT];
    uint16_t *node = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!node && create) {
        size_t bytes = OWNER_NODE_ENTRIES * sizeof(uint16_t);
        uint16_t *fresh = fa_os_map_table(bytes);
        if (!fresh)
            return NULL;
        if (__atomic_compare_exchange_n(slot, &node, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            node = fresh;
        else
            fa_os_unreserve(fresh, bytes);
    }
    return node ? (_Atomic uint16_t *)&node[(a >> OWNER_SHIFT) & (OWNER_NODE_ENTRIES - 1)] : NULL;
}

static uint16_t owner_of(uintptr_t a)
{
    _Atomic uint16_t *entry = owner_entry(a, false);
    return entry ? __atomic_load_n(entry, __ATOMIC_ACQUIRE) : 0;
}

/* ---- spans: chunks with boundary tags ---- */

/* A span holds at least 64 blocks, so its tail wastes under 2 % of it. */
#define SPAN_BYTES ((size_t)8 << 20)
#define MIN_CHUNK 32 /* a free chunk holds its two list links */
#define INUSE ((size_t)1)
#define PREV_INUSE ((size_t)2)
#define FLAGS ((size_t)15)
/* The whole of an empty span: every byte but the end marker's header. */
#define SPAN_CHUNK (SPAN_BYTES - HEADER)

/* A chunk: its header, then the block (in use) or the links of its bin (free). The
 * chunk after a free one holds its size in prev_size; two free chunks never touch. */
typedef struct chunk_s chunk_t;
struct chunk_s {
    size_t prev_size; /* the previous chunk's size, when that one is free */
    size_t head;      /* this chunk's size (a multiple of 16) | INUSE | PREV_INUSE */
    chunk_t *next, *prev;
};

FA_INLINE size_t chunk_size(const chunk_t *c) { return c->head & ~FLAGS; }
FA_INLINE chunk_t *chunk_at(void *p, size_t offset) { return (chunk_t *)((char *)p + offset); }
FA_INLINE chunk_t *chunk_before(chunk_t *c) { return (chunk_t *)((char *)c - c->prev_size); }
FA_INLINE chunk_t *chunk_of_block(const void *p) { return (chunk_t *)((char *)p - HEADER); }
FA_INLINE void *block_of(chunk_t *c) { return (char *)c + HEADER; }

static size_t chunk_bytes(size_t size)
{
    size_t bytes = (size + HEADER + 15) & ~(size_t)15;
    return bytes < MIN_CHUNK ? MIN_CHUNK : bytes;
}

/* Bins: 16 bytes wide below 1 KiB, then 64 per doubling, up to a whole span. */
#define BIN_COUNT (64 + 64 * 13)

static size_t bin_below(size_t bytes) /* the bin whose range holds bytes */
{
    if (bytes < 1024)
        return bytes >> 4;
    unsigned top = 63 - (unsigned)__builtin_clzl(bytes);
    return 64 + (size_t)(top - 10) * 64 + ((bytes >> (top - 6)) & 63);
}

static size_t bin_above(size_t bytes) /* the first bin whose every chunk holds bytes */
{
    unsigned top = 63 - (unsigned)__builtin_clzl(bytes);
    size_t width = bytes < 1024 ? 16 : (size_t)1 << (top - 6);
    return bin_below(bytes + width - 1);
}

static pthread_mutex_t span_lock = PTHREAD_MUTEX_INITIALIZER;
static chunk_t *bins[BIN_COUNT];
static uint64_t bins_used[BIN_COUNT / 64]; /* a bit per bin that holds a chunk */
static size_t spans;                       /* mapped now */

_Static_assert(BIN_COUNT % 64 == 0, "bins_used holds whole words");

static void bin_insert(chunk_t *c)
{
    size_t bin = bin_below(chunk_size(c));
    c->prev = NULL;
    c->next = bins[bin];
    if (c->next)
        c->next->prev = c;
    bins[bin] = c;
    bins_used[bin / 64] |= (uint64_t)1 << (bin % 64);
}

static void bin_remove(chunk_t *c)
{
    size_t bin = bin_below(chunk_size(c));
    if (c->prev)
        c->prev->next = c->next;
    else if (!(bins[bin] = c->next))
        bins_used[bin / 64] &= ~((uint64_t)1 << (bin % 64));
    if (c->next)
        c->next->prev = c->prev;
}

/* A free chunk of at least bytes, taken out of its bin; NULL when no bin has one. */
static chunk_t *bin_take(size_t bytes)
{
    size_t bin = bin_above(bytes);
    for (size_t w = bin / 64; w < BIN_COUNT / 64; w++) {
        uint64_t used = bins_used[w] & (w == bin / 64 ? ~(uint64_t)0 << (bin % 64) : ~(uint64_t)0);
        if (used) {
            chunk_t *c = bins[w * 64 + (size_t)__builtin_ctzll(used)];
            bin_remove(c);
            return c;
        }
    }
    return NULL;
}

static void set_owner_range(uintptr_t start, size_t bytes, uint16_t value)
{
    for (uintptr_t a = start; a < start + bytes; a += (uintptr_t)1 << OWNER_SHIFT)
        __atomic_store_n(owner_entry(a, false), value, __ATOMIC_RELEASE);
}

/* A new span as one free chunk (not in a bin), or NULL. */
static chunk_t *span_map(void)
{
    char *span = fa_os_map_aligned(SPAN_BYTES, (size_t)1 << OWNER_SHIFT);
    if (!span)
        return NULL;
    for (size_t off = 0; off < SPAN_BYTES; off += (size_t)1 << OWNER_SHIFT)
        if (!owner_entry((uintptr_t)span + off, true)) {
            fa_os_unreserve(span, SPAN_BYTES);
            return NULL;
        }
    set_owner_range((uintptr_t)span, SPAN_BYTES, OWNER_SPAN);
    chunk_t *end = chunk_at(span, SPAN_CHUNK);
    end->prev_size = SPAN_CHUNK;
    end->head = INUSE; /* size 0: never merged */
    chunk_t *c = (chunk_t *)span;
    c->head = SPAN_CHUNK | PREV_INUSE;
    spans++;
    return c;
}

/* c spans the whole of its span, all free: the table forgets it before the kernel
 * can hand the range to anyone else. */
static void span_unmap(chunk_t *c)
{
    set_owner_range((uintptr_t)c, SPAN_BYTES, 0);
    fa_os_unreserve(c, SPAN_BYTES);
    spans--;
}

/* c (free, in no bin, size at least bytes) becomes an in-use chunk of bytes; the
 * rest, when it can hold a chunk, goes back to a bin. */
static void chunk_use(chunk_t *c, size_t bytes)
{
    size_t size = chunk_size(c), rest = size - bytes;
    if (rest >= MIN_CHUNK) {
        chunk_t *tail = chunk_at(c, bytes);
        tail->head = rest | PREV_INUSE;
        chunk_at(tail, rest)->prev_size = rest;
        bin_insert(tail);
        size = bytes;
    } else {
        chunk_at(c, size)->head |= PREV_INUSE;
    }
    c->head = size | INUSE | (c->head & PREV_INUSE);
}

/* c (in use) becomes free, merged with its free neighbours; an empty span goes back
 * to the kernel unless it is the last. */
static void chunk_release(chunk_t *c)
{
    size_t size = chunk_size(c);
    chunk_t *next = chunk_at(c, size);
    if (!(next->head & INUSE)) {
        bin_remove(next);
        size += chunk_size(next);
    }
    if (!(c->head & PREV_INUSE)) {
        chunk_t *prev = chunk_before(c);
        bin_remove(prev);
        size += chunk_size(prev);
        c = prev;
    }
    c->head = size | PREV_INUSE; /* the chunk before a free one is in use */
    next = chunk_at(c, size);
    next->prev_size = size;
    next->head &= ~PREV_INUSE;
    if (size == SPAN_CHUNK && spans > 1)
        span_unmap(c);
    else
        bin_insert(c);
}

static void *span_alloc(size_t size)
{
    size_t bytes = chunk_bytes(size);
    pthread_mutex_lock(&span_lock);
    chunk_t *c = bin_take(bytes);
    if (!c)
        c = span_map();
    if (c)
        chunk_use(c, bytes);
    pthread_mutex_unlock(&span_lock);
    return c ? block_of(c) : NULL;
}

/* ---- large blocks: a mapping each ---- */

/* The mapping's size sits in the header's place (prev_size), the block after it. */
static size_t big_bytes(size_t size)
{
    size_t page = fa_os_page_size();
    return (size + HEADER + page - 1) & ~(page - 1);
}

static void *big_alloc(size_t size)
{
    size_t bytes = big_bytes(size);
    char *map = fa_os_map_aligned(bytes, fa_os_page_size());
    if (!map)
        return NULL;
    _Atomic uint16_t *entry = owner_entry((uintptr_t)map, true);
    if (!entry) {
        fa_os_unreserve(map, bytes);
        return NULL;
    }
    chunk_t *c = (chunk_t *)map;
    c->prev_size = bytes;
    c->head = INUSE;
    uintptr_t offset = (uintptr_t)map & (((uintptr_t)1 << OWNER_SHIFT) - 1);
    __atomic_store_n(entry, (uint16_t)(1 + (offset >> OWNER_UNIT_SHIFT)), __ATOMIC_RELEASE);
    return block_of(c);
}

/* ---- the heap's calls ---- */

/* What p (a live heap block) is: one of the spans' blocks, a large block of this
 * heap, or jemalloc's or a direct one. */
typedef enum { NOT_OURS, IN_SPAN, BIG } kind_t;

static kind_t kind_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint16_t owner = owner_of(a);
    if (owner == OWNER_SPAN)
        return IN_SPAN;
    uintptr_t window = a & ~(((uintptr_t)1 << OWNER_SHIFT) - 1);
    if (owner && a == window + ((uintptr_t)(owner - 1) << OWNER_UNIT_SHIFT) + HEADER)
        return BIG;
    return NOT_OURS;
}

void *fa_heap_fine_alloc(size_t size, bool zeroed)
{
    void *p = size + HEADER < FA_HEAP_FINE_BIG ? span_alloc(size) : big_alloc(size);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    __atomic_fetch_add(&fa_heap_own_count, 1, __ATOMIC_RELAXED);
    if (!fa_heap_blocks_add(p)) {
        fa_heap_fine_free(p);
        errno = ENOMEM;
        return NULL;
    }
    if (zeroed && size + HEADER < FA_HEAP_FINE_BIG) /* a large block's mapping is fresh */
        memset(p, 0, size);
    return p;
}

size_t fa_heap_fine_size(const void *p)
{
    size_t size;
    switch (kind_of(p)) {
    case IN_SPAN:
        /* Under the lock: a neighbour's merge rewrites this header's flags. */
        pthread_mutex_lock(&span_lock);
        size = chunk_size(chunk_of_block(p)) - HEADER;
        pthread_mutex_unlock(&span_lock);
        return size;
    case BIG:
        return chunk_of_block(p)->prev_size - HEADER;
    default:
        return 0;
    }
}

bool fa_heap_fine_free(void *p)
{
    chunk_t *c = chunk_of_block(p);
    switch (kind_of(p)) {
    case IN_SPAN:
        pthread_mutex_lock(&span_lock);
        chunk_release(c);
        pthread_mutex_unlock(&span_lock);
        break;
    case BIG:
        __atomic_store_n(owner_entry((uintptr_t)c, false), 0, __ATOMIC_RELEASE);
        fa_os_unreserve(c, c->prev_size);
        break;
    default:
        return false;
    }
    __atomic_fetch_sub(&fa_heap_own_count, 1, __ATOMIC_RELAXED);
    return true;
}

bool fa_heap_fine_resize_in_place(void *p, size_t size)
{
    chunk_t *c = chunk_of_block(p);
    kind_t kind = kind_of(p);
    if (kind == BIG) {
        size_t bytes = big_bytes(size);
        return size + HEADER >= FA_HEAP_FINE_BIG && bytes <= c->prev_size && bytes > c->prev_size / 2;
    }
    if (kind == NOT_OURS || size + HEADER >= FA_HEAP_FINE_BIG)
        return false;
    size_t bytes = chunk_bytes(size);
    pthread_mutex_lock(&span_lock);
    size_t have = chunk_size(c);
    chunk_t *next = chunk_at(c, have);
    bool fits = bytes <= have;
    if (!fits && !(next->head & INUSE) && bytes <= have + chunk_size(next)) {
        /* Grows into the free chunk after it. */
        bin_remove(next);
        have += chunk_size(next);
        c->head = have | (c->head & FLAGS);
        chunk_at(c, have)->head |= PREV_INUSE;
        fits = true;
    }
    if (fits && have - bytes >= MIN_CHUNK) {
        /* Gives the tail back, merged with what follows it. */
        chunk_t *tail = chunk_at(c, bytes);
        tail->head = (have - bytes) | PREV_INUSE | INUSE;
        c->head = bytes | (c->head & FLAGS);
        chunk_release(tail);
    }
    pthread_mutex_unlock(&span_lock);
    return fits;
}

void fa_heap_fine_fork_prepare(void) { pthread_mutex_lock(&span_lock); }
void fa_heap_fine_fork_parent(void) { pthread_mutex_unlock(&span_lock); }
void fa_heap_fine_fork_child(void) { pthread_mutex_init(&span_lock, NULL); }

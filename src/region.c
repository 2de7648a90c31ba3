/* The reserved range, in two parts (frame chunks, pool chunks), each with a bump
 * pointer over never-used chunks, a stack of released chunk indices and a
 * committed read-write prefix grown in FA_COMMIT_STEP steps. */
#include "region.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "os.h"

FA_EVERY_PROCESS_DATA fa_region_t fa_region;
FA_EVERY_PROCESS_DATA unsigned fa_region_layout_seq;

/* One part of the region: a bump over never-used chunks, a stack of released ones
 * and a committed (read-write) prefix. */
typedef struct {
    size_t end;            /* chunk index past the part */
    size_t next_fresh;     /* lowest never-used chunk index */
    size_t committed_end;  /* chunk index up to which the part is read-write */
    uint32_t *free_stack;  /* indices of released chunks */
    size_t free_count;
} region_part_t;

static FA_EVERY_PROCESS_DATA pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static FA_EVERY_PROCESS_DATA region_part_t parts[2]; /* frame, pool */
static FA_EVERY_PROCESS_DATA size_t uncommitted_bytes;
static FA_EVERY_PROCESS_DATA size_t in_use, peak;
static FA_EVERY_PROCESS_DATA bool exhausted;
static FA_EVERY_PROCESS_DATA size_t stack_chunks; /* the free stacks' chunks, the first of the range */

/* The share of the region for frame chunks: frame arenas hold a few frames of
 * temporaries per thread, pools hold the program's small live objects. Under an
 * address-space limit set at run time (fa_region_trim) each part gives back the
 * chunks it never handed out. */
#define FRAME_PART_SHIFT 5 /* a 32nd, within these bounds: */
#define FRAME_PART_MIN ((size_t)16 << 20)
#define FRAME_PART_MAX ((size_t)128 << 20)

/* Under an address-space limit set at start, the region takes at most this share
 * of it: the rest is the heap's. */
#define LIMIT_SHARE_SHIFT 4

static void part_init(region_part_t *part, size_t first, size_t end, uint32_t *stack)
{
    part->next_fresh = part->committed_end = first;
    part->end = end;
    part->free_stack = stack;
}

FA_EVERY_PROCESS bool fa_region_init(size_t bytes)
{
    const size_t min_bytes = (size_t)64 << 20;
    void *base = NULL;
    size_t limit = fa_os_address_limit();
    if (limit != SIZE_MAX && bytes > (limit >> LIMIT_SHARE_SHIFT))
        bytes = (limit >> LIMIT_SHARE_SHIFT) > min_bytes ? limit >> LIMIT_SHARE_SHIFT : min_bytes;
    bytes &= ~FA_CHUNK_MASK;
    while (!base && bytes >= min_bytes) {
        base = fa_os_reserve(bytes, FA_CHUNK_SIZE);
        if (!base)
            bytes /= 2;
    }
    if (!base)
        return false;
    size_t total = bytes >> FA_CHUNK_SHIFT;
    /* Both free stacks live in the region's first chunks, so no metadata is malloc'd. */
    size_t stack_bytes = total * sizeof(uint32_t);
    stack_chunks = (stack_bytes + FA_CHUNK_MASK) >> FA_CHUNK_SHIFT;
    if (!fa_os_commit(base, stack_chunks << FA_CHUNK_SHIFT))
        return false;
    size_t frame_bytes = bytes >> FRAME_PART_SHIFT;
    frame_bytes = frame_bytes < FRAME_PART_MIN ? FRAME_PART_MIN : frame_bytes > FRAME_PART_MAX ? FRAME_PART_MAX : frame_bytes;
    size_t split = stack_chunks + (frame_bytes >> FA_CHUNK_SHIFT);
    part_init(&parts[0], stack_chunks, split, base);
    part_init(&parts[1], split, total, (uint32_t *)base + split);
    uncommitted_bytes = bytes - (stack_chunks << FA_CHUNK_SHIFT);
    fa_region.origin = (uintptr_t)base;
    fa_region.reserved = bytes;
    fa_region.frame_size = split << FA_CHUNK_SHIFT;
    fa_region.size = bytes;
    __atomic_store_n(&fa_region.base, (uintptr_t)base, __ATOMIC_RELEASE);
    return true;
}

FA_EVERY_PROCESS void fa_region_check_frame_frees(bool checked)
{
    __atomic_store_n(&fa_region.frame_checked, checked ? fa_region.frame_size : 0, __ATOMIC_RELEASE);
}

static void *chunk_at(size_t index)
{
    return (void *)(fa_region.origin + (index << FA_CHUNK_SHIFT));
}

static region_part_t *part_of_index(size_t index) { return index < parts[0].end ? &parts[0] : &parts[1]; }

/* The reservation was made when the process started; a limit set later (setrlimit
 * RLIMIT_AS) must still make allocation fail. So committing counts as mapping: the
 * committed chunks that are in use, not the reserved part, are held against the limit. */
static bool commit_allowed(size_t grow)
{
    size_t limit = fa_os_address_limit();
    if (limit == SIZE_MAX)
        return true;
    /* Released chunks hold no memory, and either part may commit in their place. */
    size_t unused = uncommitted_bytes + ((parts[0].free_count + parts[1].free_count) << FA_CHUNK_SHIFT);
    size_t mapped = fa_os_mapped_bytes();
    if (mapped < unused)
        return true;
    return mapped - unused + grow <= limit;
}

/* Makes the part read-write up to and including chunk index; false if not allowed. */
static bool commit_through(region_part_t *part, size_t index)
{
    if (index < part->committed_end)
        return true;
    size_t step = FA_COMMIT_STEP >> FA_CHUNK_SHIFT;
    size_t end = part->committed_end + step < part->end ? part->committed_end + step : part->end;
    size_t grow = (end - part->committed_end) << FA_CHUNK_SHIFT;
    if (!commit_allowed(grow) || !fa_os_commit(chunk_at(part->committed_end), grow))
        return false;
    part->committed_end = end;
    uncommitted_bytes -= grow;
    return true;
}

FA_EVERY_PROCESS void *fa_region_chunk_alloc(fa_chunk_kind_t kind)
{
    if (!fa_region.size)
        return NULL;
    region_part_t *part = &parts[kind == FA_CHUNK_POOL];
    void *chunk = NULL;
    pthread_mutex_lock(&region_lock);
    if (part->free_count)
        chunk = chunk_at(part->free_stack[--part->free_count]);
    else if (part->next_fresh < part->end && commit_through(part, part->next_fresh))
        chunk = chunk_at(part->next_fresh++);
    /* Changed under the lock; read without it by statistics. */
    if (chunk && __atomic_add_fetch(&in_use, 1, __ATOMIC_RELAXED) > peak)
        __atomic_store_n(&peak, in_use, __ATOMIC_RELAXED);
    __atomic_store_n(&exhausted, chunk == NULL, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&region_lock);
    return chunk;
}

bool fa_region_exhausted(void) { return __atomic_load_n(&exhausted, __ATOMIC_RELAXED); }

fa_place_t fa_region_place_settled(const void *p)
{
    for (;;) {
        unsigned seq = __atomic_load_n(&fa_region_layout_seq, __ATOMIC_ACQUIRE);
        fa_place_t place = fa_region_place_of(fa_region_offset(p));
        FA_REGION_ORDER();
        if (!(seq & 1) && __atomic_load_n(&fa_region_layout_seq, __ATOMIC_RELAXED) == seq)
            return place;
    }
}

/* Ends part at chunk index keep and gives its chunks from there back to the kernel
 * (none of them was handed out). The end first: fa_region_frame_chunk_mapped reads
 * it without the lock. */
static void cut_part(region_part_t *part, size_t keep)
{
    size_t end = part->end;
    __atomic_store_n(&part->end, keep, __ATOMIC_RELEASE);
    if (part->committed_end > keep)
        part->committed_end = keep; /* committed but never handed out */
    fa_os_unreserve(chunk_at(keep), (end - keep) << FA_CHUNK_SHIFT);
}

/* Gives back the frame part, which never held a chunk, with the free stacks'
 * chunks kept: base moves up to the pool part. Free's fast path reads base and then
 * the bounds (see fa_region_t), so the bounds go to 0 first (every free takes the
 * slow path, which waits for the layout), then base moves, then the pool bound is
 * set again. No pointer into the frame part exists, and none into the hole it
 * leaves until the kernel maps something there after the unmap. */
static void drop_frame_part(void)
{
    region_part_t *frame = &parts[0], *pool = &parts[1];
    size_t first = frame->end, end = pool->end;
    __atomic_store_n(&fa_region_layout_seq, fa_region_layout_seq + 1, __ATOMIC_RELAXED);
    FA_REGION_ORDER();
    __atomic_store_n(&fa_region.size, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fa_region.frame_size, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fa_region.frame_checked, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&fa_region.base, (uintptr_t)chunk_at(first), __ATOMIC_RELEASE);
    __atomic_store_n(&fa_region.size, (end - first) << FA_CHUNK_SHIFT, __ATOMIC_RELEASE);
    __atomic_store_n(&fa_region_layout_seq, fa_region_layout_seq + 1, __ATOMIC_RELEASE);
    cut_part(frame, stack_chunks);
}

/* Gives back the frame part's chunks that were never handed out (from its bump
 * pointer to its end) when some were: frame pointers may be alive, so the bounds
 * stay, and the range given back keeps saying "frame". Nothing of the heap's may
 * land there (fa_os_keep_out): a free of a pointer into it takes the frame path. */
static bool drop_frame_tail(void)
{
    region_part_t *frame = &parts[0];
    if (frame->next_fresh >= frame->end)
        return false;
    fa_os_keep_out(fa_region.origin, fa_region.reserved);
    cut_part(frame, frame->next_fresh);
    return true;
}

/* Gives back the pool part's chunks that were never handed out (its top). */
static void drop_pool_tail(void)
{
    region_part_t *pool = &parts[1];
    /* The bound first: a pointer the heap maps there later is never taken for ours. */
    __atomic_store_n(&fa_region.size, (uintptr_t)chunk_at(pool->next_fresh) - fa_region.base, __ATOMIC_RELEASE);
    cut_part(pool, pool->next_fresh);
}

bool fa_region_trim(void)
{
    if (!fa_region.size || fa_os_address_limit() == SIZE_MAX)
        return false;
    pthread_mutex_lock(&region_lock);
    region_part_t *frame = &parts[0], *pool = &parts[1];
    bool frame_unused = frame->next_fresh == stack_chunks && frame->end > stack_chunks;
    bool pool_tail = pool->next_fresh < pool->end;
    if (pool_tail)
        drop_pool_tail();
    bool frame_tail = frame_unused ? (drop_frame_part(), true) : drop_frame_tail();
    uncommitted_bytes = 0;
    for (int i = 0; i < 2; i++)
        uncommitted_bytes += (parts[i].end - parts[i].committed_end) << FA_CHUNK_SHIFT;
    pthread_mutex_unlock(&region_lock);
    return pool_tail || frame_tail;
}

void fa_region_chunk_free(void *chunk)
{
    /* Released pages read as zero, so the next user gets a clean header. */
    fa_os_release(chunk, FA_CHUNK_SIZE);
    size_t index = ((uintptr_t)chunk - fa_region.origin) >> FA_CHUNK_SHIFT;
    region_part_t *part = part_of_index(index);
    pthread_mutex_lock(&region_lock);
    part->free_stack[part->free_count++] = (uint32_t)index;
    __atomic_sub_fetch(&in_use, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&exhausted, false, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&region_lock);
}

size_t fa_region_chunks_in_use(void) { return __atomic_load_n(&in_use, __ATOMIC_RELAXED); }

bool fa_region_frame_chunk_mapped(const void *p)
{
    /* The frame part's end only moves down, under the lock; a stale larger end can
     * only be read before the chunks above it were given back. */
    size_t index = ((uintptr_t)p - fa_region.origin) >> FA_CHUNK_SHIFT;
    return index < __atomic_load_n(&parts[0].end, __ATOMIC_ACQUIRE);
}
size_t fa_region_chunks_peak(void) { return __atomic_load_n(&peak, __ATOMIC_RELAXED); }

void fa_region_fork_prepare(void) { pthread_mutex_lock(&region_lock); }
void fa_region_fork_parent(void) { pthread_mutex_unlock(&region_lock); }
void fa_region_fork_child(void) { pthread_mutex_init(&region_lock, NULL); }

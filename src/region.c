/* The reserved range: a bump pointer over never-used chunks, a stack of released
 * chunk indices (kept in the range's first chunks, so no metadata is malloc'd),
 * and a committed read-write prefix grown in FA_COMMIT_STEP steps. */
#include "region.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "os.h"

fa_region_t fa_region;

static pthread_mutex_t region_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t *free_stack;   /* indices of released chunks */
static size_t free_count;
static size_t first_chunk;     /* chunks before this one hold free_stack */
static size_t next_fresh;      /* lowest never-used chunk index */
static size_t chunk_total;
static size_t committed_bytes; /* prefix of the range that is read-write */
static size_t in_use, peak;

bool fa_region_init(size_t bytes)
{
    const size_t min_bytes = (size_t)64 << 20;
    void *base = NULL;
    bytes &= ~FA_CHUNK_MASK;
    while (!base && bytes >= min_bytes) {
        base = fa_os_reserve(bytes, FA_CHUNK_SIZE);
        if (!base)
            bytes /= 2;
    }
    if (!base)
        return false;
    chunk_total = bytes >> FA_CHUNK_SHIFT;
    size_t stack_bytes = chunk_total * sizeof(uint32_t);
    first_chunk = (stack_bytes + FA_CHUNK_MASK) >> FA_CHUNK_SHIFT;
    if (!fa_os_commit(base, first_chunk << FA_CHUNK_SHIFT))
        return false;
    free_stack = base;
    next_fresh = first_chunk;
    committed_bytes = first_chunk << FA_CHUNK_SHIFT;
    fa_region.size = bytes;
    __atomic_store_n(&fa_region.base, (uintptr_t)base, __ATOMIC_RELEASE);
    return true;
}

static void *chunk_at(size_t index)
{
    return (void *)(fa_region.base + (index << FA_CHUNK_SHIFT));
}

/* Address space the process maps now (VmSize), from /proc/self/statm; 0 if unknown. */
static size_t mapped_bytes(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char text[64];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    size_t pages = 0;
    for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; i++)
        pages = pages * 10 + (size_t)(text[i] - '0');
    return pages * fa_os_page_size();
}

/* The reservation was made when the process started; a limit set later (setrlimit
 * RLIMIT_AS) must still make allocation fail. So committing counts as mapping: the
 * committed part of the region, not the reserved part, is held against the limit. */
static bool commit_allowed(size_t grow)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return true;
    size_t mapped = mapped_bytes();
    size_t uncommitted = fa_region.size - committed_bytes;
    if (mapped < uncommitted)
        return true;
    return mapped - uncommitted + grow <= limit.rlim_cur;
}

void *fa_region_chunk_alloc(void)
{
    if (!fa_region.size)
        return NULL;
    void *chunk = NULL;
    pthread_mutex_lock(&region_lock);
    if (free_count) {
        chunk = chunk_at(free_stack[--free_count]);
    } else if (next_fresh < chunk_total) {
        size_t end = (next_fresh + 1) << FA_CHUNK_SHIFT;
        if (end > committed_bytes) {
            size_t grow = FA_COMMIT_STEP;
            if (committed_bytes + grow > fa_region.size)
                grow = fa_region.size - committed_bytes;
            if (commit_allowed(grow) && fa_os_commit((char *)fa_region.base + committed_bytes, grow))
                committed_bytes += grow;
        }
        if (end <= committed_bytes)
            chunk = chunk_at(next_fresh++);
    }
    if (chunk && ++in_use > peak)
        peak = in_use;
    pthread_mutex_unlock(&region_lock);
    return chunk;
}

void fa_region_chunk_free(void *chunk)
{
    /* Released pages read as zero, so the next user gets a clean header. */
    fa_os_release(chunk, FA_CHUNK_SIZE);
    size_t index = ((uintptr_t)chunk - fa_region.base) >> FA_CHUNK_SHIFT;
    pthread_mutex_lock(&region_lock);
    free_stack[free_count++] = (uint32_t)index;
    in_use--;
    pthread_mutex_unlock(&region_lock);
}

size_t fa_region_chunks_in_use(void) { return __atomic_load_n(&in_use, __ATOMIC_RELAXED); }
size_t fa_region_chunks_peak(void) { return __atomic_load_n(&peak, __ATOMIC_RELAXED); }

void fa_region_fork_prepare(void) { pthread_mutex_lock(&region_lock); }
void fa_region_fork_parent(void) { pthread_mutex_unlock(&region_lock); }
void fa_region_fork_child(void) { pthread_mutex_init(&region_lock, NULL); }

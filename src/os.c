/* Linux memory primitives: mmap, mprotect, madvise. Nothing else in the core calls them. */
#include "os.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

void *fa_os_map_table(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *fa_os_reserve(size_t size, size_t align)
{
    /* Over-reserve by align, then trim both ends so the range starts aligned. */
    size_t span = size + align;
    if (span < size)
        return NULL;
    char *raw = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = span - head - size;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((char *)start + size, tail);
    return (void *)start;
}

void fa_os_unreserve(void *p, size_t size) { munmap(p, size); }

size_t fa_os_address_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)limit.rlim_cur;
}

bool fa_os_commit(void *p, size_t size)
{
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

void fa_os_release(void *p, size_t size)
{
    int saved = errno; /* called from free(), which must keep errno */
    madvise(p, size, MADV_DONTNEED);
    errno = saved;
}

bool fa_os_protect(void *p, size_t size, bool accessible)
{
    return mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

bool fa_os_make_writable(void *p, size_t size, bool writable)
{
    uintptr_t page = fa_os_page_size();
    uintptr_t start = (uintptr_t)p & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + size + page - 1) & ~(page - 1);
    return mprotect((void *)start, end - start, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0;
}

size_t fa_os_page_size(void)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

size_t fa_os_memory_bytes(void)
{
    struct sysinfo info;
    if (sysinfo(&info) != 0)
        return SIZE_MAX;
    return ((size_t)info.totalram + info.totalswap) * info.mem_unit;
}

uint64_t fa_os_random64(void)
{
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) != sizeof value) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        value = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&ts;
    }
    return value | 1;
}

/* Linux primitives behind os.h: mmap, mprotect, madvise, limits, random bits, /proc and
 * report files. Nothing else in the core calls them. */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

void *fa_os_map_table(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static uintptr_t keep_out_start, keep_out_end; /* [0, 0) until the region asks */

void fa_os_keep_out(uintptr_t start, size_t size)
{
    __atomic_store_n(&keep_out_start, start, __ATOMIC_RELAXED);
    __atomic_store_n(&keep_out_end, start + size, __ATOMIC_RELEASE);
}

/* Below the kept-out range, where the next mapping that would land in it goes. */
static uintptr_t below_cursor;

/* A mapping of span bytes outside the kept-out range. The kernel fills the highest
 * gap that fits, which is the one the region left; such a mapping goes below the
 * range instead, at a cursor that moves down past whatever is mapped there (a
 * limit counts mapped bytes, not where they are). */
static FA_EVERY_PROCESS char *map_outside(size_t span, int prot, int flags)
{
    char *raw = mmap(NULL, span, prot, flags, -1, 0);
    uintptr_t end = __atomic_load_n(&keep_out_end, __ATOMIC_ACQUIRE);
    uintptr_t start = __atomic_load_n(&keep_out_start, __ATOMIC_RELAXED);
    if (raw == MAP_FAILED || (uintptr_t)raw + span <= start || (uintptr_t)raw >= end)
        return raw == MAP_FAILED ? NULL : raw;
    munmap(raw, span);
    size_t page = fa_os_page_size();
    uintptr_t cursor = __atomic_load_n(&below_cursor, __ATOMIC_RELAXED);
    if (!cursor || cursor > start)
        cursor = start;
    for (int tries = 0; tries < 256 && cursor > span; tries++) {
        uintptr_t hint = (cursor - span) & ~(uintptr_t)(page - 1);
        raw = mmap((void *)hint, span, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
        if (raw == (char *)hint) {
            __atomic_store_n(&below_cursor, hint, __ATOMIC_RELAXED); /* racy: only a hint */
            return raw;
        }
        if (raw != MAP_FAILED) /* a kernel that takes the address as a hint only */
            munmap(raw, span);
        else if (errno != EEXIST)
            return NULL; /* the limit, most likely */
        cursor = hint;
    }
    errno = ENOMEM;
    return NULL;
}

FA_EVERY_PROCESS void *fa_os_mmap_outside(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    if (addr || fd != -1 || (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) || !(flags & MAP_ANONYMOUS))
        return mmap(addr, length, prot, flags, fd, offset);
    char *p = map_outside(length, prot, flags);
    return p ? p : MAP_FAILED;
}

/* size bytes at an align boundary (a page multiple): mmap gives page-aligned
 * ranges, so over-map by align less a page, then unmap both ends. */
static void *map_aligned(size_t size, size_t align, int prot)
{
    size_t span = size + align - fa_os_page_size();
    if (span < size)
        return NULL;
    char *raw = map_outside(span, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (!raw)
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

FA_EVERY_PROCESS void *fa_os_reserve(size_t size, size_t align) { return map_aligned(size, align, PROT_NONE); }

void *fa_os_map_aligned(size_t size, size_t align) { return map_aligned(size, align, PROT_READ | PROT_WRITE); }

FA_EVERY_PROCESS void fa_os_unreserve(void *p, size_t size) { munmap(p, size); }

FA_EVERY_PROCESS size_t fa_os_address_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    return (size_t)limit.rlim_cur;
}

FA_EVERY_PROCESS bool fa_os_commit(void *p, size_t size)
{
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0;
}

bool fa_os_purge(void *p, size_t size, bool lazy)
{
    int saved = errno; /* called from free(), which must keep errno */
    bool done = madvise(p, size, lazy ? MADV_FREE : MADV_DONTNEED) == 0;
    errno = saved;
    return done;
}

void fa_os_release(void *p, size_t size) { (void)fa_os_purge(p, size, false); }

bool fa_os_protect(void *p, size_t size, bool accessible)
{
    return mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
}

FA_EVERY_PROCESS bool fa_os_make_writable(void *p, size_t size, bool writable)
{
    uintptr_t page = fa_os_page_size();
    uintptr_t start = (uintptr_t)p & ~(page - 1);
    uintptr_t end = ((uintptr_t)p + size + page - 1) & ~(page - 1);
    return mprotect((void *)start, end - start, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0;
}

FA_EVERY_PROCESS size_t fa_os_page_size(void)
{
    static FA_EVERY_PROCESS_DATA size_t page;
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

/* What pthread_atfork calls in glibc. pthread_atfork itself comes from
 * libc_nonshared.a, which the linker puts at the end of the library's text: a 64 KiB
 * window of code resident in every process for one call (config.h). */
extern int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso_handle);
extern void *__dso_handle;

FA_EVERY_PROCESS void fa_os_at_fork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    __register_atfork(prepare, parent, child, __dso_handle);
}

FA_EVERY_PROCESS uint64_t fa_os_random64(void)
{
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) != sizeof value) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        value = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&ts;
    }
    return value | 1;
}

/* ---- files ---- */

int fa_os_open_read(const char *path) { return open(path, O_RDONLY | O_CLOEXEC); }

FILE *fa_os_open_read_stream(const char *path)
{
    int fd = fa_os_open_read(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return f;
}

size_t fa_os_read_file(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    int fd = fa_os_open_read(path);
    if (fd < 0)
        return 0;
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return n;
}

size_t fa_os_mapped_bytes(void)
{
    char text[64];
    size_t n = fa_os_read_file("/proc/self/statm", text, sizeof text);
    size_t pages = 0;
    for (size_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; i++)
        pages = pages * 10 + (size_t)(text[i] - '0');
    return pages * fa_os_page_size();
}

int fa_os_open_directory(const char *path, bool nofollow)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
}

bool fa_os_make_directory(const char *path) { return mkdir(path, 0755) == 0; }

bool fa_os_make_directories(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return false;
        buf[i] = saved;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

fa_os_create_t fa_os_create_file(int dirfd, const char *name, bool exclusive, int *fd)
{
    *fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : 0), 0644);
    if (*fd < 0)
        return errno == ELOOP ? FA_OS_SYMLINK : errno == EEXIST ? FA_OS_EXISTS : FA_OS_FAILED;
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
        close(*fd);
        *fd = -1;
        return FA_OS_NOT_OURS;
    }
    if (!exclusive && ftruncate(*fd, 0) != 0) {
        close(*fd);
        *fd = -1;
        return FA_OS_FAILED;
    }
    return FA_OS_CREATED;
}

/* The only place that talks to the kernel: memory, limits, randomness, /proc and
 * the files reports and logs write. Every function returns NULL/false/-1 on failure
 * and leaves errno as the kernel set it. */
#ifndef FA_OS_H
#define FA_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Reserves size bytes of address space aligned to align, inaccessible and not
 * charged against commit. align must be a power of two and a page multiple. */
void *fa_os_reserve(size_t size, size_t align);
/* size bytes of zeroed, readable and writable memory for the library's own tables,
 * backed only where touched (not charged against commit), or NULL. Given back with
 * fa_os_unreserve. */
void *fa_os_map_table(size_t size);
/* size bytes of zeroed, readable and writable memory aligned to align (a power of
 * two, at least a page), not charged against commit: the backing heap's mappings. */
void *fa_os_map_aligned(size_t size, size_t align);
/* From now on fa_os_reserve and fa_os_map_aligned place nothing inside [start,
 * start + size): the region calls it before it gives part of its range back, so
 * that no heap block ever lies where its offsets would say frame or pool. */
void fa_os_keep_out(uintptr_t start, size_t size);
/* mmap for the backing heap's own calls (jemalloc's `mmap`, renamed): an anonymous
 * mapping without an address goes outside the kept-out range too. */
void *fa_os_mmap_outside(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
/* Gives [p, p+size) of a reservation or mapping back to the kernel: no longer mapped at all. */
void fa_os_unreserve(void *p, size_t size);
/* The address-space limit (RLIMIT_AS) in bytes, or SIZE_MAX when there is none. */
size_t fa_os_address_limit(void);
/* Makes [p, p+size) of a reservation readable and writable. */
bool fa_os_commit(void *p, size_t size);
/* Gives the pages of [p, p+size) back to the kernel; they read as zero afterwards. */
void fa_os_release(void *p, size_t size);
/* Gives the pages back now (they read as zero), or lazily: the kernel takes them
 * when it needs memory, and until then they keep their bytes. True on success;
 * errno is kept either way. */
bool fa_os_purge(void *p, size_t size, bool lazy);
/* Makes [p, p+size) inaccessible (debug modes) or accessible again. */
bool fa_os_protect(void *p, size_t size, bool accessible);
/* Makes the pages holding [p, p+size) of a loaded object's data writable, or
 * read-only again (another object's relocated pointers, see preload/system_callers.c). */
bool fa_os_make_writable(void *p, size_t size, bool writable);
size_t fa_os_page_size(void);
/* Physical memory plus swap: what the kernel's overcommit heuristic lets one
 * mapping reach (SIZE_MAX if unknown). */
size_t fa_os_memory_bytes(void);
/* ---- files (reports, the frame log, /proc) ---- */

/* Opens path for reading, close-on-exec: a descriptor, or -1. */
int fa_os_open_read(const char *path);
/* The same as a stdio stream (profiles, /proc/self/maps), or NULL. */
FILE *fa_os_open_read_stream(const char *path);
/* Reads up to cap - 1 bytes of a small file into buf, NUL-terminated; the length
 * (0 on any error). */
size_t fa_os_read_file(const char *path, char *buf, size_t cap);
/* The address space the process maps now (VmSize), or 0 if unknown. */
size_t fa_os_mapped_bytes(void);
/* Opens the directory path (without following a symlink in its place when
 * nofollow): a descriptor, or -1. */
int fa_os_open_directory(const char *path, bool nofollow);
/* Creates each missing directory of path (like mkdir -p); true when path is a
 * directory afterwards. */
bool fa_os_make_directories(const char *path);
/* Makes the new directory path; false with errno EEXIST when it exists. */
bool fa_os_make_directory(const char *path);

typedef enum {
    FA_OS_CREATED,        /* a descriptor, open for writing, of an empty file */
    FA_OS_EXISTS,         /* exclusive, and name exists */
    FA_OS_SYMLINK,        /* name is a symlink: never followed */
    FA_OS_NOT_OURS,       /* not a regular file, another owner, or hard-linked: left alone */
    FA_OS_FAILED,         /* any other error (errno says) */
} fa_os_create_t;

/* Creates name in the directory dirfd (AT_FDCWD: the working directory) for writing,
 * close-on-exec, mode 0644, for reports and logs that may be asked for with hostile
 * names: never through a symlink, and an existing file is emptied only when it is a
 * regular file of ours with one link. exclusive: it must not exist. */
fa_os_create_t fa_os_create_file(int dirfd, const char *name, bool exclusive, int *fd);

/* 64 random bits from the kernel (a clock-based mix if it cannot give them), never 0. */
uint64_t fa_os_random64(void);

/* pthread_atfork for this library: the handlers go when the library is unloaded. */
void fa_os_at_fork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

#endif

/* The only place that talks to the kernel about memory. Every function returns
 * NULL/false on failure and leaves errno as the kernel set it. */
#ifndef FA_OS_H
#define FA_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reserves size bytes of address space aligned to align, inaccessible and not
 * charged against commit. align must be a power of two and a page multiple. */
void *fa_os_reserve(size_t size, size_t align);
/* size bytes of zeroed, readable and writable memory for the library's own tables,
 * backed only where touched (not charged against commit), or NULL. Given back with
 * fa_os_unreserve. */
void *fa_os_map_table(size_t size);
/* Gives [p, p+size) of a reservation back to the kernel: no longer mapped at all. */
void fa_os_unreserve(void *p, size_t size);
/* The address-space limit (RLIMIT_AS) in bytes, or SIZE_MAX when there is none. */
size_t fa_os_address_limit(void);
/* Makes [p, p+size) of a reservation readable and writable. */
bool fa_os_commit(void *p, size_t size);
/* Gives the pages of [p, p+size) back to the kernel; they read as zero afterwards. */
void fa_os_release(void *p, size_t size);
/* Makes [p, p+size) inaccessible (debug modes) or accessible again. */
bool fa_os_protect(void *p, size_t size, bool accessible);
/* Makes the pages holding [p, p+size) of a loaded object's data writable, or
 * read-only again (another object's relocated pointers, see preload/system_callers.c). */
bool fa_os_make_writable(void *p, size_t size, bool writable);
size_t fa_os_page_size(void);
/* Physical memory plus swap: what the kernel's overcommit heuristic lets one
 * mapping reach (SIZE_MAX if unknown). */
size_t fa_os_memory_bytes(void);
/* 64 random bits from the kernel (a clock-based mix if it cannot give them), never 0. */
uint64_t fa_os_random64(void);

#endif

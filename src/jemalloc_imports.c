/* Two static helpers the backing heap (jemalloc) calls, defined here: libgcc's
 * __popcountdi2 and libc_nonshared.a's pthread_atfork, renamed in the archive to
 * fa_je_* (rename-jemalloc.sh). The linker would put their static copies at the
 * very end of the library's text: a 64 KiB window of code resident in every
 * process that starts jemalloc, for two small functions (FA_EVERY_PROCESS). And
 * jemalloc's fork handlers are kept for heap.c rather than registered (jemalloc.h). */
#include <sys/types.h>

#include "config.h"
#include "jemalloc.h"
#include "os.h"

int fa_je_popcountdi2(unsigned long x);
int fa_je_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* Without -mpopcnt, __builtin_popcountl would be a call to __popcountdi2 itself. */
FA_EVERY_PROCESS int fa_je_popcountdi2(unsigned long x)
{
    x -= (x >> 1) & 0x5555555555555555UL;
    x = (x & 0x3333333333333333UL) + ((x >> 2) & 0x3333333333333333UL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fUL;
    return (int)((x * 0x0101010101010101UL) >> 56);
}

/* jemalloc's own mappings (its default extent hooks, before framealloc's are set,
 * and its metadata) go where framealloc's do: never into the part of the region's
 * range it gave back under an address-space limit (fa_os_keep_out). */
void *fa_je_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
FA_EVERY_PROCESS void *fa_je_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    return fa_os_mmap_outside(addr, length, prot, flags, fd, offset);
}

fa_je_fork_handlers_t fa_je_fork_handlers;

FA_EVERY_PROCESS int fa_je_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    fa_je_fork_handlers = (fa_je_fork_handlers_t){prepare, parent, child};
    return 0;
}

/* Two static helpers the backing heap (jemalloc) calls, defined here: libgcc's
 * __popcountdi2 and libc_nonshared.a's pthread_atfork, renamed in the archive to
 * fa_je_* (rename-jemalloc.sh). The linker would put their static copies at the
 * very end of the library's text: a 64 KiB window of code resident in every
 * process that starts jemalloc, for two small functions (FA_EVERY_PROCESS). And
 * jemalloc's fork handlers are kept for heap.c rather than registered (jemalloc.h). */
#include "config.h"
#include "jemalloc.h"

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

fa_je_fork_handlers_t fa_je_fork_handlers;

FA_EVERY_PROCESS int fa_je_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    fa_je_fork_handlers = (fa_je_fork_handlers_t){prepare, parent, child};
    return 0;
}

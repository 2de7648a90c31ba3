/* Guard bytes and poison of recorded blocks (FRAMEALLOC_DEBUG=guards, poison). */
#include "guards.h"

#include <stdbool.h>
#include <string.h>

#include "debug.h"
#include "log.h"
#include "options.h"
#include "symbols.h"

static bool guarded(size_t body) { return (fa_settings.debug & FA_DEBUG_GUARDS) && body <= SIZE_MAX - FA_GUARD_BYTES; }

size_t fa_guards_block_size(size_t size)
{
    size_t body = size ? size : 1;
    return guarded(body) ? body + FA_GUARD_BYTES : size;
}

void fa_guards_write(void *p, size_t size)
{
    if (guarded(size))
        memset((char *)p + size, FA_GUARD_BYTE, FA_GUARD_BYTES);
}

size_t fa_guards_check(const void *p, size_t size)
{
    if (!(fa_settings.debug & FA_DEBUG_GUARDS))
        return FA_GUARD_BYTES;
    const unsigned char *guard = (const unsigned char *)p + size;
    size_t i = 0;
    while (i < FA_GUARD_BYTES && guard[i] == FA_GUARD_BYTE)
        i++;
    return i;
}

void fa_guards_report_overrun(const void *p, size_t size, size_t at, const uintptr_t *frames, uint32_t depth)
{
    fa_log("error: free(%p): the program wrote past the end of this %zu-byte block (guard byte %zu changed); "
           "the block was allocated:",
           p, size, at);
    fa_symbols_log_stack(frames, depth, 16);
    fa_fatal("heap overrun detected (FRAMEALLOC_DEBUG=guards)");
}

void fa_guards_poison(void *p, size_t size)
{
    if (fa_settings.debug & FA_DEBUG_POISON)
        memset(p, FA_POISON_BYTE, size);
}

/* FRAMEALLOC_DEBUG=guards and poison on recorded blocks: FA_GUARD_BYTES after each
 * block, written when it is allocated and checked when it is freed; freed blocks
 * filled with FA_POISON_BYTE. Every block is recorded in these modes, so records
 * know each block's requested size (its record's size, at least 1) and stack. */
#ifndef FA_GUARDS_H
#define FA_GUARDS_H

#include <stddef.h>
#include <stdint.h>

/* Bytes to allocate for a request of size bytes: with room for guard bytes after
 * its record's size when guards are on. */
size_t fa_guards_block_size(size_t size);
/* Writes the guard bytes after the first size bytes (the record's size) of p, a
 * block of fa_guards_block_size bytes. */
void fa_guards_write(void *p, size_t size);
/* The first guard byte after size bytes of p that changed, or FA_GUARD_BYTES when
 * none did or guards are off. */
size_t fa_guards_check(const void *p, size_t size);
/* Reports the overrun fa_guards_check found at guard byte at, with the block's
 * allocating stack, and ends the program. */
void fa_guards_report_overrun(const void *p, size_t size, size_t at, const uintptr_t *frames, uint32_t depth)
    __attribute__((noreturn, cold));
/* Fills a freed recorded block of size bytes with FA_POISON_BYTE when poison is on. */
void fa_guards_poison(void *p, size_t size);

#endif

/* FRAMEALLOC_DEBUG: the debug modes, as bits (fa_settings.debug, options.h). */
#ifndef FA_DEBUG_H
#define FA_DEBUG_H

enum {
    FA_DEBUG_POISON = 1,  /* freed and recycled memory is filled with FA_POISON_BYTE */
    FA_DEBUG_GUARDS = 2,  /* FA_GUARD_BYTES after every block, checked on free */
    FA_DEBUG_PROTECT = 4, /* recycled frame memory is inaccessible for FA_PROTECT_FRAMES frames */
};

#define FA_POISON_BYTE 0xdd
#define FA_GUARD_BYTE 0xab
#define FA_GUARD_BYTES 16
#define FA_PROTECT_FRAMES 4

#endif

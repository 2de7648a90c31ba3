/* Internal consistency checks, compiled in by level (FA_CHECK_LEVEL, set by the
 * build): 0 in the library that ships, 2 in the core the unit tests link. They check
 * the allocator's own structures; the checks of the program's misuse are always on
 * and are not these.
 *   1: statements about a few values, cheap enough for any path.
 *   2: whole-structure validators (functions returning true when all invariants of
 *      a structure hold), called at the points where the structure is settled. */
#ifndef FA_SELF_CHECK_H
#define FA_SELF_CHECK_H

#include "log.h"

#ifndef FA_CHECK_LEVEL
#define FA_CHECK_LEVEL 0
#endif

/* Aborts with the condition's text and place when cond is false (level compiled in). */
#define FA_CHECK(level, cond)                                                                   \
    do {                                                                                        \
        if (FA_CHECK_LEVEL >= (level) && !(cond))                                               \
            fa_fatal("internal check failed at %s:%d: %s", __FILE__, __LINE__, #cond);          \
    } while (0)

#endif

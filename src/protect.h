/* FRAMEALLOC_DEBUG=protect: frame blocks remember the stack that allocated them, and
 * a fault in a recycled (inaccessible) frame chunk is explained before the program
 * dies. The quarantine itself is in frame.c. */
#ifndef FA_PROTECT_H
#define FA_PROTECT_H

#include <stddef.h>

#include "records.h"
#include "thread.h"

/* Maps the site table and installs the SIGSEGV handler (chaining to any previous
 * one for faults that are not framealloc's). Called from the constructor. */
void fa_protect_start(void);

/* Allocates a frame block through route and notes its allocating stack. */
void *fa_protect_alloc(fa_thread_t *t, size_t size, size_t alignment, fa_route_fn route);

#endif

/* FRAMEALLOC_DEBUG=protect: frame blocks remember the stack that allocated them, and
 * a fault in a recycled (inaccessible) frame chunk is explained before the program
 * dies. The quarantine itself is in frame.c. An observer: alloc.c allocates the
 * frame block and then tells protect about it. */
#ifndef FA_PROTECT_H
#define FA_PROTECT_H

/* Maps the site table and installs the SIGSEGV handler (chaining to any previous
 * one for faults that are not framealloc's). Called from the constructor. */
void fa_protect_start(void);

/* Notes the allocating stack of p, a block just allocated in a frame scope (NULL,
 * or a block outside the frame arena, is ignored). */
void fa_protect_note_block(void *p);

#endif

/* The library's life in order (process.c): start-up, thread attach and exit, fork,
 * process exit. */
#ifndef FA_PROCESS_H
#define FA_PROCESS_H

#include <stdbool.h>

#include "thread.h"

/* Process-wide set-up run once: options, region, heap, arenas, thread key, fork
 * handlers. Any thread's first slow path runs it; so does the preload's constructor. */
void fa_init(void);
int fa_initialized(void);
/* Re-reads the settings if init ran before the environment was set up. */
void fa_init_late(void);

/* Attaches the calling thread if it is fresh (initialising the library if needed).
 * Returns false when the thread cannot use arenas (dead, or inside init). */
bool fa_thread_attach(fa_thread_t *t);

/* After init, outside any allocation: records, learning, protect and the report's
 * signal start (the preload's constructor). */
void fa_process_start_observers(void);
/* Process exit: the FRAMEALLOC_STATS counters, the records report, learning's report
 * and profile (the preload's destructor). */
void fa_process_stop(void);

/* Gives t's cached empty pool chunks and spare frame chunks back to the region
 * (malloc_trim, and an arena that found the region exhausted). */
void fa_process_release_cached(fa_thread_t *t);

#endif

/* See system_callers.c: libc's, the loader's and framealloc's own libraries' malloc
 * calls never use a frame arena. */
#ifndef FA_PRELOAD_SYSTEM_CALLERS_H
#define FA_PRELOAD_SYSTEM_CALLERS_H

/* Rewrites those objects' pointers to our malloc, calloc and realloc (once, at start). */
void fa_preload_redirect_system_callers(void);

#endif

/* See system_callers.c: libc's, the loader's and framealloc's own libraries' malloc
 * calls never use a frame arena. */
#ifndef FA_PRELOAD_SYSTEM_CALLERS_H
#define FA_PRELOAD_SYSTEM_CALLERS_H

#include <stdbool.h>

/* Rewrites the pointers to our malloc, calloc and realloc held by the dynamic
 * loader and by the libraries framealloc uses itself (libunwind, libdw and theirs)
 * that are loaded now, and with libc true by libc too. */
void fa_preload_redirect_system_callers(bool libc);

#endif

/* The counters behind fa_stats_get (public API) and the exit summary. */
#ifndef FA_STATS_H
#define FA_STATS_H

#include <stddef.h>

#include "config.h"
#include "framealloc.h"

/* Fills min(size, sizeof(fa_stats)) bytes of out; returns 0. */
int fa_stats_fill(fa_stats *out, size_t size);
FA_API int fa_stats_get(fa_stats *out);
/* Prints the counters on fd (FRAMEALLOC_STATS=1 at exit). */
void fa_stats_print(int fd);

#endif

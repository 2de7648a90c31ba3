/* The public fa_* API (include/framealloc.h) as the library implements it. */
#ifndef FA_API_H
#define FA_API_H

#include <stddef.h>

#include "framealloc.h"

#define FA_API __attribute__((visibility("default")))

FA_API void fa_frame_begin(void);
FA_API void fa_frame_end(void);
FA_API void fa_scope_push(int intent);
FA_API void fa_scope_pop(void);
FA_API void fa_tag_push(const char *tag);
FA_API void fa_tag_pop(void);
/* Fills min(size, sizeof(fa_stats)) bytes of out; returns 0. */
int fa_stats_fill(fa_stats *out, size_t size);
FA_API int fa_stats_get(fa_stats *out);
/* Writes the records report into dir (FRAMEALLOC_REPORT when dir is NULL); 0 on success. */
FA_API int fa_report(const char *dir);
FA_API void fa_budget_set(const char *tag, uint64_t bytes);
FA_API int fa_active(void);
/* Prints the counters on fd (FRAMEALLOC_STATS=1 at exit). */
void fa_stats_print(int fd);

extern FA_API const fa_api fa_api_v1;

#endif

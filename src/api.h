/* The public fa_* API (include/framealloc.h) as the library implements it. */
#ifndef FA_API_H
#define FA_API_H

#include <stddef.h>

#include "config.h"
#include "framealloc.h"

FA_API void fa_frame_begin(void);
FA_API void fa_frame_end(void);
FA_API void fa_scope_push(int intent);
FA_API void fa_scope_pop(void);
FA_API void fa_tag_push(const char *tag);
FA_API void fa_tag_pop(void);
FA_API void fa_budget_set(const char *tag, uint64_t bytes);
FA_API int fa_active(void);

extern FA_API const fa_api fa_api_v1;

#endif

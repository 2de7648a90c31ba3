/* FRAMEALLOC_* settings: read once from the environment without allocating. */
#ifndef FA_OPTIONS_H
#define FA_OPTIONS_H

#include <stdbool.h>

typedef enum {
#define FA_OPTION(id, name, kind, def, min, max, choices, doc) FA_OPT_##id,
#include "options.def"
#undef FA_OPTION
    FA_OPT_COUNT
} fa_option_id_t;

extern long long fa_option_values[FA_OPT_COUNT];

static inline long long fa_option(fa_option_id_t id) { return fa_option_values[id]; }

/* A STRING setting's text, or NULL when it is not set (points into environ). */
const char *fa_option_string(fa_option_id_t id);

/* Reads the environment (safe to call more than once; later calls re-read).
 * Bad values and unknown FRAMEALLOC_* names print one line each and keep the default. */
void fa_options_load(void);
/* Prints the table (name, default, range, doc) on fd. */
void fa_options_print(int fd);

#endif

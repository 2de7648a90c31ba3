/* FRAMEALLOC_* settings: read once from the environment without allocating. */
#ifndef FA_OPTIONS_H
#define FA_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

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

/* The choices of FRAMEALLOC_RECORDS and FRAMEALLOC_LEARN (the table's indices). */
enum { FA_RECORDS_OFF, FA_RECORDS_SAMPLE, FA_RECORDS_FULL };
enum { FA_LEARN_OFF, FA_LEARN_OBSERVE, FA_LEARN_ROUTE };

/* The settings in force, typed: filled from the table by fa_options_load (the
 * defaults live only in options.def), with the values derived from them computed
 * there and nowhere else. Read-only for everyone else. */
typedef struct {
    bool help, stats;
    size_t region_bytes;
    bool frame_strict;
    uint64_t frames_in_flight;
    size_t frame_max;
    uint32_t frame_retain;
    size_t pool_max;
    uint64_t pool_decay_ms;
    int records;                 /* FA_RECORDS_*: FULL when guards or poison need every block */
    bool records_asked;          /* FRAMEALLOC_RECORDS itself was sample or full */
    uint64_t records_rate_bytes;
    int records_depth;
    const char *report;          /* NULL when unset */
    int report_signal;
    unsigned debug;              /* FA_DEBUG_* bits */
    const char *framelog;
    int autoframe;               /* 0, 1, 2 (tick) */
    int learn;                   /* FA_LEARN_*: OBSERVE when route was asked with strict frames */
    uint64_t learn_rate, learn_warmup;
    const char *learn_profile;
    /* Derived: freeing a thread's newest frame block gives its bytes back at once
     * (not with frames in flight, whose memory must outlive its frame, nor under
     * protect, where it would hide a use after free). */
    bool frame_rewind;
} fa_settings_t;

extern fa_settings_t fa_settings FA_HIDDEN;

/* Reads the environment and fills fa_settings (safe to call more than once; later
 * calls re-read). Bad values and unknown FRAMEALLOC_* names print one line each and
 * keep the default. */
void fa_options_load(void);
/* Prints the table (name, default, range, doc) on fd. */
void fa_options_print(int fd);

#endif

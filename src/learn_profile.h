/* The learned profile (FRAMEALLOC_LEARN_PROFILE) and the modules its sites live in
 * (see learn_profile.c). Below learn.c: it hands out addresses, learn.c routes them. */
#ifndef FA_LEARN_PROFILE_H
#define FA_LEARN_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* The module holding addr: its key (the path the loader knows it by, "-" for the
 * executable) and load base; false when no module holds it. */
bool fa_learn_module_of(uintptr_t addr, const char **key, uintptr_t *base);

/* Start-up: this program's lines of the profile at path become pending entries. */
void fa_learn_profile_read(const char *path);

extern _Atomic uint32_t fa_learn_profile_pending FA_HIDDEN;

/* Up to cap addresses of pending entries whose modules are loaded now, into out; each
 * entry is handed out once. Returns 0 at once when no module was added since the last
 * complete look (the loader's dlpi_adds is unchanged) or another thread is looking. */
size_t fa_learn_profile_resolve(uintptr_t *out, size_t cap);

typedef struct {
    uint32_t entries;       /* this program's lines read at start */
    uint32_t resolved_late; /* resolved after start (modules dlopen'ed later) */
    uint32_t pending;       /* still waiting for their modules */
} fa_learn_profile_counts_t;

void fa_learn_profile_counts(fa_learn_profile_counts_t *counts);

/* Exit: the entries still pending as profile lines of program, so that a run which
 * did not load their modules keeps them for the next one. */
void fa_learn_profile_write_pending(FILE *f, const char *program);

/* In a forked child: a look another thread had under way is over. */
void fa_learn_profile_fork_child(void);

#endif

/* Ending frames for autoframe's hooks: finds the program's fa_api_v1 table
 * (libframealloc.so, or libframealloc_probe.so under other allocators) and calls
 * its frame_end and frame_begin at the end of the outermost present or tick. */
#define _GNU_SOURCE
#define FRAMEALLOC_BUILDING_LIBRARY /* framealloc.h: the fa_api type only */
#include "frame_end.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "framealloc.h"

fa_autoframe_mode_t fa_autoframe_mode(void)
{
    const char *v = getenv("FRAMEALLOC_AUTOFRAME");
    if (!v)
        return FA_AUTOFRAME_OFF;
    if (strcmp(v, "1") == 0)
        return FA_AUTOFRAME_PRESENT;
    if (strcmp(v, "tick") == 0)
        return FA_AUTOFRAME_TICK;
    return FA_AUTOFRAME_OFF;
}

void fa_autoframe_say(const char *msg)
{
    ssize_t unused = write(2, msg, strlen(msg));
    (void)unused;
}

static __thread unsigned depth;
static const fa_api *api; /* atomic; valid once api_state is API_FOUND */
static int api_state;     /* atomic */
enum { API_UNKNOWN, API_FOUND, API_NONE };

/* fa_api_v1 of the main namespace: libframealloc.so or libframealloc_probe.so,
 * whichever the program has (the first in its search order, as the header finds it).
 * The audit module lives in its own link namespace, where dlsym(RTLD_DEFAULT)
 * would search that namespace: a handle of the main program works from both. */
static const fa_api *main_api(void)
{
    int state = __atomic_load_n(&api_state, __ATOMIC_ACQUIRE);
    if (state == API_FOUND)
        return __atomic_load_n(&api, __ATOMIC_RELAXED);
    if (state == API_NONE)
        return NULL;
    /* First frame end. A NULL file name gives the main program, whose scope is the
     * global one: preloads, its libraries, and RTLD_GLOBAL dlopens. */
    const fa_api *found = NULL;
    void *main_program = dlmopen(LM_ID_BASE, NULL, RTLD_LAZY | RTLD_NOLOAD);
    if (main_program) {
        found = dlsym(main_program, "fa_api_v1");
        dlclose(main_program);
    }
    if (found && found->version == 1) {
        __atomic_store_n(&api, found, __ATOMIC_RELAXED);
        __atomic_store_n(&api_state, API_FOUND, __ATOMIC_RELEASE);
        return found;
    }
    if (__atomic_exchange_n(&api_state, API_NONE, __ATOMIC_ACQ_REL) != API_NONE)
        fa_autoframe_say("framealloc autoframe: FRAMEALLOC_AUTOFRAME is set but the program has no "
                         "fa_api_v1: preload libframealloc.so or libframealloc_probe.so; no frames end\n");
    return NULL;
}

void fa_autoframe_enter(void) { depth++; }

/* The frame ends as the outermost call returns; the next one starts at once (its
 * time runs from here to the end of the next present or tick). */
void fa_autoframe_leave(int ends_frame)
{
    if (--depth > 0 || !ends_frame)
        return;
    const fa_api *a = main_api();
    if (a) {
        a->frame_end();
        a->frame_begin();
    }
}

/* A stand-in for libGL in the autoframe tests: the two GLX entry points games and
 * loaders use, and a count of the swaps that really ran. */
#include <string.h>

typedef void (*any_fn)(void);

static int swaps;

void glXSwapBuffers(void *display, unsigned long drawable)
{
    (void)display, (void)drawable;
    __atomic_add_fetch(&swaps, 1, __ATOMIC_RELAXED);
}

any_fn glXGetProcAddressARB(const unsigned char *name)
{
    if (strcmp((const char *)name, "glXSwapBuffers") == 0)
        return (any_fn)glXSwapBuffers;
    return NULL;
}

int fakegl_swaps(void) { return __atomic_load_n(&swaps, __ATOMIC_RELAXED); }

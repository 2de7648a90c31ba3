/* A stand-in for libGL in the autoframe tests: the two GLX entry points games and
 * loaders use, and a count of the swaps that really ran. fakegl_on_swap makes each
 * swap call a function, as GL on Vulkan (Mesa's zink) presents with vkQueuePresentKHR. */
#include <string.h>

typedef void (*any_fn)(void);

static int swaps;
static void (*on_swap)(void);

void glXSwapBuffers(void *display, unsigned long drawable)
{
    (void)display, (void)drawable;
    if (on_swap)
        on_swap();
    __atomic_add_fetch(&swaps, 1, __ATOMIC_RELAXED);
}

void fakegl_on_swap(void (*fn)(void)) { on_swap = fn; }

any_fn glXGetProcAddressARB(const unsigned char *name)
{
    if (strcmp((const char *)name, "glXSwapBuffers") == 0)
        return (any_fn)glXSwapBuffers;
    return NULL;
}

int fakegl_swaps(void) { return __atomic_load_n(&swaps, __ATOMIC_RELAXED); }

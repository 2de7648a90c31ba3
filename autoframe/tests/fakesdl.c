/* A stand-in for SDL in the autoframe tests: SDL_GL_SwapWindow fetches
 * glXSwapBuffers through glXGetProcAddressARB, as SDL's X11 backend does, so a
 * present runs inside a present and must still end only one frame. */
#include <stddef.h>

typedef void (*any_fn)(void);
typedef void (*swap_fn)(void *display, unsigned long drawable);

any_fn glXGetProcAddressARB(const unsigned char *name);

void SDL_GL_SwapWindow(void *window)
{
    static swap_fn swap;
    (void)window;
    if (!swap)
        swap = (swap_fn)glXGetProcAddressARB((const unsigned char *)"glXSwapBuffers");
    swap(NULL, 0);
}

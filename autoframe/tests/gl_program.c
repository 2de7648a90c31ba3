/* The autoframe tests' game: presents N times through the fake GL (and fake SDL)
 * libraries by one route, then prints what happened:
 *   checksum: swaps N          (the same under every allocator)
 *   frames: F                  (fa_stats_get; -1 without libframealloc)
 *   audit module loaded: yes|no
 *
 * af_gl_dlopen ROUTE N FAKEGL_PATH   ROUTE: dlsym, getproc, thread
 * af_gl_linked ROUTE N               ROUTE: plt, nested, nested-thread
 *   dlsym:   dlsym(handle, "glXSwapBuffers")
 *   getproc: glXGetProcAddressARB (itself from dlsym) for "glXSwapBuffers"
 *   thread:  as dlsym, but the presents run on a second thread
 *   plt:     glXSwapBuffers called directly (a PLT binding)
 *   nested:  SDL_GL_SwapWindow, which calls glXSwapBuffers itself
 *   nested-thread: as nested, on a second thread */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framealloc.h"

#include "loaded.h"

typedef void (*any_fn)(void);
typedef void (*swap_fn)(void *display, unsigned long drawable);

static int count;
static int (*swaps_done)(void);

#ifdef LINKED
void glXSwapBuffers(void *display, unsigned long drawable);
void SDL_GL_SwapWindow(void *window);
int fakegl_swaps(void);
static int nested; /* SDL_GL_SwapWindow, else glXSwapBuffers */
#else
static swap_fn swap; /* the pointer the route gave */
#endif

static void present(void)
{
#ifdef LINKED
    /* Direct calls: taking the functions' addresses would bind them through the
     * GOT instead of the PLT, which is not what these routes test. */
    if (nested)
        SDL_GL_SwapWindow(NULL);
    else
        glXSwapBuffers(NULL, 0);
#else
    swap(NULL, 0);
#endif
}

static void *present_loop(void *unused)
{
    (void)unused;
    for (int i = 0; i < count; i++) {
        free(malloc(100)); /* something for the allocator between presents */
        present();
    }
    return NULL;
}

/* Sets up the route's function; 0 for an unknown route. */
static int set_up(const char *route, const char *fakegl_path)
{
#ifdef LINKED
    (void)fakegl_path;
    swaps_done = fakegl_swaps;
    nested = strncmp(route, "nested", 6) == 0;
    return nested || strcmp(route, "plt") == 0;
#else
    void *gl = fakegl_path ? dlopen(fakegl_path, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!gl) {
        fprintf(stderr, "cannot load the fake GL: %s\n", fakegl_path ? dlerror() : "no path given");
        return 0;
    }
    swaps_done = (int (*)(void))dlsym(gl, "fakegl_swaps");
    if (strcmp(route, "dlsym") == 0 || strcmp(route, "thread") == 0) {
        swap = (swap_fn)dlsym(gl, "glXSwapBuffers");
    } else if (strcmp(route, "getproc") == 0) {
        any_fn (*getproc)(const unsigned char *) =
            (any_fn(*)(const unsigned char *))dlsym(gl, "glXGetProcAddressARB");
        swap = (swap_fn)getproc((const unsigned char *)"glXSwapBuffers");
    }
    return swap != NULL;
#endif
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *route = argv[1];
    count = atoi(argv[2]);
    if (!set_up(route, argc > 3 ? argv[3] : NULL)) {
        fprintf(stderr, "route %s: cannot set up\n", route);
        return 2;
    }
    if (strstr(route, "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, present_loop, NULL);
        pthread_join(t, NULL);
    } else {
        present_loop(NULL);
    }
    fa_stats stats;
    int have_stats = fa_stats_get(&stats) == 0;
    printf("checksum: swaps %d\n", swaps_done());
    printf("frames: %lld\n", have_stats ? (long long)stats.frame : -1LL);
    printf("audit module loaded: %s\n", loaded("libframealloc_autoframe.so") ? "yes" : "no");
    return 0;
}

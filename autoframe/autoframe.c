/* libframealloc_autoframe.so: frame boundaries from a game's present calls.
 *
 *   FRAMEALLOC_AUTOFRAME=1 LD_AUDIT=libframealloc_autoframe.so \
 *       LD_PRELOAD=libframealloc.so ./game      (or libframealloc_probe.so)
 *
 * An unmodified game calls no frame markers, but it presents every frame. This is
 * an rtld-audit module (man 7 rtld-audit): the dynamic loader asks it about every
 * symbol binding in the process (la_symbind64): PLT bindings, lazy or bind-now
 * (bind-now since glibc 2.35), and dlsym() lookups alike (the tests here check each
 * route). The bindings of the present functions below get wrappers that call the
 * real function, then fa_frame_end() and fa_frame_begin(). Loaders that fetch
 * functions through glXGetProcAddress(ARB), eglGetProcAddress or
 * SDL_GL_GetProcAddress get wrapped versions of those too, which hand out our
 * present wrappers for present names. Not seen: references through the GOT alone
 * (-fno-plt calls, a present function's address stored by the program); a game
 * that presents that way needs the header.
 *
 * Presents nest (SDL_GL_SwapWindow calls glXSwapBuffers, which SDL fetched through
 * glXGetProcAddressARB): a per-thread depth makes only the outermost one end a frame.
 *
 * The module lives in its own link namespace with its own copy of libc, so
 * dlsym(RTLD_DEFAULT) here would search that namespace; fa_api_v1 (libframealloc
 * or the probe) is found through a handle of the main program instead.
 *
 * Without FRAMEALLOC_AUTOFRAME=1, la_version returns 0 and the loader drops the
 * module: no symbol binding is audited or changed.
 *
 * Any LD_AUDIT makes glibc size the static TLS block before it loads the preloaded
 * libraries, whose initial-exec TLS must then fit in the surplus: run with
 * GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384 (framealloc-run and
 * framealloc-compare --autoframe set it), or loading libframealloc.so fails with
 * "cannot allocate memory in static TLS block". */
#define _GNU_SOURCE
#define FRAMEALLOC_BUILDING_LIBRARY /* framealloc.h: the fa_api type only */
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "framealloc.h"

#define EXPORT __attribute__((visibility("default")))

/* The functions we wrap. PRESENT: ends a frame. GETPROC: returns function pointers
 * by name, so a loader can reach a present function without a binding we see. */
enum hook_id {
    GLX_SWAP,            /* void glXSwapBuffers(Display *, GLXDrawable) */
    EGL_SWAP,            /* EGLBoolean eglSwapBuffers(EGLDisplay, EGLSurface) */
    SDL_GL_SWAP,         /* void SDL_GL_SwapWindow(SDL_Window *)            SDL 2 */
    SDL_PRESENT,         /* void SDL_RenderPresent(SDL_Renderer *)          SDL 2 */
    SDL_SURFACE,         /* int SDL_UpdateWindowSurface(SDL_Window *)       SDL 2 */
    SDL_SURFACE_RECTS,   /* int SDL_UpdateWindowSurfaceRects(SDL_Window *, const SDL_Rect *, int) */
    SDL1_GL_SWAP,        /* void SDL_GL_SwapBuffers(void)                   SDL 1.2 */
    SDL1_FLIP,           /* int SDL_Flip(SDL_Surface *)                     SDL 1.2 */
    GLX_GETPROC,         /* void (*glXGetProcAddress(const GLubyte *))(void) */
    GLX_GETPROC_ARB,     /* void (*glXGetProcAddressARB(const GLubyte *))(void) */
    EGL_GETPROC,         /* void (*eglGetProcAddress(const char *))(void) */
    SDL_GETPROC,         /* void *SDL_GL_GetProcAddress(const char *)       SDL 1.2 and 2 */
    HOOKS
};

static const char *const hook_names[HOOKS] = {
    [GLX_SWAP] = "glXSwapBuffers",
    [EGL_SWAP] = "eglSwapBuffers",
    [SDL_GL_SWAP] = "SDL_GL_SwapWindow",
    [SDL_PRESENT] = "SDL_RenderPresent",
    [SDL_SURFACE] = "SDL_UpdateWindowSurface",
    [SDL_SURFACE_RECTS] = "SDL_UpdateWindowSurfaceRects",
    [SDL1_GL_SWAP] = "SDL_GL_SwapBuffers",
    [SDL1_FLIP] = "SDL_Flip",
    [GLX_GETPROC] = "glXGetProcAddress",
    [GLX_GETPROC_ARB] = "glXGetProcAddressARB",
    [EGL_GETPROC] = "eglGetProcAddress",
    [SDL_GETPROC] = "SDL_GL_GetProcAddress",
};

/* A name can have several definitions (glvnd's libGL.so.1 and libGLX.so.0 both
 * define glXSwapBuffers), each needing a wrapper that knows which one to call:
 * SLOTS wrappers per name, each tied to the real function it was first handed. */
#define SLOTS 4
static void *real_fn[HOOKS][SLOTS]; /* atomic; NULL: slot free */

static void *real_of(enum hook_id id, int slot)
{
    return __atomic_load_n(&real_fn[id][slot], __ATOMIC_ACQUIRE);
}

/* ---- frames ---- */

static __thread unsigned present_depth;
static const fa_api *api;  /* atomic; valid once api_state is API_FOUND */
static int api_state;      /* atomic */
enum { API_UNKNOWN, API_FOUND, API_NONE };

static void say(const char *msg)
{
    ssize_t unused = write(2, msg, strlen(msg));
    (void)unused;
}

/* fa_api_v1 of the main namespace: libframealloc.so or libframealloc_probe.so,
 * whichever the program has (the first in its search order, as the header finds it). */
static const fa_api *main_api(void)
{
    int state = __atomic_load_n(&api_state, __ATOMIC_ACQUIRE);
    if (state == API_FOUND)
        return __atomic_load_n(&api, __ATOMIC_RELAXED);
    if (state == API_NONE)
        return NULL;
    /* First present. A NULL file name gives the main program, whose scope is the
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
        say("framealloc autoframe: FRAMEALLOC_AUTOFRAME=1 but no fa_api_v1 in the program: preload "
            "libframealloc.so or libframealloc_probe.so; presents are not counted\n");
    return NULL;
}

static void present_enter(void) { present_depth++; }

/* The end of the outermost present on this thread ends the frame; the next one
 * starts at once (its time runs from here to the end of the next present). */
static void present_leave(void)
{
    if (--present_depth > 0)
        return;
    const fa_api *a = main_api();
    if (a) {
        a->frame_end();
        a->frame_begin();
    }
}

/* ---- wrappers: SLOTS per hook, each calling its slot's real function ---- */

#define FOR_SLOTS(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__)
#define SLOT_LIST(fn) {(void *)fn##_0, (void *)fn##_1, (void *)fn##_2, (void *)fn##_3}

/* A present function returning void: PRESENT_VOID(slot, wrapper, id, (params), (args)). */
#define PRESENT_VOID(k, fn, id, params, args)                                                 \
    static void fn##_##k params                                                              \
    {                                                                                         \
        void(*real) params = (void(*) params)real_of(id, k);                                 \
        present_enter();                                                                      \
        real args;                                                                            \
        present_leave();                                                                      \
    }

/* A present function returning a value. */
#define PRESENT_RET(k, fn, id, ret, params, args)                                             \
    static ret fn##_##k params                                                               \
    {                                                                                         \
        ret(*real) params = (ret(*) params)real_of(id, k);                                   \
        present_enter();                                                                      \
        ret result = real args;                                                               \
        present_leave();                                                                      \
        return result;                                                                        \
    }

static void *redirect(const char *name, void *fn);

/* A get-proc-address function: the real answer, with present functions wrapped. */
#define GETPROC(k, fn, id, ret, arg_type)                                                     \
    static ret fn##_##k(arg_type name)                                                       \
    {                                                                                         \
        ret(*real)(arg_type) = (ret(*)(arg_type))real_of(id, k);                             \
        return (ret)redirect((const char *)name, (void *)real(name));                        \
    }

typedef void (*any_fn)(void);

FOR_SLOTS(PRESENT_VOID, glx_swap, GLX_SWAP, (void *display, unsigned long drawable), (display, drawable))
FOR_SLOTS(PRESENT_RET, egl_swap, EGL_SWAP, unsigned int, (void *display, void *surface), (display, surface))
FOR_SLOTS(PRESENT_VOID, sdl_gl_swap, SDL_GL_SWAP, (void *window), (window))
FOR_SLOTS(PRESENT_VOID, sdl_present, SDL_PRESENT, (void *renderer), (renderer))
FOR_SLOTS(PRESENT_RET, sdl_surface, SDL_SURFACE, int, (void *window), (window))
FOR_SLOTS(PRESENT_RET, sdl_surface_rects, SDL_SURFACE_RECTS, int, (void *window, const void *rects, int n),
          (window, rects, n))
FOR_SLOTS(PRESENT_VOID, sdl1_gl_swap, SDL1_GL_SWAP, (void), ())
FOR_SLOTS(PRESENT_RET, sdl1_flip, SDL1_FLIP, int, (void *screen), (screen))
FOR_SLOTS(GETPROC, glx_getproc, GLX_GETPROC, any_fn, const unsigned char *)
FOR_SLOTS(GETPROC, glx_getproc_arb, GLX_GETPROC_ARB, any_fn, const unsigned char *)
FOR_SLOTS(GETPROC, egl_getproc, EGL_GETPROC, any_fn, const char *)
FOR_SLOTS(GETPROC, sdl_getproc, SDL_GETPROC, void *, const char *)

static void *const wrappers[HOOKS][SLOTS] = {
    [GLX_SWAP] = SLOT_LIST(glx_swap),
    [EGL_SWAP] = SLOT_LIST(egl_swap),
    [SDL_GL_SWAP] = SLOT_LIST(sdl_gl_swap),
    [SDL_PRESENT] = SLOT_LIST(sdl_present),
    [SDL_SURFACE] = SLOT_LIST(sdl_surface),
    [SDL_SURFACE_RECTS] = SLOT_LIST(sdl_surface_rects),
    [SDL1_GL_SWAP] = SLOT_LIST(sdl1_gl_swap),
    [SDL1_FLIP] = SLOT_LIST(sdl1_flip),
    [GLX_GETPROC] = SLOT_LIST(glx_getproc),
    [GLX_GETPROC_ARB] = SLOT_LIST(glx_getproc_arb),
    [EGL_GETPROC] = SLOT_LIST(egl_getproc),
    [SDL_GETPROC] = SLOT_LIST(sdl_getproc),
};

static int hook_of(const char *name)
{
    /* Called for every binding in the process: most names fail the first test. */
    if (name[0] != 'g' && name[0] != 'e' && name[0] != 'S')
        return -1;
    for (int id = 0; id < HOOKS; id++)
        if (strcmp(name, hook_names[id]) == 0)
            return id;
    return -1;
}

/* What a binding of (or a lookup of) name, resolved to fn, should get instead. */
static void *redirect(const char *name, void *fn)
{
    int id = name && fn ? hook_of(name) : -1;
    if (id < 0)
        return fn;
    for (int k = 0; k < SLOTS; k++)
        if (fn == wrappers[id][k])
            return fn; /* already ours (a get-proc-address answered with a wrapper) */
    for (int k = 0; k < SLOTS; k++) {
        void *expected = NULL;
        if (__atomic_compare_exchange_n(&real_fn[id][k], &expected, fn, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE) || expected == fn)
            return wrappers[id][k];
    }
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        say("framealloc autoframe: too many definitions of one present function; "
            "calls to the extra ones do not end frames\n");
    return fn;
}

/* ---- the rtld-audit interface ---- */

static int enabled(void)
{
    const char *v = getenv("FRAMEALLOC_AUTOFRAME");
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0 ||
                 strcasecmp(v, "true") == 0);
}

EXPORT unsigned int la_version(unsigned int version)
{
    if (!enabled())
        return 0; /* the loader unloads us and carries on without auditing */
    return version < LAV_CURRENT ? version : LAV_CURRENT;
}

EXPORT unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
    (void)map, (void)lmid, (void)cookie;
    /* la_symbind runs for a binding only when the object that refers to the symbol
     * has BINDFROM and the one that defines it has BINDTO (for dlsym, either). We
     * cannot know in advance which objects call or define a present function. */
    return LA_FLG_BINDTO | LA_FLG_BINDFROM;
}

/* Defining no la_pltenter/la_pltexit matters: with them the loader would route
 * every PLT call in the process through its profiling trampoline; without them,
 * PLT slots get the (possibly redirected) address and calls cost what they did. */
EXPORT uintptr_t la_symbind64(Elf64_Sym *sym, unsigned int ndx, uintptr_t *refcook, uintptr_t *defcook,
                              unsigned int *flags, const char *symname)
{
    (void)ndx, (void)refcook, (void)defcook, (void)flags;
    return (uintptr_t)redirect(symname, (void *)sym->st_value);
}

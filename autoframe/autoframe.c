/* libframealloc_autoframe.so: frame boundaries from a game's present calls, or
 * from a headless loop's sleeps.
 *
 *   FRAMEALLOC_AUTOFRAME=1 LD_AUDIT=libframealloc_autoframe.so \
 *       LD_PRELOAD=libframealloc.so ./game      (or libframealloc_probe.so)
 *
 * An unmodified game calls no frame markers, but it presents every frame. This is
 * an rtld-audit module (man 7 rtld-audit): the dynamic loader asks it about every
 * symbol binding in the process (la_symbind64): PLT bindings, lazy or bind-now
 * (bind-now since glibc 2.35), and dlsym() lookups alike (the tests here check each
 * route). The bindings of the present functions below get wrappers that call the
 * real function, then end the frame (frame_end.c). Loaders that fetch functions
 * through glXGetProcAddress(ARB), eglGetProcAddress or SDL_GL_GetProcAddress get
 * wrapped versions of those too, which hand out our present wrappers for present
 * names. Vulkan presents are the Vulkan layer's job (vulkan/layer.c). Not seen:
 * references through the GOT alone (-fno-plt calls, a present function's address
 * stored by the program); a game that presents that way needs the header.
 *
 * With FRAMEALLOC_AUTOFRAME=tick, a server or simulation with no presents gets a
 * frame at each wake-up of its main thread from a sleep or a wait with a timeout
 * (nanosleep, clock_nanosleep, usleep, sleep, SDL_Delay, poll, ppoll, epoll_wait,
 * epoll_pwait, select, pselect): the same wrapping, applied to those instead.
 *
 * Calls nest (SDL_GL_SwapWindow calls glXSwapBuffers, which SDL fetched through
 * glXGetProcAddressARB; SDL_Delay calls nanosleep): only the outermost one ends a
 * frame. That holds across the Vulkan layer too (GL on Vulkan: zink's
 * glXSwapBuffers calls vkQueuePresentKHR): our presents tell the layer.
 *
 * Without FRAMEALLOC_AUTOFRAME=1 or tick, la_version returns 0 and the loader drops
 * the module: no symbol binding is audited or changed.
 *
 * Any LD_AUDIT makes glibc size the static TLS block before it loads the preloaded
 * libraries, whose initial-exec TLS must then fit in the surplus: run with
 * GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384 (framealloc-run and
 * framealloc-compare --autoframe set it), or loading libframealloc.so fails with
 * "cannot allocate memory in static TLS block". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "frame_end.h"

#define EXPORT __attribute__((visibility("default")))

/* The functions we wrap. PRESENT: ends a frame. GETPROC: returns function pointers
 * by name, so a loader can reach a present function without a binding we see.
 * TICK: a sleep or wait whose wake-up ends a frame (FRAMEALLOC_AUTOFRAME=tick). */
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
    FIRST_TICK,
    NANOSLEEP = FIRST_TICK,
    CLOCK_NANOSLEEP,
    USLEEP,
    SDL_DELAY,           /* void SDL_Delay(Uint32 ms)                       SDL 1.2 and 2 */
    POLL,
    POLL_CHK,            /* poll under _FORTIFY_SOURCE (Debian builds its packages so) */
    PPOLL,
    PPOLL_CHK,
    EPOLL_WAIT,
    EPOLL_PWAIT,
    SELECT,              /* Quake-derived servers wait in select (ioquake3's NET_Sleep) */
    PSELECT,
    SLEEP,
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
    [NANOSLEEP] = "nanosleep",
    [CLOCK_NANOSLEEP] = "clock_nanosleep",
    [USLEEP] = "usleep",
    [SDL_DELAY] = "SDL_Delay",
    [POLL] = "poll",
    [POLL_CHK] = "__poll_chk",
    [PPOLL] = "ppoll",
    [PPOLL_CHK] = "__ppoll_chk",
    [EPOLL_WAIT] = "epoll_wait",
    [EPOLL_PWAIT] = "epoll_pwait",
    [SELECT] = "select",
    [PSELECT] = "pselect",
    [SLEEP] = "sleep",
};

/* The hooks of the mode chosen at start-up, and the first letters of their names
 * (most bindings fail that test). */
static int first_hook, end_hook;
static const char *first_letters;

/* A name can have several definitions (glvnd's libGL.so.1 and libGLX.so.0 both
 * define glXSwapBuffers), each needing a wrapper that knows which one to call:
 * SLOTS wrappers per name, each tied to the real function it was first handed. */
#define SLOTS 4
static void *real_fn[HOOKS][SLOTS]; /* atomic; NULL: slot free */

static void *real_of(enum hook_id id, int slot)
{
    return __atomic_load_n(&real_fn[id][slot], __ATOMIC_ACQUIRE);
}

/* ---- presents: nesting with the Vulkan layer's ---- */

/* GL on Vulkan (Mesa's zink) presents a glXSwapBuffers with vkQueuePresentKHR,
 * which the Vulkan layer sees: our present wrappers tell the layer, so that one
 * present stays one frame. The layer is a library of the main namespace that the
 * Vulkan loader may load and unload at any time; la_objopen and la_objclose follow it. */
#define VKLAYER_FILE "libframealloc_vklayer.so"
typedef void (*outer_present_fn)(int delta);
static struct link_map *vklayer;       /* atomic; NULL: not loaded */
static outer_present_fn vklayer_outer; /* atomic; resolved from vklayer at the first present */

static outer_present_fn layer_outer_present(void)
{
    outer_present_fn fn = __atomic_load_n(&vklayer_outer, __ATOMIC_ACQUIRE);
    struct link_map *map = __atomic_load_n(&vklayer, __ATOMIC_ACQUIRE);
    if (fn || !map)
        return map ? fn : NULL;
    /* A link_map is the handle dlopen would return for that library. */
    fn = (outer_present_fn)dlsym(map, "fa_vklayer_outer_present");
    __atomic_store_n(&vklayer_outer, fn, __ATOMIC_RELEASE);
    return fn;
}

static outer_present_fn present_enter(void)
{
    fa_autoframe_enter();
    outer_present_fn layer = layer_outer_present();
    if (layer)
        layer(1);
    return layer;
}

static void present_leave(outer_present_fn layer)
{
    if (layer)
        layer(-1);
    fa_autoframe_leave(1);
}

/* ---- ticks: which sleeps and waits end a frame ---- */

/* A relative sleep or a timeout shorter than this is not a tick: loops tick at
 * most about 1000 times a second, while spin-wait back-offs sleep 0-100 us and a
 * zero timeout only checks for events. The cost: a fixed-rate loop that sleeps
 * only the rest of its period gets no boundary when under 1 ms is left (that tick
 * and the next share a frame). Absolute-deadline sleeps always count. */
#define TICK_MIN_NS 1000000LL

static int on_main_thread(void)
{
    /* A server's loop runs on its main thread; other threads sleep for their own
     * reasons (workers, timers, audio). Cached per thread: 1 main, 2 other. */
    static __thread int main_state;
    if (!main_state)
        main_state = syscall(SYS_gettid) == getpid() ? 1 : 2;
    return main_state == 1;
}

static int long_ns(const struct timespec *t)
{
    return !t || t->tv_sec > 0 || t->tv_nsec >= TICK_MIN_NS; /* NULL: no timeout */
}

static int long_us(const struct timeval *t)
{
    return !t || t->tv_sec > 0 || t->tv_usec * 1000LL >= TICK_MIN_NS; /* NULL: no timeout */
}

static int long_ms(long long ms)
{
    return ms < 0 || ms * 1000000 >= TICK_MIN_NS; /* negative: no timeout */
}

/* A sleep or wait starts: enter it, and say whether its wake-up can be a tick. */
static int tick_enter(int long_enough)
{
    fa_autoframe_enter();
    return long_enough && on_main_thread();
}

/* ---- wrappers: SLOTS per hook, each calling its slot's real function ---- */

#define FOR_SLOTS(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__)
#define SLOT_LIST(fn) {(void *)fn##_0, (void *)fn##_1, (void *)fn##_2, (void *)fn##_3}

/* A present function returning void: PRESENT_VOID(slot, wrapper, id, (params), (args)). */
#define PRESENT_VOID(k, fn, id, params, args)                                                 \
    static void fn##_##k params                                                              \
    {                                                                                         \
        void(*real) params = (void(*) params)real_of(id, k);                                 \
        outer_present_fn layer = present_enter();                                             \
        real args;                                                                            \
        present_leave(layer);                                                                 \
    }

/* A present function returning a value. */
#define PRESENT_RET(k, fn, id, ret, params, args)                                             \
    static ret fn##_##k params                                                               \
    {                                                                                         \
        ret(*real) params = (ret(*) params)real_of(id, k);                                   \
        outer_present_fn layer = present_enter();                                             \
        ret result = real args;                                                               \
        present_leave(layer);                                                                 \
        return result;                                                                        \
    }

/* A sleep or wait: a tick when it was long enough (the expression long_enough, of
 * the parameters) and returned without error (an interrupted sleep is retried by
 * its caller: only the wake-up that ends it is one tick). */
#define TICK(k, fn, id, params, args, long_enough, succeeded)                                 \
    static int fn##_##k params                                                               \
    {                                                                                         \
        int(*real) params = (int(*) params)real_of(id, k);                                   \
        int tick = tick_enter(long_enough);                                                   \
        int result = real args;                                                               \
        fa_autoframe_leave(tick && (succeeded));                                              \
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

FOR_SLOTS(TICK, nanosleep_w, NANOSLEEP, (const struct timespec *req, struct timespec *rem), (req, rem),
          req && long_ns(req), result == 0)
FOR_SLOTS(TICK, clock_nanosleep_w, CLOCK_NANOSLEEP,
          (clockid_t clock, int flags, const struct timespec *req, struct timespec *rem), (clock, flags, req, rem),
          req && ((flags & TIMER_ABSTIME) || long_ns(req)), result == 0)
FOR_SLOTS(TICK, usleep_w, USLEEP, (useconds_t us), (us), us * 1000LL >= TICK_MIN_NS, result == 0)
FOR_SLOTS(TICK, poll_w, POLL, (struct pollfd *fds, nfds_t n, int timeout), (fds, n, timeout), long_ms(timeout),
          result >= 0)
FOR_SLOTS(TICK, poll_chk_w, POLL_CHK, (struct pollfd *fds, nfds_t n, int timeout, size_t fds_len),
          (fds, n, timeout, fds_len), long_ms(timeout), result >= 0)
FOR_SLOTS(TICK, ppoll_w, PPOLL, (struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask),
          (fds, n, timeout, mask), long_ns(timeout), result >= 0)
FOR_SLOTS(TICK, ppoll_chk_w, PPOLL_CHK,
          (struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask, size_t fds_len),
          (fds, n, timeout, mask, fds_len), long_ns(timeout), result >= 0)
FOR_SLOTS(TICK, epoll_wait_w, EPOLL_WAIT, (int epfd, struct epoll_event *events, int max, int timeout),
          (epfd, events, max, timeout), long_ms(timeout), result >= 0)
FOR_SLOTS(TICK, epoll_pwait_w, EPOLL_PWAIT,
          (int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask),
          (epfd, events, max, timeout, mask), long_ms(timeout), result >= 0)

FOR_SLOTS(TICK, select_w, SELECT, (int n, fd_set *in, fd_set *out, fd_set *err, struct timeval *timeout),
          (n, in, out, err, timeout), long_us(timeout), result >= 0)
FOR_SLOTS(TICK, pselect_w, PSELECT,
          (int n, fd_set *in, fd_set *out, fd_set *err, const struct timespec *timeout, const sigset_t *mask),
          (n, in, out, err, timeout, mask), long_ns(timeout), result >= 0)
/* sleep returns the seconds left unslept: 0 when it slept them all. */
FOR_SLOTS(TICK, sleep_w, SLEEP, (unsigned int seconds), (seconds), seconds > 0, result == 0)

/* SDL_Delay returns nothing (it retries interrupted sleeps itself). */
#define SDL_DELAY_W(k, unused)                                                                \
    static void sdl_delay_w_##k(uint32_t ms)                                                  \
    {                                                                                         \
        void (*real)(uint32_t) = (void (*)(uint32_t))real_of(SDL_DELAY, k);                   \
        int tick = tick_enter(long_ms(ms));                                                   \
        real(ms);                                                                             \
        fa_autoframe_leave(tick);                                                             \
    }
FOR_SLOTS(SDL_DELAY_W, 0)

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
    [NANOSLEEP] = SLOT_LIST(nanosleep_w),
    [CLOCK_NANOSLEEP] = SLOT_LIST(clock_nanosleep_w),
    [USLEEP] = SLOT_LIST(usleep_w),
    [SDL_DELAY] = SLOT_LIST(sdl_delay_w),
    [POLL] = SLOT_LIST(poll_w),
    [POLL_CHK] = SLOT_LIST(poll_chk_w),
    [PPOLL] = SLOT_LIST(ppoll_w),
    [PPOLL_CHK] = SLOT_LIST(ppoll_chk_w),
    [EPOLL_WAIT] = SLOT_LIST(epoll_wait_w),
    [EPOLL_PWAIT] = SLOT_LIST(epoll_pwait_w),
    [SELECT] = SLOT_LIST(select_w),
    [PSELECT] = SLOT_LIST(pselect_w),
    [SLEEP] = SLOT_LIST(sleep_w),
};

static int hook_of(const char *name)
{
    /* Called for every binding in the process: most names fail the first test. */
    if (!name[0] || !strchr(first_letters, name[0]))
        return -1;
    for (int id = first_hook; id < end_hook; id++)
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
        fa_autoframe_say("framealloc autoframe: too many definitions of one wrapped function; "
                         "calls to the extra ones do not end frames\n");
    return fn;
}

/* ---- the rtld-audit interface ---- */

EXPORT unsigned int la_version(unsigned int version)
{
    fa_autoframe_mode_t mode = fa_autoframe_mode();
    if (mode == FA_AUTOFRAME_PRESENT) {
        first_hook = 0, end_hook = FIRST_TICK, first_letters = "geS";
    } else if (mode == FA_AUTOFRAME_TICK) {
        first_hook = FIRST_TICK, end_hook = HOOKS, first_letters = "ncuSpes_";
    } else {
        return 0; /* the loader unloads us and carries on without auditing */
    }
    return version < LAV_CURRENT ? version : LAV_CURRENT;
}

static int is_vklayer(const struct link_map *map)
{
    const char *slash = map->l_name ? strrchr(map->l_name, '/') : NULL;
    return slash && strcmp(slash + 1, VKLAYER_FILE) == 0;
}

EXPORT unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
    (void)cookie; /* the loader's default cookie: map */
    if (lmid == LM_ID_BASE && is_vklayer(map)) {
        __atomic_store_n(&vklayer_outer, NULL, __ATOMIC_RELEASE);
        __atomic_store_n(&vklayer, map, __ATOMIC_RELEASE);
    }
    /* la_symbind runs for a binding only when the object that refers to the symbol
     * has BINDFROM and the one that defines it has BINDTO (for dlsym, either). We
     * cannot know in advance which objects call or define a wrapped function. */
    return LA_FLG_BINDTO | LA_FLG_BINDFROM;
}

EXPORT unsigned int la_objclose(uintptr_t *cookie)
{
    if ((struct link_map *)*cookie == __atomic_load_n(&vklayer, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&vklayer, NULL, __ATOMIC_RELEASE);
        __atomic_store_n(&vklayer_outer, NULL, __ATOMIC_RELEASE);
    }
    return 0;
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

/* The autoframe tests' SDL 2 game: presents N times by one route, then prints
 *   checksum: presents N
 *   frames: F            (fa_stats_get; -1 without libframealloc)
 *   libEGL loaded: yes|no
 *
 * af_sdl2 ROUTE N
 *   render:   software renderer, SDL_RenderPresent (SDL_VIDEODRIVER=dummy works)
 *   surface:  window surface, SDL_UpdateWindowSurface (dummy works)
 *   gl:       OpenGL context, SDL_GL_SwapWindow (needs an X server, e.g. Xvfb;
 *             SDL_VIDEO_X11_FORCE_EGL=1 makes SDL use EGL instead of GLX)
 *   gl-render: the accelerated (OpenGL) renderer, SDL_RenderPresent (X server) */
#include <SDL.h>
#include <stdio.h>
#include <string.h>

#include "framealloc.h"

#include "loaded.h"

typedef void (*clear_fn)(unsigned int mask);
#define GL_COLOR_BUFFER_BIT 0x4000

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, SDL_GetError());
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *route = argv[1];
    int count = atoi(argv[2]);
    int gl = strncmp(route, "gl", 2) == 0;
    if (SDL_Init(SDL_INIT_VIDEO) != 0)
        return fail("SDL_Init");
    SDL_Window *window = SDL_CreateWindow("autoframe", 0, 0, 320, 240, gl ? SDL_WINDOW_OPENGL : 0);
    if (!window)
        return fail("SDL_CreateWindow");
    fprintf(stderr, "video driver: %s\n", SDL_GetCurrentVideoDriver());

    SDL_Renderer *renderer = NULL;
    SDL_Surface *surface = NULL;
    clear_fn clear = NULL;
    if (strcmp(route, "render") == 0 || strcmp(route, "gl-render") == 0) {
        renderer = SDL_CreateRenderer(window, -1, gl ? SDL_RENDERER_ACCELERATED : SDL_RENDERER_SOFTWARE);
        if (!renderer)
            return fail("SDL_CreateRenderer");
        SDL_RendererInfo info;
        SDL_GetRendererInfo(renderer, &info);
        fprintf(stderr, "renderer: %s\n", info.name);
    } else if (strcmp(route, "surface") == 0) {
        surface = SDL_GetWindowSurface(window);
        if (!surface)
            return fail("SDL_GetWindowSurface");
    } else if (strcmp(route, "gl") == 0) {
        if (!SDL_GL_CreateContext(window))
            return fail("SDL_GL_CreateContext");
        clear = (clear_fn)SDL_GL_GetProcAddress("glClear");
        if (!clear)
            return fail("glClear");
    } else {
        fprintf(stderr, "unknown route %s\n", route);
        return 2;
    }

    for (int i = 0; i < count; i++) {
        SDL_Event event;
        while (SDL_PollEvent(&event))
            ;
        if (renderer) {
            SDL_SetRenderDrawColor(renderer, (Uint8)i, 64, 128, 255);
            SDL_RenderClear(renderer);
            SDL_RenderPresent(renderer);
        } else if (surface) {
            SDL_FillRect(surface, NULL, SDL_MapRGB(surface->format, (Uint8)i, 64, 128));
            SDL_UpdateWindowSurface(window);
        } else {
            clear(GL_COLOR_BUFFER_BIT);
            SDL_GL_SwapWindow(window);
        }
    }

    fa_stats stats;
    int have_stats = fa_stats_get(&stats) == 0;
    printf("checksum: presents %d\n", count);
    printf("frames: %lld\n", have_stats ? (long long)stats.frame : -1LL);
    printf("libEGL loaded: %s\n", loaded("/libEGL") ? "yes" : "no");
    SDL_Quit();
    return 0;
}

// demo-game: a headless, deterministic game loop for comparing allocators.
//
//   demo-game [--seed N] [--frames N] [--workers N]
//
// Each frame: units spawn and die, physics builds contact lists, AI runs A* path
// searches on worker threads, particles update, draw packets are built and sorted,
// and the HUD text is formatted; every 300 frames a level chunk loads (a burst of
// allocations). Per-frame temporaries are in frame scopes (framealloc.h); without
// libframealloc the markers do nothing. The last line is a checksum of the whole
// simulation, which must be the same under every allocator.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <framealloc.h>

#include "world.h"

static void usage(const char *argv0)
{
    std::fprintf(stderr, "usage: %s [--seed N] [--frames N] [--workers N]\n", argv0);
    std::exit(2);
}

static long number(const char *argv0, const char *text, long lo, long hi)
{
    char *end;
    long v = std::strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi) {
        std::fprintf(stderr, "%s: '%s' is not a number in %ld..%ld\n", argv0, text, lo, hi);
        std::exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    long seed = 1, frames = 2000, workers = 2;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = number(argv[0], argv[++i], 0, 1L << 40);
        else if (!std::strcmp(argv[i], "--frames") && i + 1 < argc)
            frames = number(argv[0], argv[++i], 1, 100000000);
        else if (!std::strcmp(argv[i], "--workers") && i + 1 < argc)
            workers = number(argv[0], argv[++i], 1, 64);
        else
            usage(argv[0]);
    }

    World world((uint64_t)seed, (int)workers);
    for (int f = 0; f < frames; f++) {
        fa_frame_begin();
        world.frame(f);
        fa_frame_end();
    }

    std::printf("demo-game: seed %ld, %zu units, %zu particles at the end\n", seed, world.units(), world.particles());
    std::printf("frames: %ld\n", frames);
    std::printf("checksum: %016llx\n", (unsigned long long)world.checksum());
    if (fa_active() && std::getenv("DEMO_GAME_STATS")) {
        fa_stats s;
        fa_stats_get(&s);
        std::fprintf(stderr, "demo-game: frame allocations %llu, escapes %llu\n",
                     (unsigned long long)s.frame_allocs, (unsigned long long)s.frame_escapes);
    }
    return 0;
}

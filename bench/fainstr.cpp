/* fainstr: the per-operation harness of scripts/bench-instructions.
 *
 * One binary, run unchanged under every allocator (LD_PRELOAD) inside valgrind's
 * callgrind. It runs one operation: a warm-up, then `fainstr_measured` called N times;
 * the script collects only inside that function (--toggle-collect) and counts what the
 * allocator costs per call: everything the measured function calls (PLT stubs
 * included) plus the call instructions, without the harness's own instructions. Runs
 * with N and 2N iterations are subtracted, so one-time costs drop out.
 *
 *   fainstr [--markers] OPERATION ITERATIONS
 *
 * Operations (sizes from a fixed table, the same for every allocator):
 *   frame-pair   malloc+free, 16-256 B, inside a frame scope (1000 per frame)
 *   new-delete   operator new + sized operator delete, 16-256 B, inside a frame scope
 *   frame-end    fa_frame_end() after a frame of 4000 blocks (16-1024 B, about 2 MiB)
 *                allocated and all freed (nothing alive)
 *   small        malloc+free, 16-256 B, no scope
 *   medium       malloc+free, 1-16 KiB, no scope
 *   heap-mid     malloc+free, 16-64 KiB, no scope (above the pools' limit: the heap)
 *   large        malloc+free, 256 KiB-4 MiB, no scope (fabench's large pairs)
 * Without --markers no marker is called (frame-pair and new-delete then run outside
 * scopes, and frame-end calls nothing). */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <framealloc.h>

namespace {

bool markers;
const size_t TABLE = 4096; /* power of two */
size_t sizes[TABLE];
void *blocks[4000];
volatile uint64_t sink;

uint64_t rng_state;

uint64_t rng()
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void fill_sizes(size_t lo, size_t hi)
{
    rng_state = 0xf4a3e + lo;
    for (size_t i = 0; i < TABLE; i++)
        sizes[i] = lo + (size_t)(rng() % (hi - lo + 1));
}

void scope_begin()
{
    if (markers)
        fa_scope_push(FA_FRAME);
}

void scope_end()
{
    if (markers)
        fa_scope_pop();
}

void frame_end()
{
    if (markers)
        fa_frame_end();
}

void die(const char *what)
{
    std::fprintf(stderr, "fainstr: %s\n", what);
    std::exit(2);
}

enum op_t { FRAME_PAIR, NEW_DELETE, FRAME_END, SMALL, MEDIUM, HEAP_MID, LARGE };
op_t op;
size_t cursor; /* position in the size table, kept across calls */

} // namespace

/* The only collected function: one operation (a pair, or one fa_frame_end). Not
 * inlined, and with external linkage, so callgrind finds it by name. */
extern "C" __attribute__((noinline)) void fainstr_measured()
{
    size_t n = sizes[cursor++ & (TABLE - 1)];
    switch (op) {
    case FRAME_PAIR:
    case SMALL:
    case MEDIUM:
    case HEAP_MID:
    case LARGE: {
        char *p = static_cast<char *>(std::malloc(n));
        if (!p)
            die("malloc failed");
        p[0] = 1;
        p[n - 1] = 2;
        sink += (uintptr_t)p;
        std::free(p);
        break;
    }
    case NEW_DELETE: {
        char *p = static_cast<char *>(::operator new(n));
        p[0] = 1;
        p[n - 1] = 2;
        sink += (uintptr_t)p;
        ::operator delete(p, n);
        break;
    }
    case FRAME_END:
        fa_frame_end();
        break;
    }
}

/* A frame's work before each measured fa_frame_end: everything freed again. */
static void frame_work()
{
    scope_begin();
    for (size_t i = 0; i < 4000; i++) {
        size_t n = sizes[cursor++ & (TABLE - 1)];
        char *p = static_cast<char *>(std::malloc(n));
        if (!p)
            die("malloc failed");
        p[0] = 1;
        blocks[i] = p;
    }
    for (size_t i = 0; i < 4000; i++)
        std::free(blocks[i]);
    scope_end();
}

static void run(long iterations)
{
    if (op == FRAME_END) {
        for (long i = 0; i < iterations; i++) {
            frame_work();
            if (markers)
                fainstr_measured();
        }
        return;
    }
    bool framed = op == FRAME_PAIR || op == NEW_DELETE;
    /* Frames of 1000 operations, as fabench's frame workload. */
    for (long done = 0; done < iterations;) {
        if (framed)
            scope_begin();
        for (long k = 0; k < 1000 && done < iterations; k++, done++)
            fainstr_measured();
        if (framed) {
            scope_end();
            frame_end();
        }
    }
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i < argc && !std::strcmp(argv[i], "--markers")) {
        markers = true;
        i++;
    }
    if (argc - i != 2)
        die("usage: fainstr [--markers] frame-pair|new-delete|frame-end|small|medium|heap-mid|large ITERATIONS");
    const char *name = argv[i];
    long iterations = std::atol(argv[i + 1]);
    if (iterations < 1)
        die("ITERATIONS must be at least 1");
    if (!std::strcmp(name, "frame-pair"))
        op = FRAME_PAIR, fill_sizes(16, 256);
    else if (!std::strcmp(name, "new-delete"))
        op = NEW_DELETE, fill_sizes(16, 256);
    else if (!std::strcmp(name, "frame-end"))
        op = FRAME_END, fill_sizes(16, 1024);
    else if (!std::strcmp(name, "small"))
        op = SMALL, fill_sizes(16, 256);
    else if (!std::strcmp(name, "medium"))
        op = MEDIUM, fill_sizes(1024, 16384);
    else if (!std::strcmp(name, "heap-mid"))
        op = HEAP_MID, fill_sizes(16385, 65536);
    else if (!std::strcmp(name, "large"))
        op = LARGE, fill_sizes(256 << 10, 4 << 20);
    else
        die("unknown operation");
    if (op == FRAME_END && !markers)
        die("frame-end needs --markers");
    /* Warm-up: every path is bound (PLT, lazy setup) and caches are in steady state. */
    run(op == FRAME_END ? 20 : 20000);
    cursor = 0;
    run(iterations);
    std::printf("fainstr %s %ld done (markers %d, library %s)\n", name, iterations, markers ? 1 : 0,
                fa_active() ? "active" : "absent");
    return 0;
}

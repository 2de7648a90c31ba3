// One cell of the misuse matrix (check_misuse_matrix.py runs every cell under every
// mode): allocates a block in the arena named by the first argument, prints which
// arena served it and the pointer the misuse will pass, then commits the misuse named
// by the second argument. Under the preload the misuse must abort with one line on
// stderr; the driver checks that line.
//
//   misuse_case ARENA MISUSE
//
// ARENA: pool (64 B outside scopes), frame (64 B in a frame scope), heap-mid (32 KiB,
// above the pool limit), heap-large (1 MiB), heap-align (memalign 64), heap-huge-align
// (memalign 64 MiB: mapped directly, not by jemalloc), heap-intent (64 B in an FA_HEAP
// scope), frame-large (1 MiB in a frame scope, above FRAMEALLOC_FRAME_MAX), or foreign
// (no block: the misuse names a stack, global or mmap address).
// MISUSE on a block: double-free, interior-free, realloc-after-free,
// usable-size-after-free, interior-realloc, interior-usable-size, double-delete,
// interior-delete (the delete cases allocate with operator new).
// MISUSE on foreign: {free,realloc,usable-size,delete}-{stack,global,mmap}.
//
// Stdout: "arena=ARENA pointer=P" (ARENA: pool, frame or heap, from the library's
// counters, so records and debug modes that move blocks are seen as they are), then
// "survived" if the misuse returned. Under records, the block's allocating stack
// (after the message) names allocate().
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>
#include <sys/mman.h>

#include <framealloc.h>

namespace {

char global_buffer[256] __attribute__((aligned(64)));

[[noreturn]] void usage(const char *why)
{
    std::fprintf(stderr, "misuse_case: %s\n", why);
    std::exit(2);
}

bool starts_with(const char *s, const char *prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

struct block_t {
    char *p;
    const char *arena; // the arena that served it
};

// Allocates in the named arena; with_new: through operator new (its aligned form for
// heap-align and heap-huge-align), else through malloc (memalign for those). Not
// inlined: under records the misuse message names it in the block's allocating stack.
__attribute__((noinline)) block_t allocate(const char *arena, bool with_new)
{
    size_t size = 64;
    int scope = -1; // an fa_intent, or -1 for none
    size_t alignment = 0; // 0: not an aligned request
    if (!std::strcmp(arena, "frame")) {
        scope = FA_FRAME;
    } else if (!std::strcmp(arena, "frame-large")) {
        scope = FA_FRAME;
        size = 1 << 20;
    } else if (!std::strcmp(arena, "heap-mid")) {
        size = 32 << 10;
    } else if (!std::strcmp(arena, "heap-large")) {
        size = 1 << 20;
    } else if (!std::strcmp(arena, "heap-align")) {
        alignment = 64;
    } else if (!std::strcmp(arena, "heap-huge-align")) {
        alignment = size_t(64) << 20;
    } else if (!std::strcmp(arena, "heap-intent")) {
        scope = FA_HEAP;
    } else if (std::strcmp(arena, "pool") != 0) {
        usage("unknown arena");
    }
    if (scope >= 0)
        fa_scope_push(static_cast<fa_intent>(scope));
    // No output and nothing else between the counters and the allocation.
    fa_stats before = {}, after = {};
    fa_stats_get(&before);
    char *p;
    if (with_new)
        p = static_cast<char *>(alignment ? ::operator new(size, std::align_val_t(alignment)) : ::operator new(size));
    else
        p = static_cast<char *>(alignment ? memalign(alignment, size) : std::malloc(size));
    fa_stats_get(&after);
    if (scope >= 0)
        fa_scope_pop();
    if (!p)
        usage("allocation failed");
    std::memset(p, 0x5a, size);
    const char *served = after.frame_allocs != before.frame_allocs ? "frame"
                         : after.pool_allocs != before.pool_allocs ? "pool"
                                                                   : "heap";
    return {p, served};
}

void announce(const char *arena, const void *pointer)
{
    std::printf("arena=%s pointer=%p\n", arena, pointer);
    std::fflush(stdout);
}

void *foreign_pointer(const char *kind, char *stack_buffer)
{
    if (!std::strcmp(kind, "stack"))
        return stack_buffer;
    if (!std::strcmp(kind, "global"))
        return global_buffer;
    if (!std::strcmp(kind, "mmap")) {
        void *m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            usage("mmap failed");
        return m;
    }
    usage("unknown foreign pointer");
}

// Keeps the compiler from seeing that these pointers are not from the heap.
void *volatile launder_slot;
void *launder(void *p)
{
    launder_slot = p;
    return launder_slot;
}

void use(void *p)
{
    std::printf("result=%p\n", p);
}

int foreign_case(const char *misuse)
{
    alignas(64) char stack_buffer[256];
    std::memset(stack_buffer, 1, sizeof stack_buffer);
    const char *dash = std::strrchr(misuse, '-');
    if (!dash)
        usage("unknown misuse");
    void *p = launder(foreign_pointer(dash + 1, stack_buffer));
    announce("none", p);
    if (starts_with(misuse, "free-"))
        std::free(p);
    else if (starts_with(misuse, "realloc-"))
        use(std::realloc(p, 100));
    else if (starts_with(misuse, "usable-size-"))
        std::printf("usable=%zu\n", malloc_usable_size(p));
    else if (starts_with(misuse, "delete-"))
        ::operator delete(p);
    else
        usage("unknown misuse");
    return 0;
}

int block_case(const char *arena, const char *misuse)
{
    bool with_new = std::strstr(misuse, "delete") != nullptr;
    block_t b = allocate(arena, with_new);
    char *p = b.p;
    char *inner = static_cast<char *>(launder(p + 16));
    if (!std::strcmp(misuse, "double-free")) {
        announce(b.arena, p);
        std::free(p);
        std::free(launder(p));
    } else if (!std::strcmp(misuse, "interior-free")) {
        announce(b.arena, inner);
        std::free(inner);
    } else if (!std::strcmp(misuse, "realloc-after-free")) {
        announce(b.arena, p);
        std::free(p);
        use(std::realloc(launder(p), 100));
    } else if (!std::strcmp(misuse, "usable-size-after-free")) {
        announce(b.arena, p);
        std::free(p);
        std::printf("usable=%zu\n", malloc_usable_size(launder(p)));
    } else if (!std::strcmp(misuse, "interior-realloc")) {
        announce(b.arena, inner);
        use(std::realloc(inner, 100));
    } else if (!std::strcmp(misuse, "interior-usable-size")) {
        announce(b.arena, inner);
        std::printf("usable=%zu\n", malloc_usable_size(inner));
    } else if (!std::strcmp(misuse, "double-delete")) {
        announce(b.arena, p);
        ::operator delete(p);
        ::operator delete(launder(p));
    } else if (!std::strcmp(misuse, "interior-delete")) {
        announce(b.arena, inner);
        ::operator delete(inner);
    } else {
        usage("unknown misuse");
    }
    return 0;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 3)
        usage("usage: misuse_case ARENA MISUSE");
    int rc = !std::strcmp(argv[1], "foreign") ? foreign_case(argv[2]) : block_case(argv[1], argv[2]);
    std::printf("survived\n");
    return rc;
}

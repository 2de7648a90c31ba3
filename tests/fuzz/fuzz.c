/* Randomized differential test of every allocation entry point and every framealloc
 * scope and frame call.
 *
 *   fa_fuzz [--seed N] [--threads T] [--rounds R] [--ops N] [--escapes] [--trace]
 *           [--require-library] [--require-frames] [--require-no-escapes]
 *
 * The same seed gives the same sequence of calls under any allocator, and stdout (one
 * line per thread: operations, allocations, failures and a hash of its trace) must be
 * byte-identical under glibc (no preload) and under LD_PRELOAD=libframealloc.so in
 * every FRAMEALLOC_* mode; run_fuzz.py compares the two. --trace prints every traced
 * line as well, to find the first difference.
 *
 * Every entry point: the public names, glibc's own __libc_ names (malloc, calloc,
 * realloc, free, memalign, valloc, pvalloc) and cfree, the C++ operators, blocks
 * libc allocates for the program (strdup, strndup, asprintf) and glibc's tuning calls
 * (malloc_trim, mallinfo2, mallopt), which must do no harm.
 *
 * The trace holds what glibc 2.36 promises and a replacement must match: NULL or
 * not, errno after a failure, posix_memalign's result, realloc's contract (the old
 * block kept on failure, realloc(p, 0) freeing), alignment, calloc's zeroing,
 * exceptions of the C++ operators and new_handler calls, errno kept by free. It
 * leaves out what may legitimately differ: addresses, whether realloc moved the
 * block, malloc_usable_size beyond the request (checked to be at least the request,
 * and the whole usable size is written), errno after a successful call or after
 * posix_memalign (which returns its error), framealloc's statistics.
 *
 * Every live block holds a pattern derived from its id, checked completely before it
 * is freed or resized and on its prefix after realloc; a mismatch aborts at once.
 *
 * Threads run in rounds separated by barriers, so each thread's trace is independent
 * of scheduling: in phase A a thread works and then hands some blocks to the next
 * thread's mailbox; in phase B it adopts what the previous thread sent, works, and
 * frees every block it made (or received) inside a frame scope; then thread 0 ends
 * zero, one or two frames while the others wait. Frame-scope blocks are thus used
 * only within their frame, as FRAMEALLOC_FRAME_MODE=strict requires; with --escapes
 * (safe mode only) some of them outlive their frame and stay checked. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "framealloc.h"
#include "fuzz_cxx.h"

/* glibc's internal names, exported by libc.so.6 (GLIBC_2.2.5) and called directly by
 * some programs: a replacement must take them over with the public ones. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);
/* cfree: glibc keeps it for old binaries only (found with dlvsym). */
static void (*cfree_fn)(void *);

enum {
    MAX_THREADS = 8,
    SLOTS = 96,          /* live blocks per thread */
    MAIL = 12,           /* blocks handed to the next thread per round */
    SHADOW_MAX = 48,     /* deepest scope nesting the fuzzer makes (framealloc keeps 32) */
    TRACE_CAP = 256 << 20,
};

/* How a block was made, and so how it must be freed. */
typedef enum { KIND_MALLOC, KIND_NEW, KIND_NEW_ARRAY } kind_t;

typedef struct {
    unsigned char *p;
    size_t size;   /* requested: realloc keeps min(size, new size) */
    size_t filled; /* bytes holding the pattern (the usable size once written) */
    uint64_t id;
    size_t align;  /* C++ aligned forms: the alignment to pass to delete */
    uint8_t kind;
    uint8_t frame; /* made or resized inside a frame scope: must die before frame end */
} block_t;

typedef struct {
    unsigned id;
    uint64_t rng;
    uint64_t hash;
    uint64_t next_block;
    uint64_t ops, allocs, failures;
    unsigned round;
    block_t blocks[SLOTS];
    int shadow[SHADOW_MAX]; /* the scope stack as pushed */
    unsigned depth, frames_on_stack;
    unsigned floor;       /* op_pop leaves the scopes of enclosing bursts alone */
    unsigned burst_depth;
    char *trace; /* mmap'd, only with --trace */
    size_t trace_len;
} thread_t;

static uint64_t seed = 1;
static unsigned n_threads = 3, n_rounds = 24, ops_per_round = 300;
static int allow_escapes, tracing, require_library, require_frames, require_no_escapes;

static thread_t threads[MAX_THREADS];
static block_t mailbox[MAX_THREADS][MAIL];
static unsigned mail_count[MAX_THREADS];
static pthread_barrier_t barrier;
/* new_handler is process-wide: C++ allocations that can fail run one at a time. */
static pthread_mutex_t cxx_fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* framealloc's pool classes (src/pool.c). */
static const size_t class_sizes[] = {
    16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 832, 896, 960, 1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584,
    3840, 4096, 4224, 4352, 4480, 4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192, 9216,
    10240, 11264, 12288, 13312, 14336, 15360, 16384,
};
/* Limits of framealloc's settings and arenas, and of jemalloc's size classes. */
static const size_t limit_sizes[] = {
    4095,  4096,  4097,  8191,   8192,   8193,   16383,  16384,  16385,  16400,
    28672, 32768, 32769, 65535,  65536,  65537,  65552,  131071, 131072, 131073,
    262080, 262128, 262144, 262145, 524288, 1 << 20, (1 << 20) + 1, 2 << 20, (2 << 20) + 16,
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- randomness ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rnd(thread_t *t)
{
    t->rng += 0x9E3779B97F4A7C15ULL;
    return mix64(t->rng);
}

static uint64_t below(thread_t *t, uint64_t n) { return rnd(t) % n; }
static uint64_t between(thread_t *t, uint64_t lo, uint64_t hi) { return lo + rnd(t) % (hi - lo + 1); }
static int chance(thread_t *t, unsigned one_in) { return below(t, one_in) == 0; }

/* ---- failures and the trace ---- */

__attribute__((noreturn, format(printf, 2, 3))) static void fail(thread_t *t, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* write(2) only: the heap may be what is broken. */
    dprintf(2, "fa_fuzz: FAIL (seed %llu, thread %u, round %u, op %llu): %s\n", (unsigned long long)seed, t->id,
            t->round, (unsigned long long)t->ops, msg);
    abort();
}

__attribute__((format(printf, 2, 3))) static void note(thread_t *t, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    for (int i = 0; i < n; i++)
        t->hash = (t->hash ^ (unsigned char)line[i]) * 0x100000001B3ULL;
    t->hash = (t->hash ^ '\n') * 0x100000001B3ULL;
    if (tracing && t->trace_len + (size_t)n + 32 < TRACE_CAP)
        t->trace_len += (size_t)snprintf(t->trace + t->trace_len, TRACE_CAP - t->trace_len, "t%u r%u #%llu %s\n",
                                         t->id, t->round, (unsigned long long)t->ops, line);
}

/* ---- payload patterns ---- */

/* Unaligned 8-byte access; __builtin_memcpy stays inline under -fno-builtin. */
static uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    __builtin_memcpy(&w, p, 8);
    return w;
}

static void store64(unsigned char *p, uint64_t w) { __builtin_memcpy(p, &w, 8); }

static uint64_t pattern_word(uint64_t id, size_t k) { return mix64(id * 0xD1B54A32D192ED03ULL + k); }

static unsigned char pattern_byte(uint64_t id, size_t i) { return (unsigned char)(pattern_word(id, i / 8) >> (8 * (i % 8))); }

static void fill_range(unsigned char *p, uint64_t id, size_t from, size_t to)
{
    size_t i = from;
    for (; i < to && i % 8; i++)
        p[i] = pattern_byte(id, i);
    for (; i + 8 <= to; i += 8)
        store64(p + i, pattern_word(id, i / 8));
    for (; i < to; i++)
        p[i] = pattern_byte(id, i);
}

static void check_range(thread_t *t, const unsigned char *p, uint64_t id, size_t from, size_t to, const char *when)
{
    size_t i = from;
    for (; i < to && i % 8; i++)
        if (p[i] != pattern_byte(id, i))
            goto bad;
    for (; i + 8 <= to; i += 8)
        if (load64(p + i) != pattern_word(id, i / 8))
            break;
    for (; i < to; i++)
        if (p[i] != pattern_byte(id, i))
            goto bad;
    return;
bad:
    fail(t, "%s: block %llu at %p (%zu bytes filled): byte %zu is 0x%02x, expected 0x%02x", when,
         (unsigned long long)id, (const void *)p, to, i, p[i], pattern_byte(id, i));
}

static void check_block(thread_t *t, const block_t *b, const char *when) { check_range(t, b->p, b->id, 0, b->filled, when); }

/* ---- sizes and alignments ---- */

static size_t pick_size(thread_t *t)
{
    unsigned r = (unsigned)below(t, 1000);
    if (r < 330)
        return between(t, 1, 128);
    if (r < 560) {
        size_t c = class_sizes[below(t, COUNT(class_sizes))];
        return c - 1 + below(t, 3); /* c - 1, c, c + 1 */
    }
    if (r < 600)
        return 0;
    if (r < 720)
        return between(t, 129, 4096);
    if (r < 800)
        return between(t, 4097, 20000);
    if (r < 880)
        return limit_sizes[below(t, COUNT(limit_sizes))];
    if (r < 960)
        return between(t, 20001, 140000);
    if (r < 996)
        return between(t, 140001, 600000);
    if (r < 999)
        return between(t, 600001, 2 << 20);
    return between(t, 2 << 20, 8 << 20);
}

/* Sizes no allocator can serve on x86-64 (beyond the 47-bit user address space), so
 * every allocator must fail them whatever the machine's memory and overcommit. */
static size_t pick_huge(thread_t *t)
{
    switch (below(t, 7)) {
    case 0: return SIZE_MAX;
    case 1: return SIZE_MAX - below(t, 64);
    case 2: return PTRDIFF_MAX;
    case 3: return (size_t)PTRDIFF_MAX + 1 + below(t, 64);
    case 4: return ((size_t)1 << 47) + below(t, 1 << 20);
    case 5: return (size_t)1 << between(t, 47, 62);
    default: return SIZE_MAX / 2 + below(t, 1 << 12);
    }
}

static size_t pick_any_size(thread_t *t) { return chance(t, 30) ? pick_huge(t) : pick_size(t); }

static size_t pick_align(thread_t *t)
{
    static const size_t odd[] = { 3, 5, 17, 24, 48, 96, 100, 1000, 4097, 12288, 65535 };
    static const size_t tiny[] = { 0, 1, 2, 4, 8 };
    unsigned r = (unsigned)below(t, 100);
    if (r < 60)
        return (size_t)1 << between(t, 4, 12);
    if (r < 70)
        return (size_t)1 << between(t, 13, 16);
    if (r < 72)
        return (size_t)1 << between(t, 17, 20);
    if (r < 80)
        return tiny[below(t, COUNT(tiny))];
    if (r < 92)
        return odd[below(t, COUNT(odd))];
    switch (below(t, 4)) {
    case 0: return (size_t)1 << between(t, 47, 63);
    case 1: return SIZE_MAX;
    case 2: return SIZE_MAX / 2 + 2;
    default: return ((size_t)1 << 48) + 16;
    }
}

static size_t next_pow2(size_t n)
{
    size_t p = 1;
    while (p < n && p)
        p <<= 1;
    return p;
}

/* ---- blocks ---- */

static int in_frame(const thread_t *t) { return t->frames_on_stack > 0; }

static block_t *random_slot(thread_t *t) { return &t->blocks[below(t, SLOTS)]; }

/* A random live block, or NULL. */
static block_t *random_live(thread_t *t, int malloc_only)
{
    unsigned start = (unsigned)below(t, SLOTS);
    for (unsigned i = 0; i < SLOTS; i++) {
        block_t *b = &t->blocks[(start + i) % SLOTS];
        if (b->p && (!malloc_only || b->kind == KIND_MALLOC))
            return b;
    }
    return NULL;
}

/* Records a new block in slot, filling it with its pattern. */
static void adopt_new(thread_t *t, block_t *slot, void *p, size_t size, kind_t kind, size_t align)
{
    block_t b = { p, size, size, ((uint64_t)t->id << 48) | ++t->next_block, align, (uint8_t)kind, (uint8_t)in_frame(t) };
    fill_range(b.p, b.id, 0, size);
    *slot = b;
    t->allocs++;
}

static void release_block(thread_t *t, block_t *b);

/* Frees what slot holds, so a new block can go there. */
static block_t *empty_slot(thread_t *t)
{
    block_t *slot = random_slot(t);
    if (slot->p)
        release_block(t, slot);
    return slot;
}

/* Traces a failed allocation: NULL and errno. */
static void note_null(thread_t *t, const char *call, int err)
{
    t->failures++;
    note(t, "%s -> NULL errno %d", call, err);
}

/* Frees a block with a form that matches how it was made. */
static void release_block(thread_t *t, block_t *b)
{
    check_block(t, b, "before free");
    if (b->kind == KIND_MALLOC) {
        if (chance(t, 6)) {
            errno = 0;
            void *q = realloc(b->p, 0);
            /* glibc 2.36 frees the block and returns NULL. */
            note(t, "realloc(block, 0) -> %s errno %d", q ? "block" : "NULL", errno);
            if (q)
                free(q);
        } else {
            static const char *const names[] = { "free", "__libc_free", "cfree" };
            unsigned name = chance(t, 4) ? (unsigned)between(t, 1, cfree_fn ? 2 : 1) : 0;
            errno = 4242;
            if (name == 0)
                free(b->p);
            else if (name == 1)
                __libc_free(b->p);
            else
                cfree_fn(b->p);
            note(t, "%s -> errno %s", names[name], errno == 4242 ? "kept" : "changed");
        }
    } else {
        int how = (int)below(t, FZ_DELETE_FORMS);
        fz_cxx_delete(b->p, b->size, b->align, b->kind == KIND_NEW_ARRAY, how);
        note(t, "delete%s al %zu form %d", b->kind == KIND_NEW_ARRAY ? "[]" : "", b->align, how);
    }
    memset(b, 0, sizeof *b);
}

/* ---- the operations ---- */

static void op_malloc(thread_t *t)
{
    size_t size = pick_any_size(t);
    char call[64];
    int internal = chance(t, 8);
    snprintf(call, sizeof call, "%s(%zu)", internal ? "__libc_malloc" : "malloc", size);
    errno = 0;
    void *p = internal ? __libc_malloc(size) : malloc(size);
    if (!p) {
        note_null(t, call, errno);
        return;
    }
    note(t, "%s -> block a16 %d", call, (uintptr_t)p % 16 == 0);
    adopt_new(t, empty_slot(t), p, size, KIND_MALLOC, 0);
}

/* The offset of the first byte that is not zero, or size. */
static size_t first_nonzero(const unsigned char *p, size_t size)
{
    size_t i = 0;
    for (; i + 8 <= size && !load64(p + i); i += 8) {
    }
    while (i < size && !p[i])
        i++;
    return i;
}

static void op_calloc(thread_t *t)
{
    size_t n, m;
    switch (below(t, 10)) {
    case 0: n = 0; m = pick_size(t); break;
    case 1: n = pick_size(t); m = 0; break;
    case 2: n = SIZE_MAX / 2 + 1; m = 2; break;                          /* product overflows */
    case 3: n = (size_t)1 << 32; m = ((size_t)1 << 32) + below(t, 8); break; /* overflows */
    case 4: n = (size_t)1 << 24; m = (size_t)1 << 24; break;             /* 2^48 bytes: too large */
    case 5: n = 1; m = pick_huge(t); break;
    default: {
        size_t total = pick_size(t);
        n = between(t, 1, 8);
        m = total / n + 1;
    }
    }
    char call[80];
    int internal = chance(t, 8);
    snprintf(call, sizeof call, "%s(%zu, %zu)", internal ? "__libc_calloc" : "calloc", n, m);
    errno = 0;
    unsigned char *p = internal ? __libc_calloc(n, m) : calloc(n, m);
    if (!p) {
        note_null(t, call, errno);
        return;
    }
    size_t size = n * m, i = first_nonzero(p, size);
    if (i < size)
        fail(t, "%s = %p: byte %zu is 0x%02x, not zero", call, (void *)p, i, p[i]);
    note(t, "%s -> zeroed block a16 %d", call, (uintptr_t)p % 16 == 0);
    adopt_new(t, empty_slot(t), p, size, KIND_MALLOC, 0);
}

/* Resizes b (a malloc-family block) to size with realloc or reallocarray. */
static void resize(thread_t *t, block_t *b, size_t n, size_t m, int array)
{
    char call[96];
    int internal = !array && chance(t, 8);
    if (array)
        snprintf(call, sizeof call, "reallocarray(block, %zu, %zu)", n, m);
    else
        snprintf(call, sizeof call, "%s(block, %zu)", internal ? "__libc_realloc" : "realloc", n);
    size_t size = array ? n * m : n;
    int overflow = array && m && n > SIZE_MAX / m;
    check_block(t, b, "before realloc");
    errno = 0;
    unsigned char *q = array ? reallocarray(b->p, n, m) : internal ? __libc_realloc(b->p, n) : realloc(b->p, n);
    int err = errno;
    if (!q) {
        if (!overflow && size == 0) {
            /* realloc(p, 0) freed the block (glibc 2.36); reallocarray too. */
            note(t, "%s -> NULL errno %d (freed)", call, err);
            memset(b, 0, sizeof *b);
            return;
        }
        note_null(t, call, err);
        check_block(t, b, "after a failed realloc (the block must be untouched)");
        return;
    }
    if (overflow || size == 0)
        note(t, "%s -> block (size %zu)", call, size);
    else
        note(t, "%s -> block a16 %d", call, (uintptr_t)q % 16 == 0);
    size_t kept = b->size < size ? b->size : size;
    check_range(t, q, b->id, 0, kept, "after realloc (the kept prefix)");
    fill_range(q, b->id, kept, size);
    b->p = q;
    b->size = b->filled = size;
    b->align = 0;
    b->frame |= in_frame(t);
}

static void op_realloc(thread_t *t, int array)
{
    block_t *b = random_live(t, 1);
    if (!b || chance(t, 10)) {
        /* realloc(NULL, n) is malloc(n). */
        size_t size = chance(t, 8) ? 0 : pick_any_size(t);
        char call[64];
        snprintf(call, sizeof call, "realloc(NULL, %zu)", size);
        errno = 0;
        void *p = realloc(NULL, size);
        if (!p) {
            note_null(t, call, errno);
            return;
        }
        note(t, "%s -> block a16 %d", call, (uintptr_t)p % 16 == 0);
        adopt_new(t, empty_slot(t), p, size, KIND_MALLOC, 0);
        return;
    }
    size_t n, m = 1;
    switch (below(t, 12)) {
    case 0: n = 0; break;
    case 1: n = pick_huge(t); break;
    case 2: n = b->size * 2 + 1; break;
    case 3: n = b->size / 2; break;
    case 4: n = b->size + between(t, 1, 64); break;
    default: n = pick_size(t);
    }
    if (array) {
        switch (below(t, 6)) {
        case 0: m = n ? SIZE_MAX / n + 1 : 1; break; /* n * m overflows (or n is 0) */
        case 1: m = 0; break;
        default:
            m = between(t, 1, 8);
            n = n / m + 1;
        }
    }
    resize(t, b, n, m, array);
}

static void op_free(thread_t *t)
{
    if (chance(t, 20)) {
        errno = 4242;
        free(NULL);
        note(t, "free(NULL) -> errno %s", errno == 4242 ? "kept" : "changed");
        return;
    }
    block_t *b = random_live(t, 0);
    if (b)
        release_block(t, b);
}

/* posix_memalign, aligned_alloc, memalign, valloc, pvalloc. */
static void op_aligned(thread_t *t)
{
    size_t align = pick_align(t);
    size_t size = chance(t, 4) ? pick_any_size(t) : between(t, 0, 300);
    unsigned which = (unsigned)below(t, 8);
    int internal = chance(t, 6); /* glibc's __libc_ name, where it has one */
    long page = sysconf(_SC_PAGESIZE);
    char call[96];
    void *p;
    errno = 0;
    switch (which) {
    case 0:
    case 1: {
        void *out = (void *)&seed; /* must stay untouched on failure */
        int rc = posix_memalign(&out, align, size);
        snprintf(call, sizeof call, "posix_memalign(%zu, %zu)", align, size);
        if (rc) {
            t->failures++;
            note(t, "%s -> %d, result %s", call, rc, out == (void *)&seed ? "untouched" : "written");
            return;
        }
        p = out;
        break;
    }
    case 2:
    case 3:
        snprintf(call, sizeof call, "aligned_alloc(%zu, %zu)", align, size);
        p = aligned_alloc(align, size);
        break;
    case 4:
    case 5:
        snprintf(call, sizeof call, "%smemalign(%zu, %zu)", internal ? "__libc_" : "", align, size);
        p = internal ? __libc_memalign(align, size) : memalign(align, size);
        break;
    case 6:
        align = (size_t)page;
        snprintf(call, sizeof call, "%svalloc(%zu)", internal ? "__libc_" : "", size);
        p = internal ? __libc_valloc(size) : valloc(size);
        break;
    default:
        align = (size_t)page;
        snprintf(call, sizeof call, "%spvalloc(%zu)", internal ? "__libc_" : "", size);
        p = internal ? __libc_pvalloc(size) : pvalloc(size);
        if (p)
            size = (size + (size_t)page - 1) / (size_t)page * (size_t)page; /* 0 stays 0 in glibc */
        break;
    }
    if (!p) {
        note_null(t, call, errno);
        return;
    }
    /* glibc rounds an alignment that is not a power of two up to one. */
    size_t want = next_pow2(align);
    note(t, "%s -> block aligned %d a16 %d", call, want && (uintptr_t)p % want == 0, (uintptr_t)p % 16 == 0);
    adopt_new(t, empty_slot(t), p, size, KIND_MALLOC, 0);
}

/* malloc_usable_size: at least the request, and all of it writable. */
static void op_usable(thread_t *t)
{
    if (chance(t, 10)) {
        note(t, "malloc_usable_size(NULL) -> %zu", malloc_usable_size(NULL));
        return;
    }
    block_t *b = random_live(t, 1);
    if (!b)
        return;
    size_t usable = malloc_usable_size(b->p);
    if (usable < b->size)
        fail(t, "malloc_usable_size(%p) = %zu, below the %zu bytes requested", (void *)b->p, usable, b->size);
    check_block(t, b, "before writing the usable size");
    fill_range(b->p, b->id, b->filled, usable);
    b->filled = usable;
    note(t, "malloc_usable_size(block) >= request");
}

/* Blocks libc allocates for the program (strdup, strndup, asprintf): they come from
 * whatever malloc is in place and are the program's to free. */
static void op_libc_string(thread_t *t)
{
    char text[96];
    size_t len = (size_t)between(t, 0, sizeof text - 1);
    for (size_t i = 0; i < len; i++)
        text[i] = (char)('a' + below(t, 26));
    text[len] = '\0';
    unsigned which = (unsigned)below(t, 3);
    char *s = NULL;
    size_t n = which == 1 ? (size_t)between(t, 0, len) : len;
    const char *how = which == 0 ? "strdup" : which == 1 ? "strndup" : "asprintf";
    if (which == 0)
        s = strdup(text);
    else if (which == 1)
        s = strndup(text, n);
    else if (asprintf(&s, "%s", text) < 0)
        s = NULL;
    if (!s) {
        note_null(t, how, errno);
        return;
    }
    if (strlen(s) != n || memcmp(s, text, n) != 0)
        fail(t, "%s returned '%s', expected the first %zu bytes of '%s'", how, s, n, text);
    note(t, "%s of %zu bytes -> copied", how, n);
    adopt_new(t, empty_slot(t), s, n + 1, KIND_MALLOC, 0);
}

/* glibc's malloc tuning calls act on glibc's own arenas: under a replacement they must
 * do no harm (results not traced: they describe glibc's heap). */
static void op_glibc_tuning(thread_t *t)
{
    switch (below(t, 3)) {
    case 0: (void)malloc_trim(below(t, 2) ? 0 : 1 << 20); break;
    case 1: (void)mallinfo2(); break;
    default: (void)mallopt(M_TRIM_THRESHOLD, 128 << 10); break;
    }
    note(t, "glibc tuning call");
}

static void op_cxx(thread_t *t)
{
    static const size_t aligns[] = { 16, 32, 64, 256, 4096, 8192, 65536 };
    int array = (int)below(t, 2), nothrow = (int)below(t, 2);
    size_t align = chance(t, 3) ? aligns[below(t, COUNT(aligns))] : 0;
    int huge = chance(t, 25);
    size_t size = huge ? pick_huge(t) : pick_size(t);
    /* libstdc++ 12's aligned new rounds the size up to the alignment without an
     * overflow check, so near SIZE_MAX it returns a small block where it should throw:
     * keep aligned huge requests where rounding cannot wrap. */
    if (huge && align)
        size = (size_t)1 << between(t, 47, 62);
    int threw;
    if (huge)
        pthread_mutex_lock(&cxx_fail_lock);
    void *p = fz_cxx_new(size, align, array, nothrow, &threw);
    if (huge)
        pthread_mutex_unlock(&cxx_fail_lock);
    char call[96];
    snprintf(call, sizeof call, "operator new%s(%zu, align %zu%s)", array ? "[]" : "", size, align,
             nothrow ? ", nothrow" : "");
    if (!p) {
        t->failures++;
        note(t, "%s -> %s", call, threw ? "bad_alloc" : "NULL");
        return;
    }
    note(t, "%s -> block aligned %d", call, (uintptr_t)p % (align ? align : 16) == 0);
    adopt_new(t, empty_slot(t), p, size, array ? KIND_NEW_ARRAY : KIND_NEW, align);
}

static void op_new_handler(thread_t *t)
{
    int threw;
    pthread_mutex_lock(&cxx_fail_lock);
    int calls = fz_cxx_new_handler_calls(pick_huge(t), &threw);
    pthread_mutex_unlock(&cxx_fail_lock);
    note(t, "operator new(huge) with a new_handler -> handler ran %d times, %s", calls, threw ? "bad_alloc" : "no throw");
}

/* ---- scopes ---- */

static const fa_intent intents[] = { FA_FRAME, FA_FRAME, FA_FRAME, FA_DEFAULT, FA_POOL, FA_HEAP };

static void shadow_push(thread_t *t, fa_intent intent)
{
    t->shadow[t->depth++] = intent;
    t->frames_on_stack += intent == FA_FRAME;
}

static void shadow_pop(thread_t *t)
{
    t->frames_on_stack -= t->shadow[--t->depth] == FA_FRAME;
}

static void op_push(thread_t *t)
{
    if (t->depth >= 12)
        return;
    fa_intent intent = intents[below(t, COUNT(intents))];
    fa_scope_push(intent);
    shadow_push(t, intent);
    note(t, "push %d", intent);
}

static void op_pop(thread_t *t)
{
    if (t->depth <= t->floor)
        return;
    fa_scope_pop();
    shadow_pop(t);
    note(t, "pop");
}

static void random_op(thread_t *t);

/* Runs up to n operations inside a burst's scope, then pops what they pushed, so the
 * burst's own pop finds its scope on top. Returns 1 when it stopped early. */
static int burst_ops(thread_t *t, unsigned n)
{
    unsigned saved_floor = t->floor, base = t->depth;
    int early = 0;
    t->floor = base;
    for (unsigned i = 0; i < n && !early; i++) {
        random_op(t);
        early = chance(t, 8);
    }
    while (t->depth > base)
        op_pop(t);
    t->floor = saved_floor;
    return early;
}

/* A few operations inside a scope made by one of the header's macros (left early
 * with break now and then), inside a tag, or deeper than framealloc's scope stack. */
static void op_burst(thread_t *t)
{
    if (t->burst_depth >= 2)
        return;
    t->burst_depth++;
    unsigned n = (unsigned)between(t, 1, 6), form = (unsigned)below(t, 5);
    fa_intent intent = intents[below(t, COUNT(intents))];
    note(t, "burst form %u intent %d ops %u", form, intent, n);
    switch (form) {
    case 0:
        shadow_push(t, FA_FRAME);
        FA_FRAME_SCOPE {
            if (burst_ops(t, n))
                break; /* leaves the scope only: the macro must still pop */
            burst_ops(t, 1);
        }
        shadow_pop(t);
        break;
    case 1:
        shadow_push(t, intent);
        FA_SCOPE(intent) {
            burst_ops(t, n);
        }
        shadow_pop(t);
        break;
    case 2:
        shadow_push(t, intent);
        {
            FA_SCOPE_HERE(intent);
            burst_ops(t, n);
        }
        shadow_pop(t);
        break;
    case 3:
        fa_tag_push(chance(t, 2) ? "fuzz.a" : "fuzz.b");
        burst_ops(t, n);
        fa_tag_pop();
        break;
    default: {
        /* Past framealloc's 32 nested scopes: the extra pushes and their pops must
         * balance. Frame accounting stays conservative (any frame on the stack). */
        unsigned base = t->depth, target = (unsigned)between(t, 30, SHADOW_MAX - 6);
        while (t->depth < target) {
            fa_intent in = intents[below(t, COUNT(intents))];
            fa_scope_push(in);
            shadow_push(t, in);
        }
        burst_ops(t, n);
        while (t->depth > base) {
            fa_scope_pop();
            shadow_pop(t);
        }
    }
    }
    t->burst_depth--;
}

static void op_stats(thread_t *t)
{
    fa_stats st;
    int rc = fa_stats_get(&st);
    /* Not traced: only whether it answers as fa_active() says. */
    if ((rc == 0) != fa_active())
        fail(t, "fa_stats_get returned %d while fa_active() is %d", rc, fa_active());
}

static void op_verify(thread_t *t)
{
    block_t *b = random_live(t, 0);
    if (b)
        check_block(t, b, "while live");
}

static void random_op(thread_t *t)
{
    t->ops++;
    unsigned r = (unsigned)below(t, 100);
    if (r < 22)
        op_malloc(t);
    else if (r < 28)
        op_calloc(t);
    else if (r < 39)
        op_realloc(t, 0);
    else if (r < 42)
        op_realloc(t, 1);
    else if (r < 58)
        op_free(t);
    else if (r < 67)
        op_aligned(t);
    else if (r < 70)
        op_usable(t);
    else if (r < 79)
        op_cxx(t);
    else if (r < 84)
        op_push(t);
    else if (r < 89)
        op_pop(t);
    else if (r < 93)
        op_burst(t);
    else if (r < 94)
        op_stats(t);
    else if (r < 95 && chance(t, 4))
        op_new_handler(t);
    else if (r < 97)
        op_libc_string(t);
    else if (r < 98 && chance(t, 4))
        op_glibc_tuning(t);
    else
        op_verify(t);
}

/* ---- rounds ---- */

static void send_blocks(thread_t *t)
{
    unsigned to = (t->id + 1) % n_threads, n = (unsigned)below(t, MAIL + 1);
    for (unsigned i = 0; i < n; i++) {
        block_t *b = random_live(t, 0);
        if (!b)
            break;
        check_block(t, b, "before handing it over");
        note(t, "send %llu to t%u", (unsigned long long)b->id, to);
        mailbox[to][mail_count[to]++] = *b;
        memset(b, 0, sizeof *b);
    }
}

static void receive_blocks(thread_t *t)
{
    for (unsigned i = 0; i < mail_count[t->id]; i++) {
        block_t *b = &mailbox[t->id][i];
        check_block(t, b, "after the hand-over");
        note(t, "receive %llu", (unsigned long long)b->id);
        block_t *slot = empty_slot(t);
        *slot = *b;
    }
    mail_count[t->id] = 0;
}

/* Before the frame ends: frame-scope blocks die, or (--escapes) some outlive it. */
static void end_of_frame_blocks(thread_t *t)
{
    for (unsigned i = 0; i < SLOTS; i++) {
        block_t *b = &t->blocks[i];
        if (!b->p || !b->frame)
            continue;
        if (allow_escapes && chance(t, 6)) {
            b->frame = 0;
            note(t, "escape %llu", (unsigned long long)b->id);
        } else {
            release_block(t, b);
        }
    }
}

static void *thread_main(void *arg)
{
    thread_t *t = arg;
    for (t->round = 0; t->round < n_rounds; t->round++) {
        if (t->id == 0 && t->round % 3 == 0)
            fa_frame_begin();
        for (unsigned i = 0; i < ops_per_round / 2; i++)
            random_op(t);
        send_blocks(t);
        pthread_barrier_wait(&barrier);
        receive_blocks(t);
        for (unsigned i = 0; i < ops_per_round / 2; i++)
            random_op(t);
        end_of_frame_blocks(t);
        pthread_barrier_wait(&barrier);
        if (t->id == 0) {
            /* The number of frames ended is a function of the seed and the round. */
            unsigned frames = (unsigned)(mix64(seed * 31 + t->round) % 4);
            for (unsigned f = 0; f < (frames == 3 ? 2 : frames ? 1 : 0); f++)
                fa_frame_end();
        }
        pthread_barrier_wait(&barrier);
    }
    while (t->depth)
        op_pop(t);
    for (unsigned i = 0; i < SLOTS; i++)
        if (t->blocks[i].p)
            release_block(t, &t->blocks[i]);
    return NULL;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--seed N] [--threads 1-%d] [--rounds N] [--ops N] [--escapes] [--trace] [--require-library] "
            "[--require-frames] [--require-no-escapes]\n",
            argv0, MAX_THREADS);
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(a, "--threads") && v)
            n_threads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && v)
            n_rounds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--ops") && v)
            ops_per_round = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--escapes"))
            allow_escapes = 1;
        else if (!strcmp(a, "--trace"))
            tracing = 1;
        else if (!strcmp(a, "--require-library"))
            require_library = 1;
        else if (!strcmp(a, "--require-frames"))
            require_frames = 1;
        else if (!strcmp(a, "--require-no-escapes"))
            require_no_escapes = 1;
        else
            usage(argv[0]);
    }
    if (n_threads < 1 || n_threads > MAX_THREADS)
        usage(argv[0]);

    /* stdout gets a static buffer: libc must not allocate it lazily inside a frame
     * scope. The unwinder is warmed up for the same reason. */
    static char out_buf[1 << 16];
    setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
    fz_cxx_warm_up();
    cfree_fn = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    if (!cfree_fn)
        cfree_fn = (void (*)(void *))dlvsym(RTLD_DEFAULT, "cfree", "GLIBC_2.2.5");
    if (require_library && !fa_active()) {
        fprintf(stderr, "fa_fuzz: libframealloc is not loaded (run with LD_PRELOAD)\n");
        return 1;
    }

    pthread_barrier_init(&barrier, NULL, n_threads);
    pthread_t tids[MAX_THREADS];
    for (unsigned i = 0; i < n_threads; i++) {
        thread_t *t = &threads[i];
        t->id = i;
        t->rng = mix64(seed) ^ mix64(i + 1);
        t->hash = 0xCBF29CE484222325ULL;
        if (tracing) {
            t->trace = mmap(NULL, TRACE_CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (t->trace == MAP_FAILED) {
                perror("fa_fuzz: mmap");
                return 1;
            }
        }
        int err = pthread_create(&tids[i], NULL, thread_main, t);
        if (err) {
            fprintf(stderr, "fa_fuzz: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (unsigned i = 0; i < n_threads; i++)
        pthread_join(tids[i], NULL);
    fa_frame_end();
    fa_frame_end();

    printf("fa_fuzz seed %llu threads %u rounds %u ops %u escapes %d\n", (unsigned long long)seed, n_threads, n_rounds,
           ops_per_round, allow_escapes);
    for (unsigned i = 0; i < n_threads; i++) {
        thread_t *t = &threads[i];
        if (tracing)
            fwrite(t->trace, 1, t->trace_len, stdout);
        printf("thread %u: %llu operations, %llu allocations, %llu failed, trace %016llx\n", i,
               (unsigned long long)t->ops, (unsigned long long)t->allocs, (unsigned long long)t->failures,
               (unsigned long long)t->hash);
    }
    fa_stats st;
    if (fa_stats_get(&st) == 0) {
        fprintf(stderr, "fa_fuzz: framealloc served %llu frame and %llu pool allocations over %llu frames, %llu escapes\n",
                (unsigned long long)st.frame_allocs, (unsigned long long)st.pool_allocs, (unsigned long long)st.frame,
                (unsigned long long)st.frame_escapes);
        /* Frame scopes must reach the frame arenas in every mode, or the mode tests a
         * different allocator from the one a game ships with. */
        if (require_frames && st.frame_allocs == 0) {
            fprintf(stderr, "fa_fuzz: FAIL: --require-frames, but no allocation was served by a frame arena\n");
            return 1;
        }
        /* Without --escapes every frame block dies before its frame ends: an escape
         * is a block the program never made (the allocator's or libc's own). */
        if (require_no_escapes && st.frame_escapes) {
            fprintf(stderr, "fa_fuzz: FAIL: %llu escapes, but the program freed every frame block before its frame ended\n",
                    (unsigned long long)st.frame_escapes);
            return 1;
        }
    }
    return 0;
}

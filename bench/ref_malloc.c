/* ref_malloc.c: the malloc family of the reference allocators (bench/ only).
 *
 * Built twice by bench/meson.build: libref_bump.so (naive bump: malloc bumps a
 * per-thread pointer in 64 MiB slabs, free returns, nothing is ever reused) and, with
 * -DREF_LINEAR, libref_linear.so (the same, plus a frame buffer that frame scopes bump
 * in and that is reset each frame; see ref_linear.c). They set the physical limit of
 * an allocation through the malloc ABI for scripts/bench-instructions: the fast path
 * is one TLS load, one compare, the bump and a size store.
 *
 * They are complete enough to run the benchmark binaries and the demo game: every
 * block has its size in front of it (realloc copies, malloc_usable_size answers),
 * calloc zeroes, the aligned forms align. Memory is never returned to the OS. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ref_malloc.h"

#define REF_SLAB ((size_t)64 << 20)
/* Requests above this get their own mapping instead of wasting a slab's tail. */
#define REF_OWN_MAPPING (REF_SLAB / 4)

__thread ref_thread_t ref_thread __attribute__((tls_model("initial-exec")));

static inline size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static inline void header_set(char *block, size_t size) { ((size_t *)block)[-1] = size; }

static inline size_t header_get(const void *block) { return ((const size_t *)block)[-1]; }

/* The bump area this thread allocates from now. */
static inline ref_bump_t *bump_current(void)
{
#ifdef REF_LINEAR
    return &ref_thread.bump[ref_thread.in_frame];
#else
    return &ref_thread.bump[0];
#endif
}

static void *map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A block in a mapping of its own (large requests and large alignments). */
static void *alloc_own_mapping(size_t size, size_t align)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t lead = align > REF_HEADER ? align : REF_HEADER;
    if (size > SIZE_MAX / 2 - lead - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t bytes = (lead + round16(size) + page - 1) & ~(page - 1);
    char *base = map(bytes);
    if (!base) {
        errno = ENOMEM;
        return NULL;
    }
    /* mmap returns page-aligned memory: base + lead is aligned for align <= page;
     * larger alignments over-allocate and skip ahead. */
    if (align > page) {
        munmap(base, bytes);
        bytes += align;
        base = map(bytes);
        if (!base) {
            errno = ENOMEM;
            return NULL;
        }
    }
    char *block = (char *)(((uintptr_t)base + lead + align - 1) & ~(uintptr_t)(align - 1));
    header_set(block, round16(size));
    return block;
}

/* Bump size bytes aligned to align (a power of two, at least 16) from b; NULL when
 * b has no room. */
static void *bump_try(ref_bump_t *b, size_t size, size_t align)
{
    if (!b->cur)
        return NULL;
    uintptr_t block = ((uintptr_t)b->cur + REF_HEADER + align - 1) & ~(uintptr_t)(align - 1);
    uintptr_t end = (uintptr_t)b->end;
    if (block > end || round16(size) > end - block)
        return NULL;
    b->cur = (char *)(block + round16(size));
    header_set((char *)block, round16(size));
    return (void *)block;
}

/* Every case the fast path does not take: the first call of a thread, a full slab,
 * large sizes and alignments, and (linear) a full or stale frame buffer. */
static __attribute__((noinline)) void *alloc_slow(size_t size, size_t align)
{
    if (size > REF_OWN_MAPPING || align > 4096)
        return alloc_own_mapping(size, align);
    ref_bump_t *b = bump_current();
#ifdef REF_LINEAR
    if (b == &ref_thread.bump[1]) {
        void *p = bump_try(b, size, align);
        if (p)
            return p;
        if (ref_frame_refresh() && (p = bump_try(b, size, align)))
            return p;
        b = &ref_thread.bump[0]; /* frame buffer full: serve from the slabs */
    }
#endif
    void *p = bump_try(b, size, align);
    if (p)
        return p;
    char *slab = map(REF_SLAB);
    if (!slab) {
        errno = ENOMEM;
        return NULL;
    }
    b->cur = slab;
    b->end = slab + REF_SLAB;
    return bump_try(b, size, align);
}

REF_EXPORT void *malloc(size_t size)
{
    ref_bump_t *b = bump_current();
    char *p = b->cur;
    /* The new cursor is p + 16 + round16(size): (p + 31 + size) rounded down. A carry
     * (a size near SIZE_MAX) or a cursor past the end takes the slow path; so does
     * the first call of a thread (cur = end = NULL). */
    uintptr_t next;
    if (__builtin_expect(__builtin_add_overflow((uintptr_t)p + REF_HEADER + 15, size, &next), 0))
        return alloc_slow(size, 16);
    next &= ~(uintptr_t)15;
    if (__builtin_expect(next > (uintptr_t)b->end, 0))
        return alloc_slow(size, 16);
    b->cur = (char *)next;
    header_set(p + REF_HEADER, next - (uintptr_t)(p + REF_HEADER));
    return p + REF_HEADER;
}

/* Nothing is reused: free only returns. */
REF_EXPORT void free(void *p) { (void)p; }

REF_EXPORT void cfree(void *p) { (void)p; }

REF_EXPORT void *calloc(size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

REF_EXPORT size_t malloc_usable_size(void *p) { return p ? header_get(p) : 0; }

REF_EXPORT void *realloc(void *old, size_t size)
{
    if (!old)
        return malloc(size);
    if (size == 0) { /* glibc: frees and returns NULL */
        free(old);
        return NULL;
    }
    size_t have = header_get(old);
    if (size <= have)
        return old;
    void *p = malloc(size);
    if (p)
        memcpy(p, old, have);
    return p;
}

REF_EXPORT void *reallocarray(void *old, size_t count, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, bytes);
}

static int is_power_of_two(size_t x) { return x && !(x & (x - 1)); }

static void *alloc_aligned(size_t align, size_t size)
{
    return alloc_slow(size, align < 16 ? 16 : align);
}

REF_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (!is_power_of_two(align) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = alloc_aligned(align, size);
    if (!p)
        return ENOMEM;
    errno = saved;
    *out = p;
    return 0;
}

REF_EXPORT void *aligned_alloc(size_t align, size_t size)
{
    if (!is_power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_aligned(align, size);
}

REF_EXPORT void *memalign(size_t align, size_t size)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 16;
    while (a < align) /* glibc rounds a non-power of two up */
        a <<= 1;
    return alloc_aligned(a, size);
}

REF_EXPORT void *valloc(size_t size) { return alloc_aligned((size_t)sysconf(_SC_PAGESIZE), size); }

REF_EXPORT void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return alloc_aligned(page, (size + page - 1) & ~(page - 1));
}

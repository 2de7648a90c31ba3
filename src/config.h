/* Compile-time constants shared by the core. Runtime settings live in options.c. */
#ifndef FA_CONFIG_H
#define FA_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Frame and pool memory is carved in chunks of this size, aligned to it, so the
 * chunk header of any pointer in the region is found by masking. */
#define FA_CHUNK_SHIFT 18
#define FA_CHUNK_SIZE ((size_t)1 << FA_CHUNK_SHIFT)
#define FA_CHUNK_MASK (FA_CHUNK_SIZE - 1)

/* The region grows its committed (read-write) prefix in steps of this size. */
#define FA_COMMIT_STEP ((size_t)8 << 20)

/* Every block the malloc ABI returns is at least this aligned (glibc's guarantee). */
#define FA_MIN_ALIGN 16

/* Deepest nesting of fa_scope_push; deeper pushes are counted and ignored. */
#define FA_SCOPE_MAX 32

#define FA_CACHE_LINE 64

#define FA_LIKELY(x) __builtin_expect(!!(x), 1)
#define FA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FA_NOINLINE __attribute__((noinline))
#define FA_INLINE static inline __attribute__((always_inline))
#define FA_COLD __attribute__((cold, noinline))
/* On the code every process runs: start-up and exit, the malloc family's entry
 * points and refill paths. Linux maps a library's text 64 KiB around each page a
 * program touches; the linker puts .text.hot.* right after the PLT, so a program
 * that stays on these paths keeps one such window of framealloc's code resident
 * instead of one per place the code happens to sit (src/rename-jemalloc.sh keeps
 * jemalloc out of that spot). */
#define FA_EVERY_PROCESS __attribute__((section(".text.hot.framealloc")))
/* On the globals every process writes (start-up, the malloc family's slow paths):
 * they share the library's .data page, which relocation dirties anyway, instead of
 * dirtying a page of .bss each wherever the linker happens to put them. */
#define FA_EVERY_PROCESS_DATA __attribute__((section(".data.every_process")))
/* On the constant tables those paths read: among the relocated read-only data, whose
 * pages relocation dirties at load anyway, not in .rodata, where one read maps a
 * 64 KiB window of the library's read-only data. */
#define FA_EVERY_PROCESS_CONST __attribute__((section(".data.rel.ro.every_process")))
/* On the core's globals: accessed directly, not through the GOT (-fvisibility=hidden
 * covers definitions only, not extern declarations seen by other files). */
#define FA_HIDDEN __attribute__((visibility("hidden")))
/* On the public fa_* API's definitions: exported from the library. */
#define FA_API __attribute__((visibility("default")))

#endif

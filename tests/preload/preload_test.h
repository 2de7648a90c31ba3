/* Shared helpers for the tests that run under LD_PRELOAD=libframealloc.so.
 * Each test file provides preload_suite(); preload_main.c runs it. */
#ifndef PRELOAD_TEST_H
#define PRELOAD_TEST_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "framealloc.h"

#ifdef __cplusplus
extern "C" {
#endif

Suite *preload_suite(void);

/* The command-line arguments after the program name (helper paths from meson). */
extern int preload_argc;
extern char **preload_argv;

/* Allocations served by frame arenas so far: goes up by one for each block a frame
 * arena hands out, so a test can tell "the frame arena served this" from "the heap did".
 * Note that every passing ck_assert allocates (Check reports the last checkpoint to
 * its parent), so measure with no assertion in between. */
uint64_t frame_allocs_now(void);

/* Path of the shared object that defines the global symbol name ("" if none). */
const char *object_defining(const char *name);

/* 1 when the global symbol name is defined by libframealloc.so. */
int defined_by_framealloc(const char *name);

/* Runs fn(arg) in a forked child whose stderr goes into err (NUL-terminated,
 * truncated to cap). Returns the child's wait status. The child exits 0 if fn returns. */
int run_in_child_capturing_stderr(void (*fn)(void *), void *arg, char *err, size_t cap);

/* Current size of this process's address space (VmSize), in bytes. */
size_t address_space_in_use(void);

/* Sets the soft RLIMIT_AS to the current address space plus headroom bytes (at most
 * the hard limit). */
void limit_address_space(size_t headroom);

/* True when all n bytes at p equal value. */
int all_bytes_are(const void *p, size_t n, unsigned char value);

#ifdef __cplusplus
}
#endif

#endif

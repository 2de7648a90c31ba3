/* Allocation-free diagnostics: formats into a stack buffer and writes with write(2).
 * Never calls malloc itself, so it is safe inside the allocator and before
 * initialisation (a misuse observer, set by records, may allocate). */
#ifndef FA_LOG_H
#define FA_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Formats like a small printf: %s %c %d %i %u %x %p with l, ll and z sizes,
 * a width with optional '-', and a precision (.N or .*) for strings.
 * Returns the length written (truncated to cap - 1, always NUL-terminated). */
size_t fa_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t fa_vformat(char *buf, size_t cap, const char *fmt, va_list ap);

/* Writes all of buf to fd, retrying on EINTR; keeps errno. */
void fa_write_all(int fd, const char *buf, size_t len);

/* One line on stderr prefixed with "framealloc: ". */
void fa_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr prefixed with "framealloc: error: ", then abort(). Used for
 * detected heap corruption and misuse, where going on would damage data. */
void fa_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn, cold));

/* What a misuse report can add about the pointer p (records: the allocating stack of
 * the block). Set once at start-up by whoever knows blocks; called at most once per
 * process, after the message line, before abort(). */
typedef void (*fa_misuse_observer_t)(const void *p);
void fa_log_set_misuse_observer(fa_misuse_observer_t observer);

/* fa_fatal for a misuse of the pointer p (a bad free, realloc or size query): the
 * same one line, then the observer's lines about p (if one is set), then abort().
 * The arenas call it before they change anything and without their locks held, so
 * the observer may use the allocator. */
void fa_fatal_misuse(const void *p, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn, cold));

#endif

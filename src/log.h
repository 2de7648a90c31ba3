/* Allocation-free diagnostics: formats into a stack buffer and writes with write(2).
 * Never calls malloc, so it is safe inside the allocator and before initialisation. */
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

#endif

/* Diagnostics without malloc: a minimal formatter and write(2); fatal errors, and
 * misuse reports with the lines their observer adds. */
#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
} fa_out_t;

static void out_char(fa_out_t *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void out_str(fa_out_t *o, const char *s)
{
    if (!s)
        s = "(null)";
    while (*s)
        out_char(o, *s++);
}

static void out_unsigned(fa_out_t *o, unsigned long long v, unsigned base)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n)
        out_char(o, digits[--n]);
}

static void out_signed(fa_out_t *o, long long v)
{
    if (v < 0) {
        out_char(o, '-');
        out_unsigned(o, 0ULL - (unsigned long long)v, 10);
    } else {
        out_unsigned(o, (unsigned long long)v, 10);
    }
}

/* Formats one conversion into tmp; returns its length. */
static size_t format_one(char conv, int longs, int sized, int precision, va_list *ap, char *tmp, size_t cap)
{
    fa_out_t o = {tmp, cap, 0};
    switch (conv) {
    case 's': {
        const char *s = va_arg(*ap, const char *);
        if (!s)
            s = "(null)";
        for (int i = 0; s[i] && (precision < 0 || i < precision); i++)
            out_char(&o, s[i]);
        break;
    }
    case 'c': out_char(&o, (char)va_arg(*ap, int)); break;
    case 'p':
        out_str(&o, "0x");
        out_unsigned(&o, (uintptr_t)va_arg(*ap, void *), 16);
        break;
    case 'd':
    case 'i':
        if (sized) out_signed(&o, va_arg(*ap, ptrdiff_t));
        else if (longs == 1) out_signed(&o, va_arg(*ap, long));
        else if (longs >= 2) out_signed(&o, va_arg(*ap, long long));
        else out_signed(&o, va_arg(*ap, int));
        break;
    case 'u':
    case 'x': {
        unsigned base = conv == 'x' ? 16 : 10;
        if (sized) out_unsigned(&o, va_arg(*ap, size_t), base);
        else if (longs == 1) out_unsigned(&o, va_arg(*ap, unsigned long), base);
        else if (longs >= 2) out_unsigned(&o, va_arg(*ap, unsigned long long), base);
        else out_unsigned(&o, va_arg(*ap, unsigned), base);
        break;
    }
    default:
        out_char(&o, '%');
        out_char(&o, conv);
    }
    return o.len < cap ? o.len : cap;
}

size_t fa_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    fa_out_t o = {buf, cap, 0};
    va_list args;
    va_copy(args, ap);
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            out_char(&o, *f);
            continue;
        }
        f++;
        if (*f == '%') {
            out_char(&o, '%');
            continue;
        }
        int left = 0, width = 0, precision = -1, longs = 0, sized = 0;
        if (*f == '-') {
            left = 1;
            f++;
        }
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        if (*f == '.') {
            f++;
            if (*f == '*') {
                precision = va_arg(args, int);
                f++;
            } else {
                precision = 0;
                while (*f >= '0' && *f <= '9')
                    precision = precision * 10 + (*f++ - '0');
            }
        }
        while (*f == 'l') {
            longs++;
            f++;
        }
        if (*f == 'z') {
            sized = 1;
            f++;
        }
        if (!*f)
            break;
        char tmp[256];
        size_t n = format_one(*f, longs, sized, precision, &args, tmp, sizeof tmp);
        for (size_t pad = n; !left && pad < (size_t)width; pad++)
            out_char(&o, ' ');
        for (size_t i = 0; i < n; i++)
            out_char(&o, tmp[i]);
        for (size_t pad = n; left && pad < (size_t)width; pad++)
            out_char(&o, ' ');
    }
    va_end(args);
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len < cap ? o.len : (cap ? cap - 1 : 0);
}

size_t fa_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = fa_vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

void fa_write_all(int fd, const char *buf, size_t len)
{
    int saved = errno;
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        buf += w;
        len -= (size_t)w;
    }
    errno = saved;
}

static void log_line(const char *prefix, const char *fmt, va_list ap)
{
    char line[512];
    size_t n = fa_format(line, sizeof line, "%s", prefix);
    n += fa_vformat(line + n, sizeof line - n - 1, fmt, ap);
    line[n++] = '\n';
    fa_write_all(2, line, n);
}

void fa_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("framealloc: ", fmt, ap);
    va_end(ap);
}

void fa_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("framealloc: error: ", fmt, ap);
    va_end(ap);
    abort();
}

static fa_misuse_observer_t misuse_observer;
/* Set by the first misuse report that calls the observer: a misuse inside the
 * observer (or in another thread meanwhile) gets its line alone. */
static int observing;

void fa_log_set_misuse_observer(fa_misuse_observer_t observer)
{
    __atomic_store_n(&misuse_observer, observer, __ATOMIC_RELEASE);
}

void fa_fatal_misuse(const void *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line("framealloc: error: ", fmt, ap);
    va_end(ap);
    fa_misuse_observer_t observer = __atomic_load_n(&misuse_observer, __ATOMIC_ACQUIRE);
    if (observer && !__atomic_exchange_n(&observing, 1, __ATOMIC_ACQ_REL))
        observer(p);
    abort();
}

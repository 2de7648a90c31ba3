/* Turning return addresses into "function (file:line)" for reports, with the
 * functions inlined at each address. Only reports and error messages use it,
 * never the allocation paths: it may allocate. */
#ifndef FA_SYMBOLS_H
#define FA_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

/* One level of a frame. A return address gives one or more: the functions inlined
 * at the call (innermost first, inlined = 1), then the function that holds the code
 * (inlined = 0). The strings stay valid until the next fa_symbols_open. */
typedef struct {
    const char *function; /* demangled, whole; "module+0xoffset" when there is no symbol */
    const char *file;     /* source file from debug info, or "" */
    int line;             /* 0 when unknown */
    int inlined;          /* 1: inlined into the next level, at this level's call line */
    const char *module;   /* the shared object or executable (base name) */
} fa_symbol_t;

/* Opens the symbolizer (libdw when it can be loaded, else dladdr alone), reading the
 * process's current modules: call it once per report, so that libraries loaded since
 * the last one are known. Lookups are cached by address until the next open. */
void fa_symbols_open(void);
/* Describes pc, a return address (the call instruction just before it is looked
 * up): *levels points at count >= 1 levels, innermost first. */
uint32_t fa_symbols_lookup(uintptr_t pc, const fa_symbol_t **levels);
void fa_symbols_close(void);

/* One fa_log line per level ("  at function (file:line)"), for at most max frames. */
void fa_symbols_log_stack(const uintptr_t *frames, uint32_t depth, uint32_t max);

#endif

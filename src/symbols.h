/* Turning return addresses into "function (file:line)" for reports. Only reports
 * use it, never the allocation paths: it may allocate. */
#ifndef FA_SYMBOLS_H
#define FA_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char function[256]; /* demangled; "module+0xoffset" when there is no symbol */
    char file[256];     /* source file from debug info, or "" */
    int line;           /* 0 when unknown */
    char module[128];   /* the shared object or executable (base name) */
} fa_symbol_t;

/* Opens the symbolizer (libdw when it can be loaded, else dladdr alone), reading the
 * process's current modules: call it once per report, so that libraries loaded since
 * the last one are known. Lookups are cached by address until the next open. */
void fa_symbols_open(void);
/* Describes pc, a return address: the call instruction just before it is looked up. */
void fa_symbols_lookup(uintptr_t pc, fa_symbol_t *out);
void fa_symbols_close(void);

/* One fa_log line per frame ("  at function (file:line)"), at most max frames. */
void fa_symbols_log_stack(const uintptr_t *frames, uint32_t depth, uint32_t max);

#endif

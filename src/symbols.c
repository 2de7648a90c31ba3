/* Symbolization for reports: libdw (elfutils) for function names and file:line from
 * debug info, loaded with dlopen only when a report is written; dladdr otherwise.
 * libdw is loaded RTLD_LOCAL, so none of its names enter the program's scope. */
#include "symbols.h"

#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

/* The C++ runtime's demangler, when one is loaded (looked up when a report opens
 * the symbolizer, so that C-only programs need no libstdc++). */
typedef char *(*demangle_fn)(const char *mangled, char *buffer, size_t *length, int *status);
static demangle_fn demangle;

static struct {
    void *lib;
    Dwfl *dwfl;
    Dwfl_Callbacks callbacks;
    void (*end)(Dwfl *);
    Dwfl_Module *(*addrmodule)(Dwfl *, Dwarf_Addr);
    const char *(*addrinfo)(Dwfl_Module *, Dwarf_Addr, GElf_Off *, GElf_Sym *, GElf_Word *, Dwfl **, Dwarf_Addr *);
    Dwfl_Line *(*getsrc)(Dwfl_Module *, Dwarf_Addr);
    const char *(*lineinfo)(Dwfl_Line *, Dwarf_Addr *, int *, int *, Dwarf_Word *, Dwarf_Word *);
} dw;

typedef Dwfl *(*begin_fn)(const Dwfl_Callbacks *);
typedef int (*maps_report_fn)(Dwfl *, FILE *);
typedef int (*report_end_fn)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *), void *);
typedef int (*find_elf_fn)(Dwfl_Module *, void **, const char *, Dwarf_Addr, char **, Elf **);
typedef int (*find_debuginfo_fn)(Dwfl_Module *, void **, const char *, Dwarf_Addr, const char *, const char *,
                                 GElf_Word, char **);

/* Lookups of one report, by address: stacks share most of their frames. */
#define CACHE_SLOTS (1u << 16)
typedef struct {
    uintptr_t pc; /* 0: empty */
    fa_symbol_t symbol;
} cached_t;
static cached_t *cache;

static void reset_cache(void)
{
    if (cache)
        munmap(cache, CACHE_SLOTS * sizeof *cache);
    void *mem = mmap(NULL, CACHE_SLOTS * sizeof *cache, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cache = mem == MAP_FAILED ? NULL : mem;
}

void fa_symbols_open(void)
{
    if (!demangle)
        demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
    reset_cache();
    fa_symbols_close(); /* modules may have come and gone since the last report */
    if (!dw.lib)
        dw.lib = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!dw.lib)
        return;
    begin_fn begin = (begin_fn)dlsym(dw.lib, "dwfl_begin");
    maps_report_fn maps_report = (maps_report_fn)dlsym(dw.lib, "dwfl_linux_proc_maps_report");
    report_end_fn report_end = (report_end_fn)dlsym(dw.lib, "dwfl_report_end");
    dw.end = (void (*)(Dwfl *))dlsym(dw.lib, "dwfl_end");
    dw.addrmodule = (Dwfl_Module * (*)(Dwfl *, Dwarf_Addr)) dlsym(dw.lib, "dwfl_addrmodule");
    dw.addrinfo = (const char *(*)(Dwfl_Module *, Dwarf_Addr, GElf_Off *, GElf_Sym *, GElf_Word *, Dwfl **,
                                   Dwarf_Addr *))dlsym(dw.lib, "dwfl_module_addrinfo");
    dw.getsrc = (Dwfl_Line * (*)(Dwfl_Module *, Dwarf_Addr)) dlsym(dw.lib, "dwfl_module_getsrc");
    dw.lineinfo = (const char *(*)(Dwfl_Line *, Dwarf_Addr *, int *, int *, Dwarf_Word *, Dwarf_Word *))dlsym(
        dw.lib, "dwfl_lineinfo");
    dw.callbacks.find_elf = (find_elf_fn)dlsym(dw.lib, "dwfl_linux_proc_find_elf");
    dw.callbacks.find_debuginfo = (find_debuginfo_fn)dlsym(dw.lib, "dwfl_standard_find_debuginfo");
    if (!begin || !maps_report || !report_end || !dw.end || !dw.addrmodule || !dw.addrinfo || !dw.getsrc ||
        !dw.lineinfo || !dw.callbacks.find_elf || !dw.callbacks.find_debuginfo)
        return;
    Dwfl *dwfl = begin(&dw.callbacks);
    if (!dwfl)
        return;
    /* /proc/self, not /proc/PID: in a new pid namespace with the host's /proc
     * mounted (containers), getpid() names another process there. */
    FILE *maps = fopen("/proc/self/maps", "re");
    int failed = !maps || maps_report(dwfl, maps) != 0 || report_end(dwfl, NULL, NULL) != 0;
    if (maps)
        fclose(maps);
    if (failed) {
        dw.end(dwfl);
        return;
    }
    dw.dwfl = dwfl;
}

void fa_symbols_close(void)
{
    if (dw.dwfl)
        dw.end(dw.dwfl);
    dw.dwfl = NULL;
}

static void copy_text(char *out, size_t cap, const char *text)
{
    size_t n = strlen(text);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, text, n);
    out[n] = '\0';
}

static void set_function(fa_symbol_t *out, const char *name, size_t offset)
{
    char plain[256];
    const char *at = strchr(name, '@'); /* drop symbol versions: name@@GLIBC_2.34 */
    if (at && at != name && (size_t)(at - name) < sizeof plain) {
        memcpy(plain, name, (size_t)(at - name));
        plain[at - name] = '\0';
        name = plain;
    }
    int status = -1;
    char *demangled = demangle && name[0] == '_' && name[1] == 'Z' ? demangle(name, NULL, NULL, &status) : NULL;
    const char *shown = status == 0 && demangled ? demangled : name;
    if (offset)
        fa_format(out->function, sizeof out->function, "%s+%zu", shown, offset);
    else
        copy_text(out->function, sizeof out->function, shown);
    free(demangled);
}

void fa_symbols_log_stack(const uintptr_t *frames, uint32_t depth, uint32_t max)
{
    fa_symbols_open();
    for (uint32_t i = 0; i < depth && i < max; i++) {
        fa_symbol_t sym;
        fa_symbols_lookup(frames[i], &sym);
        if (sym.file[0])
            fa_log("  at %s (%s:%d)", sym.function, sym.file, sym.line);
        else
            fa_log("  at %s [%s]", sym.function, sym.module);
    }
}

static void lookup(uintptr_t pc, fa_symbol_t *out);

void fa_symbols_lookup(uintptr_t pc, fa_symbol_t *out)
{
    if (!cache || !pc) {
        lookup(pc, out);
        return;
    }
    size_t slot = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 48) & (CACHE_SLOTS - 1);
    for (size_t probes = 0; probes < 16; probes++, slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        if (cache[slot].pc == pc) {
            *out = cache[slot].symbol;
            return;
        }
        if (!cache[slot].pc) {
            lookup(pc, out);
            cache[slot].pc = pc;
            cache[slot].symbol = *out;
            return;
        }
    }
    lookup(pc, out); /* a crowded neighbourhood: not cached */
}

static void lookup(uintptr_t pc, fa_symbol_t *out)
{
    memset(out, 0, sizeof *out);
    uintptr_t call = pc ? pc - 1 : pc; /* the call instruction, not the one after it */
    Dl_info info;
    int found = dladdr((void *)call, &info);
    if (found && info.dli_fname) {
        const char *base = strrchr(info.dli_fname, '/');
        copy_text(out->module, sizeof out->module, base ? base + 1 : info.dli_fname);
    }
    if (dw.dwfl) {
        Dwfl_Module *mod = dw.addrmodule(dw.dwfl, call);
        if (mod) {
            GElf_Off offset = 0;
            GElf_Sym sym;
            const char *name = dw.addrinfo(mod, call, &offset, &sym, NULL, NULL, NULL);
            if (name)
                set_function(out, name, 0);
            Dwfl_Line *line = dw.getsrc(mod, call);
            int lineno = 0;
            const char *file = line ? dw.lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
            if (file) {
                copy_text(out->file, sizeof out->file, file);
                out->line = lineno;
            }
            if (name)
                return;
        }
    }
    /* dladdr's symbol name points into the module's own mapping, which another
     * thread may dlclose right now; with libdw loaded (which reads the files itself)
     * a module it does not know is shown as module+offset instead. */
    if (found && info.dli_sname && !dw.dwfl) {
        set_function(out, info.dli_sname, (size_t)(pc - (uintptr_t)info.dli_saddr));
        return;
    }
    if (found && info.dli_fname)
        fa_format(out->function, sizeof out->function, "%s+0x%zx", out->module, (size_t)(pc - (uintptr_t)info.dli_fbase));
    else
        fa_format(out->function, sizeof out->function, "%p", (void *)pc);
}

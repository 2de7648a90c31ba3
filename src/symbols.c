/* Symbolization for reports: libdw (elfutils) for function names, file:line and
 * inlined functions from debug info, loaded with dlopen only when a report is
 * written; dladdr otherwise. libdw is loaded RTLD_LOCAL, so none of its names enter
 * the program's scope.
 *
 * An optimized C++ program's allocations are mostly inlined code (std::vector growth
 * inlined into the game's function, operator new called from an inlined allocator):
 * the line table alone names the innermost inlined function's header line. The
 * DWARF scopes at the address (DW_TAG_inlined_subroutine, each with the
 * DW_AT_call_file and DW_AT_call_line of its call) give every level down to the
 * game's own line. */
#include "symbols.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "os.h"

#define MAX_LEVELS 32 /* inlined levels kept per address */

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
    /* inlined levels (optional: without them, one level per address) */
    Dwarf_Die *(*addrdie)(Dwfl_Module *, Dwarf_Addr, Dwarf_Addr *);
    int (*getscopes_die)(Dwarf_Die *, Dwarf_Die **);
    int (*child)(Dwarf_Die *, Dwarf_Die *);
    int (*siblingof)(Dwarf_Die *, Dwarf_Die *);
    int (*haspc)(Dwarf_Die *, Dwarf_Addr);
    Dwarf_Off (*dieoffset)(Dwarf_Die *);
    int (*tag)(Dwarf_Die *);
    Dwarf_Attribute *(*attr_integrate)(Dwarf_Die *, unsigned int, Dwarf_Attribute *);
    Dwarf_Attribute *(*attr)(Dwarf_Die *, unsigned int, Dwarf_Attribute *);
    const char *(*formstring)(Dwarf_Attribute *);
    int (*formudata)(Dwarf_Attribute *, Dwarf_Word *);
    int (*getsrcfiles)(Dwarf_Die *, Dwarf_Files **, size_t *);
    const char *(*filesrc)(Dwarf_Files *, size_t, Dwarf_Word *, Dwarf_Word *);
    Dwarf_Die *(*formref_die)(Dwarf_Attribute *, Dwarf_Die *);
    const char *(*diename)(Dwarf_Die *);
} dw;

typedef Dwfl *(*begin_fn)(const Dwfl_Callbacks *);
typedef int (*maps_report_fn)(Dwfl *, FILE *);
typedef int (*report_end_fn)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *), void *);
typedef int (*find_elf_fn)(Dwfl_Module *, void **, const char *, Dwarf_Addr, char **, Elf **);
typedef int (*find_debuginfo_fn)(Dwfl_Module *, void **, const char *, Dwarf_Addr, const char *, const char *,
                                 GElf_Word, char **);

/* ---- memory of one report: strings and level arrays, dropped at the next open ---- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used;
} arena_chunk_t;
static arena_chunk_t *arena;

static void *arena_take(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!arena || arena->size - arena->used < n) {
        size_t size = n + sizeof *arena + 16 > (1u << 20) ? n + sizeof *arena + 16 : (1u << 20);
        arena_chunk_t *c = fa_os_map_table(size);
        if (!c)
            return NULL;
        c->next = arena;
        c->size = size;
        c->used = (sizeof *c + 15) & ~(size_t)15;
        arena = c;
    }
    void *p = (char *)arena + arena->used;
    arena->used += n;
    return p;
}

static const char *arena_text(const char *text)
{
    size_t n = strlen(text);
    char *copy = arena_take(n + 1);
    if (!copy)
        return "?";
    memcpy(copy, text, n + 1);
    return copy;
}

static void arena_reset(void)
{
    while (arena) {
        arena_chunk_t *next = arena->next;
        fa_os_unreserve(arena, arena->size);
        arena = next;
    }
}

/* Appends text to the string in out (cap bytes in all), cut if it must be: fa_format
 * cuts every %s at 255 characters, too short for C++ names and paths. */
static void append(char *out, size_t cap, const char *text)
{
    size_t len = strlen(out), n = strlen(text);
    if (len + 1 >= cap)
        return;
    if (n > cap - len - 1)
        n = cap - len - 1;
    memcpy(out + len, text, n);
    out[len + n] = '\0';
}

/* Names by DIE, for one report: the same functions are inlined at many addresses,
 * and qualifying a name walks its compilation unit. */
#define NAME_SLOTS 4096
typedef struct {
    const void *module;
    Dwarf_Off offset;
    const char *name;
} name_slot_t;
static name_slot_t *names;

/* Lookups of one report, by address: stacks share most of their frames. */
#define CACHE_SLOTS (1u << 16)
typedef struct {
    uintptr_t pc; /* 0: empty */
    uint32_t count;
    const fa_symbol_t *levels;
} cached_t;
static cached_t *cache;

static void reset_cache(void)
{
    if (cache)
        fa_os_unreserve(cache, CACHE_SLOTS * sizeof *cache);
    cache = fa_os_map_table(CACHE_SLOTS * sizeof *cache);
}

#define LOAD(field, name) (dw.field = (__typeof__(dw.field))dlsym(dw.lib, name))

void fa_symbols_open(void)
{
    if (!demangle)
        demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
    reset_cache();
    arena_reset();
    names = NULL; /* it lived in the arena */
    fa_symbols_close(); /* modules may have come and gone since the last report */
    if (!dw.lib)
        dw.lib = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!dw.lib)
        return;
    begin_fn begin = (begin_fn)dlsym(dw.lib, "dwfl_begin");
    maps_report_fn maps_report = (maps_report_fn)dlsym(dw.lib, "dwfl_linux_proc_maps_report");
    report_end_fn report_end = (report_end_fn)dlsym(dw.lib, "dwfl_report_end");
    LOAD(end, "dwfl_end");
    LOAD(addrmodule, "dwfl_addrmodule");
    LOAD(addrinfo, "dwfl_module_addrinfo");
    LOAD(getsrc, "dwfl_module_getsrc");
    LOAD(lineinfo, "dwfl_lineinfo");
    LOAD(addrdie, "dwfl_module_addrdie");
    LOAD(getscopes_die, "dwarf_getscopes_die");
    LOAD(child, "dwarf_child");
    LOAD(siblingof, "dwarf_siblingof");
    LOAD(haspc, "dwarf_haspc");
    LOAD(dieoffset, "dwarf_dieoffset");
    LOAD(tag, "dwarf_tag");
    LOAD(attr_integrate, "dwarf_attr_integrate");
    LOAD(attr, "dwarf_attr");
    LOAD(formstring, "dwarf_formstring");
    LOAD(formudata, "dwarf_formudata");
    LOAD(getsrcfiles, "dwarf_getsrcfiles");
    LOAD(filesrc, "dwarf_filesrc");
    LOAD(formref_die, "dwarf_formref_die");
    LOAD(diename, "dwarf_diename");
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
    FILE *maps = fa_os_open_read_stream("/proc/self/maps");
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

/* A symbol or linkage name as shown: without its version, demangled, plus
 * "+offset" when offset is not 0. */
static const char *function_text(const char *name, size_t offset)
{
    char plain[512];
    const char *at = strchr(name, '@'); /* drop symbol versions: name@@GLIBC_2.34 */
    if (at && at != name && (size_t)(at - name) < sizeof plain) {
        memcpy(plain, name, (size_t)(at - name));
        plain[at - name] = '\0';
        name = plain;
    }
    int status = -1;
    char *demangled = demangle && name[0] == '_' && name[1] == 'Z' ? demangle(name, NULL, NULL, &status) : NULL;
    const char *shown = status == 0 && demangled ? demangled : name;
    const char *result;
    if (offset) {
        size_t n = strlen(shown) + 24;
        char *text = arena_take(n);
        if (text) {
            char number[24];
            fa_format(number, sizeof number, "+%zu", offset);
            text[0] = '\0';
            append(text, n, shown);
            append(text, n, number);
        }
        result = text ? text : "?";
    } else {
        result = arena_text(shown);
    }
    fa_free(demangled); /* made by the demangler's malloc: framealloc's */
    return result;
}

void fa_symbols_log_stack(const uintptr_t *frames, uint32_t depth, uint32_t max)
{
    fa_symbols_open();
    for (uint32_t i = 0; i < depth && i < max; i++) {
        const fa_symbol_t *levels;
        uint32_t count = fa_symbols_lookup(frames[i], &levels);
        for (uint32_t k = 0; k < count; k++) {
            const fa_symbol_t *sym = &levels[k];
            if (sym->file[0])
                fa_log("  at %s (%s:%d)%s", sym->function, sym->file, sym->line, sym->inlined ? " [inlined]" : "");
            else
                fa_log("  at %s [%s]", sym->function, sym->module);
        }
    }
}

static uint32_t lookup(uintptr_t pc, fa_symbol_t *levels);

/* The levels of pc, copied into the arena for the cache. */
static uint32_t lookup_kept(uintptr_t pc, const fa_symbol_t **out)
{
    fa_symbol_t levels[MAX_LEVELS];
    uint32_t count = lookup(pc, levels);
    fa_symbol_t *kept = arena_take(count * sizeof *kept);
    if (!kept) {
        static fa_symbol_t unknown = {"?", "", 0, 0, ""};
        *out = &unknown;
        return 1;
    }
    memcpy(kept, levels, count * sizeof *kept);
    *out = kept;
    return count;
}

uint32_t fa_symbols_lookup(uintptr_t pc, const fa_symbol_t **out)
{
    if (!cache || !pc)
        return lookup_kept(pc, out);
    size_t slot = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 48) & (CACHE_SLOTS - 1);
    for (size_t probes = 0; probes < 16; probes++, slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        if (cache[slot].pc == pc) {
            *out = cache[slot].levels;
            return cache[slot].count;
        }
        if (!cache[slot].pc) {
            uint32_t count = lookup_kept(pc, out);
            cache[slot].pc = pc;
            cache[slot].count = count;
            cache[slot].levels = *out;
            return count;
        }
    }
    return lookup_kept(pc, out); /* a crowded neighbourhood: not cached */
}

/* ---- inlined levels from the DWARF scopes ---- */

/* "ns::Class::" for the namespaces and classes around die (found through
 * DW_AT_abstract_origin or DW_AT_specification), appended to out. */
static void scope_prefix(Dwarf_Die *die, char *out, size_t cap)
{
    Dwarf_Die origin, *def = die;
    Dwarf_Attribute attr;
    for (int hops = 0; hops < 4; hops++) { /* to the declaration that sits in its scope */
        if (!dw.attr(def, DW_AT_abstract_origin, &attr) && !dw.attr(def, DW_AT_specification, &attr))
            break;
        if (!dw.formref_die(&attr, &origin))
            break;
        def = &origin;
    }
    Dwarf_Die *parents = NULL;
    int n = dw.getscopes_die(def, &parents);
    for (int i = n - 1; i > 0; i--) { /* outermost first; [0] is def itself */
        int tag = dw.tag(&parents[i]);
        if (tag != DW_TAG_namespace && tag != DW_TAG_class_type && tag != DW_TAG_structure_type &&
            tag != DW_TAG_union_type)
            continue;
        const char *name = dw.diename(&parents[i]);
        append(out, cap, name ? name : "(anonymous namespace)");
        append(out, cap, "::");
    }
    fa_free(parents); /* made by libdw's malloc: framealloc's */
}

static const char *scope_name_uncached(Dwarf_Die *die);

/* The name of a subprogram or inlined instance: its linkage name demangled (whole
 * signature), else its plain name qualified by its namespaces and classes; both
 * found through DW_AT_abstract_origin. */
static const char *scope_name(const void *module, Dwarf_Die *die)
{
    if (!names)
        names = arena_take(NAME_SLOTS * sizeof *names);
    if (!names || !dw.dieoffset)
        return scope_name_uncached(die);
    Dwarf_Off offset = dw.dieoffset(die);
    name_slot_t *slot = &names[(size_t)((offset * 0x9e3779b97f4a7c15ULL) >> 52) % NAME_SLOTS];
    if (slot->name && slot->module == module && slot->offset == offset)
        return slot->name;
    const char *name = scope_name_uncached(die);
    if (name) {
        slot->module = module;
        slot->offset = offset;
        slot->name = name;
    }
    return name;
}

static const char *scope_name_uncached(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *name = NULL;
    if (dw.attr_integrate(die, DW_AT_linkage_name, &attr) || dw.attr_integrate(die, DW_AT_MIPS_linkage_name, &attr))
        name = dw.formstring(&attr);
    if (name)
        return function_text(name, 0);
    if (dw.attr_integrate(die, DW_AT_name, &attr))
        name = dw.formstring(&attr);
    if (!name)
        return NULL;
    char qualified[8192] = "";
    if (dw.formref_die && dw.diename)
        scope_prefix(die, qualified, sizeof qualified);
    append(qualified, sizeof qualified, name);
    return arena_text(qualified);
}

/* A source path as a reader wants it: relative ones joined to the compilation
 * directory, "dir/../" folded. */
static const char *source_path(const char *path, const char *comp_dir)
{
    char joined[4096] = "";
    if (path[0] != '/' && comp_dir && comp_dir[0] == '/') {
        append(joined, sizeof joined, comp_dir);
        append(joined, sizeof joined, "/");
    }
    append(joined, sizeof joined, path);
    /* Fold "/x/../" (x not "..") and "/./" in place. */
    char *p;
    while ((p = strstr(joined, "/./")))
        memmove(p, p + 2, strlen(p + 2) + 1);
    for (char *up = strstr(joined, "/../"); up; up = strstr(joined, "/../")) {
        char *start = up;
        while (start > joined && start[-1] != '/')
            start--;
        if (start == up || (up - start == 2 && start[0] == '.' && start[1] == '.'))
            break;
        memmove(start, up + 4, strlen(up + 4) + 1);
    }
    return arena_text(joined);
}

/* The concrete function scopes that hold addr, outermost first: the subprogram,
 * then each inlined instance nested in it. One walk down the compilation unit,
 * entering only DIEs whose ranges hold addr (and namespaces and classes, which hold
 * functions without having ranges of their own). Returns the new depth. */
static int find_chain(Dwarf_Die *parent, Dwarf_Addr addr, Dwarf_Die *chain, int depth, int max)
{
    Dwarf_Die child;
    if (dw.child(parent, &child) != 0)
        return depth;
    do {
        int tag = dw.tag(&child);
        if (tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
            tag == DW_TAG_union_type) {
            int found = find_chain(&child, addr, chain, depth, max);
            if (found > depth)
                return found;
        } else if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block ||
                    tag == DW_TAG_try_block || tag == DW_TAG_catch_block) &&
                   dw.haspc(&child, addr) > 0) {
            if ((tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) && depth < max)
                chain[depth++] = child;
            return find_chain(&child, addr, chain, depth, max);
        }
    } while (dw.siblingof(&child, &child) == 0);
    return depth;
}

/* Expands levels[0] (filled from the symbol table and the line table) into the
 * inlined chain at address (module-relative to the DWARF: bias removed). Returns
 * the number of levels. */
static uint32_t add_inlined(Dwfl_Module *mod, Dwarf_Addr call, fa_symbol_t *levels)
{
    if (!dw.addrdie || !dw.child || !dw.siblingof || !dw.haspc || !dw.getscopes_die || !dw.tag || !dw.attr_integrate || !dw.attr || !dw.formstring ||
        !dw.formudata || !dw.getsrcfiles || !dw.filesrc)
        return 1;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dw.addrdie(mod, call, &bias);
    if (!cu)
        return 1;
    Dwarf_Attribute comp_attr;
    const char *comp_dir = dw.attr(cu, DW_AT_comp_dir, &comp_attr) ? dw.formstring(&comp_attr) : NULL;
    if (levels[0].file[0])
        levels[0].file = source_path(levels[0].file, comp_dir);
    Dwarf_Die chain[64], scopes[64];
    int nscopes = find_chain(cu, call - bias, chain, 0, 64);
    if (nscopes <= 0)
        return 1;
    for (int i = 0; i < nscopes; i++) /* innermost first, as the levels go */
        scopes[i] = chain[nscopes - 1 - i];
    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    if (dw.getsrcfiles(cu, &files, &nfiles) != 0)
        files = NULL;
    fa_symbol_t physical = levels[0]; /* the symbol table's name and module */
    uint32_t count = 0;
    const char *file = levels[0].file; /* where the current level's code is */
    int line = levels[0].line;
    for (int i = 0; i < nscopes && count < MAX_LEVELS; i++) {
        int tag = dw.tag(&scopes[i]);
        if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
            continue;
        fa_symbol_t *level = &levels[count++];
        *level = physical;
        level->file = file;
        level->line = line;
        if (tag == DW_TAG_subprogram) {
            level->inlined = 0;
            if (!physical.function) {
                const char *name = scope_name(mod, &scopes[i]);
                if (name)
                    level->function = name;
            }
            break;
        }
        level->inlined = 1;
        const char *name = scope_name(mod, &scopes[i]);
        level->function = name ? name : "?";
        /* The next level's code is where this one was called. */
        Dwarf_Attribute attr;
        Dwarf_Word call_file = 0, call_line = 0;
        file = "";
        line = 0;
        if (dw.attr(&scopes[i], DW_AT_call_file, &attr) && dw.formudata(&attr, &call_file) == 0 && files &&
            call_file < nfiles) {
            const char *path = dw.filesrc(files, call_file, NULL, NULL);
            file = path ? source_path(path, comp_dir) : "";
        }
        if (dw.attr(&scopes[i], DW_AT_call_line, &attr) && dw.formudata(&attr, &call_line) == 0)
            line = (int)call_line;
    }
    if (count == 0 || levels[count - 1].inlined) { /* no subprogram scope: keep the physical level */
        if (count == MAX_LEVELS)
            count--;
        levels[count] = physical;
        levels[count].file = file;
        levels[count].line = line;
        levels[count].inlined = 0;
        count++;
    }
    return count;
}

/* "module+0xoffset", or the address alone. */
static const char *unnamed(uintptr_t pc, const Dl_info *info, const char *module)
{
    char text[512];
    if (info && info->dli_fname) {
        char offset[32];
        fa_format(offset, sizeof offset, "+0x%zx", (size_t)(pc - (uintptr_t)info->dli_fbase));
        text[0] = '\0';
        append(text, sizeof text, module);
        append(text, sizeof text, offset);
    } else
        fa_format(text, sizeof text, "%p", (void *)pc);
    return arena_text(text);
}

static uint32_t lookup(uintptr_t pc, fa_symbol_t *levels)
{
    fa_symbol_t *out = &levels[0];
    out->function = NULL; /* set below, or by add_inlined from the debug info */
    out->file = "";
    out->line = 0;
    out->inlined = 0;
    out->module = "";
    uintptr_t call = pc ? pc - 1 : pc; /* the call instruction, not the one after it */
    Dl_info info;
    int found = dladdr((void *)call, &info);
    if (found && info.dli_fname) {
        const char *base = strrchr(info.dli_fname, '/');
        out->module = arena_text(base ? base + 1 : info.dli_fname);
    }
    if (dw.dwfl) {
        Dwfl_Module *mod = dw.addrmodule(dw.dwfl, call);
        if (mod) {
            GElf_Off offset = 0;
            GElf_Sym sym;
            const char *name = dw.addrinfo(mod, call, &offset, &sym, NULL, NULL, NULL);
            if (name)
                out->function = function_text(name, 0);
            Dwfl_Line *line = dw.getsrc(mod, call);
            int lineno = 0;
            const char *file = line ? dw.lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
            if (file) {
                out->file = arena_text(file);
                out->line = lineno;
                uint32_t count = add_inlined(mod, call, levels);
                for (uint32_t k = 0; k < count; k++)
                    if (!levels[k].function)
                        levels[k].function = unnamed(pc, found ? &info : NULL, out->module);
                return count;
            }
            if (name)
                return 1;
        }
    }
    /* dladdr's symbol name points into the module's own mapping, which another
     * thread may dlclose right now; with libdw loaded (which reads the files itself)
     * a module it does not know is shown as module+offset instead. */
    if (found && info.dli_sname && !dw.dwfl) {
        out->function = function_text(info.dli_sname, (size_t)(pc - (uintptr_t)info.dli_saddr));
        return 1;
    }
    out->function = unnamed(pc, found ? &info : NULL, out->module);
    return 1;
}

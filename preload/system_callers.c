/* Points the malloc, calloc and realloc calls that libc, the dynamic loader and
 * framealloc's own libraries make for themselves at entry points that never use a
 * frame arena (fa_*_for_system in alloc.c). What they allocate inside a program's
 * frame scope (a stream's buffer, the environment, a dlopened library's TLS block,
 * unwinder caches) must outlive the frame, and in strict mode frame memory is
 * recycled at frame end whatever happened to it. (libc's calls are redirected in
 * strict mode only, see lifecycle.c: that also sends what libc allocates for the
 * program, strdup's copy or asprintf's text, outside frame arenas, since libc's
 * calls cannot be told apart. Safe mode keeps libc's blocks alive as escapes.)
 *
 * Done once at start, by rewriting the pointers to our malloc those objects hold
 * after relocation: a library's GOT slots, found by its relocation records, and the
 * loader's own allocator pointers (its __rtld_malloc and siblings, which it looks
 * up after start-up and keeps in read-only-after-relocation data), found by value.
 * The fast paths pay nothing. Libraries loaded later with dlopen are not
 * redirected (their calls are served like the program's). */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "os.h"
#include "system_callers.h"

/* The names are arrays, not pointers to string constants, and every table here
 * lives with the data every process touches (FA_EVERY_PROCESS_DATA and _CONST):
 * this runs in every process, and one read of .rodata maps 64 KiB of it. */
#define NAME_MAX_LEN 16

typedef struct {
    char name[NAME_MAX_LEN];
    uintptr_t ours;   /* our exported entry point */
    uintptr_t system; /* its replacement for system callers */
    bool in_use;      /* the program's lookups find ours (no other malloc interposed) */
} redirect_t;

static FA_EVERY_PROCESS_DATA redirect_t redirects[] = {
    {"malloc", (uintptr_t)malloc, (uintptr_t)fa_malloc_for_system, false},
    {"calloc", (uintptr_t)calloc, (uintptr_t)fa_calloc_for_system, false},
    {"realloc", (uintptr_t)realloc, (uintptr_t)fa_realloc_for_system, false},
};
#define REDIRECTS (sizeof redirects / sizeof redirects[0])

/* libc, whose allocations are redirected in strict mode only. */
static FA_EVERY_PROCESS_CONST const char libc_library[][NAME_MAX_LEN] = {"libc.so."};
/* The libraries framealloc itself uses for stacks and symbols, and theirs: their
 * allocations are framealloc's own, in every mode that loads them. */
static FA_EVERY_PROCESS_CONST const char own_libraries[][NAME_MAX_LEN] = {
    "libunwind", "libdw.so", "libdw-", "libelf.so", "libelf-", "libz.so.", "liblzma.so.", "libbz2.so.", "libzstd.so.",
};

static bool name_starts_with_any(const char *path, const char (*prefixes)[NAME_MAX_LEN], size_t n)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    for (size_t i = 0; i < n; i++)
        if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* The object's range that is read-only after relocation ([0, 0) if none). */
static void relro_range(const struct dl_phdr_info *info, uintptr_t *start, uintptr_t *end)
{
    *start = *end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            *start = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            *end = *start + info->dlpi_phdr[i].p_memsz;
        }
}

static void write_slot(uintptr_t *slot, uintptr_t value, uintptr_t relro_start, uintptr_t relro_end)
{
    bool read_only = (uintptr_t)slot >= relro_start && (uintptr_t)slot < relro_end;
    if (read_only && !fa_os_make_writable(slot, sizeof *slot, true))
        return; /* left as it is: served like the program's allocations */
    __atomic_store_n(slot, value, __ATOMIC_RELAXED);
    if (read_only)
        fa_os_make_writable(slot, sizeof *slot, false);
}

/* The loader keeps the allocator it looked up in its read-only-after-relocation
 * data; nothing else there points at our malloc, calloc or realloc. */
static void redirect_loader(const struct dl_phdr_info *info)
{
    uintptr_t start, end;
    relro_range(info, &start, &end);
    for (uintptr_t *slot = (uintptr_t *)((start + 7) & ~(uintptr_t)7); (uintptr_t)(slot + 1) <= end; slot++)
        for (size_t r = 0; r < REDIRECTS; r++)
            if (redirects[r].in_use && *slot == redirects[r].ours)
                write_slot(slot, redirects[r].system, start, end);
}

static uintptr_t dynamic_value(const ElfW(Dyn) *dyn, ElfW(Sxword) tag)
{
    for (; dyn->d_tag != DT_NULL; dyn++)
        if (dyn->d_tag == tag)
            return dyn->d_un.d_val;
    return 0;
}

/* The loader relocates a library's dynamic-section addresses in place on x86-64;
 * an offset below the load address has not been. */
static uintptr_t dynamic_address(const struct dl_phdr_info *info, const ElfW(Dyn) *dyn, ElfW(Sxword) tag)
{
    uintptr_t v = dynamic_value(dyn, tag);
    return v && v < info->dlpi_addr ? v + info->dlpi_addr : v;
}

/* True when addr lies in one of the object's loaded segments. */
static bool object_contains(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && addr >= start && addr - start < ph->p_memsz)
            return true;
    }
    return false;
}

/* A library's GOT slots for malloc, calloc and realloc: those resolved to ours, or
 * not resolved yet (lazy binding: they still point into the library itself). */
static FA_EVERY_PROCESS void redirect_relocations(const struct dl_phdr_info *info, const ElfW(Rela) *rela, size_t bytes,
                                 const ElfW(Sym) *symbols, const char *strings)
{
    uintptr_t relro_start, relro_end;
    relro_range(info, &relro_start, &relro_end);
    for (size_t i = 0; i < bytes / sizeof *rela; i++) {
        unsigned type = ELF64_R_TYPE(rela[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
            continue;
        const char *name = strings + symbols[ELF64_R_SYM(rela[i].r_info)].st_name;
        uintptr_t *slot = (uintptr_t *)(info->dlpi_addr + rela[i].r_offset);
        for (size_t r = 0; r < REDIRECTS; r++) {
            if (!redirects[r].in_use || strcmp(name, redirects[r].name) != 0)
                continue;
            bool unresolved = type == R_X86_64_JUMP_SLOT && object_contains(info, *slot);
            if (*slot == redirects[r].ours || unresolved)
                write_slot(slot, redirects[r].system, relro_start, relro_end);
        }
    }
}

static void redirect_library(const struct dl_phdr_info *info)
{
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return;
    const ElfW(Sym) *symbols = (const ElfW(Sym) *)dynamic_address(info, dyn, DT_SYMTAB);
    const char *strings = (const char *)dynamic_address(info, dyn, DT_STRTAB);
    if (!symbols || !strings)
        return;
    redirect_relocations(info, (const ElfW(Rela) *)dynamic_address(info, dyn, DT_JMPREL),
                         dynamic_value(dyn, DT_PLTRELSZ), symbols, strings);
    redirect_relocations(info, (const ElfW(Rela) *)dynamic_address(info, dyn, DT_RELA),
                         dynamic_value(dyn, DT_RELASZ), symbols, strings);
}

static FA_EVERY_PROCESS int redirect_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    bool libc = *(bool *)arg;
    static FA_EVERY_PROCESS_CONST const char loader[][NAME_MAX_LEN] = {"ld-linux"};
    if (!info->dlpi_name || !info->dlpi_name[0])
        return 0; /* the program itself */
    if (name_starts_with_any(info->dlpi_name, loader, 1))
        redirect_loader(info);
    else if ((libc && name_starts_with_any(info->dlpi_name, libc_library, 1)) ||
             name_starts_with_any(info->dlpi_name, own_libraries, sizeof own_libraries / sizeof own_libraries[0]))
        redirect_library(info);
    return 0;
}

FA_EVERY_PROCESS void fa_preload_redirect_system_callers(bool libc)
{
    bool any = false;
    for (size_t r = 0; r < REDIRECTS; r++) {
        redirects[r].in_use = (uintptr_t)dlsym(RTLD_DEFAULT, redirects[r].name) == redirects[r].ours;
        any |= redirects[r].in_use;
    }
    if (any)
        dl_iterate_phdr(redirect_object, &libc);
}

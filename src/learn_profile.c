/* The learned profile's entries (`route PROGRAM MODULE OFFSET`, see learn_report.c)
 * from reading to routing: this program's lines become pending entries at start, and
 * each is resolved to an address once its module is loaded, at start or later by
 * dlopen. learn.c asks at each frame and each observation; the loader's count of the
 * modules it ever added (dlpi_adds) tells whether anything new came since the last
 * look, so a look costs one dl_iterate_phdr step when nothing did.
 *
 * Also the module and offset of an address, for the report and the profile.
 * Fixed arrays (no allocation while resolving: it runs inside malloc's slow path,
 * and under the loader's lock in the dl_iterate_phdr callbacks). */
#include "learn_profile.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <string.h>

#include "log.h"
#include "os.h"

#define MAX_ENTRIES 4096
#define NAME_BYTES 65536

typedef struct {
    uint64_t offset;
    uint32_t name;     /* offset of the module's key in names */
    uint32_t resolved; /* handed out */
} entry_t;

static entry_t entries[MAX_ENTRIES];
static uint32_t entry_count;
static char names[NAME_BYTES];
static uint32_t names_used;
static uint32_t resolved_late;
_Atomic uint32_t fa_learn_profile_pending;

/* One look at a time; later lookers skip (trylock), so no thread waits in malloc. */
static pthread_mutex_t looking = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long adds_seen; /* dlpi_adds at the last complete look */
static bool looked, started;

void fa_learn_profile_fork_child(void) { pthread_mutex_init(&looking, NULL); }

/* ---- modules ---- */

/* The executable's dlpi_name is empty: its key is "-". */
static const char *module_key(const char *name) { return name && *name ? name : "-"; }

typedef struct {
    uintptr_t addr;
    const char *key;
    uintptr_t base;
    bool found;
} module_query_t;

static int find_module_of(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    module_query_t *q = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->addr >= start && q->addr < start + ph->p_memsz) {
            q->key = module_key(info->dlpi_name);
            q->base = info->dlpi_addr;
            q->found = true;
            return 1;
        }
    }
    return 0;
}

bool fa_learn_module_of(uintptr_t addr, const char **key, uintptr_t *base)
{
    module_query_t q = {.addr = addr};
    dl_iterate_phdr(find_module_of, &q);
    *key = q.found ? q.key : "?";
    *base = q.found ? q.base : 0;
    return q.found;
}

/* ---- reading ---- */

/* The offset of name in names, stored once; UINT32_MAX when full. */
static uint32_t intern(const char *name)
{
    for (uint32_t at = 0; at < names_used; at += (uint32_t)strlen(names + at) + 1)
        if (strcmp(names + at, name) == 0)
            return at;
    size_t len = strlen(name) + 1;
    if (names_used + len > NAME_BYTES)
        return UINT32_MAX;
    memcpy(names + names_used, name, len);
    names_used += (uint32_t)len;
    return names_used - (uint32_t)len;
}

void fa_learn_profile_read(const char *path)
{
    FILE *f = fa_os_open_read_stream(path);
    if (!f) {
        if (errno != ENOENT)
            fa_log("FRAMEALLOC_LEARN_PROFILE=%s: cannot read (%s); learning from scratch", path, strerror(errno));
        return;
    }
    char line[800], program[256], module[512];
    unsigned long long offset;
    unsigned lost = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "route %255s %511s %llx", program, module, &offset) != 3 ||
            strcmp(program, program_invocation_short_name) != 0)
            continue;
        uint32_t name = entry_count < MAX_ENTRIES ? intern(module) : UINT32_MAX;
        if (name == UINT32_MAX) {
            lost++;
            continue;
        }
        entries[entry_count++] = (entry_t){.offset = offset, .name = name};
    }
    fclose(f);
    if (lost)
        fa_log("FRAMEALLOC_LEARN_PROFILE=%s: %u sites past the first %u not loaded", path, lost, entry_count);
    __atomic_store_n(&fa_learn_profile_pending, entry_count, __ATOMIC_RELEASE);
}

/* ---- resolving ---- */

static int read_adds(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(unsigned long long *)arg = info->dlpi_adds;
    return 1; /* the first module is enough: every one carries the counter */
}

typedef struct {
    uintptr_t *out;
    size_t cap, n;
} resolve_t;

/* Hands out the pending entries of one module (under the loader's lock: no allocation). */
static int resolve_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    resolve_t *r = arg;
    const char *key = module_key(info->dlpi_name);
    for (uint32_t i = 0; i < entry_count && r->n < r->cap; i++) {
        entry_t *e = &entries[i];
        if (e->resolved || strcmp(names + e->name, key) != 0)
            continue;
        e->resolved = 1;
        r->out[r->n++] = info->dlpi_addr + (uintptr_t)e->offset;
    }
    return r->n == r->cap;
}

size_t fa_learn_profile_resolve(uintptr_t *out, size_t cap)
{
    if (!__atomic_load_n(&fa_learn_profile_pending, __ATOMIC_ACQUIRE) || pthread_mutex_trylock(&looking) != 0)
        return 0;
    unsigned long long adds = 0;
    dl_iterate_phdr(read_adds, &adds);
    resolve_t r = {.out = out, .cap = cap};
    if (!looked || adds != adds_seen) {
        dl_iterate_phdr(resolve_module, &r);
        /* A full out may have left entries of loaded modules: look again next time. */
        if (r.n < cap) {
            adds_seen = adds;
            looked = true;
        }
        if (started)
            resolved_late += (uint32_t)r.n;
        __atomic_fetch_sub(&fa_learn_profile_pending, (uint32_t)r.n, __ATOMIC_RELEASE);
    }
    if (r.n < cap)
        started = true; /* the first complete look is the start's */
    pthread_mutex_unlock(&looking);
    return r.n;
}

void fa_learn_profile_counts(fa_learn_profile_counts_t *counts)
{
    pthread_mutex_lock(&looking);
    *counts = (fa_learn_profile_counts_t){.entries = entry_count, .resolved_late = resolved_late,
                                          .pending = __atomic_load_n(&fa_learn_profile_pending, __ATOMIC_ACQUIRE)};
    pthread_mutex_unlock(&looking);
}

void fa_learn_profile_write_pending(FILE *f, const char *program)
{
    pthread_mutex_lock(&looking);
    for (uint32_t i = 0; i < entry_count; i++)
        if (!entries[i].resolved)
            fprintf(f, "route %s %s %llx\n", program, names + entries[i].name, (unsigned long long)entries[i].offset);
    pthread_mutex_unlock(&looking);
}

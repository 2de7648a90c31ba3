/* Call sites: stack capture (libunwind, skipping the allocator's own frames) and
 * the table of distinct stacks with their totals. */
#include "sites.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <string.h>

#include "log.h"
#include "os.h"

#define MAX_SITES (1u << 20)
#define SITE_INDEX_SLOTS (MAX_SITES * 2)
#define FRAME_POOL_WORDS ((size_t)MAX_SITES * 16)

typedef struct {
    uint64_t hash;
    uint32_t depth;
    uint32_t first_frame; /* index into frame_pool */
    fa_site_totals_t totals;
} site_t;

static site_t *sites;
static _Atomic uint32_t *site_index; /* 0: empty; else site id + 1 */
static uintptr_t *frame_pool;
static _Atomic uint32_t site_count;
static size_t frame_pool_used;
static pthread_mutex_t site_lock = PTHREAD_MUTEX_INITIALIZER;

typedef int (*unw_backtrace_fn)(void **buffer, int size);
static unw_backtrace_fn unwind;
static int stack_depth = 24;

/* ---- the table ---- */

static uint64_t hash_frames(const uintptr_t *frames, int depth)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        h ^= frames[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static bool same_site(const site_t *s, uint64_t hash, const uintptr_t *frames, int depth)
{
    return s->hash == hash && s->depth == (uint32_t)depth &&
           memcmp(&frame_pool[s->first_frame], frames, (size_t)depth * sizeof *frames) == 0;
}

/* Readers need no lock: a slot is published only after its site is complete. */
uint32_t fa_sites_intern(const uintptr_t *frames, int depth)
{
    uint64_t hash = hash_frames(frames, depth);
    size_t mask = SITE_INDEX_SLOTS - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t slot = __atomic_load_n(&site_index[i], __ATOMIC_ACQUIRE);
        if (!slot)
            break;
        if (same_site(&sites[slot - 1], hash, frames, depth))
            return slot - 1;
    }
    pthread_mutex_lock(&site_lock);
    uint32_t id = UINT32_MAX;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t slot = __atomic_load_n(&site_index[i], __ATOMIC_ACQUIRE);
        if (slot && same_site(&sites[slot - 1], hash, frames, depth)) {
            id = slot - 1;
            break;
        }
        if (!slot) {
            uint32_t n = site_count;
            if (n >= MAX_SITES || frame_pool_used + (size_t)depth > FRAME_POOL_WORDS)
                break;
            site_t *s = &sites[n];
            s->hash = hash;
            s->depth = (uint32_t)depth;
            s->first_frame = (uint32_t)frame_pool_used;
            memcpy(&frame_pool[frame_pool_used], frames, (size_t)depth * sizeof *frames);
            frame_pool_used += (size_t)depth;
            __atomic_store_n(&site_count, n + 1, __ATOMIC_RELEASE);
            __atomic_store_n(&site_index[i], n + 1, __ATOMIC_RELEASE);
            id = n;
            break;
        }
    }
    pthread_mutex_unlock(&site_lock);
    return id;
}

uint32_t fa_sites_count(void) { return __atomic_load_n(&site_count, __ATOMIC_ACQUIRE); }

uint32_t fa_sites_frames(uint32_t site, const uintptr_t **frames)
{
    if (site >= fa_sites_count())
        return 0;
    *frames = &frame_pool[sites[site].first_frame];
    return sites[site].depth;
}

fa_site_totals_t *fa_sites_totals(uint32_t site) { return &sites[site].totals; }

bool fa_sites_map(void)
{
    sites = fa_os_map_table(MAX_SITES * sizeof *sites);
    site_index = fa_os_map_table(SITE_INDEX_SLOTS * sizeof *site_index);
    frame_pool = fa_os_map_table(FRAME_POOL_WORDS * sizeof *frame_pool);
    return sites && site_index && frame_pool;
}

/* ---- stack capture ---- */

/* This library's code: frames inside it are the allocator's own. Found once at
 * start-up, so capture skips them with two compares instead of dladdr (which scans
 * symbol tables and dominated the cost of full recording). */
static uintptr_t self_start, self_end;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    uintptr_t here = (uintptr_t)find_self;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && here >= start && here < start + ph->p_memsz) {
            self_start = start;
            self_end = start + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

int fa_sites_capture(uintptr_t *frames)
{
    void *raw[FA_SITES_MAX_DEPTH + 8];
    int n = unwind(raw, stack_depth + 8);
    int skip = 0;
    while (skip < n && (uintptr_t)raw[skip] - self_start < self_end - self_start)
        skip++;
    int depth = n - skip < stack_depth ? n - skip : stack_depth;
    for (int i = 0; i < depth; i++)
        frames[i] = (uintptr_t)raw[skip + i];
    return depth;
}

bool fa_sites_ready(void) { return unwind != NULL; }

bool fa_sites_load_unwinder(int depth)
{
    stack_depth = depth;
    dl_iterate_phdr(find_self, NULL);
    /* RTLD_LOCAL keeps libunwind's own _Unwind_* names out of the global scope,
     * where they would replace the C++ runtime's exception unwinder. */
    void *lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fa_log("FRAMEALLOC_RECORDS: cannot load libunwind.so.8 (install libunwind8); records are off");
        return false;
    }
    unw_backtrace_fn fn = (unw_backtrace_fn)dlsym(lib, "unw_backtrace");
    if (!fn) {
        fa_log("FRAMEALLOC_RECORDS: libunwind.so.8 has no unw_backtrace; records are off");
        return false;
    }
    /* The first unwind takes the loader's lock and fills libunwind's caches: do it
     * now, outside any allocation. */
    void *warm[8];
    fn(warm, 8);
    unwind = fn;
    return true;
}

/* ---- fork ---- */

void fa_sites_fork_prepare(void) { pthread_mutex_lock(&site_lock); }
void fa_sites_fork_parent(void) { pthread_mutex_unlock(&site_lock); }
void fa_sites_fork_child(void) { pthread_mutex_init(&site_lock, NULL); }

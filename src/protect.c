/* Use-after-frame detection: a per-granule table of allocating sites for frame
 * blocks (lazily touched), and a fault handler that finds the touched block in a
 * quarantined chunk and prints where it was allocated. */
#include "protect.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "debug.h"
#include "frame.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "records.h"
#include "region.h"
#include "sites.h"
#include "symbols.h"

/* One site entry per 16 bytes of the frame part (blocks are 16-aligned). */
#define SITE_GRANULE 16

static uint32_t *block_sites; /* site + 1 per 16-byte granule of the region; 0: unknown */
static struct sigaction previous;

void fa_protect_note_block(void *p)
{
    if (p && block_sites && fa_region_is_frame(p)) {
        uint32_t site = fa_records_capture_site();
        block_sites[((uintptr_t)p - fa_region.origin) / SITE_GRANULE] = site == UINT32_MAX ? 0 : site + 1;
    }
}

static void explain(const char *addr, const char *start, uint64_t quarantined_at)
{
    uint64_t now = __atomic_load_n(&fa_frame_number, __ATOMIC_RELAXED);
    if (!start) {
        fa_log("error: use after frame: the program touched %p, in frame memory recycled at frame %llu (now %llu)",
               (const void *)addr, (unsigned long long)quarantined_at, (unsigned long long)now);
        return;
    }
    fa_log("error: use after frame: the program touched %p, %zu bytes into a frame block at %p whose frame was "
           "recycled at frame %llu (now %llu)",
           (const void *)addr, (size_t)(addr - start), (const void *)start, (unsigned long long)quarantined_at,
           (unsigned long long)now);
    uint32_t site = block_sites ? block_sites[((uintptr_t)start - fa_region.origin) / SITE_GRANULE] : 0;
    const uintptr_t *frames = NULL;
    uint32_t depth = site ? fa_sites_frames(site - 1, &frames) : 0;
    if (!depth) {
        fa_log("  (the allocating stack is unknown)");
        return;
    }
    fa_log("  the block was allocated:");
    /* The symbolizer may allocate; the program is about to die, and alarm() makes
     * sure a lock held elsewhere cannot turn that into a hang. */
    alarm(5);
    fa_records_pause(1);
    fa_symbols_log_stack(frames, depth, 16);
}

static void on_fault(int signo, siginfo_t *info, void *context)
{
    const char *addr = info->si_addr;
    char *start;
    uint64_t quarantined_at;
    if (fa_frame_fault_at(addr, &start, &quarantined_at)) {
        explain(addr, start, quarantined_at);
        /* Die of the fault as the program would have: default action, fault again. */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(signo, info, context);
    } else if (previous.sa_handler == SIG_IGN || previous.sa_handler == SIG_DFL) {
        signal(SIGSEGV, SIG_DFL);
    } else {
        previous.sa_handler(signo);
    }
}

FA_EVERY_PROCESS void fa_protect_start(void)
{
    if (!(fa_settings.debug & FA_DEBUG_PROTECT) || !fa_region.size || block_sites)
        return;
    size_t bytes = fa_region.frame_size / SITE_GRANULE * sizeof *block_sites;
    void *table = fa_os_map_table(bytes);
    if (!table)
        fa_log("FRAMEALLOC_DEBUG=protect: no room for the site table; faults will be reported without stacks");
    else
        block_sites = table;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    action.sa_sigaction = on_fault;
    if (sigaction(SIGSEGV, &action, &previous) != 0)
        fa_log("FRAMEALLOC_DEBUG=protect: cannot install the SIGSEGV handler");
}

/* ref_linear.c: the framealloc.h table of the linear reference (libref_linear.so).
 *
 * O3DE's LinearAllocator behind the malloc ABI: inside an FA_FRAME scope malloc bumps
 * in this thread's frame buffer (256 MiB of address space reserved on first use), free
 * does nothing, and the buffer starts over at the first frame scope of a new frame.
 * fa_frame_end only advances the frame number; each thread resets its own buffer
 * when it next enters a frame scope (or when the buffer fills), so workers need no
 * markers of their own. Outside frame scopes allocations take the naive bump path of
 * ref_malloc.c. Memory of a frame is reused in the next frame whatever still points
 * into it: a reference for speed, with none of framealloc's safety. */
#include <string.h>
#include <sys/mman.h>

#define FRAMEALLOC_BUILDING_LIBRARY
#include <framealloc.h>

#include "ref_malloc.h"

#define REF_FRAME_BUFFER ((size_t)256 << 20)

static _Atomic uint64_t frame_number;

/* Reserves this thread's frame buffer; 0 when the address space is not there. */
static int frame_buffer_reserve(void)
{
    void *p = mmap(NULL, REF_FRAME_BUFFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return 0;
    ref_thread.frame_base = p;
    ref_thread.frame_end = (char *)p + REF_FRAME_BUFFER;
    ref_thread.frame_seen = frame_number - 1; /* reset on first use */
    return 1;
}

int ref_frame_refresh(void)
{
    uint64_t now = frame_number;
    if (!ref_thread.frame_base || ref_thread.frame_seen == now)
        return 0;
    ref_thread.frame_seen = now;
    ref_thread.bump[1].cur = ref_thread.frame_base;
    ref_thread.bump[1].end = ref_thread.frame_end;
    return 1;
}

static void linear_frame_end(void) { frame_number++; }

static void linear_scope_push(int intent)
{
    unsigned depth = ref_thread.depth++;
    if (depth < sizeof ref_thread.intents)
        ref_thread.intents[depth] = (unsigned char)intent;
    if (intent == FA_FRAME && (ref_thread.frame_base || frame_buffer_reserve())) {
        ref_frame_refresh();
        ref_thread.in_frame = 1;
    } else {
        ref_thread.in_frame = 0;
    }
}

static void linear_scope_pop(void)
{
    if (ref_thread.depth == 0)
        return;
    unsigned depth = --ref_thread.depth;
    ref_thread.in_frame = depth > 0 && depth <= sizeof ref_thread.intents &&
                          ref_thread.intents[depth - 1] == FA_FRAME && ref_thread.frame_base;
}

static void linear_nothing(void) {}

static void linear_tag_push(const char *tag) { (void)tag; }

/* No counters: as without a library. */
static int linear_stats_get(fa_stats *out, size_t size)
{
    memset(out, 0, size < sizeof *out ? size : sizeof *out);
    return -1;
}

static int linear_report(const char *dir)
{
    (void)dir;
    return -1;
}

static void linear_budget_set(const char *tag, uint64_t bytes)
{
    (void)tag;
    (void)bytes;
}

REF_EXPORT const fa_api fa_api_v1 = {
    .version = 1,
    .size = sizeof(fa_api),
    .frame_begin = linear_nothing,
    .frame_end = linear_frame_end,
    .scope_push = linear_scope_push,
    .scope_pop = linear_scope_pop,
    .tag_push = linear_tag_push,
    .tag_pop = linear_nothing,
    .stats_get = linear_stats_get,
    .report = linear_report,
    .budget_set = linear_budget_set,
};

/* Frame markers, intent scopes and tags: the public API behind framealloc.h. */
#include "api.h"

#include "frame.h"
#include "framelog.h"
#include "log.h"
#include "options.h"
#include "process.h"
#include "records.h"
#include "report.h"
#include "stats.h"
#include "thread.h"

static void warn_once(int *said, const char *what)
{
    if (__atomic_exchange_n(said, 1, __ATOMIC_RELAXED))
        return;
    fa_log("%s (reported once)", what);
}

void fa_frame_begin(void)
{
    /* Frame timing only; the arena needs only fa_frame_end. */
    fa_thread_attach(fa_thread()); /* settings are read at init */
    fa_framelog_begin();
}

void fa_frame_end(void)
{
    /* A main loop may end frames before it ever allocates: initialise first, so
     * that the settings (frame log, frames in flight) are read before use. */
    fa_thread_t *t = fa_thread();
    fa_thread_attach(t);
    fa_frame_end_now(t);
    if (fa_records_mode)
        fa_records_frame_ended(__atomic_load_n(&fa_frame_number, __ATOMIC_ACQUIRE));
    fa_report_if_requested();
    fa_framelog_end(fa_stats_fill); /* after the recycling, which belongs to the frame's time */
}

void fa_budget_set(const char *tag, uint64_t bytes) { fa_records_set_budget(tag, bytes); }

int fa_active(void) { return 1; }

static void change_intent(fa_thread_t *t, uint8_t to)
{
    uint8_t from = fa_thread_intent(t);
    t->intent = (uint8_t)(to | (t->intent & FA_INTENT_RECORDS));
    if (from == FA_FRAME || to == FA_FRAME)
        fa_frame_on_intent_change(t, from == FA_FRAME, to == FA_FRAME);
}

void fa_scope_push(int intent)
{
    static int bad_intent, too_deep;
    fa_thread_t *t = fa_thread();
    if (intent < FA_DEFAULT || intent > FA_HEAP) {
        warn_once(&bad_intent, "fa_scope_push: unknown intent ignored (scope keeps the current intent)");
        intent = fa_thread_intent(t);
    }
    if (t->depth == FA_SCOPE_MAX) {
        warn_once(&too_deep, "fa_scope_push: scopes nested deeper than 32; the deeper ones keep the outer intent");
        t->scope_overflow++;
        return;
    }
    if (t->state == FA_THREAD_FRESH)
        fa_thread_attach(t);
    t->scopes[t->depth++] = fa_thread_intent(t);
    change_intent(t, (uint8_t)intent);
}

void fa_scope_pop(void)
{
    static int unbalanced;
    fa_thread_t *t = fa_thread();
    if (t->scope_overflow) {
        t->scope_overflow--;
        return;
    }
    if (t->depth == 0) {
        warn_once(&unbalanced, "fa_scope_pop without a matching fa_scope_push ignored");
        return;
    }
    change_intent(t, t->scopes[--t->depth]);
}

void fa_tag_push(const char *tag)
{
    fa_thread_t *t = fa_thread();
    if (t->tag_depth < FA_TAG_MAX)
        t->tags[t->tag_depth] = tag;
    t->tag_depth++;
}

void fa_tag_pop(void)
{
    fa_thread_t *t = fa_thread();
    if (t->tag_depth)
        t->tag_depth--;
}

/* In fa_api's order (framealloc.h), each pair of markers on one line. */
const fa_api fa_api_v1 = {
    .version = 1,
    .size = sizeof(fa_api),
    .frame_begin = fa_frame_begin, .frame_end = fa_frame_end,
    .scope_push = fa_scope_push, .scope_pop = fa_scope_pop,
    .tag_push = fa_tag_push, .tag_pop = fa_tag_pop,
    .stats_get = fa_stats_fill,
    /* added after the first release (callers check size) */
    .report = fa_report, .budget_set = fa_budget_set,
};

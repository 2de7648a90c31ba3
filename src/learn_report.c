/* What learning found, written at exit: the text report (stderr, and
 * DIR/PROGRAM.PID.learn.txt with FRAMEALLOC_REPORT=DIR), the same as JSON
 * (DIR/PROGRAM.PID.learn.json), and the learned profile (FRAMEALLOC_LEARN_PROFILE):
 * routed sites as program, module + offset (ASLR moves addresses between runs; the
 * program name keeps a launcher's or a shell's sites apart from the game's when they
 * share the setting). Reading the profile and resolving its entries as modules load
 * is learn_profile.c's.
 * Runs outside the allocation paths: it may allocate (stdio, the symbolizer). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats.h"
#include "learn.h"
#include "learn_profile.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "symbols.h"

/* The cost model: instructions per malloc+free pair from scripts/bench-instructions
 * (README "Instruction counts", 2026-12-01, f40ad82): a small pool pair outside
 * scopes (framealloc column) and a frame pair in a safe frame scope (fa markers). */
#define POOL_PAIR_INSTRUCTIONS 67.0
#define FRAME_PAIR_INSTRUCTIONS 45.1
#define COST_MODEL_SOURCE "scripts/bench-instructions, README table of 2026-12-01 (f40ad82)"

#define SHOWN_SITES 20
#define MAX_SITES 16384

/* ---- the profile ---- */

FA_EVERY_PROCESS void fa_learn_start(void)
{
    /* A thread attached before the settings were read (init without environ). */
    fa_thread_t *t = fa_thread();
    if (fa_settings.learn && t->state == FA_THREAD_LIVE && t->depth == 0 && fa_thread_intent(t) == FA_DEFAULT)
        t->intent |= FA_INTENT_LEARN;
    const char *path = fa_settings.learn_profile;
    if (fa_settings.learn == FA_LEARN_OFF || !path)
        return;
    /* Sites in modules not loaded yet wait until a dlopen brings them (learn.c). */
    fa_learn_profile_read(path);
    fa_learn_resolve_profile();
}

/* Copies the other programs' lines of the old profile (if any) into f. */
static void keep_other_programs(const char *path, FILE *f)
{
    FILE *old = fa_os_open_read_stream(path);
    if (!old)
        return;
    char line[800], program[256];
    while (fgets(line, sizeof line, old))
        if (sscanf(line, "route %255s", program) == 1 && strcmp(program, program_invocation_short_name) != 0)
            fputs(line, f);
    fclose(old);
}

/* A new file for writing, created like every report and log (os.c: never through a
 * symlink, never over a file that is not ours), or NULL. */
static FILE *create_file(int dirfd, const char *name, bool exclusive)
{
    int fd;
    if (fa_os_create_file(dirfd, name, exclusive, &fd) != FA_OS_CREATED)
        return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f)
        close(fd);
    return f;
}

static void save_profile(const char *path, const fa_learn_site_t *sites, size_t n)
{
    char tmp[4096];
    fa_format(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    FILE *f = create_file(AT_FDCWD, tmp, true);
    if (!f) {
        fa_log("FRAMEALLOC_LEARN_PROFILE=%s: cannot write (%s)", path, strerror(errno));
        return;
    }
    fprintf(f, "# framealloc learned profile: route PROGRAM MODULE OFFSET (MODULE - is the executable)\n");
    keep_other_programs(path, f);
    for (size_t i = 0; i < n; i++) {
        const fa_learn_site_t *s = &sites[i];
        bool keep = s->state == FA_LEARN_SITE_ROUTED ||
                    (fa_settings.learn == FA_LEARN_OBSERVE && (s->temporary || (s->from_profile && s->samples == 0)));
        if (!keep)
            continue;
        const char *module;
        uintptr_t base;
        if (fa_learn_module_of(s->site, &module, &base))
            fprintf(f, "route %s %s %llx\n", program_invocation_short_name, module, (unsigned long long)(s->site - base));
    }
    fa_learn_profile_write_pending(f, program_invocation_short_name);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fa_log("FRAMEALLOC_LEARN_PROFILE=%s: cannot write (%s)", path, strerror(errno));
        unlink(tmp);
    }
}

/* ---- the report ---- */

static int by_allocs(const void *a, const void *b)
{
    uint64_t x = ((const fa_learn_site_t *)a)->allocs, y = ((const fa_learn_site_t *)b)->allocs;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Estimated allocations freed at ages 0..age. */
static uint64_t freed_within(const fa_learn_site_t *s, unsigned age)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i <= age && i < FA_LEARN_AGES - 1; i++)
        sum += s->freed[i];
    return sum;
}

static double share(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0.0; }

static const char *state_name(const fa_learn_site_t *s)
{
    switch (s->state) {
    case FA_LEARN_SITE_ROUTED: return "routed";
    case FA_LEARN_SITE_DEMOTED: return "demoted";
    default: return s->temporary ? "temporary" : "observed";
    }
}

typedef struct {
    uint64_t allocs, bytes, escapes, sites;
} counterfactual_t;

/* What frame arenas would have served: every site that passes the bound. */
static counterfactual_t count_counterfactual(const fa_learn_site_t *sites, size_t n)
{
    counterfactual_t c = {0};
    for (size_t i = 0; i < n; i++) {
        const fa_learn_site_t *s = &sites[i];
        if (!s->temporary)
            continue;
        c.sites++;
        c.allocs += s->allocs;
        c.bytes += s->bytes;
        /* Escaped lifetimes scaled to the site's estimated allocations. */
        c.escapes += s->decided ? (uint64_t)((double)s->allocs * (double)s->escaped / (double)s->decided) : 0;
    }
    return c;
}

/* text inside a JSON string: quotes and backslashes escaped, control characters left out. */
static void write_json_string(FILE *f, const char *text)
{
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if ((unsigned char)*c >= 0x20)
            fputc(*c, f);
    }
}

static void print_stack(FILE *f, uintptr_t pc, bool json)
{
    const fa_symbol_t *levels;
    uint32_t count = fa_symbols_lookup(pc, &levels);
    for (uint32_t i = 0; i < count; i++) {
        const fa_symbol_t *l = &levels[i];
        if (!json) {
            fprintf(f, "        at %s (%s:%d)%s\n", l->function, *l->file ? l->file : l->module, l->line,
                    l->inlined ? " [inlined]" : "");
            continue;
        }
        fprintf(f, "%s{\"function\": \"", i ? ", " : "");
        write_json_string(f, l->function);
        fprintf(f, "\", \"file\": \"");
        write_json_string(f, l->file);
        fprintf(f, "\", \"line\": %d, \"module\": \"", l->line);
        write_json_string(f, l->module);
        fprintf(f, "\", \"inlined\": %s}", l->inlined ? "true" : "false");
    }
}

/* with_sites: the sites and their stacks too (symbolizing takes a while). */
static void write_text(FILE *f, const fa_learn_site_t *sites, size_t n, const fa_learn_summary_t *sum,
                       const fa_stats *stats, bool with_sites)
{
    counterfactual_t c = count_counterfactual(sites, n);
    fprintf(f, "framealloc learn report (%s), pid %d: %llu frames, 1 in %llu allocations observed (%llu observed, %llu sites)\n",
            fa_settings.learn == FA_LEARN_ROUTE ? "route" : "observe", (int)getpid(), (unsigned long long)sum->frames,
            (unsigned long long)fa_settings.learn_rate, (unsigned long long)sum->samples, (unsigned long long)n);
    fprintf(f, "  counterfactual: %llu frame-temporary sites (95%% upper bound of the escape share <= %.0f%%, "
               "frames in flight %llu)\n",
            (unsigned long long)c.sites, sum->bound * 100, (unsigned long long)fa_settings.frames_in_flight);
    fprintf(f, "    frame arenas would serve ~%llu of ~%llu allocations (%.1f%%), ~%llu bytes; ~%llu would escape (%.3f%%)\n",
            (unsigned long long)c.allocs, (unsigned long long)sum->allocs, share(c.allocs, sum->allocs),
            (unsigned long long)c.bytes, (unsigned long long)c.escapes, share(c.escapes, c.allocs));
    fprintf(f, "    instructions saved ~%.0f (%.1f per pair: pool pair %.1f - safe frame pair %.1f, %s)\n",
            (double)c.allocs * (POOL_PAIR_INSTRUCTIONS - FRAME_PAIR_INSTRUCTIONS),
            POOL_PAIR_INSTRUCTIONS - FRAME_PAIR_INSTRUCTIONS, POOL_PAIR_INSTRUCTIONS, FRAME_PAIR_INSTRUCTIONS,
            COST_MODEL_SOURCE);
    if (fa_settings.learn == FA_LEARN_ROUTE)
        fprintf(f, "  routed: %llu sites now, %llu demoted; frame arenas served %llu allocations, %llu escapes\n",
                (unsigned long long)sum->routed, (unsigned long long)sum->demoted,
                (unsigned long long)stats->frame_allocs, (unsigned long long)stats->frame_escapes);
    fa_learn_profile_counts_t p;
    fa_learn_profile_counts(&p);
    if (p.entries)
        fprintf(f, "  profile: %u sites read, %u of them resolved after start (libraries dlopen'ed later), "
                   "%u in modules never loaded\n", p.entries, p.resolved_late, p.pending);
    if (sum->dropped)
        fprintf(f, "  %llu observations dropped (side table full)\n", (unsigned long long)sum->dropped);
    if (!with_sites)
        return;
    fprintf(f, "  sites by allocations (estimated; freed within 0/1/2/8 frames of their frame, later, alive at exit):\n");
    for (size_t i = 0, shown = 0; i < n && shown < SHOWN_SITES; i++) {
        const fa_learn_site_t *s = &sites[i];
        if (!s->samples)
            continue;
        shown++;
        fprintf(f, "    #%zu %s: %llu allocations, %llu bytes; %.1f%% / %.1f%% / %.1f%% / %.1f%%, later %.1f%%, alive %.1f%%\n",
                shown, state_name(s), (unsigned long long)s->allocs, (unsigned long long)s->bytes,
                share(freed_within(s, 0), s->allocs), share(freed_within(s, 1), s->allocs),
                share(freed_within(s, 2), s->allocs), share(freed_within(s, 8), s->allocs),
                share(s->freed[FA_LEARN_AGES - 1], s->allocs), share(s->live, s->allocs));
        print_stack(f, s->site, false);
    }
}

static void write_json(FILE *f, const fa_learn_site_t *sites, size_t n, const fa_learn_summary_t *sum,
                       const fa_stats *stats)
{
    counterfactual_t c = count_counterfactual(sites, n);
    fprintf(f, "{\n  \"program\": \"%s\", \"pid\": %d, \"mode\": \"%s\", \"frames\": %llu, \"rate\": %llu,\n",
            program_invocation_short_name, (int)getpid(), fa_settings.learn == FA_LEARN_ROUTE ? "route" : "observe",
            (unsigned long long)sum->frames, (unsigned long long)fa_settings.learn_rate);
    fprintf(f, "  \"frames_in_flight\": %llu, \"warmup\": %llu, \"escape_bound\": %.3f, \"observed\": %llu, "
               "\"dropped\": %llu, \"allocations\": %llu,\n",
            (unsigned long long)fa_settings.frames_in_flight, (unsigned long long)fa_settings.learn_warmup, sum->bound,
            (unsigned long long)sum->samples, (unsigned long long)sum->dropped, (unsigned long long)sum->allocs);
    fprintf(f, "  \"counterfactual\": {\"sites\": %llu, \"allocations\": %llu, \"bytes\": %llu, \"escapes\": %llu, "
               "\"instructions_saved\": %.0f, \"pool_pair_instructions\": %.1f, \"frame_pair_instructions\": %.1f, "
               "\"cost_model\": \"%s\"},\n",
            (unsigned long long)c.sites, (unsigned long long)c.allocs, (unsigned long long)c.bytes,
            (unsigned long long)c.escapes, (double)c.allocs * (POOL_PAIR_INSTRUCTIONS - FRAME_PAIR_INSTRUCTIONS),
            POOL_PAIR_INSTRUCTIONS, FRAME_PAIR_INSTRUCTIONS, COST_MODEL_SOURCE);
    fprintf(f, "  \"routed\": {\"sites\": %llu, \"demoted\": %llu, \"frame_allocations\": %llu, \"frame_escapes\": %llu},\n",
            (unsigned long long)sum->routed, (unsigned long long)sum->demoted, (unsigned long long)stats->frame_allocs,
            (unsigned long long)stats->frame_escapes);
    fa_learn_profile_counts_t p;
    fa_learn_profile_counts(&p);
    fprintf(f, "  \"profile\": {\"entries\": %u, \"resolved_late\": %u, \"pending\": %u},\n", p.entries,
            p.resolved_late, p.pending);
    fprintf(f, "  \"sites\": [");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const fa_learn_site_t *s = &sites[i];
        if (!s->samples)
            continue;
        const char *module;
        uintptr_t base;
        fa_learn_module_of(s->site, &module, &base);
        fprintf(f, "%s\n    {\"site\": \"0x%llx\", \"module\": \"", first ? "" : ",", (unsigned long long)s->site);
        write_json_string(f, module);
        fprintf(f, "\", \"offset\": \"0x%llx\", \"state\": \"%s\", \"temporary\": %s, \"from_profile\": %s, "
                   "\"samples\": %llu, \"allocations\": %llu, \"bytes\": %llu, \"freed_by_age\": [",
                (unsigned long long)(s->site - base), state_name(s), s->temporary ? "true" : "false",
                s->from_profile ? "true" : "false", (unsigned long long)s->samples, (unsigned long long)s->allocs,
                (unsigned long long)s->bytes);
        for (unsigned a = 0; a < FA_LEARN_AGES; a++)
            fprintf(f, "%s%llu", a ? ", " : "", (unsigned long long)s->freed[a]);
        fprintf(f, "], \"alive\": %llu, \"lifetimes\": %llu, \"escaped\": %llu, \"stack\": [",
                (unsigned long long)s->live, (unsigned long long)s->decided, (unsigned long long)s->escaped);
        print_stack(f, s->site, true);
        fprintf(f, "]}");
        first = false;
    }
    fprintf(f, "\n  ]\n}\n");
}

static FILE *open_report_file(const char *dir, const char *suffix)
{
    char name[512];
    fa_format(name, sizeof name, "%s.%d.%s", program_invocation_short_name, (int)getpid(), suffix);
    int dirfd = fa_os_make_directories(dir) ? fa_os_open_directory(dir, false) : -1;
    FILE *f = dirfd >= 0 ? create_file(dirfd, name, false) : NULL;
    if (!f)
        fa_log("FRAMEALLOC_REPORT: cannot write %s/%s (%s)", dir, name, strerror(errno));
    if (dirfd >= 0)
        close(dirfd);
    return f;
}

/* What a learning run leaves: the profile, and the summary on stderr and in the report. */
static FA_NOINLINE void finish_learning(void)
{
    fa_learn_pause();
    fa_learn_resolve_profile(); /* a module loaded in the last frame: its entries are not pending */
    fa_learn_summary_t peek;
    fa_learn_sites(NULL, 0, &peek);
    if (!peek.samples && !peek.routed)
        return; /* nothing learned (a helper process: a shell, time): no report, profile untouched */
    fa_learn_summary_t sum;
    fa_learn_site_t *sites = fa_os_map_table(MAX_SITES * sizeof *sites);
    if (!sites)
        return;
    size_t n = fa_learn_sites(sites, MAX_SITES, &sum);
    if (n > MAX_SITES)
        n = MAX_SITES;
    qsort(sites, n, sizeof *sites, by_allocs);
    fa_stats stats = {0};
    fa_stats_fill(&stats, sizeof stats);
    const char *profile = fa_settings.learn_profile;
    if (profile)
        save_profile(profile, sites, n);
    /* Routing is for production runs: stderr gets the summary alone there, and the
     * sites only go to the report directory. */
    const char *dir = fa_settings.report;
    bool sites_on_stderr = fa_settings.learn == FA_LEARN_OBSERVE;
    if (dir || sites_on_stderr)
        fa_symbols_open();
    FILE *f;
    if (dir && (f = open_report_file(dir, "learn.txt"))) {
        write_text(f, sites, n, &sum, &stats, true);
        fclose(f);
    }
    if (dir && (f = open_report_file(dir, "learn.json"))) {
        write_json(f, sites, n, &sum, &stats);
        fclose(f);
    }
    write_text(stderr, sites, n, &sum, &stats, sites_on_stderr);
    fflush(stderr);
    if (dir || sites_on_stderr)
        fa_symbols_close();
    fa_os_unreserve(sites, MAX_SITES * sizeof *sites);
}

FA_EVERY_PROCESS void fa_learn_finish(void)
{
    if (fa_settings.learn != FA_LEARN_OFF)
        finish_learning();
}

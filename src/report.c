/* Report writers. They run outside the allocation paths (API calls, frame end,
 * exit), with recording paused on the calling thread, so they may allocate.
 *
 * Where reports go, so that none replaces another (a launcher's, a child's, an
 * earlier snapshot's, an earlier run's with the same pid):
 *   fa_report(dir)             exactly dir (created, with its parents, if missing)
 *   FRAMEALLOC_REPORT=BASE     BASE/NAME.PID/ at exit, BASE/NAME.PID.N/ for the Nth
 *                              report before exit (report signal, fa_report(NULL))
 * NAME is the program's name (program_invocation_short_name). BASE is created with
 * its parents. A directory under BASE is always a new one made by this process: a
 * name already taken gets "-2", "-3", ... Files are opened without following
 * symlinks: with O_EXCL in a new directory; in a directory given to fa_report, an
 * existing file is replaced only when it is a regular file of ours (same owner,
 * one link). */
#include "report.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stats.h"
#include "framealloc.h"
#include "log.h"
#include "options.h"
#include "os.h"
#include "records.h"
#include "symbols.h"
#include "tags.h"

#define TOP_SITES 20

static volatile sig_atomic_t report_requested;

/* ---- buffered output over write(2) ---- */

typedef struct {
    int fd;
    size_t len;
    int failed;
    int items; /* JSON array items written so far (the tags list) */
    char buf[16384];
} out_t;

static void out_flush(out_t *o)
{
    size_t done = 0;
    while (done < o->len) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->failed = 1;
            break;
        }
        done += (size_t)n;
    }
    o->len = 0;
}

static void out_text(out_t *o, const char *s, size_t n)
{
    while (n) {
        if (o->len == sizeof o->buf)
            out_flush(o);
        size_t room = sizeof o->buf - o->len;
        size_t take = n < room ? n : room;
        memcpy(o->buf + o->len, s, take);
        o->len += take;
        s += take;
        n -= take;
    }
}

static void out_printf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(out_t *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    size_t n = fa_vformat(line, sizeof line, fmt, ap);
    va_end(ap);
    out_text(o, line, n);
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_length(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A JSON string literal. Bytes that are not UTF-8 (a name in another encoding) are
 * written as the Latin-1 characters they would be, so the file always parses. */
static void out_json_string(out_t *o, const char *s)
{
    out_text(o, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            out_text(o, esc, 2);
        } else if (c < 0x20) {
            out_printf(o, "\\u%04x", c);
        } else if (c < 0x80) {
            out_text(o, (const char *)&c, 1);
        } else {
            size_t n = utf8_length((const unsigned char *)s);
            if (n) {
                out_text(o, s, n);
                s += n - 1;
            } else {
                out_printf(o, "\\u%04x", c);
            }
        }
    }
    out_text(o, "\"", 1);
}

/* Opens name in the directory dirfd for writing. fresh: the directory is new and
 * ours, so the file must not exist. Otherwise an existing file is replaced only
 * when it is a regular file with our owner and one link. Never follows a symlink. */
static int out_open(out_t *o, int dirfd, const char *dir, const char *name, int fresh)
{
    o->len = 0;
    o->failed = 1;
    switch (fa_os_create_file(dirfd, name, fresh, &o->fd)) {
    case FA_OS_CREATED:
        o->failed = 0;
        return 0;
    case FA_OS_NOT_OURS:
        fa_log("report: %s/%s is not a file of ours (another owner, or hard-linked): left alone", dir, name);
        return -1;
    case FA_OS_SYMLINK:
        fa_log("report: cannot create %s/%s (it is a symlink)", dir, name);
        return -1;
    case FA_OS_EXISTS:
        fa_log("report: cannot create %s/%s (it exists)", dir, name);
        return -1;
    default:
        fa_log("report: cannot create %s/%s (open failed)", dir, name);
        return -1;
    }
}

static int out_close(out_t *o)
{
    out_flush(o);
    int failed = o->failed || close(o->fd) != 0;
    return failed ? -1 : 0;
}

/* "12.3 MiB" without floating point. */
static void format_bytes(char *buf, size_t cap, uint64_t bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t scaled = bytes * 10;
    while (scaled >= 10240 && u < 4) {
        scaled /= 1024;
        u++;
    }
    if (u == 0)
        fa_format(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        fa_format(buf, cap, "%llu.%llu %s", (unsigned long long)(scaled / 10), (unsigned long long)(scaled % 10), units[u]);
}

static const char *intent_name(uint8_t intent)
{
    switch (intent) {
    case FA_FRAME: return "frame";
    case FA_POOL: return "pool";
    case FA_HEAP: return "heap";
    default: return "default";
    }
}

/* ---- the sites, copied out of the records for sorting ---- */

typedef struct {
    fa_site_t *items;
    size_t count, capacity;
} site_list_t;

static void collect_site(const fa_site_t *site, void *arg)
{
    site_list_t *list = arg;
    if (list->count < list->capacity)
        list->items[list->count++] = *site;
}

/* The program's name, safe as a file name: letters, digits, "._+-"; others '_'. */
static void program_name(char *out, size_t cap)
{
    const char *name = program_invocation_short_name;
    size_t n = 0;
    for (; name && name[n] && n + 1 < cap && n < 64; n++) {
        char c = name[n];
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '+' || c == '-';
        out[n] = plain && !(n == 0 && c == '.') ? c : '_';
    }
    if (n == 0)
        fa_format(out, cap, "program");
    else
        out[n] = '\0';
}

/* ---- writers ---- */

/* The lines of one return address: its inlined levels, then its function. */
static void write_frame_lines(out_t *o, uintptr_t pc)
{
    const fa_symbol_t *levels;
    uint32_t count = fa_symbols_lookup(pc, &levels);
    for (uint32_t k = 0; k < count; k++) {
        const fa_symbol_t *sym = &levels[k];
        out_text(o, "        at ", 11);
        out_text(o, sym->function, strlen(sym->function));
        if (sym->file[0]) {
            out_text(o, " (", 2);
            out_text(o, sym->file, strlen(sym->file));
            out_printf(o, ":%d)%s\n", sym->line, sym->inlined ? " [inlined]" : "");
        } else {
            out_text(o, " [", 2);
            out_text(o, sym->module, strlen(sym->module));
            out_text(o, "]\n", 2);
        }
    }
}

typedef uint64_t (*site_value_fn)(const fa_site_t *site);
static uint64_t value_alloc_bytes(const fa_site_t *s) { return s->alloc_bytes; }
static uint64_t value_alloc_count(const fa_site_t *s) { return s->alloc_count; }
static uint64_t value_live_bytes(const fa_site_t *s) { return s->live_bytes; }
static uint64_t value_escape_bytes(const fa_site_t *s) { return s->escape_bytes; }

static int larger_first(const void *a, const void *b, void *value_fn)
{
    site_value_fn value = *(site_value_fn *)value_fn;
    uint64_t x = value(a), y = value(b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Largest value first. */
static void sort_sites(site_list_t *sites, site_value_fn value)
{
    qsort_r(sites->items, sites->count, sizeof *sites->items, larger_first, &value);
}

static void write_top(out_t *o, site_list_t *sites, const char *title, site_value_fn value, int depth_shown)
{
    sort_sites(sites, value);
    out_printf(o, "\n%s\n", title);
    int shown = 0;
    for (size_t i = 0; i < sites->count && shown < TOP_SITES; i++) {
        const fa_site_t *s = &sites->items[i];
        if (!value(s))
            break;
        char alloc[32], live[32], escaped[32];
        format_bytes(alloc, sizeof alloc, s->alloc_bytes);
        format_bytes(live, sizeof live, s->live_bytes);
        format_bytes(escaped, sizeof escaped, s->escape_bytes);
        out_printf(o, "  #%d  %s in %llu allocations, live %s (%llu), escaped %s (%llu); intent %s%s%s%s\n", ++shown,
                   alloc, (unsigned long long)s->alloc_count, live, (unsigned long long)s->live_count, escaped,
                   (unsigned long long)s->escape_count, intent_name(s->intent), s->tag ? ", tag \"" : "",
                   s->tag ? s->tag : "", s->tag ? "\"" : "");
        for (uint32_t f = 0; f < s->depth && (int)f < depth_shown; f++)
            write_frame_lines(o, s->frames[f]);
    }
    if (!shown)
        out_printf(o, "  (none)\n");
}

static void write_tag(const fa_tag_totals_t *t, void *arg)
{
    out_t *o = arg;
    char live[32], peak[32], alloc[32], budget[32];
    format_bytes(live, sizeof live, t->live_bytes);
    format_bytes(peak, sizeof peak, t->peak_bytes);
    format_bytes(alloc, sizeof alloc, t->alloc_bytes);
    if (t->budget)
        format_bytes(budget, sizeof budget, t->budget);
    else
        fa_format(budget, sizeof budget, "none");
    out_printf(o, "  %-24s live %-12s peak %-12s allocated %-12s budget %s\n", t->name, live, peak, alloc, budget);
}

static void write_summary(out_t *o, site_list_t *sites, int depth_shown)
{
    uint64_t samples, bytes, rate;
    fa_records_summary(&samples, &bytes, &rate);
    fa_stats stats;
    fa_stats_fill(&stats, sizeof stats);
    char total[32];
    format_bytes(total, sizeof total, bytes);
    out_printf(o, "framealloc records report, pid %d\n", (int)getpid());
    if (rate)
        out_printf(o, "mode: sample, one sample per %llu KiB allocated on average; counts and bytes are estimates\n",
                   (unsigned long long)(rate / 1024));
    else
        out_printf(o, "mode: full, every allocation recorded\n");
    out_printf(o, "records: %llu; bytes allocated (estimated): %s; call sites: %zu\n", (unsigned long long)samples,
               total, sites->count);
    out_printf(o, "frames ended: %llu; frame escapes counted by the arenas: %llu\n", (unsigned long long)stats.frame,
               (unsigned long long)stats.frame_escapes);
    write_top(o, sites, "Top call sites by bytes allocated:", value_alloc_bytes, depth_shown);
    write_top(o, sites, "Top call sites by number of allocations:", value_alloc_count, depth_shown);
    write_top(o, sites, "Still allocated (leaks, when written at exit), by bytes:", value_live_bytes, depth_shown);
    write_top(o, sites, "Frame escapes (alive when their frame was recycled), by bytes:", value_escape_bytes,
              depth_shown);
    out_printf(o, "\nTags:\n");
    fa_tags_for_each(write_tag, o);
}

static void write_json_site(out_t *o, const fa_site_t *s, int first_site)
{
    out_printf(o, "%s\n    {\"id\": %u, \"alloc_count\": %llu, \"alloc_bytes\": %llu, \"live_count\": %llu, "
               "\"live_bytes\": %llu, \"escape_count\": %llu, \"escape_bytes\": %llu, \"samples\": %llu, "
               "\"intent\": \"%s\", \"tag\": ",
               first_site ? "" : ",", s->id, (unsigned long long)s->alloc_count, (unsigned long long)s->alloc_bytes,
               (unsigned long long)s->live_count, (unsigned long long)s->live_bytes,
               (unsigned long long)s->escape_count, (unsigned long long)s->escape_bytes,
               (unsigned long long)s->samples, intent_name(s->intent));
    if (s->tag)
        out_json_string(o, s->tag);
    else
        out_text(o, "null", 4);
    out_text(o, ", \"stack\": [", 12);
    int first = 1;
    for (uint32_t f = 0; f < s->depth; f++) {
        const fa_symbol_t *levels;
        uint32_t count = fa_symbols_lookup(s->frames[f], &levels);
        for (uint32_t k = 0; k < count; k++, first = 0) {
            const fa_symbol_t *sym = &levels[k];
            out_printf(o, "%s{\"address\": \"%p\", \"function\": ", first ? "" : ", ", (void *)s->frames[f]);
            out_json_string(o, sym->function);
            out_text(o, ", \"file\": ", 10);
            if (sym->file[0])
                out_json_string(o, sym->file);
            else
                out_text(o, "null", 4);
            out_printf(o, ", \"line\": %d, \"inlined\": %s, \"module\": ", sym->line,
                       sym->inlined ? "true" : "false");
            out_json_string(o, sym->module);
            out_text(o, "}", 1);
        }
    }
    out_text(o, "]}", 2);
}

static void write_json_tag(const fa_tag_totals_t *t, void *arg)
{
    out_t *o = arg;
    out_printf(o, "%s\n    {\"name\": ", o->items++ ? "," : "");
    out_json_string(o, t->name);
    out_printf(o, ", \"live_bytes\": %llu, \"peak_bytes\": %llu, \"alloc_bytes\": %llu, \"budget\": %llu}",
               (unsigned long long)t->live_bytes, (unsigned long long)t->peak_bytes,
               (unsigned long long)t->alloc_bytes, (unsigned long long)t->budget);
}

static void write_json(out_t *o, site_list_t *sites)
{
    uint64_t samples, bytes, rate;
    fa_records_summary(&samples, &bytes, &rate);
    fa_stats stats;
    fa_stats_fill(&stats, sizeof stats);
    char name[80];
    program_name(name, sizeof name);
    const char *framelog = fa_settings.framelog;
    out_text(o, "{\n  \"program\": ", 15);
    out_json_string(o, name);
    out_text(o, ",\n  \"framelog\": ", 16);
    if (framelog)
        out_json_string(o, framelog);
    else
        out_text(o, "null", 4);
    out_printf(o, ",\n  \"pid\": %d,\n  \"mode\": \"%s\",\n  \"sample_rate_bytes\": %llu,\n  \"records\": %llu,\n"
               "  \"estimated_bytes\": %llu,\n  \"frames\": %llu,\n  \"arena_frame_escapes\": %llu,\n  \"sites\": [",
               (int)getpid(), rate ? "sample" : "full", (unsigned long long)rate, (unsigned long long)samples,
               (unsigned long long)bytes, (unsigned long long)stats.frame, (unsigned long long)stats.frame_escapes);
    sort_sites(sites, value_alloc_bytes);
    for (size_t i = 0; i < sites->count; i++)
        write_json_site(o, &sites->items[i], i == 0);
    out_text(o, "\n  ],\n  \"tags\": [", 17);
    o->items = 0;
    fa_tags_for_each(write_json_tag, o);
    out_text(o, "\n  ]\n}\n", 7);
}

/* One frame of a folded stack: "function (file.c:line)", with ';' and newlines
 * (the format's separators) replaced. */
static void write_folded_frame(out_t *o, const fa_symbol_t *sym)
{
    for (const char *c = sym->function; *c; c++)
        out_text(o, *c == ';' || *c == '\n' ? ":" : c, 1);
    if (sym->file[0]) {
        const char *base = strrchr(sym->file, '/');
        base = base ? base + 1 : sym->file;
        out_text(o, " (", 2);
        out_text(o, base, strlen(base));
        out_printf(o, ":%d)", sym->line);
    }
}

/* Folded stacks (outermost frame first, ';'-separated, then the value), the input
 * of flame-graph tools. Inlined functions are frames of their own, each with the
 * line where it was called (or, innermost, the line running). */
static void write_folded(out_t *o, site_list_t *sites, site_value_fn value)
{
    for (size_t i = 0; i < sites->count; i++) {
        const fa_site_t *s = &sites->items[i];
        uint64_t v = value(s);
        if (!v)
            continue;
        for (uint32_t f = s->depth; f-- > 0;) {
            const fa_symbol_t *levels;
            uint32_t count = fa_symbols_lookup(s->frames[f], &levels);
            for (uint32_t k = count; k-- > 0;) {
                write_folded_frame(o, &levels[k]);
                if (f || k)
                    out_text(o, ";", 1);
            }
        }
        out_printf(o, " %llu\n", (unsigned long long)v);
    }
}

/* ---- entry points ---- */

static int collect_sites(site_list_t *list)
{
    uint64_t samples, bytes, rate;
    fa_records_summary(&samples, &bytes, &rate);
    list->capacity = 1 << 20;
    list->count = 0;
    list->items = fa_os_map_table(list->capacity * sizeof *list->items);
    if (!list->items)
        return -1;
    fa_records_for_each_site(collect_site, list);
    return 0;
}

static void release_sites(site_list_t *list) { fa_os_unreserve(list->items, list->capacity * sizeof *list->items); }


/* Makes a new directory BASE/NAME.PID (exit report) or BASE/NAME.PID.N (snapshot N),
 * with "-2", "-3", ... when the name is taken. Returns 0 and the path. */
static int make_report_dir(const char *base, unsigned snapshot, char *path, size_t cap)
{
    if (!fa_os_make_directories(base)) {
        fa_log("report: cannot create FRAMEALLOC_REPORT=%s (errno %d)", base, errno);
        return -1;
    }
    char name[80];
    program_name(name, sizeof name);
    if (strlen(base) + sizeof name + 64 > cap) {
        fa_log("report: FRAMEALLOC_REPORT is too long a path");
        return -1;
    }
    for (int attempt = 1; attempt <= 100; attempt++) {
        /* fa_format cuts each %s at 255 characters: the path is put together by hand. */
        char number[64];
        if (snapshot)
            fa_format(number, sizeof number, ".%d.%u", (int)getpid(), snapshot);
        else
            fa_format(number, sizeof number, ".%d", (int)getpid());
        if (attempt > 1) {
            size_t n = strlen(number);
            fa_format(number + n, sizeof number - n, "-%d", attempt);
        }
        size_t at = 0;
        const char *parts[] = {base, "/", name, number};
        for (size_t i = 0; i < 4; i++) {
            size_t n = strlen(parts[i]);
            memcpy(path + at, parts[i], n);
            at += n;
        }
        path[at] = '\0';
        if (fa_os_make_directory(path))
            return 0;
        if (errno != EEXIST)
            break;
    }
    fa_log("report: cannot create a new report directory in %s (errno %d)", base, errno);
    return -1;
}

/* Writes every report file into the directory dirfd (path dir, for messages). */
static int write_files(int dirfd, const char *dir, int fresh)
{
    fa_records_pause(1);
    site_list_t sites;
    int status = collect_sites(&sites);
    if (status == 0) {
        fa_symbols_open();
        out_t *o = fa_os_map_table(sizeof *o);
        if (!o) {
            status = -1;
        } else {
            struct {
                const char *name;
                int kind;
            } files[] = {{"summary.txt", 0}, {"report.json", 1}, {"allocations.folded", 2},
                         {"live.folded", 3},  {"escapes.folded", 4}};
            for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                if (out_open(o, dirfd, dir, files[i].name, fresh) != 0) {
                    status = -1;
                    continue;
                }
                switch (files[i].kind) {
                case 0: write_summary(o, &sites, 12); break;
                case 1: write_json(o, &sites); break;
                case 2: write_folded(o, &sites, value_alloc_bytes); break;
                case 3: write_folded(o, &sites, value_live_bytes); break;
                default: write_folded(o, &sites, value_escape_bytes); break;
                }
                if (out_close(o) != 0)
                    status = -1;
            }
            fa_os_unreserve(o, sizeof *o);
        }
        release_sites(&sites);
    }
    fa_records_pause(0);
    if (status != 0)
        fa_log("report: could not write every file into %s", dir);
    return status;
}

/* Snapshots taken by this process so far (a forked child starts again at 1). */
static unsigned snapshots;
static pid_t snapshots_pid;

/* The report into dir (fa_report(dir)), or into a new directory under
 * FRAMEALLOC_REPORT: snapshot 0 is the exit report. */
static int write_report(const char *dir, int snapshot)
{
    if (!fa_records_mode)
        return -1;
    char made[PATH_MAX];
    int fresh = !dir;
    if (dir) {
        if (!fa_os_make_directories(dir)) {
            fa_log("report: cannot create %s (errno %d)", dir, errno);
            return -1;
        }
    } else {
        const char *base = fa_settings.report;
        if (!base)
            return -1;
        unsigned n = 0;
        if (snapshot) {
            if (snapshots_pid != getpid()) {
                snapshots_pid = getpid();
                snapshots = 0;
            }
            n = ++snapshots;
        }
        if (make_report_dir(base, n, made, sizeof made) != 0)
            return -1;
        dir = made;
    }
    /* A directory we made is opened without following a symlink put in its place. */
    int dirfd = fa_os_open_directory(dir, fresh);
    if (dirfd < 0) {
        fa_log("report: cannot open %s (errno %d)", dir, errno);
        return -1;
    }
    int status = write_files(dirfd, dir, fresh);
    close(dirfd);
    if (fresh && status == 0)
        fa_log("records report written to %s", dir);
    return status;
}

int fa_report(const char *dir) { return write_report(dir, 1); }

static void on_report_signal(int signo)
{
    (void)signo;
    report_requested = 1;
}

FA_EVERY_PROCESS void fa_report_start(void)
{
    if (fa_settings.report && !fa_records_mode)
        fa_log("FRAMEALLOC_REPORT is set but records are off: no report is written "
               "(set FRAMEALLOC_RECORDS=sample or full)");
    int signo = fa_settings.report_signal;
    if (!signo)
        return;
    /* The handler is installed with records off too: the program was told this
     * signal asks for a report, and the signal's default action would kill it. */
    if (!fa_records_mode)
        fa_log("FRAMEALLOC_REPORT_SIGNAL is set but records are off: the signal is caught and writes no report "
               "(set FRAMEALLOC_RECORDS=sample or full)");
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_report_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(signo, &action, NULL) != 0)
        fa_log("FRAMEALLOC_REPORT_SIGNAL=%d: cannot install the handler (errno %d)", signo, errno);
}

void fa_report_if_requested(void)
{
    if (!report_requested)
        return;
    report_requested = 0;
    fa_report(NULL);
}

/* The report the settings ask for at exit: the directory's, or the top sites on stderr. */
static FA_NOINLINE void report_at_exit(void)
{
    if (fa_settings.report) {
        write_report(NULL, 0);
        return;
    }
    /* No directory: the top sites on stderr, three frames each. */
    fa_records_pause(1);
    site_list_t sites;
    if (collect_sites(&sites) == 0) {
        fa_symbols_open();
        out_t *o = fa_os_map_table(sizeof *o);
        if (o) {
            o->fd = 2;
            o->len = 0;
            o->failed = 0;
            write_summary(o, &sites, 3);
            out_printf(o, "(set FRAMEALLOC_REPORT=dir for the full report: JSON and folded stacks)\n");
            out_flush(o);
            fa_os_unreserve(o, sizeof *o);
        }
        release_sites(&sites);
    }
    fa_records_pause(0);
}

FA_EVERY_PROCESS void fa_report_at_exit(void)
{
    /* Records forced on by FRAMEALLOC_DEBUG alone print nothing at exit. */
    if (fa_records_mode && (fa_settings.records_asked || fa_settings.report))
        report_at_exit();
}

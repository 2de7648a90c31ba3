/* Parses FRAMEALLOC_* from environ. Allocation-free: environ is scanned in place. */
#include "options.h"

#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>

#include "debug.h"
#include "log.h"

extern char **environ;

typedef enum { KIND_INT, KIND_BOOL, KIND_ENUM, KIND_LIST, KIND_STRING, KIND_SIGNAL } fa_option_kind_t;

typedef struct {
    const char *name;
    fa_option_kind_t kind;
    long long def, min, max;
    const char *choices;
    const char *doc;
} fa_option_spec_t;

static const fa_option_spec_t specs[FA_OPT_COUNT] = {
#define FA_OPTION(id, name, kind, def, min, max, choices, doc) {name, KIND_##kind, def, min, max, choices, doc},
#include "options.def"
#undef FA_OPTION
};

long long fa_option_values[FA_OPT_COUNT] = {
#define FA_OPTION(id, name, kind, def, min, max, choices, doc) def,
#include "options.def"
#undef FA_OPTION
};

static FA_EVERY_PROCESS_DATA const char *string_values[FA_OPT_COUNT];

FA_EVERY_PROCESS_DATA fa_settings_t fa_settings;

const char *fa_option_string(fa_option_id_t id) { return string_values[id]; }


#define PREFIX "FRAMEALLOC_"

static bool parse_int(const char *s, long long *out)
{
    if (!*s)
        return false;
    long long v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (LLONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (*p - '0');
    }
    if (p == s)
        return false;
    int shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    }
    if (*p)
        return false;
    if (shift && v > (LLONG_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

static bool word_is(const char *s, const char *w)
{
    for (; *s && *w; s++, w++) {
        char c = *s >= 'A' && *s <= 'Z' ? (char)(*s - 'A' + 'a') : *s;
        if (c != *w)
            return false;
    }
    return !*s && !*w;
}

static bool parse_bool(const char *s, long long *out)
{
    if (word_is(s, "1") || word_is(s, "yes") || word_is(s, "on") || word_is(s, "true")) {
        *out = 1;
        return true;
    }
    if (word_is(s, "0") || word_is(s, "no") || word_is(s, "off") || word_is(s, "false")) {
        *out = 0;
        return true;
    }
    return false;
}

/* Index of s in the comma-separated list, or -1. */
static long long choice_index(const char *choices, const char *s)
{
    long long index = 0;
    const char *c = choices;
    while (*c) {
        size_t len = strcspn(c, ",");
        if (strlen(s) == len && strncmp(c, s, len) == 0)
            return index;
        c += len;
        if (*c == ',')
            c++;
        index++;
    }
    return -1;
}

/* "a,b" -> bits of a and b; empty text -> 0. */
static bool parse_list(const char *choices, const char *text, long long *out)
{
    long long bits = 0;
    char word[64];
    while (*text) {
        size_t len = strcspn(text, ",");
        if (len >= sizeof word)
            return false;
        memcpy(word, text, len);
        word[len] = '\0';
        long long index = choice_index(choices, word);
        if (index < 0)
            return false;
        bits |= 1LL << index;
        text += len;
        if (*text == ',')
            text++;
    }
    *out = bits;
    return true;
}

/* A report signal must be one the program does not need for anything else, since
 * the handler replaces the program's own. NULL when signo is acceptable, else why
 * not. SIGHUP is refused too: closing the terminal must still end the game. */
static const char *signal_refusal(long long signo)
{
    if (signo == 0 || signo == SIGUSR1 || signo == SIGUSR2 || (signo >= SIGRTMIN && signo <= SIGRTMAX))
        return NULL;
    switch (signo) {
    case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP: case SIGSYS: case SIGABRT:
        return "it reports a crash: handling it would turn the crash into an endless fault loop";
    case SIGKILL: case SIGSTOP:
        return "it cannot be caught";
    case SIGINT: case SIGTERM: case SIGQUIT: case SIGHUP: case SIGTSTP:
        return "it asks the program to stop: Ctrl-C, kill or closing the terminal would no longer work";
    default:
        if (signo < 1 || signo > SIGRTMAX)
            return "there is no such signal";
        return "the program, libc or the terminal relies on it";
    }
}

/* "10", "SIGUSR1", "USR1", "SIGRTMIN+2", "RTMIN+2": the signal's number. */
static bool parse_signal(const char *s, long long *out)
{
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    if (strcmp(s, "USR1") == 0) {
        *out = SIGUSR1;
        return true;
    }
    if (strcmp(s, "USR2") == 0) {
        *out = SIGUSR2;
        return true;
    }
    if (strncmp(s, "RTMIN", 5) == 0) {
        long long offset = 0;
        if (s[5] && (s[5] != '+' || !parse_int(s + 6, &offset)))
            return false;
        *out = SIGRTMIN + offset;
        return true;
    }
    return parse_int(s, out);
}

static void describe_range(const fa_option_spec_t *spec, char *buf, size_t cap)
{
    switch (spec->kind) {
    case KIND_INT: fa_format(buf, cap, "a whole number from %lld to %lld", spec->min, spec->max); break;
    case KIND_BOOL: fa_format(buf, cap, "0 or 1"); break;
    case KIND_ENUM: fa_format(buf, cap, "one of %s", spec->choices); break;
    case KIND_LIST: fa_format(buf, cap, "any of %s, comma-separated", spec->choices); break;
    case KIND_STRING: fa_format(buf, cap, "text"); break;
    case KIND_SIGNAL:
        fa_format(buf, cap, "0, %d (SIGUSR1), %d (SIGUSR2) or a real-time signal %d-%d", SIGUSR1, SIGUSR2, SIGRTMIN,
                  SIGRTMAX);
        break;
    }
}

static void load_one(const fa_option_spec_t *spec, long long *value, const char *text)
{
    long long v;
    bool ok;
    if (spec->kind == KIND_STRING) {
        string_values[spec - specs] = *text ? text : NULL;
        *value = *text != 0;
        return;
    }
    switch (spec->kind) {
    case KIND_INT: ok = parse_int(text, &v) && v >= spec->min && v <= spec->max; break;
    case KIND_BOOL: ok = parse_bool(text, &v); break;
    case KIND_LIST: ok = parse_list(spec->choices, text, &v); break;
    case KIND_SIGNAL: ok = parse_signal(text, &v); break;
    default: v = choice_index(spec->choices, text); ok = v >= 0; break;
    }
    const char *refusal = ok && spec->kind == KIND_SIGNAL ? signal_refusal(v) : NULL;
    if (ok && !refusal) {
        *value = v;
        return;
    }
    char range[160];
    describe_range(spec, range, sizeof range);
    *value = spec->def;
    if (refusal)
        fa_log("%s%s=%s is not accepted: %s (use %s); using the default %lld", PREFIX, spec->name, text, refusal, range,
               spec->def);
    else if (spec->kind == KIND_ENUM)
        fa_log("%s%s=%s is not valid (%s); using the default", PREFIX, spec->name, text, range);
    else
        fa_log("%s%s=%s is not valid (%s); using the default %lld", PREFIX, spec->name, text, range, spec->def);
}

/* True when s starts with PREFIX. Letter by letter: comparing with the string
 * constant would read the library's read-only data, which a process that sets no
 * FRAMEALLOC_ variable otherwise never reads (a read there maps 64 KiB of it). */
static FA_EVERY_PROCESS bool has_prefix(const char *s)
{
    return s[0] == 'F' && s[1] == 'R' && s[2] == 'A' && s[3] == 'M' && s[4] == 'E' && s[5] == 'A' && s[6] == 'L' &&
           s[7] == 'L' && s[8] == 'O' && s[9] == 'C' && s[10] == '_';
}

static FA_EVERY_PROCESS void fill_settings(void)
{
    const long long *v = fa_option_values;
    fa_settings_t s = {
        .help = v[FA_OPT_HELP] != 0,
        .stats = v[FA_OPT_STATS] != 0,
        .region_bytes = (size_t)v[FA_OPT_REGION_GB] << 30,
        .frame_strict = v[FA_OPT_FRAME_MODE] == 1,
        .frames_in_flight = (uint64_t)v[FA_OPT_FRAMES_IN_FLIGHT],
        .frame_max = (size_t)v[FA_OPT_FRAME_MAX],
        .frame_retain = (uint32_t)v[FA_OPT_FRAME_RETAIN],
        .pool_max = (size_t)v[FA_OPT_POOL_MAX],
        .pool_decay_ms = (uint64_t)v[FA_OPT_POOL_DECAY_MS],
        .records = (int)v[FA_OPT_RECORDS],
        .records_asked = v[FA_OPT_RECORDS] != FA_RECORDS_OFF,
        .records_rate_bytes = (uint64_t)v[FA_OPT_RECORDS_RATE] * 1024,
        .records_depth = (int)v[FA_OPT_RECORDS_DEPTH],
        .report = string_values[FA_OPT_REPORT],
        .report_signal = (int)v[FA_OPT_REPORT_SIGNAL],
        .debug = (unsigned)v[FA_OPT_DEBUG],
        .framelog = string_values[FA_OPT_FRAMELOG],
        .autoframe = (int)v[FA_OPT_AUTOFRAME],
        .learn = (int)v[FA_OPT_LEARN],
        .learn_rate = (uint64_t)v[FA_OPT_LEARN_RATE],
        .learn_warmup = (uint64_t)v[FA_OPT_LEARN_WARMUP],
        .learn_profile = string_values[FA_OPT_LEARN_PROFILE],
    };
    /* Guards and poison check every block on free: every block must be recorded. */
    if (s.debug & (FA_DEBUG_GUARDS | FA_DEBUG_POISON))
        s.records = FA_RECORDS_FULL;
    if (s.learn == FA_LEARN_ROUTE && s.frame_strict) {
        /* Strict frames reuse memory whatever is alive: a wrong guess would lose data. */
        fa_log("FRAMEALLOC_LEARN=route needs safe frames (FRAMEALLOC_FRAME_MODE=strict given): observing only");
        s.learn = FA_LEARN_OBSERVE;
    }
    s.frame_rewind = s.frames_in_flight == 1 && !(s.debug & FA_DEBUG_PROTECT);
    fa_settings = s;
}

/* True once a load took a setting from the environment: the next load starts from
 * the defaults again. Until then the table still holds them (its initialiser), and
 * resetting it would read their copy in read-only data (see has_prefix). */
static FA_EVERY_PROCESS_DATA bool values_changed;

FA_EVERY_PROCESS void fa_options_load(void)
{
    if (values_changed) {
        for (int i = 0; i < FA_OPT_COUNT; i++) {
            fa_option_values[i] = specs[i].def;
            string_values[i] = NULL;
        }
        values_changed = false;
    }
    fill_settings();
    /* Secure execution (setuid, setgid, file capabilities): the environment belongs
     * to a less privileged user, so every setting keeps its default, as glibc
     * ignores MALLOC_* there. Otherwise FRAMEALLOC_FRAMELOG or FRAMEALLOC_REPORT
     * would create or truncate files with the program's privileges. */
    if (!environ || getauxval(AT_SECURE))
        return;
    for (char **e = environ; *e; e++) {
        if (!has_prefix(*e))
            continue;
        const char *name = *e + sizeof PREFIX - 1;
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        size_t len = (size_t)(eq - name);
        int found = -1;
        for (int i = 0; i < FA_OPT_COUNT; i++)
            if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0)
                found = i;
        if (found < 0) {
            fa_log("unknown setting %.*s ignored (FRAMEALLOC_HELP=1 lists the settings)", (int)(len + sizeof PREFIX - 1), *e);
            continue;
        }
        load_one(&specs[found], &fa_option_values[found], eq + 1);
        values_changed = true;
    }
    fill_settings();
}

void fa_options_print(int fd)
{
    char line[512];
    size_t n = fa_format(line, sizeof line, "framealloc settings (environment variables):\n");
    fa_write_all(fd, line, n);
    for (int i = 0; i < FA_OPT_COUNT; i++) {
        const fa_option_spec_t *s = &specs[i];
        char def[64], range[160];
        if (s->kind == KIND_STRING) {
            fa_format(def, sizeof def, "unset");
        } else if (s->kind == KIND_LIST) {
            fa_format(def, sizeof def, "none");
        } else if (s->kind == KIND_ENUM) {
            const char *c = s->choices;
            for (long long k = 0; k < s->def; k++)
                c = strchr(c, ',') + 1;
            fa_format(def, sizeof def, "%.*s", (int)strcspn(c, ","), c);
        } else {
            fa_format(def, sizeof def, "%lld", s->def);
        }
        describe_range(s, range, sizeof range);
        n = fa_format(line, sizeof line, "  %s%-18s default %-6s %s\n      %s\n", PREFIX, s->name, def, range, s->doc);
        fa_write_all(fd, line, n);
    }
}

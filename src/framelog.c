/* The frame log: one CSV row per frame in MangoHud's log format, written without
 * malloc (see framelog.h).
 *
 * The file is what MangoHud 0.6.8 (Debian 12's) writes, so tools that read MangoHud
 * logs read it:
 *   line 1  os,cpu,gpu,ram,kernel,driver,cpuscheduler
 *   line 2  the values: /etc/os-release PRETTY_NAME, /proc/cpuinfo's model name,
 *           MemTotal in kB, uname -r, scaling_governor (gpu and driver empty: we
 *           do not look at the GPU)
 *   line 3  fps,frametime,cpu_load,gpu_load,cpu_temp,gpu_temp,gpu_core_clock,
 *           gpu_mem_clock,gpu_vram_used,gpu_power,ram_used,elapsed  + our columns
 *   then one row per timed frame:
 *   fps        1000000 / frametime
 *   frametime  microseconds (MangoHud's unit), with three decimals, CLOCK_MONOTONIC,
 *              from fa_frame_begin if the game calls it, else from the end of the
 *              previous frame's row; a first frame with no start gets no row
 *   cpu_load .. ram_used  0: MangoHud's sensor columns, not measured here (MangoHud
 *              also writes 0 for a sensor it cannot read)
 *   elapsed    ns since the first frame started (MangoHud: since logging started)
 * framealloc's columns come after MangoHud's, so readers by position still work:
 *   frame            frames ended so far (1, 2, ...)
 *   frame_allocs     frame-arena allocations in this frame (all threads)
 *   frame_bytes      bytes of those allocations
 *   frame_escapes    frame allocations found alive when their frame was recycled
 *   frame_chunks     frame-arena chunks held now
 *   heap_live_kib    live bytes in the backing heap now, KiB
 *   process_rss_kib  resident set of the process now (/proc/self/statm), KiB
 * The five counter columns are empty when the caller has no counters (the probe).
 *
 * Where: FRAMEALLOC_FRAMELOG names a file, or a directory (an existing one, or a
 * path ending in '/', created if its parent exists). A file is replaced at the first frame (one run per file). In a
 * directory each run gets a new file PROGRAM_YYYY-MM-DD_HH-MM-SS.csv (MangoHud's
 * naming; the time is UTC, which needs no time zone file), with _2, _3... added when
 * a run in the same second already took the name.
 *
 * The log's own work (counters, /proc read, write) happens after the frame's end
 * time is taken and before the next frame's start, so it is not in any frametime. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* program_invocation_short_name */
#endif
#include "framelog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "options.h"
#include "os.h"


#define SYSTEM_HEADER "os,cpu,gpu,ram,kernel,driver,cpuscheduler\n"
#define COLUMNS                                                                                   \
    "fps,frametime,cpu_load,gpu_load,cpu_temp,gpu_temp,gpu_core_clock,gpu_mem_clock,gpu_vram_used," \
    "gpu_power,ram_used,elapsed,frame,frame_allocs,frame_bytes,frame_escapes,frame_chunks,"        \
    "heap_live_kib,process_rss_kib\n"
/* cpu_load .. ram_used: MangoHud's sensor columns, not measured. */
#define SENSORS_UNMEASURED "0,0,0,0,0,0,0,0,0,"

enum { LOG_UNKNOWN, LOG_OFF, LOG_ON };

static int log_state; /* atomic; LOG_OFF makes every hook a load and a return */
static pid_t log_owner; /* the process that opened the file; a forked child stays silent */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Guarded by log_lock. */
static int log_fd = -1, statm_fd = -1;
static uint64_t frames;
static uint64_t origin_ns, mark_ns; /* first frame start; current frame start (0: none) */
static uint64_t page_kib;
static fa_stats last; /* cumulative counters at the previous row */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Appends the value of the first line of text that starts with key (the rest of the
 * line after key and any of the characters in skip) to out as one CSV field: commas
 * and quotes dropped, spaces trimmed, and with drop_groups "(...)" groups dropped
 * (MangoHud does that for the CPU name: "(R)", "(TM)"). */
static size_t put_field(char *out, size_t cap, const char *text, const char *key, const char *skip,
                        int drop_groups)
{
    size_t key_len = strlen(key);
    const char *line = text;
    while (line && *line && strncmp(line, key, key_len) != 0) {
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    if (!line || !*line)
        return 0;
    const char *s = line + key_len;
    while (*s && strchr(skip, *s))
        s++;
    size_t n = 0;
    int depth = 0;
    for (; *s && *s != '\n' && n + 1 < cap; s++) {
        if (*s == '(' && drop_groups)
            depth++;
        else if (*s == ')' && depth > 0)
            depth--;
        else if (!depth && *s != ',' && *s != '"' && !(*s == ' ' && (n == 0 || out[n - 1] == ' ')))
            out[n++] = *s;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return n;
}

/* Writes MangoHud's header block: the system line and the column names. */
static void write_header(int fd)
{
    char file[4096], line[1024];
    size_t n = fa_format(line, sizeof line, "%s", SYSTEM_HEADER);
    fa_os_read_file("/etc/os-release", file, sizeof file);
    n += put_field(line + n, sizeof line - n, file, "PRETTY_NAME=", "", 0);
    n += fa_format(line + n, sizeof line - n, ",");
    fa_os_read_file("/proc/cpuinfo", file, sizeof file);
    n += put_field(line + n, sizeof line - n, file, "model name", "\t :", 1);
    n += fa_format(line + n, sizeof line - n, ",,"); /* gpu: not looked at */
    fa_os_read_file("/proc/meminfo", file, sizeof file);
    n += put_field(line + n, sizeof line - n, file, "MemTotal:", " ", 0);
    if (n >= 3 && strncmp(line + n - 3, " kB", 3) == 0)
        n -= 3; /* MangoHud writes the number only */
    struct utsname uts;
    n += fa_format(line + n, sizeof line - n, ",%s,,", uname(&uts) == 0 ? uts.release : "");
    fa_os_read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", file, sizeof file);
    n += put_field(line + n, sizeof line - n, file, "", "", 0);
    n += fa_format(line + n, sizeof line - n, "\n%s", COLUMNS);
    fa_write_all(fd, line, n);
}

/* True when path names a directory: it ends in '/' or is an existing directory. */
static int names_directory(const char *path)
{
    size_t len = strlen(path);
    struct stat st;
    return (len > 0 && path[len - 1] == '/') || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

/* Creates dir/PROGRAM_YYYY-MM-DD_HH-MM-SS[_N].csv; returns the fd or -1. */
static int open_in_directory(const char *dir, char *name, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    const char *program = program_invocation_short_name && *program_invocation_short_name
                              ? program_invocation_short_name
                              : "program";
    for (int attempt = 1; attempt <= 100; attempt++) {
        /* fa_format pads with spaces only: two-digit fields are written by hand. */
        int parts[5] = {tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
        char two[5][3];
        for (int i = 0; i < 5; i++) {
            two[i][0] = (char)('0' + parts[i] / 10 % 10);
            two[i][1] = (char)('0' + parts[i] % 10);
            two[i][2] = '\0';
        }
        size_t n = fa_format(name, cap, "%.*s/%s_%d-%s-%s_%s-%s-%s", (int)len, dir, program, tm.tm_year + 1900,
                             two[0], two[1], two[2], two[3], two[4]);
        if (attempt > 1)
            n += fa_format(name + n, cap - n, "_%d", attempt);
        fa_format(name + n, cap - n, ".csv");
        int fd;
        fa_os_create_t made = fa_os_create_file(AT_FDCWD, name, true, &fd);
        if (made != FA_OS_EXISTS)
            return made == FA_OS_CREATED ? fd : -1;
    }
    return -1;
}

/* Opens the log on the first hook; called with log_lock held. */
static void start(void)
{
    const char *path = fa_settings.framelog;
    int state = LOG_OFF;
    if (path) {
        char name[4096];
        if (names_directory(path)) {
            fa_os_make_directory(path); /* "dir/" that does not exist yet: its parent must */
            log_fd = open_in_directory(path, name, sizeof name);
        } else {
            fa_format(name, sizeof name, "%s", path);
            /* Never through a symlink, nor over a file that is not ours. */
            if (fa_os_create_file(AT_FDCWD, path, false, &log_fd) != FA_OS_CREATED)
                log_fd = -1;
        }
        if (log_fd < 0) {
            fa_log("FRAMEALLOC_FRAMELOG: cannot open %s (errno %d); no frame log", name, errno);
        } else {
            statm_fd = fa_os_open_read("/proc/self/statm");
            page_kib = fa_os_page_size() / 1024;
            write_header(log_fd);
            log_owner = getpid();
            state = LOG_ON;
        }
    }
    __atomic_store_n(&log_state, state, __ATOMIC_RELEASE);
}

/* True when this process should log; takes log_lock if so. */
static int enter(void)
{
    int state = __atomic_load_n(&log_state, __ATOMIC_ACQUIRE);
    if (state == LOG_OFF || (state == LOG_ON && getpid() != log_owner))
        return 0;
    pthread_mutex_lock(&log_lock);
    if (__atomic_load_n(&log_state, __ATOMIC_RELAXED) == LOG_UNKNOWN)
        start();
    if (__atomic_load_n(&log_state, __ATOMIC_RELAXED) == LOG_ON)
        return 1;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void fa_framelog_begin(void)
{
    uint64_t t = now_ns();
    if (!enter())
        return;
    mark_ns = t;
    if (!origin_ns)
        origin_ns = t;
    pthread_mutex_unlock(&log_lock);
}

/* Appends num/den with `decimals` digits after the point, rounded. */
static size_t put_fixed(char *p, size_t cap, uint64_t num, uint64_t den, int decimals)
{
    uint64_t scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    uint64_t v = (num * scale + den / 2) / den;
    char frac[24];
    uint64_t f = v % scale;
    for (int i = decimals - 1; i >= 0; i--, f /= 10)
        frac[i] = (char)('0' + f % 10);
    return fa_format(p, cap, "%llu.%.*s", (unsigned long long)(v / scale), decimals, frac);
}

/* Resident set in KiB, or -1 when /proc is not readable. */
static long long rss_kib(void)
{
    char buf[128];
    if (statm_fd < 0)
        return -1;
    ssize_t n = pread(statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *s = buf;
    while (*s && *s != ' ') /* skip the first field, the virtual size */
        s++;
    unsigned long long pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (unsigned long long)(*s - '0');
    return (long long)(pages * page_kib);
}

void fa_framelog_end(fa_framelog_stats_fn stats)
{
    uint64_t t = now_ns();
    if (!enter())
        return;
    frames++;
    if (!origin_ns)
        origin_ns = t;

    fa_stats s;
    int have_stats = stats && stats(&s, sizeof s) == 0;
    /* A frame with no start (the first, without fa_frame_begin) has no time: no row,
     * but its counters still go to the next row's baseline. */
    if (mark_ns && t > mark_ns) {
        uint64_t ns = t - mark_ns;
        char row[512];
        size_t n = put_fixed(row, sizeof row, 1000000000u, ns, 2);
        n += fa_format(row + n, sizeof row - n, ",");
        n += put_fixed(row + n, sizeof row - n, ns, 1000u, 3);
        n += fa_format(row + n, sizeof row - n, ",%s%llu,%llu,", SENSORS_UNMEASURED,
                       (unsigned long long)(t - origin_ns), (unsigned long long)frames);
        if (have_stats)
            n += fa_format(row + n, sizeof row - n, "%llu,%llu,%llu,%llu,%llu,",
                           (unsigned long long)(s.frame_allocs - last.frame_allocs),
                           (unsigned long long)(s.frame_bytes - last.frame_bytes),
                           (unsigned long long)(s.frame_escapes - last.frame_escapes),
                           (unsigned long long)s.frame_chunks, (unsigned long long)(s.heap_bytes >> 10));
        else
            n += fa_format(row + n, sizeof row - n, ",,,,,");
        long long rss = rss_kib();
        if (rss >= 0)
            n += fa_format(row + n, sizeof row - n, "%lld", rss);
        n += fa_format(row + n, sizeof row - n, "\n");
        fa_write_all(log_fd, row, n);
    }
    if (have_stats)
        last = s;

    /* The next frame starts after this bookkeeping (or at its fa_frame_begin). */
    mark_ns = now_ns();
    pthread_mutex_unlock(&log_lock);
}

/* The frame log: one CSV row per frame, written without malloc (see framelog.h).
 *
 * Columns (the names MangoHud uses where the meaning and unit are the same):
 *   frame            frames ended so far, counted by this log (1, 2, ...)
 *   fps              1000 / frametime
 *   frametime        ms, CLOCK_MONOTONIC, from fa_frame_begin if the game calls it,
 *                    else from the end of the previous frame's row; empty for a first
 *                    frame that has no start
 *   frame_allocs     frame-arena allocations in this frame (all threads)
 *   frame_bytes      bytes of those allocations
 *   frame_escapes    frame allocations found alive when their frame was recycled, in this frame
 *   frame_chunks     frame-arena chunks held now (the arenas' high-water mark in chunks)
 *   heap_live_kib    live bytes in the backing heap now, KiB
 *   process_rss_kib  resident set of the process now (/proc/self/statm), KiB
 *   elapsed          ns since the first frame started (MangoHud's unit)
 * The five counter columns are empty when the caller has no counters (the probe).
 *
 * The log's own work (counters, /proc read, write) happens after the frame's end
 * time is taken and before the next frame's start, so it is not in any frametime;
 * the two libraries differ in that work, the games' frames do not. */
#include "framelog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "options.h"

#define HEADER "frame,fps,frametime,frame_allocs,frame_bytes,frame_escapes,frame_chunks,heap_live_kib,process_rss_kib,elapsed\n"

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

/* Opens the log on the first hook; called with log_lock held. */
static void start(void)
{
    const char *path = fa_option_string(FA_OPT_FRAMELOG);
    int state = LOG_OFF;
    if (path) {
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            fa_log("FRAMEALLOC_FRAMELOG: cannot open %s (errno %d); no frame log", path, errno);
        } else {
            statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
            long page = sysconf(_SC_PAGESIZE);
            page_kib = page > 1024 ? (uint64_t)page / 1024 : 4;
            /* A header only at the top, so appending runs to one file stays one table. */
            struct stat st;
            if (fstat(log_fd, &st) == 0 && st.st_size == 0)
                fa_write_all(log_fd, HEADER, sizeof HEADER - 1);
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

    char row[512];
    size_t n = fa_format(row, sizeof row, "%llu,", (unsigned long long)frames);
    if (mark_ns && t > mark_ns) {
        n += put_fixed(row + n, sizeof row - n, 1000000000u, t - mark_ns, 2);
        n += fa_format(row + n, sizeof row - n, ",");
        n += put_fixed(row + n, sizeof row - n, t - mark_ns, 1000000u, 4);
        n += fa_format(row + n, sizeof row - n, ",");
    } else {
        n += fa_format(row + n, sizeof row - n, ",,");
    }

    fa_stats s;
    if (stats && stats(&s, sizeof s) == 0) {
        n += fa_format(row + n, sizeof row - n, "%llu,%llu,%llu,%llu,%llu,",
                       (unsigned long long)(s.frame_allocs - last.frame_allocs),
                       (unsigned long long)(s.frame_bytes - last.frame_bytes),
                       (unsigned long long)(s.frame_escapes - last.frame_escapes),
                       (unsigned long long)s.frame_chunks, (unsigned long long)(s.heap_bytes >> 10));
        last = s;
    } else {
        n += fa_format(row + n, sizeof row - n, ",,,,,");
    }

    long long rss = rss_kib();
    if (rss >= 0)
        n += fa_format(row + n, sizeof row - n, "%lld", rss);
    n += fa_format(row + n, sizeof row - n, ",%llu\n", (unsigned long long)(t - origin_ns));
    fa_write_all(log_fd, row, n);

    /* The next frame starts after this bookkeeping (or at its fa_frame_begin). */
    mark_ns = now_ns();
    pthread_mutex_unlock(&log_lock);
}

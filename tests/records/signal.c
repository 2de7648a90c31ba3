/* FRAMEALLOC_REPORT_SIGNAL: the program raises the report signal and checks, while
 * it still runs, that snapshot N appears as FRAMEALLOC_REPORT/NAME.PID.N at the
 * next fa_frame_end() and not before. Each snapshot stays where it is, so the
 * checker can read what each report said, and the exit report goes to NAME.PID.
 * Usage: signal SIGNO (the same number as FRAMEALLOC_REPORT_SIGNAL).
 * With records off: signal SIGNO off raises the signal and ends a frame twice, then
 * prints a line: the signal must not kill the program. */
#include <errno.h> /* program_invocation_short_name */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <framealloc.h>

enum { BATCH = 25, SIZE = 640 };

static void *kept[2 * BATCH];

__attribute__((noinline)) static void signal_site(int i)
{
    kept[i] = malloc(SIZE); /* @site:signal */
    memset(kept[i], 4, SIZE);
}

static const char *files[] = {"summary.txt", "report.json", "allocations.folded", "live.folded", "escapes.folded"};

/* 1 if every report file exists, 0 if none does, -1 otherwise. */
static int report_state(const char *dir)
{
    int present = 0;
    for (int i = 0; i < 5; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        present += access(path, F_OK) == 0;
    }
    return present == 5 ? 1 : present == 0 ? 0 : -1;
}

/* FRAMEALLOC_REPORT/NAME.PID.N, where snapshot N must appear. */
static void snapshot_dir(char *out, size_t cap, const char *base, int round)
{
    snprintf(out, cap, "%s/%s.%d.%d", base, program_invocation_short_name, (int)getpid(), round);
}

static int round_trip(const char *base, int signo, int round)
{
    char dir[4096];
    snapshot_dir(dir, sizeof dir, base, round);
    for (int i = 0; i < BATCH; i++)
        signal_site((round - 1) * BATCH + i);
    raise(signo);
    if (report_state(dir) != 0) {
        fprintf(stderr, "signal: round %d: report files in %s before fa_frame_end\n", round, dir);
        return 1;
    }
    fa_frame_end();
    if (report_state(dir) != 1) {
        fprintf(stderr, "signal: round %d: fa_frame_end after the signal did not write every report file into %s\n",
                round, dir);
        return 1;
    }
    printf("round %d: report written at fa_frame_end, not before\n", round);
    return 0;
}

/* Records off: the report signal writes nothing, and must not kill the program. */
static int outlive_signal(int signo)
{
    for (int round = 1; round <= 2; round++) {
        signal_site(round - 1);
        raise(signo);
        fa_frame_end();
    }
    printf("records off: the program outlived the report signal\n");
    return 0;
}

int main(int argc, char **argv)
{
    printf("pid %d\n", (int)getpid());
    if (argc == 3 && !strcmp(argv[2], "off"))
        return outlive_signal(atoi(argv[1]));
    const char *dir = getenv("FRAMEALLOC_REPORT");
    if (argc != 2 || !dir) {
        fprintf(stderr, "usage: FRAMEALLOC_REPORT=DIR signal SIGNO\n");
        return 2;
    }
    int signo = atoi(argv[1]);
    fa_frame_end();
    char first[4096];
    snapshot_dir(first, sizeof first, dir, 1);
    if (report_state(first) != 0) {
        fprintf(stderr, "signal: report files in %s before any signal\n", first);
        return 1;
    }
    if (round_trip(dir, signo, 1) || round_trip(dir, signo, 2))
        return 1;
    return 0;
}

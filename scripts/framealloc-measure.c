/* framealloc-measure: runs one command and reports its own resource use.
 *
 *   framealloc-measure OUTFILE [NAME=VALUE...] -- COMMAND [ARGS...]
 *
 * framealloc-compare starts every measured run through this small program instead
 * of forking the command from Python directly, because Linux's peak RSS of a
 * process (ru_maxrss) includes the memory of whatever process image it replaced
 * with exec: a command forked from Python starts with Python's 10-15 MiB already
 * counted. Here the command is forked from this program (about 1 MiB), with the
 * NAME=VALUE settings added to its environment only (LD_PRELOAD and LD_AUDIT go
 * there, so this program itself runs without the allocator under test), and its
 * rusage, taken with wait4 on that child alone, is written to OUTFILE as one line:
 *   exit_code signal user_seconds system_seconds max_rss_kib
 * (exit_code -1 when a signal ended it; signal 0 when it exited). The command's
 * stdin, stdout and stderr are this program's. This program exits 0 once it has
 * written the line (a command that cannot be started exits 127 there), 1 on errors.
 * It ignores SIGINT and SIGQUIT while it waits (the command, in the same process
 * group, gets them from the terminal), and the command dies with this program
 * (PR_SET_PDEATHSIG), so killing it never leaves the command running. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int dashes = 2;
    while (dashes < argc && strcmp(argv[dashes], "--") != 0)
        dashes++;
    if (argc < 3 || dashes + 1 >= argc) {
        fprintf(stderr, "usage: framealloc-measure OUTFILE [NAME=VALUE...] -- COMMAND [ARGS...]\n");
        return 1;
    }
    char **command = argv + dashes + 1;
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        fprintf(stderr, "framealloc-measure: cannot write %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "framealloc-measure: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the parent died before prctl */
            _exit(127);
        for (int i = 2; i < dashes; i++)
            if (putenv(argv[i]) != 0)
                _exit(127);
        execvp(command[0], command);
        fprintf(stderr, "framealloc-measure: cannot run %s: %s\n", command[0], strerror(errno));
        _exit(127);
    }
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status;
    struct rusage usage;
    pid_t r;
    do
        r = wait4(child, &status, 0, &usage);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        fprintf(stderr, "framealloc-measure: wait4: %s\n", strerror(errno));
        return 1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    fprintf(out, "%d %d %ld.%06ld %ld.%06ld %ld\n", code, sig, (long)usage.ru_utime.tv_sec,
            (long)usage.ru_utime.tv_usec, (long)usage.ru_stime.tv_sec, (long)usage.ru_stime.tv_usec,
            usage.ru_maxrss);
    if (fclose(out) != 0)
        return 1;
    return 0;
}

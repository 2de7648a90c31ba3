/* Helpers shared by the preload tests (see preload_test.h). */
#include "preload_test.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

uint64_t frame_allocs_now(void)
{
    /* No passing ck_assert here: Check allocates on every passing assertion. */
    fa_stats s;
    if (fa_stats_get(&s) != 0)
        ck_abort_msg("fa_stats_get failed");
    return s.frame_allocs;
}

const char *object_defining(const char *name)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (!sym || !dladdr(sym, &info) || !info.dli_fname)
        return "";
    return info.dli_fname;
}

int defined_by_framealloc(const char *name)
{
    return strstr(object_defining(name), "libframealloc") != NULL;
}

int run_in_child_capturing_stderr(void (*fn)(void *), void *arg, char *err, size_t cap)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    /* Read to EOF so the child never blocks on a full pipe; keep what fits. */
    size_t len = 0;
    char overflow[256];
    ssize_t n;
    while ((n = read(fds[0], len < cap - 1 ? err + len : overflow,
                     len < cap - 1 ? cap - 1 - len : sizeof overflow)) > 0)
        if (len < cap - 1)
            len += (size_t)n;
    err[len] = '\0';
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

size_t address_space_in_use(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmSize:", 7) == 0)
            kib = strtoull(line + 7, NULL, 10);
    fclose(f);
    ck_assert_uint_gt(kib, 0);
    return kib << 10;
}

void limit_address_space(size_t headroom)
{
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &limit), 0);
    rlim_t want = address_space_in_use() + headroom;
    limit.rlim_cur = want < limit.rlim_max ? want : limit.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &limit), 0);
}

int all_bytes_are(const void *p, size_t n, unsigned char value)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != value)
            return 0;
    return 1;
}

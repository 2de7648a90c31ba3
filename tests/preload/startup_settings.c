/* What a preloaded program prints and does at start-up, by environment: nothing
 * without settings; the table with FRAMEALLOC_HELP=1; exactly one line naming the
 * setting and the value for a bad value, after which the default applies and the
 * program runs normally; a normal run when the address space is limited from the
 * start; a frame log never written through a symlink or into a file that is not
 * framealloc's. The probe program (startup_probe.c) is passed as the first argument. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_test.h"

extern char **environ;

struct run {
    int status;
    char out[512];
    char err[8192];
};

/* Reads fd to EOF into buf (NUL-terminated, truncated to cap). */
static void read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs the probe with this process's environment minus every FRAMEALLOC_ and CK_
 * variable, plus settings (NULL-terminated "NAME=value" strings); LD_PRELOAD is
 * kept. A nonzero address_space_limit is applied before exec. */
static void run_probe(const char *const *settings, rlim_t address_space_limit, struct run *r)
{
    const char *probe = preload_argc > 0 ? preload_argv[0] : NULL;
    ck_assert_msg(probe != NULL, "pass the probe program's path as the first argument");
    char *env[256];
    size_t n = 0;
    for (char **e = environ; *e && n < 200; e++)
        if (strncmp(*e, "FRAMEALLOC_", 11) != 0 && strncmp(*e, "CK_", 3) != 0)
            env[n++] = *e;
    for (size_t i = 0; settings && settings[i]; i++)
        env[n++] = (char *)settings[i];
    env[n] = NULL;

    int out[2], err[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(err), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        if (address_space_limit) {
            struct rlimit limit = {address_space_limit, address_space_limit};
            setrlimit(RLIMIT_AS, &limit);
        }
        execve(probe, (char *[]){(char *)probe, NULL}, env);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    /* The probe writes little: stdout fits in the pipe while stderr is read. */
    read_all(err[0], r->err, sizeof r->err);
    read_all(out[0], r->out, sizeof r->out);
    close(out[0]);
    close(err[0]);
    ck_assert_int_eq(waitpid(pid, &r->status, 0), pid);
}

static int line_count(const char *text)
{
    int lines = 0;
    for (; *text; text++)
        lines += *text == '\n';
    return lines;
}

static void expect_normal_run(const struct run *r, int reused)
{
    ck_assert_msg(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "probe wait status %#x, stderr '%s'",
                  r->status, r->err);
    char expected[64];
    snprintf(expected, sizeof expected, "ran active=1 reused=%d\n", reused);
    ck_assert_str_eq(r->out, expected);
}

START_TEST(no_settings_print_nothing)
{
    struct run r;
    run_probe(NULL, 0, &r);
    expect_normal_run(&r, 1);
    ck_assert_str_eq(r.err, "");
}
END_TEST

START_TEST(help_prints_the_table_of_settings)
{
    static const char *const settings[] = {"FRAMEALLOC_HELP=1", NULL};
    static const char *const names[] = {
        "FRAMEALLOC_HELP", "FRAMEALLOC_STATS", "FRAMEALLOC_REGION_GB", "FRAMEALLOC_FRAME_MODE",
        "FRAMEALLOC_FRAMES_IN_FLIGHT", "FRAMEALLOC_FRAME_MAX", "FRAMEALLOC_FRAME_RETAIN", "FRAMEALLOC_POOL_MAX",
        "FRAMEALLOC_FRAMELOG", "FRAMEALLOC_AUTOFRAME",
    };
    struct run r;
    run_probe(settings, 0, &r);
    expect_normal_run(&r, 1);
    ck_assert_msg(strncmp(r.err, "framealloc settings", 19) == 0, "stderr starts '%.60s'", r.err);
    ck_assert_msg(strstr(r.err + 1, "framealloc settings") == NULL, "the table is printed twice");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char row[64];
        snprintf(row, sizeof row, "\n  %s ", names[i]); /* a row of the table, not a mention */
        ck_assert_msg(strstr(r.err, row) != NULL, "%s is not in the table:\n%s", names[i], r.err);
    }
}
END_TEST

/* Each bad value: one line on stderr naming the setting and the value; the run
 * goes on with the default. */
static const struct {
    const char *setting, *name, *value;
} bad_values[] = {
    {"FRAMEALLOC_FRAMES_IN_FLIGHT=abc", "FRAMEALLOC_FRAMES_IN_FLIGHT", "abc"},
    {"FRAMEALLOC_FRAMES_IN_FLIGHT=17", "FRAMEALLOC_FRAMES_IN_FLIGHT", "17"},
    {"FRAMEALLOC_FRAMES_IN_FLIGHT=", "FRAMEALLOC_FRAMES_IN_FLIGHT", ""},
    {"FRAMEALLOC_FRAME_MODE=fast", "FRAMEALLOC_FRAME_MODE", "fast"},
    {"FRAMEALLOC_FRAME_MAX=1e9", "FRAMEALLOC_FRAME_MAX", "1e9"},
    {"FRAMEALLOC_STATS=maybe", "FRAMEALLOC_STATS", "maybe"},
    {"FRAMEALLOC_REGION_GB=-3", "FRAMEALLOC_REGION_GB", "-3"},
};

START_TEST(bad_value_prints_one_line_and_the_default_applies)
{
    const char *settings[] = {bad_values[_i].setting, NULL};
    struct run r;
    run_probe(settings, 0, &r);
    expect_normal_run(&r, 1); /* reused=1: FRAMES_IN_FLIGHT is still its default 1 */
    ck_assert_msg(line_count(r.err) == 1, "want exactly one line on stderr, got:\n%s", r.err);
    char named[128];
    snprintf(named, sizeof named, "%s=%s ", bad_values[_i].name, bad_values[_i].value);
    ck_assert_msg(strstr(r.err, named) != NULL, "stderr '%s' does not name '%s'", r.err, bad_values[_i].setting);
    ck_assert_msg(strncmp(r.err, "framealloc: ", 12) == 0, "stderr '%s' does not say who is talking", r.err);
}
END_TEST

/* Control for the test above: a good value is taken, silently. */
START_TEST(good_value_is_used)
{
    static const char *const settings[] = {"FRAMEALLOC_FRAMES_IN_FLIGHT=2", NULL};
    struct run r;
    run_probe(settings, 0, &r);
    expect_normal_run(&r, 0); /* frame 0's memory is not recycled until frame 2 */
    ck_assert_str_eq(r.err, "");
}
END_TEST

START_TEST(unknown_setting_prints_one_line)
{
    static const char *const settings[] = {"FRAMEALLOC_FRAMES_IN_FLIGT=2", NULL};
    struct run r;
    run_probe(settings, 0, &r);
    expect_normal_run(&r, 1);
    ck_assert_msg(line_count(r.err) == 1 && strstr(r.err, "FRAMEALLOC_FRAMES_IN_FLIGT"), "stderr: '%s'", r.err);
}
END_TEST

/* Under `ulimit -v` the library reserves less address space for its region, and
 * still works, silently. */
START_TEST(start_under_a_low_address_space_limit)
{
    static const rlim_t limits[] = {(rlim_t)1 << 30, (rlim_t)256 << 20};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct run r;
        run_probe(NULL, limits[i], &r);
        expect_normal_run(&r, 1);
        ck_assert_str_eq(r.err, "");
    }
}
END_TEST

/* Writes text into a new file at path. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void expect_file_holds(const char *path, const char *text)
{
    char got[256] = "";
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    ck_assert_msg(strcmp(got, text) == 0, "%s now holds '%s', want '%s'", path, got, text);
}

/* FRAMEALLOC_FRAMELOG naming a symlink or a hard-linked file: the file behind it is
 * left as it was, the run goes on, and one line on stderr says there is no frame log
 * (issue 10 item 6). The control: a path of its own gets the log. */
START_TEST(frame_log_is_never_written_through_a_link)
{
    char dir[] = "/tmp/fa-framelog.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char victim[64], symlinked[64], hardlinked[64], fresh[64], setting[96];
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    snprintf(symlinked, sizeof symlinked, "%s/symlinked.csv", dir);
    snprintf(hardlinked, sizeof hardlinked, "%s/hardlinked.csv", dir);
    snprintf(fresh, sizeof fresh, "%s/fresh.csv", dir);
    write_file(victim, "precious\n");
    ck_assert_int_eq(symlink(victim, symlinked), 0);
    ck_assert_int_eq(link(victim, hardlinked), 0);

    const char *links[] = {symlinked, hardlinked};
    for (size_t i = 0; i < 2; i++) {
        snprintf(setting, sizeof setting, "FRAMEALLOC_FRAMELOG=%s", links[i]);
        const char *settings[] = {setting, NULL};
        struct run r;
        run_probe(settings, 0, &r);
        expect_normal_run(&r, 1);
        expect_file_holds(victim, "precious\n");
        ck_assert_msg(line_count(r.err) == 1 && strstr(r.err, "FRAMEALLOC_FRAMELOG") && strstr(r.err, "no frame log"),
                      "%s: stderr '%s'", links[i], r.err);
    }
    struct stat st;
    ck_assert_msg(lstat(symlinked, &st) == 0 && S_ISLNK(st.st_mode), "the symlink itself is left in place");

    snprintf(setting, sizeof setting, "FRAMEALLOC_FRAMELOG=%s", fresh);
    const char *settings[] = {setting, NULL};
    struct run r;
    run_probe(settings, 0, &r);
    expect_normal_run(&r, 1);
    ck_assert_str_eq(r.err, "");
    ck_assert_msg(stat(fresh, &st) == 0 && st.st_size > 0, "control: the frame log was not written to %s", fresh);

    const char *made[] = {fresh, hardlinked, symlinked, victim};
    for (size_t i = 0; i < 4; i++)
        unlink(made[i]);
    rmdir(dir);
}
END_TEST

Suite *preload_suite(void)
{
    Suite *s = suite_create("start-up settings");
    TCase *tc = tcase_create("environment");
    tcase_add_test(tc, no_settings_print_nothing);
    tcase_add_test(tc, help_prints_the_table_of_settings);
    tcase_add_loop_test(tc, bad_value_prints_one_line_and_the_default_applies, 0,
                        sizeof bad_values / sizeof bad_values[0]);
    tcase_add_test(tc, good_value_is_used);
    tcase_add_test(tc, unknown_setting_prints_one_line);
    tcase_add_test(tc, start_under_a_low_address_space_limit);
    tcase_add_test(tc, frame_log_is_never_written_through_a_link);
    suite_add_tcase(s, tc);
    return s;
}

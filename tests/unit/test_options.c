/* The FRAMEALLOC_* table: values, ranges, bad input and the help text. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

/* Runs fa_options_load with stderr captured into buf. */
static void load_capturing_stderr(char *buf, size_t cap)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    fa_options_load();
    dup2(saved, 2);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    close(saved);
}

START_TEST(defaults_without_environment)
{
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(fa_option(FA_OPT_FRAMES_IN_FLIGHT), 1);
    ck_assert_int_eq(fa_option(FA_OPT_FRAME_MODE), 0);
    ck_assert_int_eq(fa_option(FA_OPT_FRAME_MAX), 65536);
}
END_TEST

START_TEST(values_and_suffixes_are_read)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGHT", "3", 1);
    setenv("FRAMEALLOC_FRAME_MODE", "strict", 1);
    setenv("FRAMEALLOC_FRAME_MAX", "32k", 1);
    setenv("FRAMEALLOC_STATS", "yes", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(fa_option(FA_OPT_FRAMES_IN_FLIGHT), 3);
    ck_assert_int_eq(fa_option(FA_OPT_FRAME_MODE), 1);
    ck_assert_int_eq(fa_option(FA_OPT_FRAME_MAX), 32768);
    ck_assert_int_eq(fa_option(FA_OPT_STATS), 1);
}
END_TEST

START_TEST(bad_value_names_setting_and_keeps_default)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGHT", "lots", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "framealloc: FRAMEALLOC_FRAMES_IN_FLIGHT=lots is not valid "
                          "(a whole number from 1 to 16); using the default 1\n");
    ck_assert_int_eq(fa_option(FA_OPT_FRAMES_IN_FLIGHT), 1);
}
END_TEST

START_TEST(out_of_range_and_bad_choice)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGHT", "17", 1);
    setenv("FRAMEALLOC_FRAME_MODE", "fast", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "FRAMEALLOC_FRAMES_IN_FLIGHT=17 is not valid"));
    ck_assert_ptr_nonnull(strstr(err, "FRAMEALLOC_FRAME_MODE=fast is not valid (one of safe,strict)"));
    ck_assert_int_eq(fa_option(FA_OPT_FRAMES_IN_FLIGHT), 1);
    ck_assert_int_eq(fa_option(FA_OPT_FRAME_MODE), 0);
}
END_TEST

START_TEST(string_setting_is_kept_as_given)
{
    ck_assert_ptr_null(fa_option_string(FA_OPT_FRAMELOG));
    setenv("FRAMEALLOC_FRAMELOG", "/tmp/frames.csv", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(fa_option_string(FA_OPT_FRAMELOG), "/tmp/frames.csv");
}
END_TEST

START_TEST(list_setting_takes_any_subset)
{
    setenv("FRAMEALLOC_DEBUG", "protect,poison", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(fa_option(FA_OPT_DEBUG), 1 | 4);
    setenv("FRAMEALLOC_DEBUG", "poison,bogus", 1);
    load_capturing_stderr(err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "FRAMEALLOC_DEBUG=poison,bogus is not valid (any of poison,guards,protect, comma-separated)"));
    ck_assert_int_eq(fa_option(FA_OPT_DEBUG), 0);
}
END_TEST

START_TEST(unknown_setting_is_reported)
{
    setenv("FRAMEALLOC_FRAMES_IN_FLIGT", "2", 1);
    char err[512];
    load_capturing_stderr(err, sizeof err);
    ck_assert_str_eq(err, "framealloc: unknown setting FRAMEALLOC_FRAMES_IN_FLIGT ignored "
                          "(FRAMEALLOC_HELP=1 lists the settings)\n");
}
END_TEST

START_TEST(report_signal_takes_spare_signals)
{
    char text[16], err[512];
    int spare[] = {SIGUSR1, SIGUSR2, SIGRTMIN, SIGRTMIN + 3, SIGRTMAX};
    for (size_t i = 0; i < sizeof spare / sizeof spare[0]; i++) {
        snprintf(text, sizeof text, "%d", spare[i]);
        setenv("FRAMEALLOC_REPORT_SIGNAL", text, 1);
        load_capturing_stderr(err, sizeof err);
        ck_assert_str_eq(err, "");
        ck_assert_int_eq(fa_option(FA_OPT_REPORT_SIGNAL), spare[i]);
    }
    const char *names[] = {"SIGUSR1", "USR2", "SIGRTMIN+2"};
    int numbers[] = {SIGUSR1, SIGUSR2, SIGRTMIN + 2};
    for (size_t i = 0; i < 3; i++) {
        setenv("FRAMEALLOC_REPORT_SIGNAL", names[i], 1);
        load_capturing_stderr(err, sizeof err);
        ck_assert_str_eq(err, "");
        ck_assert_int_eq(fa_option(FA_OPT_REPORT_SIGNAL), numbers[i]);
    }
}
END_TEST

/* Signals the program or the system needs are refused with the reason, and the
 * default (no report signal) is kept. */
START_TEST(report_signal_refuses_signals_in_use)
{
    struct {
        int signo;
        const char *reason;
    } refused[] = {
        {SIGSEGV, "endless fault loop"}, {SIGBUS, "endless fault loop"}, {SIGFPE, "endless fault loop"},
        {SIGINT, "Ctrl-C"},              {SIGTERM, "Ctrl-C"},            {SIGHUP, "closing the terminal"},
        {SIGKILL, "cannot be caught"},   {SIGPIPE, "relies on it"},      {SIGCHLD, "relies on it"},
        {SIGRTMIN - 1, "relies on it"},  {SIGRTMAX + 1, "no such signal"},
    };
    char text[16], err[512];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(text, sizeof text, "%d", refused[i].signo);
        setenv("FRAMEALLOC_REPORT_SIGNAL", text, 1);
        load_capturing_stderr(err, sizeof err);
        char start[64];
        snprintf(start, sizeof start, "framealloc: FRAMEALLOC_REPORT_SIGNAL=%d is not accepted: ", refused[i].signo);
        ck_assert_msg(strncmp(err, start, strlen(start)) == 0, "signal %d: stderr '%s'", refused[i].signo, err);
        ck_assert_msg(strstr(err, refused[i].reason), "signal %d: stderr '%s' does not say '%s'", refused[i].signo, err,
                      refused[i].reason);
        ck_assert_ptr_nonnull(strstr(err, "using the default 0\n"));
        ck_assert_int_eq(strchr(err, '\n') - err, (long)strlen(err) - 1);
        ck_assert_int_eq(fa_option(FA_OPT_REPORT_SIGNAL), 0);
    }
    setenv("FRAMEALLOC_REPORT_SIGNAL", "SIGWHAT", 1);
    load_capturing_stderr(err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "FRAMEALLOC_REPORT_SIGNAL=SIGWHAT is not valid (0, 10 (SIGUSR1), 12 (SIGUSR2)"));
    ck_assert_int_eq(fa_option(FA_OPT_REPORT_SIGNAL), 0);
}
END_TEST

START_TEST(help_lists_every_setting)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fa_options_print(fds[1]);
    close(fds[1]);
    static char text[16384];
    ssize_t n = read(fds[0], text, sizeof text - 1);
    ck_assert_int_gt(n, 0);
    text[n] = '\0';
    const char *names[] = {"FRAMEALLOC_HELP", "FRAMEALLOC_STATS", "FRAMEALLOC_REGION_GB", "FRAMEALLOC_FRAME_MODE",
                           "FRAMEALLOC_FRAMES_IN_FLIGHT", "FRAMEALLOC_FRAME_MAX", "FRAMEALLOC_FRAME_RETAIN",
                           "FRAMEALLOC_POOL_MAX", "FRAMEALLOC_POOL_DECAY_MS", "FRAMEALLOC_FRAMELOG",
                           "FRAMEALLOC_AUTOFRAME"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(strstr(text, names[i]), "%s missing from help", names[i]);
    ck_assert_ptr_nonnull(strstr(text, "default safe"));
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, defaults_without_environment);
    tcase_add_test(tc, values_and_suffixes_are_read);
    tcase_add_test(tc, bad_value_names_setting_and_keeps_default);
    tcase_add_test(tc, out_of_range_and_bad_choice);
    tcase_add_test(tc, string_setting_is_kept_as_given);
    tcase_add_test(tc, list_setting_takes_any_subset);
    tcase_add_test(tc, unknown_setting_is_reported);
    tcase_add_test(tc, report_signal_takes_spare_signals);
    tcase_add_test(tc, report_signal_refuses_signals_in_use);
    tcase_add_test(tc, help_lists_every_setting);
    suite_add_tcase(s, tc);
    return s;
}

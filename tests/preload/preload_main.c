/* Shared runner for the preload tests: refuses to run without the library (so a
 * test can never pass by accident under glibc's malloc), then runs the file's
 * suite. Every test runs in its own forked child (Check's default), so a test may
 * lower limits or push scopes without affecting the others. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "preload_test.h"

int preload_argc;
char **preload_argv;

int main(int argc, char **argv)
{
    preload_argc = argc - 1;
    preload_argv = argv + 1;
    if (!fa_active() || !defined_by_framealloc("malloc")) {
        fprintf(stderr, "%s: libframealloc.so is not preloaded (malloc comes from %s); "
                        "run it with LD_PRELOAD=.../libframealloc.so\n",
                argv[0], object_defining("malloc"));
        return EXIT_FAILURE;
    }
    SRunner *runner = srunner_create(preload_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

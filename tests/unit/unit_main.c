/* Shared runner: each unit test file provides fa_test_suite(). Every test runs in
 * its own forked process (Check's default), so each starts with fresh allocator
 * state and may set FRAMEALLOC_* variables before its first call. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

Suite *fa_test_suite(void);

extern char **environ;

/* Tests set the FRAMEALLOC_* variables they need; none may leak in from outside. */
static void clear_framealloc_environment(void)
{
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "FRAMEALLOC_", 11) == 0) {
                char name[128];
                size_t len = strcspn(*e, "=");
                if (len >= sizeof name)
                    len = sizeof name - 1;
                memcpy(name, *e, len);
                name[len] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

int main(void)
{
    clear_framealloc_environment();
    SRunner *runner = srunner_create(fa_test_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

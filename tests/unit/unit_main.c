/* Shared runner: each unit test file provides fa_test_suite(). Every test runs in
 * its own forked process (Check's default), so each starts with fresh allocator
 * state and may set FRAMEALLOC_* variables before its first call. */
#include <check.h>
#include <stdlib.h>

Suite *fa_test_suite(void);

int main(void)
{
    SRunner *runner = srunner_create(fa_test_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

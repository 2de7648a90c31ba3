/* How much a program can allocate under an address-space limit (RLIMIT_AS), set at
 * start (ulimit -v) or at run time (setrlimit), must be at least 90 % of what it
 * gets under glibc (issue 10 item 3): framealloc's reserved region must not eat
 * the limit. Run as: address_limit_reach GLIBC_RUN|PRELOAD_RUN ...; the driver
 * script runs this program under glibc and under the library and compares.
 *   address_limit_reach runtime MIB   set RLIMIT_AS to MIB at run time
 *   address_limit_reach start         the limit was set by the caller (ulimit -v)
 * Prints the MiB allocated in 1 MiB blocks (never touched) before malloc failed
 * with ENOMEM; exits 1 if it failed any other way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "runtime")) {
        rlim_t bytes = (rlim_t)strtoull(argv[2], NULL, 10) << 20;
        struct rlimit limit = {bytes, bytes};
        if (setrlimit(RLIMIT_AS, &limit) != 0) {
            perror("setrlimit");
            return 1;
        }
    }
    size_t mib = 0;
    void **chain = NULL, **p;
    errno = 0;
    while ((p = malloc((size_t)1 << 20))) {
        *p = chain;
        chain = p;
        mib++;
    }
    int error = errno;
    while (chain) {
        void **next = *chain;
        free(chain);
        chain = next;
    }
    printf("%zu\n", mib);
    return error == ENOMEM ? 0 : 1;
}

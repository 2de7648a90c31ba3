/* How much a program can allocate under an address-space limit (RLIMIT_AS), set at
 * start (ulimit -v) or at run time (setrlimit), must be at least 90 % of what it
 * gets under glibc (issue 10 item 3): framealloc's reserved region must not eat
 * the limit, nor may the heap pad its blocks. The driver script runs this program
 * under glibc and under the library and compares.
 *   address_limit_reach BLOCK SCOPE start         the caller set the limit (ulimit -v)
 *   address_limit_reach BLOCK SCOPE runtime MIB   set RLIMIT_AS to MIB at run time
 * BLOCK: the block size in bytes; SCOPE: "plain", "frame" to allocate inside
 * FA_FRAME_SCOPE (a no-op under glibc), "again" to allocate, free everything and
 * allocate again, and report the second round, or "used" to allocate plainly after
 * one block in a frame scope (the region's frame part is then in use). Prints the MiB allocated (blocks never
 * touched past their first word) before malloc failed with ENOMEM; exits 1 if it
 * failed any other way. */
#include <errno.h>
#include <framealloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Allocates size-byte blocks until malloc fails, then frees them all; returns the
 * bytes it got and leaves malloc's errno in *error. The blocks are chained through
 * their first word. */
static size_t allocate_until_failure(size_t size, int *error)
{
    size_t total = 0;
    void **chain = NULL, **p;
    errno = 0;
    while ((p = malloc(size))) {
        *p = chain;
        chain = p;
        total += size;
    }
    *error = errno;
    while (chain) {
        void **next = *chain;
        free(chain);
        chain = next;
    }
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 4 ||
        (strcmp(argv[2], "plain") && strcmp(argv[2], "frame") && strcmp(argv[2], "again") && strcmp(argv[2], "used")) ||
        (strcmp(argv[3], "start") && (strcmp(argv[3], "runtime") || argc < 5))) {
        fprintf(stderr, "usage: address_limit_reach BLOCK plain|frame|again|used start|runtime MIB\n");
        return 2;
    }
    size_t block = strtoull(argv[1], NULL, 10);
    if (block < sizeof(void *)) {
        fprintf(stderr, "address_limit_reach: a block must hold a pointer\n");
        return 2;
    }
    if (!strcmp(argv[3], "runtime")) {
        rlim_t bytes = (rlim_t)strtoull(argv[4], NULL, 10) << 20;
        struct rlimit limit = {bytes, bytes};
        if (setrlimit(RLIMIT_AS, &limit) != 0) {
            perror("setrlimit");
            return 1;
        }
    }
    if (!strcmp(argv[2], "used")) {
        FA_FRAME_SCOPE {
            void *volatile block = malloc(100);
            free(block);
        }
    }
    size_t bytes = 0;
    int error = 0;
    if (!strcmp(argv[2], "frame")) {
        FA_FRAME_SCOPE {
            bytes = allocate_until_failure(block, &error);
        }
    } else {
        bytes = allocate_until_failure(block, &error);
        if (!strcmp(argv[2], "again") && error == ENOMEM)
            bytes = allocate_until_failure(block, &error);
    }
    printf("%zu\n", bytes >> 20);
    if (error != ENOMEM) {
        fprintf(stderr, "address_limit_reach: malloc(%zu) failed with errno %d, not ENOMEM\n", block, error);
        return 1;
    }
    return 0;
}

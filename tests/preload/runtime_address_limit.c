/* A limit on address space set while the program runs (setrlimit RLIMIT_AS) must
 * make allocation fail with ENOMEM, although the frame and pool region was reserved
 * at start-up: committed region memory counts against the limit. */
#include <errno.h>
#include <framealloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LIMIT ((size_t)512 << 20)

/* Failing early is wrong too: pool blocks must get at least a quarter of the limit,
 * and frame blocks, allocated after the pool blocks were freed, half of it. The pool
 * blocks' chunks stay mapped when freed, so the heap has no room for the frame
 * requests; the region's frame part, which no chunk had used when the limit was
 * first reached, was given back then, so they must reuse the pools' chunks. */

/* Allocates size-byte blocks until malloc fails, then frees them all; returns the
 * bytes it got. The blocks are chained through their first word. */
static size_t allocate_until_failure(size_t size, int *error)
{
    size_t total = 0;
    void **chain = NULL, **p;
    while ((p = malloc(size))) {
        *p = chain;
        chain = p;
        total += size;
        if (total > 4 * LIMIT)
            break;
    }
    *error = errno;
    while (chain) {
        void **next = *chain;
        free(chain);
        chain = next;
    }
    return total;
}

int main(void)
{
    struct rlimit limit = {LIMIT, LIMIT};
    if (setrlimit(RLIMIT_AS, &limit) != 0) {
        perror("setrlimit");
        return 1;
    }
    int error = 0;
    int failures = 0;
    size_t pool_bytes = allocate_until_failure(48, &error);
    if (pool_bytes > LIMIT || pool_bytes < LIMIT / 4 || error != ENOMEM) {
        fprintf(stderr, "runtime_address_limit: 48-byte blocks: %zu bytes before failure, errno %d\n", pool_bytes, error);
        failures++;
    }
    size_t frame_bytes = 0;
    FA_FRAME_SCOPE {
        frame_bytes = allocate_until_failure(4000, &error);
    }
    if (frame_bytes > LIMIT || frame_bytes < LIMIT / 2 || error != ENOMEM) {
        fprintf(stderr, "runtime_address_limit: frame blocks: %zu bytes before failure, errno %d\n", frame_bytes, error);
        failures++;
    }
    printf("runtime_address_limit: pool blocks failed after %zu MiB, frame blocks after %zu MiB (limit %zu MiB)\n",
           pool_bytes >> 20, frame_bytes >> 20, LIMIT >> 20);
    return failures ? 1 : 0;
}

/* libearly.so (see early_library.h): its constructor allocates and frees through
 * every entry point, in and out of a frame scope, possibly before framealloc's own
 * constructor has run, and leaves two blocks for the test program to check and
 * free. It also registers a pthread key, so that the key can come before
 * framealloc's. */
#include "early_library.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "framealloc.h"

__attribute__((visibility("default"))) struct early_state early_state;

static void fail(const char *what)
{
    if (!early_state.failure)
        early_state.failure = what;
    /* No stdio here: it may not be ready, and it allocates. */
    write(2, "libearly: ", 10);
    write(2, what, strlen(what));
    write(2, "\n", 1);
}

static int all_bytes_are(const unsigned char *p, size_t n, unsigned char value)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != value)
            return 0;
    return 1;
}

/* Allocates, checks and frees with every entry point. */
static void allocate_and_free(void)
{
    for (size_t n = 1; n <= 300000; n = n * 5 + 3) {
        unsigned char *p = malloc(n);
        if (!p) {
            fail("malloc returned NULL");
            return;
        }
        memset(p, 0x5e, n);
        unsigned char *z = calloc(n, 1);
        if (!z || !all_bytes_are(z, n, 0))
            fail("calloc did not return zeroed memory");
        p = realloc(p, 2 * n);
        if (!p || !all_bytes_are(p, n, 0x5e))
            fail("realloc lost the contents");
        void *aligned = NULL;
        if (posix_memalign(&aligned, 256, n) != 0 || (size_t)aligned % 256)
            fail("posix_memalign failed");
        char *copy = strdup("libearly");
        if (!copy || strcmp(copy, "libearly") != 0)
            fail("strdup failed");
        free(p);
        free(z);
        free(aligned);
        free(copy);
    }
}

static void run_exit_hook(void *value)
{
    struct early_exit_hook *hook = value;
    hook->run(hook);
}

__attribute__((constructor)) static void early_start(void)
{
    early_state.constructor_ran = 1;
    /* First of all, so that the key comes before framealloc's when this
     * constructor runs first. */
    early_state.key_created = pthread_key_create(&early_state.key, run_exit_hook) == 0;
    allocate_and_free();
    FA_FRAME_SCOPE {
        allocate_and_free();
        early_state.frame_block = malloc(EARLY_FRAME_BLOCK_SIZE);
    }
    early_state.heap_block = malloc(EARLY_HEAP_BLOCK_SIZE);
    if (!early_state.frame_block || !early_state.heap_block) {
        fail("could not allocate the blocks left for the program");
        return;
    }
    memset(early_state.frame_block, EARLY_FRAME_BYTE, EARLY_FRAME_BLOCK_SIZE);
    memset(early_state.heap_block, EARLY_HEAP_BYTE, EARLY_HEAP_BLOCK_SIZE);
}

/* The plugin dlopen.c loads and unloads: it allocates in its constructor, in its
 * function and frees in its destructor. */
#include <stdlib.h>
#include <string.h>

static void *kept;

__attribute__((constructor)) static void plugin_init(void) { kept = malloc(100); }

__attribute__((destructor)) static void plugin_fini(void) { free(kept); }

void *plugin_work(int n)
{
    for (int i = 0; i < 20; i++) {
        char *p = malloc(16 + (size_t)(n + i) % 300);
        p[0] = (char)i;
        free(p);
    }
    char *block = malloc(48); /* @site:plugin */
    memset(block, n, 48);
    return block;
}

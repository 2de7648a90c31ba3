/* A library learn_program loads with dlopen after start (learn_program plugin):
 * one call site whose blocks die within their frame, in a module that was not
 * loaded when a learned profile was read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static volatile unsigned calls;

/* The call site (not inlined, not a tail call: learning keys on its return address). */
__attribute__((noinline)) static void *plugin_temp_alloc(size_t n)
{
    calls++;
    void *p = malloc(n);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}

/* One frame's work: count temporary blocks, made and freed within the call. */
void plugin_frame(unsigned count)
{
    void *blocks[256];
    if (count > 256)
        count = 256;
    for (unsigned i = 0; i < count; i++) {
        blocks[i] = plugin_temp_alloc(24 + (size_t)(i % 4) * 16);
        memset(blocks[i], (int)i, 24);
    }
    for (unsigned i = 0; i < count; i++)
        free(blocks[i]);
}

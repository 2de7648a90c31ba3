/* A report written after a library was loaded must symbolize that library too.
 * The first fa_report opens the symbolizer; then a plugin is loaded and leaks a
 * block; the second report must name plugin_work with its file:line.
 * Usage: late PLUGIN DIR1 DIR2 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <framealloc.h>

static void *leaked;

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: late PLUGIN DIR1 DIR2\n");
        return 2;
    }
    if (fa_report(argv[2]) != 0)
        return 1;
    void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    void *(*work)(int) = plugin ? (void *(*)(int))dlsym(plugin, "plugin_work") : NULL;
    if (!work) {
        fprintf(stderr, "late: %s\n", dlerror());
        return 1;
    }
    leaked = work(1); /* still allocated at the second report */
    return fa_report(argv[3]) != 0;
}

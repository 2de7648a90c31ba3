/* Shared by the autoframe test programs: whether a library is mapped in this
 * process (which of framealloc, the probe or the audit module the run loaded). */
#ifndef AF_TEST_LOADED_H
#define AF_TEST_LOADED_H

#include <stdio.h>
#include <string.h>

static int loaded(const char *name)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (maps && fgets(line, sizeof line, maps))
        found |= strstr(line, name) != NULL;
    if (maps)
        fclose(maps);
    return found;
}

#endif

/* Linked against libframealloc.so (not preloaded: the loader ignores LD_PRELOAD
 * paths in setuid programs). Runs a few frames and asks for a report, so that the
 * FRAMEALLOC_FRAMELOG and FRAMEALLOC_REPORT settings would write their files if
 * they were honoured; prints whether framealloc is active. */
#include <stdio.h>
#include <stdlib.h>

#include "framealloc.h"

int main(void)
{
    for (int frame = 0; frame < 3; frame++) {
        FA_FRAME_SCOPE {
            free(malloc(100));
        }
        fa_frame_end();
    }
    fa_report(NULL);
    printf("framealloc active %d\n", fa_active());
    return 0;
}

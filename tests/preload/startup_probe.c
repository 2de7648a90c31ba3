/* Started by startup_settings.c under the preload with chosen FRAMEALLOC_*
 * settings. Prints one line on stdout: whether the library is active, and whether
 * a freed frame block is reused after one frame end (it is when
 * FRAMEALLOC_FRAMES_IN_FLIGHT is 1, the default; with 2 it is not yet). */
#include <stdio.h>
#include <stdlib.h>

#include "framealloc.h"

int main(void)
{
    void *first, *second;
    FA_FRAME_SCOPE {
        first = malloc(64);
        free(first);
    }
    fa_frame_end();
    FA_FRAME_SCOPE {
        second = malloc(64);
        free(second);
    }
    printf("ran active=%d reused=%d\n", fa_active(), first == second);
    return 0;
}

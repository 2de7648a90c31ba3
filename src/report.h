/* The records report: summary.txt, report.json and folded stacks. Written on
 * demand (fa_report), after the report signal (at the next frame end) and at exit. */
#ifndef FA_REPORT_H
#define FA_REPORT_H

#include "config.h"

/* Writes the records report into dir (FRAMEALLOC_REPORT when dir is NULL); 0 on
 * success (public API). */
FA_API int fa_report(const char *dir);

/* Reads FRAMEALLOC_REPORT and FRAMEALLOC_REPORT_SIGNAL; installs the signal handler. */
void fa_report_start(void);
/* Writes the report if the report signal arrived since the last call. */
void fa_report_if_requested(void);
/* At exit, when records are on: the report into FRAMEALLOC_REPORT, or a short
 * summary on stderr when no directory is set. */
void fa_report_at_exit(void);

#endif

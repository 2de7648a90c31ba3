/* The three libm names the backing heap (jemalloc) calls, defined here with
 * math_lite.h and hidden, so that libframealloc.so does not
 * link libm: in a process that never loads it, libm's pages would be resident for
 * nothing (about 0.3 MiB). */
#include "math_lite.h"

__attribute__((visibility("hidden"))) double exp(double x) { return fa_math_exp(x); }
__attribute__((visibility("hidden"))) double log(double x) { return fa_math_log(x); }
__attribute__((visibility("hidden"))) double round(double x) { return fa_math_round(x); }

/* The libm functions the library's code calls (exp and log: records' sampling and
 * the embedded jemalloc's profiling; round: jemalloc's profile dumps; sqrt: the
 * learned intent's confidence bound),
 * so that libframealloc.so does not link libm: a library in every process's symbol
 * search costs resident pages even when nothing calls it. */
#ifndef FA_MATH_LITE_H
#define FA_MATH_LITE_H

/* Within 2 ulp of the exact result over the whole range, with IEEE special values
 * (exp: +inf above 709.78, 0 below -745.13; log: -inf at 0, NaN below 0). errno is
 * left alone. */
double fa_math_exp(double x);
double fa_math_log(double x);
/* Halfway cases away from zero, as C's round. */
double fa_math_round(double x);
/* The correctly rounded square root (NaN below 0; errno left alone). */
double fa_math_sqrt(double x);

#endif

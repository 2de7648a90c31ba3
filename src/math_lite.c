/* exp and log (math_lite.h): range reduction to a small interval, a series there,
 * and the power of two put back through the exponent bits. */
#include "math_lite.h"

#include <stdint.h>
#include <string.h>

/* ln 2 in two parts: the high part has 32 significant bits, so k * LN2_HI is exact
 * for every |k| < 2^21 (Cody and Waite's reduction). */
static const double LN2_HI = 6.93147180369123816490e-01;
static const double LN2_LO = 1.90821492927058770002e-10;
static const double INV_LN2 = 1.44269504088896338700e+00;

static double from_bits(uint64_t bits)
{
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static uint64_t to_bits(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

/* x * 2^k for k in [-1074 - 53, 1024], in at most two exact steps. */
static double scale(double x, int k)
{
    if (k > 1023) {
        x *= from_bits((uint64_t)(1023 + 1023) << 52);
        k -= 1023;
    } else if (k < -1022) {
        x *= from_bits((uint64_t)(1023 - 1022) << 52);
        k += 1022;
        if (k < -1022) {
            x *= from_bits((uint64_t)(1023 - 1022) << 52);
            k += 1022;
        }
    }
    return x * from_bits((uint64_t)(k + 1023) << 52);
}

double fa_math_exp(double x)
{
    if (x != x)
        return x + x;
    if (x > 709.782712893383973096)
        return from_bits(0x7ff0000000000000ULL); /* +inf */
    if (x < -745.133219101941108420)
        return 0.0;
    /* x = k ln2 + r, |r| <= ln2 / 2 (plus rounding). */
    double kd = x * INV_LN2;
    int k = (int)(kd < 0 ? kd - 0.5 : kd + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    /* e^r by its Taylor series to r^13 / 13!: the next term is below 2^-60 of 1. */
    double sum = 1.0 / 6227020800.0;
    static const double inverse_factorial[] = {
        1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0,
        1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,      1.0 / 6.0,      1.0 / 2.0,     1.0,
    };
    for (unsigned i = 0; i < sizeof inverse_factorial / sizeof inverse_factorial[0]; i++)
        sum = sum * r + inverse_factorial[i];
    return scale(1.0 + sum * r, k);
}

double fa_math_log(double x)
{
    uint64_t bits = to_bits(x);
    if (x != x || x == from_bits(0x7ff0000000000000ULL))
        return x + x;
    if (x == 0.0)
        return -from_bits(0x7ff0000000000000ULL); /* -inf */
    if (bits >> 63)
        return from_bits(0x7ff8000000000000ULL); /* NaN: below zero */
    int e = 0;
    if (bits >> 52 == 0) { /* subnormal: bring it into the normal range first */
        x *= from_bits((uint64_t)(1023 + 54) << 52);
        bits = to_bits(x);
        e = -54;
    }
    /* x = m 2^e with m in [sqrt(1/2), sqrt(2)). */
    e += (int)(bits >> 52) - 1023;
    double m = from_bits((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    if (m > 1.41421356237309504880) {
        m *= 0.5;
        e++;
    }
    /* log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1),
     * |s| < 0.172: terms to s^25 leave less than 2^-60. With f = m - 1 (exact),
     * 2s = f - f^2/2 (1 - s), so log m = f - (f^2/2 - s (f^2/2 + R)) with
     * R = 2 (s^2/3 + s^4/5 + ...): the large part f is exact, the rest small. */
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double s2 = s * s;
    double tail = 1.0 / 25.0;
    for (int n = 23; n >= 3; n -= 2)
        tail = tail * s2 + 1.0 / n;
    double r = 2.0 * s2 * tail;
    double half_f2 = 0.5 * f * f;
    double log_m = f - (half_f2 - s * (half_f2 + r));
    return e * LN2_HI + (log_m + e * LN2_LO);
}

double fa_math_round(double x)
{
    uint64_t bits = to_bits(x);
    if (((bits >> 52) & 0x7ff) >= 1023 + 52) /* integral already, inf or NaN */
        return x;
    double magnitude = from_bits(bits & ~(1ULL << 63));
    double whole = (double)(int64_t)magnitude;
    if (magnitude - whole >= 0.5)
        whole += 1.0;
    return from_bits(to_bits(whole) | (bits & (1ULL << 63))); /* round(-0.3) is -0 */
}

/* The x86-64 square-root instruction (correctly rounded by IEEE 754). */
double fa_math_sqrt(double x)
{
    __asm__("sqrtsd %1, %0" : "=x"(x) : "x"(x));
    return x;
}

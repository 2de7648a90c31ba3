/* math_lite.c against libm: exp and log within 2 ulp over the whole range, round
 * exactly, and the special values. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math_lite.h"

/* Distance in units in the last place between two finite doubles of one sign. */
static uint64_t ulps(double a, double b)
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    if (ia < 0)
        ia = INT64_MIN - ia;
    if (ib < 0)
        ib = INT64_MIN - ib;
    return ia > ib ? (uint64_t)(ia - ib) : (uint64_t)(ib - ia);
}

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static double uniform(double lo, double hi)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (double)(state >> 11) / 9007199254740992.0;
}

START_TEST(exp_matches_libm)
{
    const double ranges[][2] = {{-1, 1}, {-1e-8, 1e-8}, {-40, 40}, {-708, 709.78}, {-745.13, -708}};
    for (unsigned r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        for (int i = 0; i < 50000; i++) {
            double x = uniform(ranges[r][0], ranges[r][1]);
            double want = exp(x), got = fa_math_exp(x);
            /* Subnormal results have fewer bits: compare them absolutely. */
            if (want < 2.2250738585072014e-308)
                ck_assert_msg(fabs(got - want) <= 2 * 4.9406564584124654e-324, "exp(%a) = %a, libm %a", x, got, want);
            else
                ck_assert_msg(ulps(got, want) <= 2, "exp(%a) = %a, libm %a", x, got, want);
        }
    }
    ck_assert(fa_math_exp(0.0) == 1.0);
    ck_assert(isinf(fa_math_exp(710.0)) && fa_math_exp(710.0) > 0);
    ck_assert(isinf(fa_math_exp(INFINITY)));
    ck_assert(fa_math_exp(-746.0) == 0.0);
    ck_assert(fa_math_exp(-INFINITY) == 0.0);
    ck_assert(isnan(fa_math_exp(NAN)));
}
END_TEST

START_TEST(log_matches_libm)
{
    for (int i = 0; i < 100000; i++) {
        /* Every binade, and values near 1 where the result is small. */
        double x = i % 2 ? ldexp(uniform(1, 2), (int)uniform(-1074, 1024)) : uniform(0.5, 2);
        if (x == 0 || isinf(x))
            continue;
        double want = log(x), got = fa_math_log(x);
        ck_assert_msg(ulps(got, want) <= 2, "log(%a) = %a, libm %a", x, got, want);
    }
    ck_assert(fa_math_log(1.0) == 0.0);
    ck_assert(isinf(fa_math_log(0.0)) && fa_math_log(0.0) < 0);
    ck_assert(isinf(fa_math_log(INFINITY)) && fa_math_log(INFINITY) > 0);
    ck_assert(isnan(fa_math_log(-1.0)));
    ck_assert(isnan(fa_math_log(NAN)));
    ck_assert_msg(ulps(fa_math_log(4.9406564584124654e-324), log(4.9406564584124654e-324)) <= 2, "smallest subnormal");
    ck_assert_msg(ulps(fa_math_log(1.7976931348623157e308), log(1.7976931348623157e308)) <= 2, "largest double");
}
END_TEST

START_TEST(round_matches_libm)
{
    const double edges[] = {0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994,
                            4503599627370495.5, 4503599627370497.0, 1e300, -1e300, INFINITY, -INFINITY};
    for (unsigned i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        double got = fa_math_round(edges[i]), want = round(edges[i]);
        ck_assert_msg(memcmp(&got, &want, sizeof got) == 0, "round(%a) = %a, libm %a", edges[i], got, want);
    }
    ck_assert(isnan(fa_math_round(NAN)));
    for (int i = 0; i < 50000; i++) {
        double x = uniform(-1e6, 1e6);
        ck_assert_msg(fa_math_round(x) == round(x), "round(%a)", x);
    }
}
END_TEST

Suite *fa_test_suite(void)
{
    Suite *s = suite_create("math_lite");
    TCase *tc = tcase_create("against libm");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exp_matches_libm);
    tcase_add_test(tc, log_matches_libm);
    tcase_add_test(tc, round_matches_libm);
    suite_add_tcase(s, tc);
    return s;
}

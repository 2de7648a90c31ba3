"""Frame-time statistics for framealloc-compare: percentiles, hitches, ratios.

Percentiles use the nearest-rank definition: with the n frame times sorted
ascending, pN is the ceil(N/100 * n)-th smallest (1-based), so it is always a
frame time that really occurred; p0 is the smallest. A hitch is a frame longer
than twice the median (p50) of the same set of frames.
"""

import csv
import math

PERCENTILE_DEFINITION = (
    "percentiles are nearest-rank over all frames of all rounds: pN is the "
    "ceil(N/100 * n)-th smallest of n frame times; a hitch is a frame over 2x "
    "that allocator's p50")

HITCH_FACTOR = 2.0


def percentile(sorted_values, p):
    """Nearest-rank percentile p (0..100) of an ascending list."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError("percentile outside 0..100: %r" % p)
    # Round first so that binary fractions (99.9 / 100 * 1000 = 999.0000000000001)
    # do not push the rank up by one.
    rank = math.ceil(round(p / 100.0 * len(sorted_values), 9))
    return sorted_values[max(rank, 1) - 1]


def hitches(values, median, factor=HITCH_FACTOR):
    """Frames longer than factor x median."""
    return sum(1 for v in values if v > factor * median)


def summarize(frame_times):
    """Summary of one set of frame times (ms): count, mean, percentiles, max, hitches."""
    values = sorted(frame_times)
    if not values:
        raise ValueError("no frame times")
    p50 = percentile(values, 50)
    return {
        "frames": len(values),
        "mean": sum(values) / len(values),
        "p50": p50,
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "p99.9": percentile(values, 99.9),
        "max": values[-1],
        "hitches": hitches(values, p50),
    }


def median(values):
    """Median of a non-empty list (mean of the middle two for an even count)."""
    s = sorted(values)
    if not s:
        raise ValueError("median of no values")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def ratio(value, base):
    """value / base, or None when there is no meaningful base."""
    if base is None or value is None or base == 0:
        return None
    return value / base


def format_ratio(r):
    return "-" if r is None else "%.2fx" % r


def read_framelog(path):
    """Frame times (ms) from a frame log; rows without a frame time are skipped."""
    times = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            text = (row.get("frametime") or "").strip()
            if text:
                times.append(float(text))
    return times


def distribution_points(sorted_values, max_points=2000):
    """(percentile, value) pairs along the ascending values, for a chart: the i-th
    smallest of n sits at percentile 100 * (i + 0.5) / n (the middle of its share,
    so the largest is below 100 and a log scale of 1 / (1 - p) can show it).
    Thinned to about max_points, but the last 1% is kept in full."""
    n = len(sorted_values)
    if n == 0:
        return []
    tail_start = max(0, n - max(1, n // 100) - 1)
    step = max(1, tail_start // max_points)
    idx = list(range(0, tail_start, step)) + list(range(tail_start, n))
    return [(100.0 * (i + 0.5) / n, sorted_values[i]) for i in idx]

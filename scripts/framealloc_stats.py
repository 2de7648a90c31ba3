"""Frame-time statistics for framealloc-compare: percentiles, FPS, hitches, ratios,
and the frame log reader.

Percentiles use the nearest-rank definition: with the n frame times sorted
ascending, pN is the ceil(N/100 * n)-th smallest (1-based), so it is always a
frame time that really occurred; p0 is the smallest. A hitch is a frame longer
than twice the median (p50) of the same set of frames.

Gamers' figures, as MangoHud and CapFrameX report them: average FPS is frames
divided by their total time (1000 / mean frame time in ms); the 1 % low is the
average of the slowest 1 % of frames (the ceil(n / 100) longest frame times),
expressed as FPS (1000 / their mean in ms); the 0.1 % low likewise with the
slowest 0.1 %.
"""

import csv
import math

from framealloc_tools import median, ratio  # noqa: F401 (part of this module's interface)

PERCENTILE_DEFINITION = (
    "percentiles are nearest-rank over all frames of all rounds: pN is the "
    "ceil(N/100 * n)-th smallest of n frame times; a hitch is a frame over 2x "
    "that allocator's p50")

FPS_DEFINITION = (
    "average FPS is frames / their total time; the 1% and 0.1% lows are the average of the "
    "slowest 1% and 0.1% of frames (at least one frame), expressed as FPS, as MangoHud and "
    "CapFrameX report them")

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


def low_fps(sorted_values, share):
    """The average of the slowest `share` (0.01 for 1 %) of frames, as FPS: 1000 / the
    mean of the ceil(share * n) longest frame times (ms). None when that mean is 0."""
    if not sorted_values:
        raise ValueError("lows of no values")
    count = max(1, math.ceil(round(share * len(sorted_values), 9)))
    slowest = sorted_values[-count:]
    mean = sum(slowest) / len(slowest)
    return 1000.0 / mean if mean > 0 else None


def summarize(frame_times):
    """Summary of one set of frame times (ms): count, FPS and lows, mean, percentiles,
    max, hitches."""
    values = sorted(frame_times)
    if not values:
        raise ValueError("no frame times")
    p50 = percentile(values, 50)
    mean = sum(values) / len(values)
    return {
        "frames": len(values),
        "fps": 1000.0 / mean if mean > 0 else None,
        "low1": low_fps(values, 0.01),
        "low01": low_fps(values, 0.001),
        "mean": mean,
        "p50": p50,
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "p99.9": percentile(values, 99.9),
        "max": values[-1],
        "hitches": hitches(values, p50),
    }


def format_ratio(r):
    """A ratio with at least two significant digits: 1.23x, 0.050x, 0.0012x."""
    if r is None:
        return "-"
    if r == 0:
        return "0x"
    decimals = max(2, 1 - math.floor(math.log10(abs(r))))
    return "%.*fx" % (decimals, r)


def read_framelog_table(path):
    """(column names, rows as dicts) of a frame log in MangoHud's format, read the way
    MangoHud's own reader (mangoplot) does: the column names are the first of the
    first five lines that has a column named "fps"; the lines above it (MangoHud's
    system information) are skipped. Raises ValueError for a file that has none."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    for i, names in enumerate(lines[:5]):
        if "fps" in names:
            return names, [dict(zip(names, row)) for row in lines[i + 1:] if row]
    raise ValueError("%s: not a frame log (no fps column in its first five lines)" % path)


def read_framelog(path):
    """Frame times in ms from a frame log (MangoHud's frametime column is in
    microseconds); rows without a frame time are skipped."""
    _, rows = read_framelog_table(path)
    times = []
    for row in rows:
        text = (row.get("frametime") or "").strip()
        if text:
            times.append(float(text) / 1000.0)
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

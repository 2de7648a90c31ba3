#!/usr/bin/env python3
"""Smoke test of scripts/bench (meson suite 'bench-smoke'): one quick round of three
workloads (one of them a whole-program case) into a temporary directory; checks that
the table, the CSV and the chart are written, that the table has a row per workload and
a peak RSS row for the whole-program case. Never looks at timings.

usage: smoke_test.py SCRIPTS_BENCH BUILD_DIR"""
import csv
import os
import shutil
import subprocess
import sys
import tempfile

WORKLOADS = ["small", "w4-100", "tiny"]


def fail(msg):
    print("bench smoke: FAIL: " + msg)
    sys.exit(1)


def main():
    script, build_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as out:
        cmd = [script, "--quick", "--rounds", "1", "--workloads", ",".join(WORKLOADS), "--out", out,
               "--build-dir", build_dir, "--no-build", "--no-install"]
        print("bench smoke: " + " ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        print(r.stdout[-4000:])
        if r.returncode != 0:
            fail("scripts/bench exited with %d\n%s" % (r.returncode, r.stderr[-4000:]))
        md_path = os.path.join(out, "results.md")
        csv_path = os.path.join(out, "samples.csv")
        for path in (md_path, csv_path):
            if not os.path.exists(path) or os.path.getsize(path) == 0:
                fail(path + " missing or empty")
        if shutil.which("gnuplot"):
            png = os.path.join(out, "ratio.png")
            if not os.path.exists(png) or os.path.getsize(png) == 0:
                fail("ratio.png missing or empty")
        else:
            print("bench smoke: gnuplot not installed, chart not checked")
        with open(md_path) as f:
            rows = [line for line in f if line.startswith("| ")]
        for w in WORKLOADS:
            if not any(line.startswith("| %s |" % w) for line in rows):
                fail("no table row for " + w)
        # A whole-program case also reports the measured process's peak RSS.
        if not any(line.startswith("| tiny peak rss | MiB |") for line in rows):
            fail("no peak RSS row for tiny")
        with open(csv_path) as f:
            seen = {row["workload"] for row in csv.DictReader(f)}
        if seen != set(WORKLOADS):
            fail("CSV has workloads %s, expected %s" % (sorted(seen), WORKLOADS))
    print("bench smoke: ok")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tests of the frame log, the probe, the demo game and framealloc-compare, on the
built tree (meson suite 'compare'). Paths come from the environment meson sets:
FA_TEST_LIB, FA_TEST_PROBE, FA_TEST_GAME, FA_TEST_BUILD."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
LIB = os.environ.get("FA_TEST_LIB", "")
PROBE = os.environ.get("FA_TEST_PROBE", "")
GAME = os.environ.get("FA_TEST_GAME", "")
BUILD = os.environ.get("FA_TEST_BUILD", "")

HEADER = ["frame", "fps", "frametime", "frame_allocs", "frame_bytes", "frame_escapes", "frame_chunks",
          "heap_live_kib", "process_rss_kib", "elapsed"]


def run_game(preload, framelog=None, frames=60, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_") and k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    if framelog:
        env["FRAMEALLOC_FRAMELOG"] = framelog
    env.update(extra_env or {})
    r = subprocess.run([GAME, "--frames", str(frames)], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("demo-game failed (%d): %s" % (r.returncode, r.stderr))
    return r.stdout


def checksum(stdout):
    return [l for l in stdout.splitlines() if l.startswith("checksum:")]


def read_log(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


class Base(unittest.TestCase):
    def setUp(self):
        for what, path in (("FA_TEST_LIB", LIB), ("FA_TEST_PROBE", PROBE), ("FA_TEST_GAME", GAME)):
            if not path or not os.path.exists(path):
                self.fail("%s not set or missing: %r" % (what, path))
        self.tmp = tempfile.mkdtemp(prefix="fa-compare-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class FrameLog(Base):
    def check_rows(self, rows, frames, counters):
        self.assertEqual(len(rows), frames)
        elapsed = -1
        for i, row in enumerate(rows, 1):
            self.assertEqual(len(row), len(HEADER), row)
            values = dict(zip(HEADER, row))
            self.assertEqual(int(values["frame"]), i)
            # The demo game calls fa_frame_begin, so every frame has a time.
            ms, fps = float(values["frametime"]), float(values["fps"])
            self.assertGreater(ms, 0)
            self.assertAlmostEqual(fps, 1000.0 / ms, delta=max(0.02, fps * 0.001))
            self.assertGreater(int(values["process_rss_kib"]), 1000)
            self.assertGreater(int(values["elapsed"]), elapsed)
            elapsed = int(values["elapsed"])
            for k in ("frame_allocs", "frame_bytes", "frame_escapes", "frame_chunks", "heap_live_kib"):
                if counters:
                    self.assertGreaterEqual(int(values[k]), 0)
                else:
                    self.assertEqual(values[k], "", k)
            if counters:
                self.assertGreater(int(values["frame_allocs"]), 100)  # the game's temporaries
                self.assertEqual(int(values["frame_escapes"]), 0)     # and none of them escapes
                self.assertGreater(int(values["frame_chunks"]), 0)

    def test_framealloc_writes_one_row_per_frame(self):
        log = os.path.join(self.tmp, "fa.csv")
        run_game(LIB, log, frames=60)
        header, rows = read_log(log)
        self.assertEqual(header, HEADER)
        self.check_rows(rows, 60, counters=True)

    def test_probe_writes_the_same_log_without_counters(self):
        log = os.path.join(self.tmp, "probe.csv")
        run_game(PROBE, log, frames=60)
        header, rows = read_log(log)
        self.assertEqual(header, HEADER)
        self.check_rows(rows, 60, counters=False)

    def test_appending_keeps_one_header(self):
        log = os.path.join(self.tmp, "twice.csv")
        run_game(PROBE, log, frames=20)
        run_game(PROBE, log, frames=30)
        header, rows = read_log(log)
        self.assertEqual(header, HEADER)
        self.assertEqual(len(rows), 50)
        self.assertEqual([int(r[0]) for r in rows[19:22]], [20, 1, 2])

    def test_unwritable_path_is_reported_not_fatal(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_")}
        env.update(LD_PRELOAD=LIB, FRAMEALLOC_FRAMELOG=os.path.join(self.tmp, "no", "such", "dir.csv"))
        r = subprocess.run([GAME, "--frames", "5"], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0)
        self.assertIn("FRAMEALLOC_FRAMELOG: cannot open", r.stderr)

    def test_probe_exports_only_the_api_table(self):
        nm = shutil.which("nm")
        if not nm:
            self.skipTest("nm not installed")
        out = subprocess.run([nm, "-D", "--defined-only", PROBE], capture_output=True, text=True, check=True).stdout
        symbols = sorted(line.split()[-1] for line in out.splitlines() if line.strip())
        self.assertEqual(symbols, ["fa_api_v1"])


class DemoGame(Base):
    def test_checksum_is_the_same_with_and_without_the_library(self):
        plain = checksum(run_game(None, frames=320))
        self.assertEqual(len(plain), 1, plain)
        self.assertEqual(checksum(run_game(LIB, frames=320)), plain)
        self.assertEqual(checksum(run_game(LIB, frames=320, extra_env={"FRAMEALLOC_FRAME_MODE": "strict"})), plain)
        self.assertEqual(checksum(run_game(PROBE, frames=320)), plain)

    def test_seed_changes_the_game(self):
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        a = subprocess.run([GAME, "--frames", "30", "--seed", "2"], env=env, capture_output=True, text=True)
        self.assertNotEqual(checksum(a.stdout), checksum(run_game(None, frames=30)))
        self.assertIn("frames: 30", a.stdout)


class Compare(Base):
    def compare(self, *args):
        cmd = [sys.executable, os.path.join(SCRIPT_DIR, "framealloc-compare"), "--build", BUILD,
               "--out", os.path.join(self.tmp, "out"), "--no-install"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    def test_end_to_end_on_the_demo_game(self):
        r = self.compare("--rounds", "1", "--allocators", "glibc,framealloc", "--", GAME, "--frames", "300")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        header = next(l for l in lines if l.startswith("allocator"))
        self.assertEqual(header.split(), ["allocator", "frames", "mean", "p50", "p95", "p99", "p99.9", "max",
                                          "hitches", "peak", "RSS", "wall", "cpu"])
        glibc = next(l for l in lines if l.startswith("glibc ")).split()
        fa = next(l for l in lines if l.startswith("framealloc ")).split()
        ratio = next(l for l in lines if l.strip().startswith("x glibc")).split()
        self.assertEqual(len(glibc), 12)
        self.assertEqual(len(fa), 12)
        self.assertEqual(glibc[1], "300")
        self.assertEqual(fa[1], "300")
        self.assertEqual(len(ratio), 2 + 10)  # "x glibc" and the ten ratios
        self.assertTrue(all(v.endswith("x") for v in ratio[2:]), ratio)
        self.assertIn("nearest-rank", r.stdout)
        self.assertIn("output check: identical in all 2 runs", r.stdout)
        self.assertIn("[1/2] round 1", r.stderr)  # progress
        out = os.path.join(self.tmp, "out")
        for name in ("glibc-r1.csv", "framealloc-r1.csv", "glibc-r1.stdout"):
            self.assertTrue(os.path.exists(os.path.join(out, "raw", name)), name)
        self.assertTrue(os.path.exists(os.path.join(out, "summary.csv")))
        if shutil.which("gnuplot"):
            with open(os.path.join(out, "frametimes.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertIn("chart: " + os.path.join(out, "frametimes.png"), r.stdout)

    def test_mismatched_output_fails_loudly(self):
        # The shell's pid differs in every run; no frame markers, so no frame times.
        r = self.compare("--rounds", "2", "--allocators", "glibc", "--", "sh", "-c", "echo checksum: $$")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("CHECKSUM MISMATCH", r.stdout)
        header = next(l for l in r.stdout.splitlines() if l.startswith("allocator"))
        self.assertEqual(header.split(), ["allocator", "peak", "RSS", "wall", "cpu"])  # no frame log: no frame columns
        self.assertEqual(len(next(l for l in r.stdout.splitlines() if l.startswith("glibc ")).split()), 4)

    def test_a_library_the_loader_rejects_fails_the_run(self):
        fake = os.path.join(self.tmp, "fakebuild")
        os.makedirs(fake)
        open(os.path.join(fake, "libframealloc.so"), "w").close()  # "file too short"
        cmd = [sys.executable, os.path.join(SCRIPT_DIR, "framealloc-compare"), "--build", fake,
               "--out", os.path.join(self.tmp, "out"), "--no-install", "--rounds", "1",
               "--allocators", "framealloc", "--", GAME, "--frames", "5"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("could not preload", r.stdout)

    def test_unknown_allocator_is_a_usage_error(self):
        r = self.compare("--allocators", "glibc,nosuch", "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown allocator", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Tests of the frame log, the probe, the demo game and framealloc-compare, on the
built tree (meson suite 'compare'). Paths come from the environment meson sets:
FA_TEST_LIB, FA_TEST_PROBE, FA_TEST_GAME, FA_TEST_BUILD."""

import contextlib
import csv
import json
import importlib.machinery
import importlib.util
import io
import os
import re
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

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, SCRIPT_DIR)
import framealloc_stats as fs  # noqa: E402

# MangoHud 0.6.8's log (Debian 12's mangohud package, src/logging.cpp): a system
# line, its values, then these columns; frametime in microseconds, elapsed in ns.
MANGOHUD_SYSTEM = ["os", "cpu", "gpu", "ram", "kernel", "driver", "cpuscheduler"]
MANGOHUD_COLUMNS = ["fps", "frametime", "cpu_load", "gpu_load", "cpu_temp", "gpu_temp", "gpu_core_clock",
                    "gpu_mem_clock", "gpu_vram_used", "gpu_power", "ram_used", "elapsed"]
OUR_COLUMNS = ["frame", "frame_allocs", "frame_bytes", "frame_escapes", "frame_chunks", "heap_live_kib",
               "process_rss_kib"]
HEADER = MANGOHUD_COLUMNS + OUR_COLUMNS
MEASURE = os.path.join(BUILD, "scripts", "framealloc-measure")


def mangoplot_columns(path):
    """MangoHud's own reader (bin/mangoplot.py, BenchmarkFile, in the MangoHud releases
    after 0.6.8; Debian 12 ships none): the column names are the first of the first
    five rows that contains "fps", names must be unique, and every later row is data.
    Returns {column: [values]}; raises AssertionError where mangoplot would refuse."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=","))
    for number, names in enumerate(rows[:5]):
        if "fps" in names:
            break
    else:
        raise AssertionError("not a benchmark file: no fps column in the first five rows")
    if len(set(names)) != len(names):
        raise AssertionError("two columns have the same name")
    columns = {name: [] for name in names}
    for row in rows[number + 1:]:
        for name, value in zip(names, row):
            columns[name].append(value)
    return columns


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
        for i, values in enumerate(rows, 1):
            self.assertEqual(len(values), len(HEADER), values)
            self.assertEqual(int(values["frame"]), i)
            # The demo game calls fa_frame_begin, so every frame has a time, in µs.
            us, fps = float(values["frametime"]), float(values["fps"])
            self.assertGreater(us, 0)
            self.assertAlmostEqual(fps, 1e6 / us, delta=max(0.02, fps * 0.001))
            for k in MANGOHUD_COLUMNS[2:11]:
                self.assertEqual(values[k], "0", k)  # sensors MangoHud reads and we do not
            self.assertGreater(int(values["process_rss_kib"]), 1000)
            self.assertGreater(int(values["elapsed"]), elapsed)
            self.assertGreaterEqual(int(values["elapsed"]), int(us * 1000) - 1000)
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

    def check_header_block(self, path):
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
        self.assertEqual(lines[0], MANGOHUD_SYSTEM)
        self.assertEqual(len(lines[1]), len(MANGOHUD_SYSTEM), lines[1])
        self.assertEqual(lines[1][4], os.uname().release)  # kernel
        self.assertTrue(lines[1][3].isdigit(), lines[1])    # MemTotal in kB, as MangoHud writes it
        self.assertEqual(lines[2], HEADER)

    def test_framealloc_writes_one_row_per_frame(self):
        log = os.path.join(self.tmp, "fa.csv")
        run_game(LIB, log, frames=60)
        self.check_header_block(log)
        header, rows = fs.read_framelog_table(log)
        self.assertEqual(header, HEADER)
        self.check_rows(rows, 60, counters=True)

    def test_probe_writes_the_same_log_without_counters(self):
        log = os.path.join(self.tmp, "probe.csv")
        run_game(PROBE, log, frames=60)
        self.check_header_block(log)
        header, rows = fs.read_framelog_table(log)
        self.assertEqual(header, HEADER)
        self.check_rows(rows, 60, counters=False)

    def test_mangohuds_reader_reads_it(self):
        log = os.path.join(self.tmp, "mango.csv")
        run_game(LIB, log, frames=40)
        columns = mangoplot_columns(log)
        self.assertEqual(list(columns)[:len(MANGOHUD_COLUMNS)], MANGOHUD_COLUMNS)
        self.assertEqual(len(columns["fps"]), 40)
        for name in MANGOHUD_COLUMNS:  # mangoplot casts with float()
            self.assertTrue(all(float(v) >= 0 for v in columns[name]), name)
        fps = [float(v) for v in columns["fps"]]
        frametime_us = [float(v) for v in columns["frametime"]]
        for f, t in zip(fps, frametime_us):
            self.assertAlmostEqual(f, 1e6 / t, delta=max(0.02, f * 0.001))
        # The compare tool reads the same file in ms.
        self.assertEqual([round(t / 1000, 6) for t in frametime_us],
                         [round(t, 6) for t in fs.read_framelog(log)])

    def test_a_second_run_replaces_the_file(self):
        log = os.path.join(self.tmp, "twice.csv")
        run_game(PROBE, log, frames=20)
        run_game(PROBE, log, frames=30)
        header, rows = fs.read_framelog_table(log)
        self.assertEqual(len(rows), 30)
        self.assertEqual([int(r["frame"]) for r in rows[:2]], [1, 2])

    def test_a_directory_gets_one_file_per_run_named_after_the_program(self):
        logs = os.path.join(self.tmp, "logs")
        os.makedirs(logs)
        run_game(LIB, logs, frames=10)
        run_game(PROBE, logs, frames=12)
        run_game(LIB, os.path.join(self.tmp, "new") + "/", frames=5)  # "dir/" is created
        names = sorted(os.listdir(logs))
        self.assertEqual(len(names), 2, names)
        stamp = r"demo-game_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_\d+)?\.csv"
        for name in names:
            self.assertRegex(name, "^" + stamp + "$")
        counts = sorted(len(fs.read_framelog_table(os.path.join(logs, n))[1]) for n in names)
        self.assertEqual(counts, [10, 12])
        made = os.listdir(os.path.join(self.tmp, "new"))
        self.assertEqual(len(made), 1)
        self.assertRegex(made[0], "^" + stamp + "$")

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


def fake_build(tmp, library=None):
    """A build directory with framealloc-measure and, if given, a libframealloc.so."""
    fake = os.path.join(tmp, "fakebuild")
    os.makedirs(os.path.join(fake, "scripts"))
    os.symlink(MEASURE, os.path.join(fake, "scripts", "framealloc-measure"))
    if library is not None:
        with open(os.path.join(fake, "libframealloc.so"), "w") as f:
            f.write(library)
    return fake


def read_summary(out):
    with open(os.path.join(out, "summary.csv"), newline="") as f:
        return {row["allocator"]: row for row in csv.DictReader(f)}


class Compare(Base):
    def compare(self, *args, build=None):
        cmd = [sys.executable, os.path.join(SCRIPT_DIR, "framealloc-compare"), "--build", build or BUILD,
               "--out", os.path.join(self.tmp, "out"), "--no-install"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    def test_end_to_end_on_the_demo_game(self):
        r = self.compare("--rounds", "2", "--allocators", "glibc,framealloc", "--", GAME, "--frames", "150")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        header = next(l for l in lines if l.startswith("allocator"))
        self.assertEqual(header.split(), ["allocator", "runs", "frames", "avg", "1%", "low", "0.1%", "low", "mean",
                                          "p50", "p95", "p99", "p99.9", "max", "hitches", "peak", "RSS", "wall",
                                          "cpu"])
        glibc = next(l for l in lines if l.startswith("glibc ")).split()
        fa = next(l for l in lines if l.startswith("framealloc ")).split()
        ratio = next(l for l in lines if l.strip().startswith("x glibc")).split()
        self.assertEqual(len(glibc), 16)
        self.assertEqual(len(fa), 16)
        self.assertEqual(glibc[1:3], ["2/2", "300"])
        self.assertEqual(fa[1:3], ["2/2", "300"])
        self.assertEqual(len(ratio), 2 + 13)  # "x glibc" and the thirteen ratios
        # "-" where glibc's figure is 0 (no hitches in a short run): no ratio to give.
        self.assertTrue(all(v.endswith("x") or v == "-" for v in ratio[2:]), ratio)
        # FPS figures agree with the frame times: avg FPS = 1000 / mean ms, lows below it.
        fps, low1, low01, mean = float(glibc[3]), float(glibc[4]), float(glibc[5]), float(glibc[6])
        self.assertAlmostEqual(fps, 1000 / mean, delta=0.2)
        self.assertLessEqual(low01, low1)
        self.assertLessEqual(low1, fps)
        self.assertIn("nearest-rank", r.stdout)
        self.assertIn("slowest 1% and 0.1% of frames", r.stdout)
        self.assertIn("identical in all 4 runs", r.stdout)
        self.assertIn("[1/4] round 1", r.stderr)  # progress
        out = os.path.join(self.tmp, "out")
        for name in ("glibc-r1.csv", "framealloc-r2.csv", "glibc-r1.stdout", "glibc-r1.rusage"):
            self.assertTrue(os.path.exists(os.path.join(out, "raw", name)), name)
        summary = read_summary(out)
        self.assertEqual(summary["glibc"]["frames"], "300")
        self.assertEqual(summary["framealloc"]["failed_runs"], "0")
        # The same table and frame times as one self-contained page.
        with open(os.path.join(out, "report.html")) as f:
            page = f.read()
        data = json.loads(re.search(r'<script id="fa-data" type="application/json">(.*?)</script>', page,
                                    re.S).group(1))
        self.assertEqual(data["kind"], "compare")
        self.assertEqual([row[0] for row in data["tables"][0]["rows"]], ["glibc", "framealloc"])
        self.assertEqual([len(run["frames"]["frametime_ms"]) for run in data["runs"]], [300, 300])
        self.assertIn(os.path.join(out, "report.html"), r.stdout)
        if shutil.which("gnuplot"):
            for png in ("frametimes.png", "ratios.png"):
                with open(os.path.join(out, png), "rb") as f:
                    self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertIn(os.path.join(out, "frametimes.png"), r.stdout)
            self.check_chart_scripts(out)

    def check_chart_scripts(self, out):
        """One colour per allocator in every chart, framealloc drawn last, every round
        in the strips, ratio bars from 1x."""
        with open(os.path.join(out, "chart.gp")) as f:
            chart = f.read()
        with open(os.path.join(out, "ratios.gp")) as f:
            ratios = f.read()
        colours = {}
        for text in (chart, ratios):
            for colour, name in re.findall(r"lc rgb '(#[0-9a-f]{6})'[^,\n]* title '([\w-]+)", text):
                colours.setdefault(name.split(",")[0], set()).add(colour)
        self.assertEqual({n: len(c) for n, c in colours.items()}, {"glibc": 1, "framealloc": 1}, colours)
        self.assertNotEqual(colours["glibc"], colours["framealloc"])
        dist = next(l for l in chart.splitlines() if l.startswith("plot ") and ".dist" in l)
        self.assertLess(dist.index("glibc.dist"), dist.index("framealloc.dist"))  # drawn on top
        self.assertIn("rounds 1, 2", chart)
        with open(os.path.join(out, "plot", "glibc.series")) as f:
            self.assertEqual(len(f.read().splitlines()), 300)  # both rounds
        with open(os.path.join(out, "plot", "framealloc.ratio")) as f:
            for line in f:
                self.assertEqual(line.split()[4], "1")  # each bar starts at 1x
        self.assertIn("set logscale y", ratios)

    def test_diff_of_two_comparison_runs(self):
        keys = ["allocator", "runs", "failed_runs", "frames", "fps", "mean", "p99", "rss_mib", "cpu"]
        runs = {"a": [["glibc", 2, 0, 300, 500, 2.0, 3.0, 20.0, 4.0], ["framealloc", 2, 0, 300, 600, 1.6, 2.5, 22.0, 3.0]],
                "b": [["glibc", 2, 0, 300, 500, 2.0, 3.0, 20.0, 4.0], ["framealloc", 2, 0, 300, 660, 1.5, 2.0, 22.0, 2.4]]}
        for name, rows in runs.items():
            os.makedirs(os.path.join(self.tmp, name))
            with open(os.path.join(self.tmp, name, "summary.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(keys)
                w.writerows(rows)
        r = subprocess.run([sys.executable, os.path.join(SCRIPT_DIR, "framealloc-diff"), os.path.join(self.tmp, "a"),
                            os.path.join(self.tmp, "b")], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cpu = next(l for l in r.stdout.splitlines() if l.startswith("framealloc") and "cpu s" in l).split()
        self.assertEqual(cpu[-3:], ["3", "2.4", "0.800x"])
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "b", "diff.html")))

    def test_peak_rss_is_the_programs_own(self):
        # Python's own 10-15 MiB used to be counted (Linux carries the peak over exec).
        r = self.compare("--rounds", "1", "--allocators", "glibc", "--no-chart", "--", "/bin/true")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rss = float(read_summary(os.path.join(self.tmp, "out"))["glibc"]["rss_mib"])
        self.assertGreater(rss, 0.1)
        self.assertLess(rss, 5.0)

    def test_mismatched_output_fails_loudly(self):
        # The shell's pid differs in every run; no frame markers, so no frame times.
        r = self.compare("--rounds", "2", "--allocators", "glibc", "--", "sh", "-c", "echo checksum: $$")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("OUTPUT MISMATCH", r.stdout)
        header = next(l for l in r.stdout.splitlines() if l.startswith("allocator"))
        self.assertEqual(header.split(), ["allocator", "runs", "peak", "RSS", "wall", "cpu"])  # no frame columns
        self.assertEqual(len(next(l for l in r.stdout.splitlines() if l.startswith("glibc ")).split()), 5)

    def test_check_chooses_the_lines_that_must_match(self):
        program = ["sh", "-c", "echo score: 42; echo took $$ ms"]
        r = self.compare("--rounds", "2", "--allocators", "glibc", "--no-chart", "--", *program)
        self.assertEqual(r.returncode, 1, r.stdout)  # the whole output differs
        r = self.compare("--rounds", "2", "--allocators", "glibc", "--no-chart", "--check", "^score", "--",
                         *program)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("lines matching ^score identical in all 2 runs that succeeded (score: 42)", r.stdout)
        r = self.compare("--rounds", "2", "--allocators", "glibc", "--no-chart", "--no-check", "--", *program)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("output check: off", r.stdout)
        r = self.compare("--rounds", "1", "--allocators", "glibc", "--no-chart", "--check", "^nothing", "--",
                         *program)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("no output line matched --check ^nothing", r.stdout)

    def test_a_crashed_run_is_marked_and_left_out(self):
        # framealloc-strict crashes in its first run only, as a program with a frame
        # escape can in strict mode.
        marker = os.path.join(self.tmp, "crashed-once")
        script = ('if [ "$FRAMEALLOC_FRAME_MODE" = strict ] && [ ! -e "$1" ]; then : > "$1"; kill -SEGV $$; fi; '
                  'shift; exec "$@"')
        r = self.compare("--rounds", "2", "--allocators", "glibc,framealloc-strict", "--", "sh", "-c", script,
                         "sh", marker, GAME, "--frames", "40")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        strict = next(l for l in r.stdout.splitlines() if l.startswith("framealloc-strict ")).split()
        self.assertEqual(strict[1:3], ["1/2", "40"])  # only the good round's frames
        self.assertIn("!! round 1 FAILED: killed by SIGSEGV (left out of the figures)", r.stdout)
        self.assertIn("RUN FAILED: framealloc-strict round 1: killed by SIGSEGV", r.stdout)
        out = os.path.join(self.tmp, "out")
        summary = read_summary(out)
        self.assertEqual(summary["framealloc-strict"]["failed_runs"], "1")
        self.assertEqual(summary["glibc"]["frames"], "80")
        if shutil.which("gnuplot"):
            with open(os.path.join(out, "plot", "framealloc-strict.series")) as f:
                self.assertEqual(len(f.read().splitlines()), 40)
            with open(os.path.join(out, "chart.gp")) as f:
                self.assertIn("framealloc-strict, round 2'", f.read())

    def test_an_allocator_that_fails_every_run_has_no_figures(self):
        r = self.compare("--rounds", "1", "--allocators", "glibc,framealloc", "--no-chart", "--", "sh", "-c",
                         'case "$LD_PRELOAD" in *libframealloc.so*) exit 3;; esac')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"framealloc +0/1 +FAILED in every run: exit status 3")
        self.assertNotIn("x glibc   ", r.stdout)

    def test_a_library_the_loader_rejects_fails_the_run(self):
        fake = fake_build(self.tmp, library="")  # "file too short"
        r = self.compare("--rounds", "1", "--allocators", "framealloc", "--", GAME, "--frames", "5", build=fake)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("could not preload", r.stdout)

    def test_framealloc_not_built_is_an_error(self):
        fake = fake_build(self.tmp)
        r = self.compare("--rounds", "1", "--allocators", "glibc,framealloc", "--", "/bin/true", build=fake)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("cannot run framealloc: libframealloc.so not found", r.stderr)
        self.assertIn("meson setup build && ninja -C build", r.stderr)
        self.assertNotIn("round 1", r.stderr)  # nothing ran

    def test_a_missing_allocator_is_an_error(self):
        # The script itself, with mimalloc's library renamed to one that is not installed.
        loader = importlib.machinery.SourceFileLoader("fa_compare_script", os.path.join(SCRIPT_DIR, "framealloc-compare"))
        spec = importlib.util.spec_from_loader("fa_compare_script", loader)
        script = importlib.util.module_from_spec(spec)
        loader.exec_module(script)
        script.PEERS["mimalloc"] = ("libmimalloc-not-installed.so.9", "libmimalloc2.0")
        argv = ["framealloc-compare", "--build", BUILD, "--out", os.path.join(self.tmp, "out"), "--no-install",
                "--allocators", "glibc,mimalloc", "--", "/bin/true"]
        err = io.StringIO()
        old_argv = sys.argv
        sys.argv = argv
        try:
            with contextlib.redirect_stderr(err):
                status = script.main()
        finally:
            sys.argv = old_argv
        self.assertEqual(status, 2)
        self.assertIn("cannot run mimalloc: libmimalloc-not-installed.so.9 is not installed; "
                      "install it with: apt-get install libmimalloc2.0", err.getvalue())

    def test_unknown_allocator_is_a_usage_error(self):
        r = self.compare("--allocators", "glibc,nosuch", "--", "true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown allocator", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""The install (meson suite 'install'): test_install.py BUILD_DIR

Installs the build into a temporary DESTDIR (meson install --no-rebuild: meson test
has just built everything), checks that the launcher, the man pages, the header, the
libraries, the helpers and framealloc.pc are there, builds a marked C++ program with
`pkg-config --cflags --libs framealloc` against the installed tree
(PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR point into the DESTDIR), and runs it
under the installed launcher: plain, with --records, and with `framealloc compare`.
Nothing here uses the build or source tree after the install.
"""

import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.environ.get("FA_TEST_BUILD", "")

MARKED_GAME = r"""
// A small game marked with framealloc.h: frame scopes, std::vector and std::string.
#include <framealloc.h>
#include <cstdio>
#include <string>
#include <vector>

int main()
{
    unsigned long long sum = 0;
    for (int frame = 0; frame < 30; frame++) {
        fa_frame_begin();
        {
            fa::frame_scope scope;
            std::vector<std::string> labels;
            for (int i = 0; i < 200; i++)
                labels.push_back("unit " + std::to_string(frame * 1000 + i));
            for (const std::string &s : labels)
                sum += s.size();
        }
        fa_frame_end();
    }
    fa_stats stats;
    int have = fa_stats_get(&stats) == 0;
    std::printf("active: %d\nframes: %llu\nchecksum: %llu\n", fa_active(),
                have ? (unsigned long long)stats.frame : 0ULL, sum);
    return 0;
}
"""


def clean_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("FRAMEALLOC_", "FA_", "PKG_CONFIG")) and k not in ("LD_PRELOAD", "LD_AUDIT")}


def run(command, env=None, cwd=None, timeout=300):
    r = subprocess.run(command, env=env or clean_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("%s: exit status %d\n%s%s" % (" ".join(command), r.returncode, r.stdout, r.stderr))
    return r


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BUILD or not os.path.exists(os.path.join(BUILD, "build.ninja")):
            raise AssertionError("usage: test_install.py BUILD_DIR (a configured meson build)")
        cls.tmp = tempfile.mkdtemp(prefix="fa-install-test-")
        cls.dest = os.path.join(cls.tmp, "dest")
        run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", cls.dest])
        installed = json.loads(run(["meson", "introspect", BUILD, "--installed"]).stdout)
        cls.paths = {os.path.basename(target): cls.dest + target for target in installed.values()}
        cls.version = json.loads(run(["meson", "introspect", BUILD, "--projectinfo"]).stdout)["version"]
        cls.launcher = cls.paths["framealloc"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_everything_is_installed(self):
        for name in ("framealloc", "libframealloc.so", "libframealloc_probe.so", "libframealloc_autoframe.so",
                     "framealloc.h", "framealloc.pc", "framealloc-compare", "framealloc-measure",
                     "framealloc_stats.py", "framealloc.1", "framealloc-compare.1", "framealloc-report.1",
                     "framealloc-diff.1"):
            self.assertIn(name, self.paths)
            self.assertTrue(os.path.isfile(self.paths[name]), self.paths[name])
        for name in ("framealloc", "framealloc-compare", "framealloc-measure"):
            self.assertTrue(os.access(self.paths[name], os.X_OK), name)
        self.assertEqual(os.path.basename(os.path.dirname(self.paths["framealloc"])), "bin")
        self.assertTrue(self.paths["framealloc.1"].endswith("/share/man/man1/framealloc.1"))

    def test_version_and_help(self):
        self.assertEqual(run([self.launcher, "--version"]).stdout.strip(), "framealloc " + self.version)
        self.assertIn("--records", run([self.launcher, "--help"]).stdout)
        self.assertIn("--check REGEX", run([self.launcher, "compare", "--help"]).stdout)
        self.assertIn("framealloc report DIR", run([self.launcher, "help", "report"]).stdout)
        self.assertIn("framealloc diff A B", run([self.launcher, "diff", "--help"]).stdout)

    def test_man_pages_render(self):
        if not shutil.which("man"):
            self.skipTest("man is not installed")
        for page in ("framealloc.1", "framealloc-compare.1", "framealloc-report.1", "framealloc-diff.1"):
            env = dict(clean_env(), MANWIDTH="80")
            r = subprocess.run(["man", "--warnings", "-l", self.paths[page]], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", page)
            self.assertIn(page[:-2].upper(), r.stdout.replace("\u2010", "-"))
            self.assertIn("SYNOPSIS", r.stdout)

    def pkg_config(self):
        env = clean_env()
        env["PKG_CONFIG_PATH"] = os.path.dirname(self.paths["framealloc.pc"])
        env["PKG_CONFIG_SYSROOT_DIR"] = self.dest
        return run(["pkg-config", "--cflags", "--libs", "framealloc"], env=env).stdout.split()

    def build_game(self, linked=True):
        """The marked game built with --cflags --libs (linked to libframealloc), or
        with --cflags only (the header finds the library at run time, if loaded)."""
        source = os.path.join(self.tmp, "game.cpp")
        with open(source, "w") as f:
            f.write(MARKED_GAME)
        game = os.path.join(self.tmp, "game" if linked else "game-header-only")
        flags = self.pkg_config() if linked else [f for f in self.pkg_config() if f.startswith("-I")]
        if not os.path.exists(game):
            run([os.environ.get("CXX", "c++"), "-O2", "-o", game, source] + flags)
        return game

    def test_pkg_config_points_into_the_install(self):
        flags = self.pkg_config()
        self.assertIn("-I" + os.path.dirname(self.paths["framealloc.h"]), flags)
        self.assertIn("-L" + os.path.dirname(self.paths["libframealloc.so"]), flags)
        self.assertIn("-lframealloc", flags)

    def test_marked_cpp_game_runs_under_the_installed_launcher(self):
        game = self.build_game()
        log = os.path.join(self.tmp, "frames.csv")
        r = run([self.launcher, "--framelog", log, game])
        self.assertIn("active: 1", r.stdout)
        self.assertIn("frames: 30", r.stdout)
        with open(log, newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[2][:2], ["fps", "frametime"])
        self.assertEqual(len(rows) - 3, 30)

    def test_records_report_from_the_installed_launcher(self):
        game = self.build_game()
        work = os.path.join(self.tmp, "records")
        os.makedirs(work, exist_ok=True)
        r = run([self.launcher, "--records=full", game], cwd=work)
        reports = [d for d in os.listdir(work) if d.startswith("framealloc.game.")]
        self.assertEqual(len(reports), 1, os.listdir(work))
        self.assertIn(reports[0], r.stderr)
        # FRAMEALLOC_REPORT holds one directory per process: PROGRAM.PID.
        summary = glob.glob(os.path.join(work, reports[0], "game.*", "summary.txt"))
        self.assertEqual(len(summary), 1, os.listdir(os.path.join(work, reports[0])))
        shown = run([self.launcher, "report", os.path.join(work, reports[0])])
        self.assertTrue(shown.stdout.strip())

    def test_linked_game_uses_framealloc_without_the_launcher(self):
        game = self.build_game()
        env = dict(clean_env(), LD_LIBRARY_PATH=os.path.dirname(self.paths["libframealloc.so"]))
        self.assertIn("active: 1", run([game], env=env).stdout)

    def test_header_only_game_runs_with_and_without_the_library(self):
        game = self.build_game(linked=False)
        self.assertIn("active: 0", run([game]).stdout)
        self.assertIn("active: 1", run([self.launcher, game]).stdout)

    def test_compare_from_the_installed_launcher(self):
        # A game linked to libframealloc cannot run under another allocator: the
        # comparison takes the header-only build.
        game = self.build_game(linked=False)
        out = os.path.join(self.tmp, "compare")
        r = run([self.launcher, "compare", "--rounds", "1", "--allocators", "glibc,framealloc", "--no-install",
                 "--no-chart", "--out", out, "--", game])
        self.assertIn("identical in all 2 runs", r.stdout)
        # The installed libraries were used, probe included (glibc got frame times).
        self.assertIn(os.path.dirname(self.paths["libframealloc.so"]), r.stdout)
        with open(os.path.join(out, "summary.csv"), newline="") as f:
            frames = {row["allocator"]: row["frames"] for row in csv.DictReader(f)}
        self.assertEqual(frames, {"glibc": "30", "framealloc": "30"})


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Unit tests for framealloc_stats on fixed inputs (meson suite 'compare')."""

import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import framealloc_stats as fs  # noqa: E402


class Percentile(unittest.TestCase):
    def test_nearest_rank_on_1_to_100(self):
        values = list(range(1, 101))
        self.assertEqual(fs.percentile(values, 50), 50)
        self.assertEqual(fs.percentile(values, 95), 95)
        self.assertEqual(fs.percentile(values, 99), 99)
        self.assertEqual(fs.percentile(values, 99.9), 100)
        self.assertEqual(fs.percentile(values, 100), 100)
        self.assertEqual(fs.percentile(values, 0), 1)

    def test_rank_rounds_up(self):
        values = [10, 20, 30, 40, 50]
        self.assertEqual(fs.percentile(values, 50), 30)   # ceil(2.5) = 3rd
        self.assertEqual(fs.percentile(values, 20), 10)   # exactly 1st
        self.assertEqual(fs.percentile(values, 21), 20)   # ceil(1.05) = 2nd
        self.assertEqual(fs.percentile(values, 95), 50)

    def test_binary_fractions_do_not_shift_the_rank(self):
        values = list(range(1, 1001))
        self.assertEqual(fs.percentile(values, 99.9), 999)  # 99.9/100*1000 is 999.0000000000001
        self.assertEqual(fs.percentile(values, 99), 990)

    def test_single_value(self):
        self.assertEqual(fs.percentile([7.5], 99.9), 7.5)

    def test_errors(self):
        with self.assertRaises(ValueError):
            fs.percentile([], 50)
        with self.assertRaises(ValueError):
            fs.percentile([1], 101)


class Summary(unittest.TestCase):
    def test_fixed_frames(self):
        # 16 frames of 1 ms, 2 of 2 ms (not hitches: not *over* 2x), 2 spikes.
        frames = [1.0] * 16 + [2.0, 2.0, 5.0, 9.0]
        s = fs.summarize(frames)
        self.assertEqual(s["frames"], 20)
        self.assertAlmostEqual(s["mean"], (16 + 4 + 5 + 9) / 20.0)
        self.assertEqual(s["p50"], 1.0)
        self.assertEqual(s["p95"], 5.0)   # 19th of 20
        self.assertEqual(s["p99"], 9.0)   # ceil(19.8) = 20th
        self.assertEqual(s["p99.9"], 9.0)
        self.assertEqual(s["max"], 9.0)
        self.assertEqual(s["hitches"], 2)

    def test_order_does_not_matter(self):
        a = fs.summarize([3.0, 1.0, 2.0, 10.0])
        b = fs.summarize([10.0, 2.0, 3.0, 1.0])
        self.assertEqual(a, b)

    def test_hitches(self):
        self.assertEqual(fs.hitches([1, 2, 2.01, 3], 1.0), 2)
        self.assertEqual(fs.hitches([], 1.0), 0)

    def test_empty(self):
        with self.assertRaises(ValueError):
            fs.summarize([])


class MedianAndRatio(unittest.TestCase):
    def test_median(self):
        self.assertEqual(fs.median([3, 1, 2]), 2)
        self.assertEqual(fs.median([4, 1, 3, 2]), 2.5)

    def test_ratio(self):
        self.assertAlmostEqual(fs.ratio(1.5, 3.0), 0.5)
        self.assertIsNone(fs.ratio(1.0, 0))
        self.assertIsNone(fs.ratio(None, 2.0))
        self.assertEqual(fs.format_ratio(0.5), "0.50x")
        self.assertEqual(fs.format_ratio(None), "-")


MANGOHUD_LOG = (
    "os,cpu,gpu,ram,kernel,driver,cpuscheduler\n"
    "Debian GNU/Linux 12 (bookworm),AMD EPYC,,24683548,6.1.0-13-amd64,,\n"
    "fps,frametime,cpu_load,gpu_load,cpu_temp,gpu_temp,gpu_core_clock,gpu_mem_clock,gpu_vram_used,"
    "gpu_power,ram_used,elapsed,frame,frame_allocs,frame_bytes,frame_escapes,frame_chunks,heap_live_kib,"
    "process_rss_kib\n"
    "500.00,2000.000,0,0,0,0,0,0,0,0,0,2000000,2,,,,,,2048\n"
    "250.00,4000.500,0,0,0,0,0,0,0,0,0,6000500,3,10,160,0,1,12,2100\n")


class FrameLog(unittest.TestCase):
    def write(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write(text)
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_reads_microseconds_as_milliseconds_below_the_header_block(self):
        self.assertEqual(fs.read_framelog(self.write(MANGOHUD_LOG)), [2.0, 4.0005])

    def test_table_has_mangohuds_columns_first(self):
        names, rows = fs.read_framelog_table(self.write(MANGOHUD_LOG))
        self.assertEqual(names[:12], ["fps", "frametime", "cpu_load", "gpu_load", "cpu_temp", "gpu_temp",
                                      "gpu_core_clock", "gpu_mem_clock", "gpu_vram_used", "gpu_power",
                                      "ram_used", "elapsed"])
        self.assertEqual(rows[1]["frame_allocs"], "10")
        self.assertEqual(len(rows), 2)

    def test_a_file_without_fps_column_is_rejected(self):
        with self.assertRaises(ValueError):
            fs.read_framelog(self.write("a,b\n1,2\n"))


class Lows(unittest.TestCase):
    def test_average_fps_is_frames_over_time(self):
        s = fs.summarize([10.0, 30.0])        # 2 frames in 40 ms: 50 FPS (not the mean of 100 and 33.3)
        self.assertAlmostEqual(s["fps"], 50.0)

    def test_one_percent_low_averages_the_slowest_frames(self):
        frames = [10.0] * 198 + [20.0, 60.0]  # 200 frames: the slowest 1 % is 2 frames, mean 40 ms
        s = fs.summarize(frames)
        self.assertAlmostEqual(s["low1"], 25.0)
        self.assertAlmostEqual(s["low01"], 1000.0 / 60.0)  # ceil(0.2) = the slowest frame

    def test_small_sets_use_at_least_one_frame(self):
        self.assertAlmostEqual(fs.low_fps([1.0, 2.0, 4.0], 0.01), 250.0)
        self.assertAlmostEqual(fs.low_fps(list(range(1, 1001)), 0.01), 1000.0 / 995.5)  # 10 slowest


class RatioFormat(unittest.TestCase):
    def test_two_significant_digits_at_least(self):
        self.assertEqual(fs.format_ratio(1.234), "1.23x")
        self.assertEqual(fs.format_ratio(0.05), "0.050x")     # was "0.05x"
        self.assertEqual(fs.format_ratio(0.0012), "0.0012x")  # was "0.00x"
        self.assertEqual(fs.format_ratio(25.0), "25.00x")
        self.assertEqual(fs.format_ratio(0), "0x")


class Distribution(unittest.TestCase):
    def test_keeps_tail_and_ends_at_100(self):
        values = list(range(10000))
        pts = fs.distribution_points(values, max_points=100)
        self.assertLess(len(pts), 300)
        self.assertEqual(pts[-1], (99.995, 9999))
        self.assertEqual(pts[0], (0.005, 0))
        tail = [v for _, v in pts if v >= 9900]
        self.assertEqual(len(tail), 100)  # the last 1% in full
        self.assertEqual(fs.distribution_points([]), [])


if __name__ == "__main__":
    unittest.main()

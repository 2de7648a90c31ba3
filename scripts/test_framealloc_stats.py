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


class FrameLog(unittest.TestCase):
    def test_reads_frametime_and_skips_empty(self):
        text = ("frame,fps,frametime,frame_allocs,frame_bytes,frame_escapes,frame_chunks,"
                "heap_live_kib,process_rss_kib,elapsed\n"
                "1,,,,,,,,2048,0\n"
                "2,500.00,2.0000,,,,,,2048,2000000\n"
                "3,250.00,4.0000,10,160,0,1,12,2100,6000000\n")
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write(text)
        try:
            self.assertEqual(fs.read_framelog(f.name), [2.0, 4.0])
        finally:
            os.unlink(f.name)


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

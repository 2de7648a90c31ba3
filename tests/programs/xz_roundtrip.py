#!/usr/bin/env python3
"""xz -T2 (multithreaded compression and decompression) with and without libframealloc.

    xz_roundtrip.py --preload LIB [--megabytes N]

The input is generated text followed by random bytes, compressed in 1 MiB blocks so
both threads work. The compressed files must be identical with and without the
library (xz output does not depend on thread timing), and each must decompress, with
the same setting of the library, to the original.
"""
import argparse
import os
import random
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fa_compare  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preload", required=True)
    ap.add_argument("--megabytes", type=int, default=16)
    args = ap.parse_args()
    if not os.path.exists(args.preload):
        print(f"xz: library not found: {args.preload}", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="fa-xz-") as tmp:
            data = os.path.join(tmp, "data")
            fa_compare.generate_text(data, args.megabytes, seed=777)
            with open(data, "ab") as f:
                f.write(random.Random(778).randbytes(2 << 20))
            packed = {}
            for preload in (None, args.preload):
                tag = "with" if preload else "without"
                packed[tag] = os.path.join(tmp, f"data.{tag}.xz")
                with open(data, "rb") as src, open(packed[tag], "wb") as dst:
                    fa_compare.run("xz -T2 compress", ["xz", "-T2", "-3", "--block-size=1MiB", "-c"],
                                   preload, stdin=src, stdout=dst)
            fa_compare.compare_files("xz -T2 compress", packed["without"], packed["with"])
            for preload in (None, args.preload):
                tag = "with" if preload else "without"
                unpacked = os.path.join(tmp, f"data.{tag}.out")
                with open(packed[tag], "rb") as src, open(unpacked, "wb") as dst:
                    fa_compare.run("xz -T2 decompress", ["xz", "-T2", "-d", "-c"], preload, stdin=src, stdout=dst)
                fa_compare.compare_files(f"xz -T2 decompress {tag} libframealloc", data, unpacked,
                                         "original", "decompressed")
            print(f"xz: {os.path.getsize(data)} bytes -> {os.path.getsize(packed['with'])} bytes, "
                  f"identical with and without libframealloc; both round trips exact")
    except fa_compare.Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

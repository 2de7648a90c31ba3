#!/usr/bin/env python3
"""Standard text tools on a large generated file, with and without libframealloc.

    text_tools.py --preload LIB [--megabytes N]

Each pipeline runs under sh once without the library and once with LD_PRELOAD (every
process of the pipeline gets it); outputs must be byte-identical. LC_ALL=C in both.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fa_compare  # noqa: E402

# name -> shell command; DATA is the generated file.
PIPELINES = {
    "sort": "sort DATA",
    "sort -u": "sort -u DATA",
    "sort --parallel=2 (keys, temp files)": "sort --parallel=2 -S 24M -k2,2 -k3,3n DATA",
    "awk aggregation": "awk '{n[$1]++; s[$1]+=$3; if (length($2) > 8) long[$2]++} "
                       "END {for (k in n) print k, n[k], s[k]; print length(long)}' DATA",
    "sed substitution": r"sed -E 's/ab/<AB>/g; s/ ([0-9]+) / #\1# /; /^zz/d' DATA",
    "grep -c": "grep -c -E '(ab|cd)[a-z]* [0-9]+5 ' DATA",
    "tr": "tr 'a-z' 'A-Z' < DATA | tr -s 'E' '_'",
    "uniq -c": "cut -d' ' -f1 DATA | sort | uniq -c",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preload", required=True)
    ap.add_argument("--megabytes", type=int, default=50)
    args = ap.parse_args()
    if not os.path.exists(args.preload):
        print(f"text tools: library not found: {args.preload}", file=sys.stderr)
        return 1
    env = {"LC_ALL": "C"}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="fa-text-") as tmp:
        data = os.path.join(tmp, "data.txt")
        fa_compare.generate_text(data, args.megabytes)
        out_a, out_b = os.path.join(tmp, "without"), os.path.join(tmp, "with")
        env["TMPDIR"] = tmp  # sort's temporary files
        for name, command in PIPELINES.items():
            shell = ["sh", "-c", "set -e; " + command.replace("DATA", data)]
            started = time.monotonic()
            try:
                for path, preload in ((out_a, None), (out_b, args.preload)):
                    with open(path, "wb") as f:
                        fa_compare.run(name, shell, preload, env, stdout=f)
                if os.path.getsize(out_a) == 0:
                    raise fa_compare.Failure(f"{name}: no output, nothing to compare")
                fa_compare.compare_files(name, out_a, out_b)
                print(f"{name}: {os.path.getsize(out_a)} bytes identical "
                      f"({time.monotonic() - started:.1f} s for both runs)")
            except fa_compare.Failure as e:
                print(f"FAIL: {e}", file=sys.stderr)
                failures += 1
    if failures:
        print(f"text tools: {failures} of {len(PIPELINES)} pipelines failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

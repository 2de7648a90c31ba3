#!/usr/bin/env python3
"""Run a program with and without LD_PRELOAD=libframealloc.so and compare its output.

As a command:
    fa_compare.py --preload LIB --name NAME [--env K=V]... [--variant-arg ARG]...
                  [--timeout S] -- PROGRAM ARGS...

PROGRAM runs once without the library and once with it; both runs must exit 0 and
write byte-identical stdout. Each --variant-arg adds two more runs with ARG appended
(with and without the library) whose stdout must match too. The library run sets
FRAMEALLOC_HELP=1, and its stderr must show the settings table, printed by the
library's constructor: proof it was really loaded (an exit summary would not do: GNU
tools close stderr before library destructors run). Exits 1 with a message naming
the program and the first difference.

The other drivers here (text_tools.py, xz_roundtrip.py) import this module.
"""
import argparse
import os
import random
import re
import subprocess
import sys

LOADED_MARK = b"FRAMEALLOC_HELP"  # the settings table lists its own setting
# Lines of that table, left out when stderr is shown.
HELP_LINE = re.compile(r"^(framealloc settings|  FRAMEALLOC_\w+ +default|      )")


class Failure(Exception):
    pass


def make_env(preload, extra):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra)
    if preload:
        env["LD_PRELOAD"] = preload
        env["FRAMEALLOC_HELP"] = "1"
    return env


def label(preload):
    return "with libframealloc" if preload else "without libframealloc"


def run(name, argv, preload, extra_env=None, stdout=None, stdin=None, cwd=None, timeout=120):
    """Runs argv; returns its stdout (bytes, or None when stdout is a file object).
    Fails unless it exits 0 and, with the library, unless the library was loaded."""
    try:
        proc = subprocess.run(argv, env=make_env(preload, extra_env or {}), stdin=stdin,
                              stdout=stdout if stdout is not None else subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure(f"{name}: timed out after {timeout} s {label(preload)}: {' '.join(argv)}")
    err = b"".join(line for line in proc.stderr.splitlines(keepends=True)
                   if not HELP_LINE.match(line.decode(errors="replace")))
    if proc.returncode != 0:
        how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        raise Failure(f"{name}: {how} {label(preload)}: {' '.join(argv)}\n"
                      f"--- stderr (last 2000 bytes) ---\n{err[-2000:].decode(errors='replace')}")
    if preload and LOADED_MARK not in proc.stderr:
        raise Failure(f"{name}: libframealloc printed no settings table, so it was not loaded "
                      f"(LD_PRELOAD={preload})\n--- stderr ---\n{err[-2000:].decode(errors='replace')}")
    return proc.stdout


def describe_difference(name, a, b, what_a, what_b, sizes=None, offset=0, lines_before=0):
    """A message for two different byte strings: sizes, first differing byte and line.
    a and b may be blocks of larger outputs that start at offset, after lines_before lines."""
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    line = lines_before + a[:i].count(b"\n") + 1
    start = a.rfind(b"\n", 0, i) + 1
    size_a, size_b = sizes or (len(a), len(b))

    def excerpt(data):
        end = data.find(b"\n", i)
        return data[start:end if end >= 0 else start + 200][:200].decode(errors="replace")

    return (f"{name}: output differs: {what_a} {size_a} bytes, {what_b} {size_b} bytes; "
            f"first difference at byte {offset + i} (line {line})\n"
            f"  {what_a}: {excerpt(a)!r}\n  {what_b}: {excerpt(b)!r}")


def compare_bytes(name, a, b, what_a="without libframealloc", what_b="with libframealloc"):
    if a != b:
        raise Failure(describe_difference(name, a, b, what_a, what_b))


def compare_files(name, path_a, path_b, what_a="without libframealloc", what_b="with libframealloc"):
    """Compares two (large) files block by block."""
    sizes = (os.path.getsize(path_a), os.path.getsize(path_b))
    offset = lines = 0
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        while True:
            a, b = fa.read(1 << 20), fb.read(1 << 20)
            if a != b:
                raise Failure(describe_difference(name, a, b, what_a, what_b, sizes, offset, lines))
            if not a:
                return
            offset += len(a)
            lines += a.count(b"\n")


def generate_text(path, megabytes, seed=12345):
    """Writes a deterministic text file of about megabytes MB: lines of words from a
    skewed vocabulary with numbers, so sorting, counting and compression all have work."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(20000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    target = megabytes << 20
    written = 0
    with open(path, "w") as f:
        while written < target:
            words = rng.choices(vocab, weights, k=40000)
            nums = rng.choices(range(100000), k=10000)
            lines = [f"{words[4 * i]} {words[4 * i + 1]} {nums[i]} {words[4 * i + 2]} {words[4 * i + 3]}\n"
                     for i in range(10000)]
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preload", required=True, help="path of libframealloc.so")
    ap.add_argument("--name", required=True, help="name of the check, for messages")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="set in both runs")
    ap.add_argument("--variant-arg", action="append", default=[], metavar="ARG",
                    help="also run with ARG appended; output must be the same")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no program given")
    if not os.path.exists(args.preload):
        print(f"{args.name}: library not found: {args.preload}", file=sys.stderr)
        return 1
    extra = dict(kv.split("=", 1) for kv in args.env)
    try:
        base = run(args.name, cmd, None, extra, timeout=args.timeout)
        if not base:
            raise Failure(f"{args.name}: no output without libframealloc, nothing to compare")
        for variant in [None] + args.variant_arg:
            argv = cmd + ([variant] if variant else [])
            for preload in ([args.preload] if variant is None else [None, args.preload]):
                out = run(args.name, argv, preload, extra, timeout=args.timeout)
                what = label(preload) + (f" ({variant})" if variant else "")
                compare_bytes(args.name, base, out, "without libframealloc", what)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(f"{args.name}: {len(base)} bytes of output identical with and without libframealloc")
    return 0


if __name__ == "__main__":
    sys.exit(main())

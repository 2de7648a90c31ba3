#!/usr/bin/env python3
"""The misuse matrix: every arena x every misuse x every mode. Each cell runs
misuse_case (one process per cell, under the preload) and must die by SIGABRT, not
SIGSEGV and not exit 0, with one line on stderr that starts with
"framealloc: error: OPERATION(POINTER)" and names the arena that served the block.

Where records know the block, that line is followed by its allocating stack (issue
10: observing adds the stack to every check): "framealloc: ... allocated at:", then
"framealloc:   at FUNCTION ..." lines, which must name misuse_case's allocate(). Records
know every block when they record every one (records-full, and guards and poison,
which record every block), for a misuse of a live block (a pointer into it) or of one
freed before (a double free: the freed block's record). Sampling knows only the
blocks it sampled, and only while they are live: records-sample-dense samples about
one allocation per KiB, so a block of 32 KiB or more is always sampled and a pointer
into it gets its stack; for smaller blocks and freed ones the stack may or may not
follow. In every other mode, and for pointers that were never allocated, the one
line is all there is.

The only cells expected to survive are the documented ones: in strict mode a free of
frame memory is a no-op (the block stays usable until its frame is recycled). Cells
that cannot pass yet are listed in KNOWN_GAPS with the reason and reported as skipped,
never counted as passing.

    check_misuse_matrix.py LIBFRAMEALLOC MISUSE_CASE [--mode M] [--arena A] [--misuse U] [-v]
"""
import argparse
import concurrent.futures
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile

MODES = {
    "default": {},
    "strict": {"FRAMEALLOC_FRAME_MODE": "strict"},
    "guards": {"FRAMEALLOC_DEBUG": "guards"},
    "poison": {"FRAMEALLOC_DEBUG": "poison"},
    "protect": {"FRAMEALLOC_DEBUG": "protect"},
    "records-sample": {"FRAMEALLOC_RECORDS": "sample"},
    "records-full": {"FRAMEALLOC_RECORDS": "full"},
    "records-sample-dense": {"FRAMEALLOC_RECORDS": "sample", "FRAMEALLOC_RECORDS_RATE": "1"},
}

# Modes that record every block (guards and poison turn full records on).
RECORDING_ALL = {"records-full", "guards", "poison"}
# Modes that sample: the stack may follow when the block was sampled.
SAMPLING = {"records-sample", "records-sample-dense"}
# Arenas whose block (32 KiB or more) records-sample-dense always samples.
ALWAYS_SAMPLED = {"heap-mid", "heap-large", "heap-huge-align", "frame-large"}

# name: (misuse_case's arena argument, extra environment)
ARENAS = {
    "pool": ("pool", {}),
    "frame": ("frame", {}),
    "heap-mid": ("heap-mid", {}),
    "heap-large": ("heap-large", {}),
    "heap-align": ("heap-align", {}),
    # Aligned to 64 MiB: mapped directly and unmapped when freed (src/heap.c).
    "heap-huge-align": ("heap-huge-align", {}),
    "heap-intent": ("heap-intent", {}),
    "frame-large": ("frame-large", {}),
    "pools-off": ("pool", {"FRAMEALLOC_POOL_MAX": "0"}),
}

BLOCK_MISUSES = ["double-free", "interior-free", "realloc-after-free", "usable-size-after-free",
                 "interior-realloc", "interior-usable-size", "double-delete", "interior-delete"]
FOREIGN_MISUSES = [f"{op}-{kind}" for op in ("free", "realloc", "usable-size", "delete")
                   for kind in ("stack", "global", "mmap")]

# Misuses whose bad call is a free (delete is a free underneath and is reported as one).
FREEING = {"double-free", "interior-free", "double-delete", "interior-delete"}

# (mode, arena, misuse) patterns ("*" matches anything) that cannot pass yet, with why.
KNOWN_GAPS = []


def operation(misuse):
    if "realloc" in misuse:
        return "realloc"
    if "usable-size" in misuse:
        return "malloc_usable_size"
    return "free"


def gap_reason(mode, arena, misuse):
    for (m, a, u), reason in KNOWN_GAPS:
        if m in ("*", mode) and a in ("*", arena) and u in ("*", misuse):
            return reason
    return None


def no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_cell(args, mode, arena, misuse, report_dir):
    arena_arg, arena_env = ARENAS.get(arena, ("foreign", {}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_")}
    env.update(LD_PRELOAD=args.lib, **MODES[mode], **arena_env)
    if "FRAMEALLOC_RECORDS" in env:
        env["FRAMEALLOC_REPORT"] = report_dir  # the exit summary would go to stderr
    result = subprocess.run([args.case, arena_arg, misuse], env=env, capture_output=True, text=True, timeout=60,
                            preexec_fn=no_core_dumps)
    return check_cell(mode, arena, misuse, result)


def check_cell(mode, arena, misuse, result):
    """None when the cell behaved as it must, else what went wrong."""
    m = re.search(r"^arena=(\S+) pointer=(\S+)$", result.stdout, re.M)
    if not m:
        return f"no arena line (rc {result.returncode}); stdout {result.stdout!r} stderr {result.stderr!r}"
    served, pointer = m.group(1), m.group(2)
    # Strict mode: freeing frame memory is a documented no-op, so the block stays live.
    if mode == "strict" and served == "frame" and (misuse in FREEING or misuse.endswith("-after-free")):
        if result.returncode == 0 and "survived" in result.stdout and not result.stderr:
            return None
        return f"strict frame free must be a silent no-op: rc {result.returncode}, stderr {result.stderr!r}"
    if result.returncode != -signal.SIGABRT:
        how = (f"killed by {signal.Signals(-result.returncode).name}" if result.returncode < 0
               else f"exit {result.returncode}")
        return f"did not abort ({how}, served by {served}); stderr {result.stderr!r}"
    want = f"framealloc: error: {operation(misuse)}({pointer})"
    if not result.stderr.startswith(want):
        return f"stderr {result.stderr!r} does not start with {want!r}"
    if not result.stderr.endswith("\n"):
        return f"stderr does not end with a newline: {result.stderr!r}"
    lines = result.stderr.splitlines()
    arena_word = "heap" if served == "none" else served
    if arena_word not in lines[0]:
        return f"the message does not name the arena ({arena_word}): {lines[0]!r}"
    expected = stack_expected(mode, arena, misuse)
    if expected is False and len(lines) != 1:
        return f"want exactly one line on stderr, got {result.stderr!r}"
    if len(lines) > 1 or expected:
        return check_stack(lines[1:])
    return None


def stack_expected(mode, arena, misuse):
    """True: the allocating stack must follow the message; False: nothing may follow;
    None: it may (a sampling mode may or may not have sampled the block)."""
    if arena == "foreign":
        return False
    if mode in RECORDING_ALL:
        return True
    if mode == "records-sample-dense" and misuse.startswith("interior") and arena in ALWAYS_SAMPLED:
        return True
    return None if mode in SAMPLING else False


def check_stack(lines):
    """None when lines are a block's allocating stack naming allocate(), else why not."""
    if not lines:
        return "want the allocating stack after the message, got nothing"
    if not (lines[0].startswith("framealloc: ") and lines[0].endswith("allocated at:")):
        return f"want 'framealloc: ... allocated at:' after the message, got {lines[0]!r}"
    frames = lines[1:]
    if not frames or any(not line.startswith("framealloc:   at ") for line in frames):
        return f"want 'framealloc:   at ...' lines for the stack, got {frames!r}"
    if not any("allocate(" in line for line in frames):
        return f"the allocating stack does not name allocate(): {frames!r}"
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lib")
    parser.add_argument("case")
    parser.add_argument("--mode", action="append")
    parser.add_argument("--arena", action="append")
    parser.add_argument("--misuse", action="append")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    cells = []
    for mode in args.mode or MODES:
        for arena in (args.arena or list(ARENAS) + ["foreign"]):
            for misuse in (FOREIGN_MISUSES if arena == "foreign" else BLOCK_MISUSES):
                if not args.misuse or misuse in args.misuse:
                    cells.append((mode, arena, misuse))

    failures, skipped, passed = [], [], 0
    with tempfile.TemporaryDirectory() as report_dir:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = {}
            for cell in cells:
                reason = gap_reason(*cell)
                if reason:
                    skipped.append((cell, reason))
                    continue
                futures[pool.submit(run_cell, args, *cell, report_dir)] = cell
            for future in concurrent.futures.as_completed(futures):
                cell, problem = futures[future], future.result()
                if problem:
                    failures.append((cell, problem))
                else:
                    passed += 1
                    if args.verbose:
                        print("ok:", " ".join(cell))

    for cell, reason in sorted(skipped):
        print(f"SKIPPED (known gap): {' '.join(cell)}: {reason}")
    for cell, problem in sorted(failures):
        print(f"FAILED: {' '.join(cell)}: {problem}")
    print(f"misuse matrix: {passed} passed, {len(failures)} failed, {len(skipped)} skipped as known gaps")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

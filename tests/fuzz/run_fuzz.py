#!/usr/bin/env python3
"""Runs the differential fuzzer (fa_fuzz) under glibc and under libframealloc.so and
compares the two outputs, seed by seed, in one FRAMEALLOC_* mode.

    run_fuzz.py --fuzz FA_FUZZ --preload LIB --mode MODE [--seeds 1,2,3]
                [--threads N] [--rounds N] [--ops N] [--timeout S]
    run_fuzz.py --list-modes

Both runs must exit 0 and print the same lines. On a difference it runs the seed again
in both with --trace and prints the first traced lines that differ. scripts/soak
imports this module (MODES, run_seed).
"""
import argparse
import difflib
import os
import subprocess
import sys

# name: (FRAMEALLOC_* settings, fa_fuzz arguments). Frame blocks may outlive their
# frame (--escapes) only where recycling waits for them (safe mode); without it
# fa_fuzz gets --require-no-escapes. It always gets --require-frames: in every mode
# frame scopes must reach the frame arenas (observing never changes the allocator).
MODES = {
    "safe": ({}, ["--escapes"]),
    "strict": ({"FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "in-flight": ({"FRAMEALLOC_FRAMES_IN_FLIGHT": "3"}, ["--escapes"]),
    "in-flight-strict": ({"FRAMEALLOC_FRAMES_IN_FLIGHT": "2", "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "pools-off": ({"FRAMEALLOC_POOL_MAX": "0"}, ["--escapes"]),
    # The smallest frame limit and no spare chunks: chunks change hands all the time.
    "tight-frames": ({"FRAMEALLOC_FRAME_MAX": "16", "FRAMEALLOC_FRAME_RETAIN": "0",
                      "FRAMEALLOC_POOL_DECAY_MS": "0"}, ["--escapes"]),
    "poison": ({"FRAMEALLOC_DEBUG": "poison"}, ["--escapes"]),
    "guards": ({"FRAMEALLOC_DEBUG": "guards"}, ["--escapes"]),
    "protect": ({"FRAMEALLOC_DEBUG": "protect"}, ["--escapes"]),
    # Without --escapes framealloc must count no escape: the unwinder's per-thread
    # state (its thread-local block, which the loader allocates) is never a frame
    # block (issue 10, defect 5, in safe mode).
    "protect-exact": ({"FRAMEALLOC_DEBUG": "protect"}, []),
    "safe-exact": ({}, []),
    "debug-all": ({"FRAMEALLOC_DEBUG": "poison,guards,protect"}, ["--escapes"]),
    "in-flight-max-strict": ({"FRAMEALLOC_FRAMES_IN_FLIGHT": "16", "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "strict-pools-off": ({"FRAMEALLOC_FRAME_MODE": "strict", "FRAMEALLOC_POOL_MAX": "0"}, []),
    # Stack capture with strict mode: the unwinder's own state must never come from a
    # frame arena (issue 10, defect 5).
    "protect-strict": ({"FRAMEALLOC_DEBUG": "protect", "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "poison-strict": ({"FRAMEALLOC_DEBUG": "poison", "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "guards-strict": ({"FRAMEALLOC_DEBUG": "guards", "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    "records-sample-strict": ({"FRAMEALLOC_RECORDS": "sample", "FRAMEALLOC_RECORDS_RATE": "1",
                               "FRAMEALLOC_FRAME_MODE": "strict"}, []),
    # RECORDS_RATE=1: a sample about every KiB, so sampled blocks are common.
    "records-sample": ({"FRAMEALLOC_RECORDS": "sample", "FRAMEALLOC_RECORDS_RATE": "1"}, ["--escapes"]),
    "records-full": ({"FRAMEALLOC_RECORDS": "full"}, ["--escapes"]),
}


class Mismatch(Exception):
    pass


def run(fuzz, args, env_extra, preload, timeout):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_") and k != "LD_PRELOAD"}
    argv = [fuzz] + args
    if preload:
        env.update(env_extra)
        env["LD_PRELOAD"] = preload
        argv.append("--require-library")
    where = "under libframealloc" if preload else "under glibc"
    try:
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Mismatch(f"timed out after {timeout} s {where}: {' '.join(argv)}")
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise Mismatch(f"{how} {where}: {' '.join(argv)}\n  stderr: " + "\n          ".join(err[-12:]))
    return proc.stdout.decode(errors="replace")


def first_difference(expected, got, context=3, most=24):
    diff = list(difflib.unified_diff(expected.splitlines(), got.splitlines(), "glibc", "framealloc",
                                     n=context, lineterm=""))
    return "\n".join(diff[:most])


def run_seed(fuzz, preload, mode, seed, shape, timeout=120):
    """Runs one seed in one mode; raises Mismatch with a description on failure."""
    env_extra, mode_args = MODES[mode]
    args = ["--seed", str(seed)] + shape + mode_args
    expected = run(fuzz, args, {}, None, timeout)
    checks = ["--require-frames"] + ([] if "--escapes" in args else ["--require-no-escapes"])
    got = run(fuzz, args + checks, env_extra, preload, timeout)
    if expected != got:
        detail = first_difference(run(fuzz, args + ["--trace"], {}, None, timeout),
                                  run(fuzz, args + ["--trace"], env_extra, preload, timeout))
        settings = " ".join(f"{k}={v}" for k, v in env_extra.items())
        raise Mismatch(f"outputs differ for seed {seed} in mode {mode} ({settings or 'defaults'}), "
                       f"fa_fuzz {' '.join(args)}:\n{detail}")
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuzz")
    ap.add_argument("--preload")
    ap.add_argument("--mode", choices=sorted(MODES))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--ops", type=int, default=160)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--list-modes", action="store_true")
    a = ap.parse_args()
    if a.list_modes:
        print("\n".join(MODES))
        return 0
    if not (a.fuzz and a.preload and a.mode):
        ap.error("--fuzz, --preload and --mode are required")
    shape = ["--threads", str(a.threads), "--rounds", str(a.rounds), "--ops", str(a.ops)]
    for seed in a.seeds.split(","):
        try:
            out = run_seed(a.fuzz, a.preload, a.mode, int(seed, 0), shape, a.timeout)
        except Mismatch as e:
            print(f"FAIL: {e}")
            return 1
        print(f"mode {a.mode} seed {seed}: same output under glibc and framealloc")
        print("  " + out.strip().replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())

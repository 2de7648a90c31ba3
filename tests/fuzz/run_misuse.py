#!/usr/bin/env python3
"""Runs fa_misuse cases under libframealloc.so in one mode and checks that each
misuse aborts (SIGABRT) with a clear message: the first stderr line starts with
"framealloc: error: " and names the call and pointer fa_misuse printed; any further
lines (the allocating stack) start with "framealloc:".

    run_misuse.py --misuse FA_MISUSE --preload LIB --mode MODE [--known-defects]
    run_misuse.py --misuse FA_MISUSE --preload LIB --matrix

Without --known-defects it runs the cells framealloc promises today (PROMISED);
with it, the cells issue 10 asks for that still fail (KNOWN_DEFECTS), and reports
each. --matrix prints every case, arena and mode with its outcome (scripts/soak
--misuse-matrix). Modes are run_fuzz.py's.
"""
import argparse
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_fuzz  # noqa: E402  (MODES)

CASES = ["double-free", "double-free-not-last", "interior-free", "realloc-after-free",
         "foreign-free", "write-after-free", "overflow"]
ARENAS = ["pool", "frame", "heap", "aligned"]
FREE_CASES = CASES[:4]

_frees = [(c, a) for c in FREE_CASES for a in ("pool", "frame")]
_default = _frees + [
    ("write-after-free", "pool"),  # the pools' safe-linked free lists
    ("overflow", "pool"),          # into the next (free) block's link
]
# What each mode catches. Strict mode's free of frame memory is a no-op, so it cannot
# see frame misuse; with pools off the "pool" cells are heap blocks. Debug and records
# modes keep blocks in their arenas, so the arenas' checks still fire; every arena
# checks heap blocks and pointers never allocated (issue 10, defect 4).
_heap = [(c, a) for c in FREE_CASES for a in ("heap", "aligned")] + [("foreign-free", a) for a in ARENAS]
PROMISED = {
    "safe": _default + _heap,
    "in-flight": _default + _heap,
    "protect": _default + _heap,
    "strict": [(c, "pool") for c in FREE_CASES] + [("write-after-free", "pool"), ("overflow", "pool")] + _heap,
    "pools-off": [(c, a) for c in FREE_CASES for a in ("frame", "pool")] + _heap,
    "guards": _frees + [("write-after-free", "pool")] + [("overflow", a) for a in ARENAS] + _heap,
    "poison": _frees + [("write-after-free", "pool")] + _heap,
    "debug-all": _frees + [("write-after-free", "pool")] + [("overflow", a) for a in ARENAS] + _heap,
    "records-sample": _frees + [("write-after-free", "pool")] + _heap,
    "records-full": _frees + [("write-after-free", "pool")] + _heap,
}

# Issue 10 asks for these and they fail today (none at the moment).
KNOWN_DEFECTS = {}


def run_cell(misuse, preload, mode, case, arena):
    """Returns None when the misuse aborted with a clear message, else what happened."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_")}
    env.update(run_fuzz.MODES[mode][0])
    env["LD_PRELOAD"] = preload
    proc = subprocess.run([misuse, case, arena], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60)
    out = proc.stdout.decode(errors="replace")
    err = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
    if proc.returncode == 0:
        return "went unnoticed (exit 0)"
    if proc.returncode != -signal.SIGABRT:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return f"{how} instead of a clear abort; stderr: {' | '.join(err[:3]) or '(empty)'}"
    if not err or not err[0].startswith("framealloc: error: "):
        return f"aborted without a framealloc error line; stderr: {' | '.join(err[:3]) or '(empty)'}"
    named = out.split("misuse: ", 1)[1].strip() if "misuse: " in out else ""
    if named and not err[0].startswith("framealloc: error: " + named):
        return f"the message does not name {named}: {err[0]}"
    stray = [line for line in err[1:] if not line.startswith("framealloc:")]
    if stray:
        return f"more than framealloc's message on stderr: {stray[0]}"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--misuse", required=True)
    ap.add_argument("--preload", required=True)
    ap.add_argument("--mode", choices=sorted(run_fuzz.MODES))
    ap.add_argument("--known-defects", action="store_true")
    ap.add_argument("--matrix", action="store_true")
    a = ap.parse_args()
    if a.matrix:
        modes = list(run_fuzz.MODES)
        print("misuse matrix: A = clear abort, - = unnoticed, SIG = other death, msg = unclear message;"
              " * = promised today, ! = known defect")
        print(f"{'case / arena':<32}" + " ".join(f"{m[:10]:<12}" for m in modes))
        for case in CASES:
            for arena in ARENAS:
                row = []
                for m in modes:
                    r = run_cell(a.misuse, a.preload, m, case, arena)
                    mark = ("A" if r is None else "-" if "unnoticed" in r else
                            "SIG" if "signal" in r else "msg")
                    mark += ("*" if (case, arena) in PROMISED.get(m, []) else
                             "!" if (case, arena) in KNOWN_DEFECTS.get(m, []) else "")
                    row.append(f"{mark:<12}")
                print(f"{case + ' / ' + arena:<32}" + " ".join(row))
        return 0
    if not a.mode:
        ap.error("--mode or --matrix is required")
    cells = (KNOWN_DEFECTS if a.known_defects else PROMISED).get(a.mode, [])
    bad = 0
    for case, arena in cells:
        r = run_cell(a.misuse, a.preload, a.mode, case, arena)
        if a.known_defects:
            print(f"{case} / {arena}: {'now caught (remove from KNOWN_DEFECTS)' if r is None else r}")
        elif r is not None:
            bad += 1
            print(f"FAIL: mode {a.mode}: {case} of a {arena} block: {r}")
    if not a.known_defects:
        print(f"mode {a.mode}: {len(cells) - bad} of {len(cells)} misuse cases aborted with a clear message")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

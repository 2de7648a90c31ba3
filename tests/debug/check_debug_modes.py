#!/usr/bin/env python3
"""FRAMEALLOC_DEBUG end to end: each deliberate bug in bugs.c must stop the program
with the right message and the allocating function and line; a clean run must behave
the same with every mode on."""
import os
import signal
import subprocess
import sys

lib, bugs = sys.argv[1], sys.argv[2]
failures = []


def run(mode, debug):
    env = dict(os.environ, LD_PRELOAD=lib, FRAMEALLOC_DEBUG=debug)
    return subprocess.run([bugs, mode], env=env, capture_output=True, text=True, timeout=60)


def expect(name, result, signo, needles):
    if result.returncode != -signo:
        failures.append(f"{name}: expected death by signal {signo}, got return code {result.returncode}")
    for needle in needles:
        if needle not in result.stderr:
            failures.append(f"{name}: stderr lacks {needle!r}:\n{result.stderr}")
    if "not reached" in result.stdout:
        failures.append(f"{name}: the program went on after the bug")


expect("guards: overrun", run("overrun", "guards"), signal.SIGABRT,
       ["wrote past the end of this 24-byte block", "at make_label (", "bugs.c:"])
expect("protect: use after frame", run("uaf", "protect"), signal.SIGSEGV,
       ["use after frame", "at frame_temp (", "bugs.c:"])

poisoned = run("poison", "poison")
if "poisoned byte after free: 0xdd" not in poisoned.stdout:
    failures.append(f"poison: freed memory not filled with 0xdd: {poisoned.stdout!r}")

plain = subprocess.run([bugs, "clean"], capture_output=True, text=True, timeout=60)
for debug in ["poison", "guards", "protect", "poison,guards,protect"]:
    result = run("clean", debug)
    if result.returncode != 0 or result.stdout != plain.stdout or result.stderr:
        failures.append(f"clean run with {debug}: rc {result.returncode}, stdout {result.stdout!r} "
                        f"(expected {plain.stdout!r}), stderr {result.stderr!r}")

for failure in failures:
    print("FAILED:", failure)
print("debug modes: all checks passed" if not failures else f"debug modes: {len(failures)} checks failed")
sys.exit(1 if failures else 0)

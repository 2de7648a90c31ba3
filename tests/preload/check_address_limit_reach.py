#!/usr/bin/env python3
"""Under an address-space limit set at start (ulimit -v) or at run time (setrlimit),
a program under libframealloc allocates at least 90 % of what it gets under glibc,
and still gets NULL with ENOMEM at the end (issue 10 item 3).

usage: check_address_limit_reach.py LIBRARY PROGRAM"""
import os
import resource
import subprocess
import sys

lib, program = sys.argv[1], sys.argv[2]
failures = []


def reach(args, preload, start_limit_mib=None):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_PERTURB_", None)  # glibc would fill every block it hands out
    if preload:
        env["LD_PRELOAD"] = lib

    def limit():
        if start_limit_mib:
            size = start_limit_mib << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    r = subprocess.run([program] + args, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    if r.returncode != 0:
        failures.append("%s %s: exit %d, stderr %r" % ("framealloc" if preload else "glibc", args, r.returncode,
                                                         r.stderr))
        return 0
    return int(r.stdout.strip() or 0)


cases = [("limit set at start: 1 GiB", ["start"], 1024), ("limit set at start: 4 GiB", ["start"], 4096),
         ("limit set at run time: 16 GiB", ["runtime", "16384"], None),
         ("limit set at run time: 2 GiB", ["runtime", "2048"], None)]
for name, args, start in cases:
    glibc = reach(args, False, start)
    ours = reach(args, True, start)
    print("%s: glibc %d MiB, framealloc %d MiB (%.0f %%)" % (name, glibc, ours, 100.0 * ours / max(glibc, 1)))
    if ours < 0.9 * glibc:
        failures.append("%s: framealloc reached %d MiB, under 90 %% of glibc's %d MiB" % (name, ours, glibc))

for failure in failures:
    print("FAILED:", failure)
sys.exit(1 if failures else 0)

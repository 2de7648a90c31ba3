#!/usr/bin/env python3
"""Under an address-space limit set at start (ulimit -v) or at run time (setrlimit),
a program under libframealloc allocates at least 90 % of what it gets under glibc,
and still gets NULL with ENOMEM at the end (issue 10 item 3). Blocks of 1 MiB
measure the region's share of the limit; heap blocks (above the pools' limit) on
and just above jemalloc's size classes measure what the heap adds to each block;
each size is also allocated inside a frame scope.

usage: check_address_limit_reach.py LIBRARY PROGRAM"""
import concurrent.futures
import os
import resource
import subprocess
import sys

lib, program = sys.argv[1], sys.argv[2]
failures = []


def reach(args, preload, start_limit_mib=None, first=None):
    """MiB the program got, under the library (preload) or glibc. first: a library
    initialised before the preload (preloaded after it), whose constructor allocates."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_PERTURB_", None)  # glibc would fill every block it hands out
    env["LD_PRELOAD"] = ":".join(([lib] if preload else []) + ([first] if first else []))

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


MIB = 1 << 20
# (name, program arguments, limit set at start in MiB, library initialised first)
cases = [("1 MiB blocks, limit set at start: 1 GiB", [str(MIB), "plain", "start"], 1024, None),
         ("1 MiB blocks, limit set at start: 4 GiB", [str(MIB), "plain", "start"], 4096, None),
         ("1 MiB blocks, limit set at run time: 16 GiB", [str(MIB), "plain", "runtime", "16384"], None, None),
         ("1 MiB blocks, limit set at run time: 2 GiB", [str(MIB), "plain", "runtime", "2048"], None, None),
         # Below 2 GiB the region's frame part (128 MiB), which a program without frame
         # scopes never uses, must go back too.
         ("1 MiB blocks, limit set at run time: 1 GiB", [str(MIB), "plain", "runtime", "1024"], None, None),
         ("1 MiB blocks, limit set at run time: 512 MiB", [str(MIB), "plain", "runtime", "512"], None, None),
         ("16384-byte blocks, limit set at run time: 512 MiB", ["16384", "plain", "runtime", "512"], None, None),
         # The same again after every block was freed: what the heap keeps must be reusable.
         ("1 MiB blocks, a second time, limit set at run time: 1 GiB", [str(MIB), "again", "runtime", "1024"], None,
          None),
         ("1 MiB blocks, a second time, limit set at start: 1 GiB", [str(MIB), "again", "start"], 1024, None),
         # A frame part in use keeps what it holds; its never-used rest goes back.
         ("1 MiB blocks after a frame scope, limit set at run time: 1 GiB", [str(MIB), "used", "runtime", "1024"], None,
          None),
         ("1 MiB blocks after a frame scope, limit set at run time: 512 MiB", [str(MIB), "used", "runtime", "512"],
          None, None)]
# Sizes on one of jemalloc's classes, and sizes just above one (the next class is up
# to a quarter larger, address space the limit counts even when no page is touched):
# above 16, 32 and 64 KiB, between classes, above 128 KiB and above 1 MiB. In a frame
# scope only up to just above FRAMEALLOC_FRAME_MAX (64 KiB): larger blocks go to the
# heap there too.
for block in (16384, 16400, 20000, 32768, 32800, 65536, 65600, 100000, 131100, 1048676):
    for scope in ("plain", "frame") if block <= 65600 else ("plain",):
        where = " in a frame scope" if scope == "frame" else ""
        cases.append(("%d-byte blocks%s, limit set at start: 1 GiB" % (block, where), [str(block), scope, "start"],
                      1024, None))
        cases.append(("%d-byte blocks%s, limit set at run time: 2 GiB" % (block, where),
                      [str(block), scope, "runtime", "2048"], None, None))
# libstdc++'s constructor allocates (its exception pool) before the library's own
# constructor runs: the heap's settings must already hold for that first call.
cases.append(("16384-byte blocks, libstdc++ initialised first, limit set at start: 1 GiB",
              ["16384", "plain", "start"], 1024, "libstdc++.so.6"))


def glibc_args(args):
    """A frame scope is a no-op under glibc: one glibc run serves both scopes."""
    return tuple(a if a not in ("frame", "used") else "plain" for a in args)


# Two runs at a time (each takes seconds: up to 2 GiB of blocks, a page touched per block).
with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    glibc_runs, our_runs = {}, {}
    for name, args, start, first in cases:
        key = (glibc_args(args), start, first)
        if key not in glibc_runs:
            glibc_runs[key] = pool.submit(reach, list(key[0]), False, start, first)
        our_runs[name] = pool.submit(reach, args, True, start, first)
    for name, args, start, first in cases:
        glibc = glibc_runs[(glibc_args(args), start, first)].result()
        ours = our_runs[name].result()
        print("%s: glibc %d MiB, framealloc %d MiB (%.0f %%)" % (name, glibc, ours, 100.0 * ours / max(glibc, 1)))
        if ours < 0.9 * glibc:
            failures.append("%s: framealloc reached %d MiB, under 90 %% of glibc's %d MiB" % (name, ours, glibc))

for failure in failures:
    print("FAILED:", failure)
sys.exit(1 if failures else 0)

"""bench_common: what scripts/bench and scripts/bench-instructions share.

The allocators compared (peers from Debian packages, framealloc three ways, the two
references built in bench/), installing missing packages, building, the environment a
measured process gets, and the machine and revision written into every result."""
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = "/usr/lib/x86_64-linux-gnu"

# Preloads that live in the build directory, by token.
BUILT = {"FA": "libframealloc.so", "BUMP": "bench/libref_bump.so", "LINEAR": "bench/libref_linear.so"}

# name, column title, LD_PRELOAD (None: glibc; a BUILT token; else a path), harness
# args, extra environment, Debian package that provides the preload (None: built here).
ALLOCATORS = [
    ("glibc", "glibc", None, [], {}, None),
    ("jemalloc", "jemalloc", LIBDIR + "/libjemalloc.so.2", [], {}, "libjemalloc2"),
    ("mimalloc", "mimalloc", LIBDIR + "/libmimalloc.so.2.0", [], {}, "libmimalloc2.0"),
    ("tcmalloc", "tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4", [], {}, "libtcmalloc-minimal4"),
    ("fa", "framealloc", "FA", [], {}, None),
    ("fa-markers", "fa markers", "FA", ["--markers"], {}, None),
    ("fa-strict", "fa strict", "FA", ["--markers"], {"FRAMEALLOC_FRAME_MODE": "strict"}, None),
    ("bump", "naive bump", "BUMP", [], {}, None),
    ("linear", "linear", "LINEAR", ["--markers"], {}, None),
]
PEERS = ["jemalloc", "mimalloc", "tcmalloc"]
FRAMEALLOC = ["fa", "fa-markers", "fa-strict"]
REFERENCES = ["bump", "linear"]
# What fabench reports from /proc/self/maps for each, so a preload that silently
# failed cannot pass as a result.
EXPECTED = {"glibc": "glibc", "jemalloc": "jemalloc", "mimalloc": "mimalloc", "tcmalloc": "tcmalloc",
            "fa": "framealloc", "fa-markers": "framealloc", "fa-strict": "framealloc",
            "bump": "bump", "linear": "linear"}

BUILD_PACKAGES = ["build-essential", "meson", "ninja-build", "pkg-config", "libjemalloc-dev"]


def log(msg):
    print(msg, flush=True)


def select_allocators(spec, default_names):
    """spec: 'all' (default_names) or a comma list of names; exits on an unknown name."""
    if spec in (None, "", "all"):
        want = default_names
    else:
        want = [a.strip() for a in spec.split(",")]
        unknown = [w for w in want if w not in [a[0] for a in ALLOCATORS]]
        if unknown:
            sys.exit("unknown allocator(s) %s (known: %s)" % (", ".join(unknown), ", ".join(a[0] for a in ALLOCATORS)))
    return [a for a in ALLOCATORS if a[0] in want]


def missing_packages(packages):
    missing = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def install_packages(packages):
    """apt-get install of those not installed yet (as root, or through sudo)."""
    missing = missing_packages(packages)
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log("installing " + " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                   check=True, env=env, stdout=subprocess.DEVNULL)


def allocator_packages(allocs):
    return [a[5] for a in allocs if a[5]]


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        log("configuring " + build_dir)
        subprocess.run(["meson", "setup", build_dir], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    log("ninja -C " + build_dir)
    subprocess.run(["ninja", "-C", build_dir], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def preload_path(alloc, build_dir):
    """The LD_PRELOAD value for alloc, or None for glibc."""
    preload = alloc[2]
    if preload in BUILT:
        return os.path.join(build_dir, BUILT[preload])
    return preload


def run_env(alloc, build_dir):
    """The environment of a measured process: no inherited preload or framealloc
    settings, then the allocator's own."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FRAMEALLOC_")}
    preload = preload_path(alloc, build_dir)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(alloc[4])
    return env


def shown_env(alloc, env):
    """The environment part of a command line as one would retype it."""
    return " ".join("%s=%s" % (k, env[k]) for k in ("LD_PRELOAD", *alloc[4]) if k in env)


def machine_info():
    """(CPU model, logical CPUs)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return model, os.cpu_count()


def machine_line():
    model, cores = machine_info()
    return "%s, %d logical CPUs, %s" % (model, cores, platform.platform())


def git_describe():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"

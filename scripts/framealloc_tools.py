"""framealloc_tools: what the scripts in scripts/ share, written once.

- the allocators they compare, each with exactly one library: the peers from Debian
  packages (found by soname), framealloc and the two references built in bench/;
- installing missing Debian packages with apt-get, and building with meson and ninja;
- the environment a measured process starts with (nothing stray from the caller's shell);
- the benchmark scripts' common options and their allocator columns;
- the machine and revision written next to every result;
- ratios, and drawing charts with gnuplot.

Used by scripts/bench, bench-instructions, bench-records and framealloc-compare (which
is installed into libexec/framealloc/ with this file), so standard library only."""
import collections
import os
import platform
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout, when run from one

# ---- the allocators: one library each ----

# Peers: the soname to preload and the Debian package that provides it.
PEERS = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc2"),
    "mimalloc": ("libmimalloc.so.2", "libmimalloc2.0"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}
# Built here: the path inside the meson build directory.
BUILT = {
    "framealloc": "libframealloc.so",
    "bump": "bench/libref_bump.so",
    "linear": "bench/libref_linear.so",
}
# glibc is the one without a preload.

# Where the loader looks, Debian's multiarch directory first.
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/local/lib/x86_64-linux-gnu",
            "/usr/local/lib", "/usr/lib64", "/usr/lib", "/lib"]

BUILD_PACKAGES = ["build-essential", "meson", "ninja-build", "pkg-config", "libjemalloc-dev"]


def find_shared_library(name):
    """Path of an installed shared library: in the usual directories, else from the
    loader cache; None when it is not installed."""
    for d in LIB_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        parts = line.strip().split(" => ")
        if len(parts) == 2 and parts[0].split(" ")[0] == name and os.path.exists(parts[1]):
            return parts[1]
    return None


def library_path(allocator, build_dir):
    """The one library to preload for an allocator (None for glibc). A peer that is not
    installed gives None; a built one gives its path in build_dir, present or not."""
    if allocator in BUILT:
        return os.path.join(build_dir, BUILT[allocator])
    if allocator in PEERS:
        return find_shared_library(PEERS[allocator][0])
    return None


def package_of(allocator):
    """The Debian package with the allocator's library (None: built here or glibc)."""
    return PEERS[allocator][1] if allocator in PEERS else None


# ---- Debian packages and the build ----

def say(prog, message):
    print("%s: %s" % (prog, message), file=sys.stderr, flush=True)


def missing_packages(packages):
    missing = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in r.stdout and p not in missing:
            missing.append(p)
    return missing


_apt_updated = False


def install_packages(packages, prog):
    """apt-get install of those not installed yet, as root or through sudo (which may
    ask for a password only when there is a terminal). True when all are installed."""
    global _apt_updated
    missing = missing_packages(packages)
    if not missing:
        return True
    if not shutil.which("apt-get"):
        say(prog, "%s missing and no apt-get to install them" % " ".join(missing))
        return False
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo"):
        prefix = ["sudo"] if sys.stdin.isatty() else ["sudo", "-n"]
    else:
        say(prog, "%s missing; not root and no sudo to install them" % " ".join(missing))
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say(prog, "installing %s with apt-get" % " ".join(missing))
    steps = [["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing]
    if not _apt_updated:
        steps.insert(0, ["apt-get", "update", "-qq"])
    for cmd in steps:
        try:
            r = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            say(prog, "%s failed: %s" % (" ".join(cmd[:2]), e))
            return False
        if r.returncode != 0:
            say(prog, "%s failed: %s" % (" ".join(cmd[:2]), (r.stderr or r.stdout).strip()[-500:]))
            return False
        if cmd[1] == "update":
            _apt_updated = True
    return not missing_packages(missing)


def package_version(package):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def build(build_dir, prog):
    """meson setup (once) and ninja in build_dir; exits naming the command that failed."""
    steps = [["ninja", "-C", build_dir]]
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        steps.insert(0, ["meson", "setup", build_dir])
    for cmd in steps:
        say(prog, " ".join(cmd))
        r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            sys.exit("%s: build failed: %s" % (prog, " ".join(cmd)))


# ---- the environment of a measured process ----

# Inherited settings that would change the allocator under test: another preload,
# framealloc's settings, glibc's MALLOC_* (meson test sets MALLOC_PERTURB_) and
# jemalloc's MALLOC_CONF. A script sets what it measures on top of what is left.
STRAY_NAMES = ("LD_PRELOAD",)
STRAY_PREFIXES = ("FRAMEALLOC_", "MALLOC_")


def is_stray(name, prefixes=()):
    return name in STRAY_NAMES or name.startswith(STRAY_PREFIXES + tuple(prefixes))


def clean_environment(also_drop=()):
    """os.environ without stray settings (and names starting with also_drop)."""
    return {k: v for k, v in os.environ.items() if not is_stray(k, also_drop)}


# Set by the framealloc launcher for its helpers: left out too, but not worth a note.
LAUNCHER_NAMES = ("FRAMEALLOC_VERSION",)


def dropped_settings(also_drop=()):
    """The caller's settings clean_environment leaves out, sorted, for a note."""
    return sorted(k for k in os.environ if is_stray(k, also_drop) and k not in LAUNCHER_NAMES)


# ---- scripts/bench, bench-instructions and bench-records: options and columns ----

def command_line(prog):
    """How scripts/PROG was called, as its results record it."""
    return "scripts/" + prog + "".join(" " + shlex.quote(a) for a in sys.argv[1:])


def add_run_options(ap, prog, timeout, timeout_help, no_install_help="never call apt-get"):
    """The options of every benchmark script: --out (out/PROG), --build-dir,
    --no-build, --no-install and --timeout."""
    ap.add_argument("--out", default=os.path.join(ROOT, "out", prog), help="output directory (default out/%s)" % prog)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"), help="meson build directory (default build)")
    ap.add_argument("--no-build", action="store_true", help="use the build directory as it is")
    ap.add_argument("--no-install", action="store_true", help=no_install_help)
    ap.add_argument("--timeout", type=int, default=timeout, help=timeout_help)


def rounds_of(opts, prog):
    """--rounds, by default 5 (1 with --quick); exits when below 1."""
    rounds = opts.rounds if opts.rounds is not None else (1 if opts.quick else 5)
    if rounds < 1:
        sys.exit("%s: --rounds must be at least 1" % prog)
    return rounds



# name (--allocators), column title, allocator (its library above), harness
# arguments, extra environment. fabench and fainstr name the allocator they find
# mapped in their process, so a preload that silently failed cannot pass.
Column = collections.namedtuple("Column", "name title allocator args env")
BENCH_COLUMNS = [
    Column("glibc", "glibc", "glibc", [], {}),
    Column("jemalloc", "jemalloc", "jemalloc", [], {}),
    Column("mimalloc", "mimalloc", "mimalloc", [], {}),
    Column("tcmalloc", "tcmalloc", "tcmalloc", [], {}),
    Column("fa", "framealloc", "framealloc", [], {}),
    Column("fa-markers", "fa markers", "framealloc", ["--markers"], {}),
    Column("fa-strict", "fa strict", "framealloc", ["--markers"], {"FRAMEALLOC_FRAME_MODE": "strict"}),
    # Learned intent (no markers): learning on, observing one allocation in 64; no site
    # is routed (these harnesses end no frames outside marker runs). Only when named.
    Column("fa-learn", "fa learn", "framealloc", [], {"FRAMEALLOC_LEARN": "route"}),
    Column("bump", "naive bump", "bump", [], {}),
    Column("linear", "linear", "linear", ["--markers"], {}),
]
BENCH_PEERS = ["jemalloc", "mimalloc", "tcmalloc"]
BENCH_FRAMEALLOC = ["fa", "fa-markers", "fa-strict"]
BENCH_LEARNING = ["fa-learn"]  # only when asked for by name


def select_columns(spec, default_names):
    """spec: 'all' (default_names) or a comma list of names; exits on an unknown name."""
    if spec in (None, "", "all"):
        want = default_names
    else:
        want = [a.strip() for a in spec.split(",")]
        known = [c.name for c in BENCH_COLUMNS]
        unknown = [w for w in want if w not in known]
        if unknown:
            sys.exit("unknown allocator(s) %s (known: %s)" % (", ".join(unknown), ", ".join(known)))
    return [c for c in BENCH_COLUMNS if c.name in want]


def column_packages(columns):
    return [package_of(c.allocator) for c in columns if package_of(c.allocator)]


def column_env(column, build_dir):
    """A measured process's environment: clean, then the column's preload and settings."""
    env = clean_environment()
    preload = library_path(column.allocator, build_dir)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(column.env)
    return env


def shown_env(column, env):
    """The environment part of a command line as one would retype it."""
    return " ".join("%s=%s" % (k, env[k]) for k in ("LD_PRELOAD", *column.env) if k in env)


# ---- the machine and the revision ----

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine_info():
    """CPU model, logical CPUs, 1-minute load average, kernel and glibc versions."""
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "load": os.getloadavg()[0],
            "kernel": platform.release(), "glibc": platform.libc_ver()[1] or "unknown"}


def machine_line():
    """'CPU, N logical CPUs, Linux-KERNEL-...-with-glibcX' as results print it."""
    m = machine_info()
    return "%s, %d logical CPUs, %s" % (m["cpu"], m["cores"], platform.platform())


def git_describe():
    """Short revision of the checkout, marked when it has uncommitted changes."""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
    except OSError:
        return "unknown revision"
    if rev.returncode != 0:
        return "unknown revision"
    return rev.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


# ---- ratios ----

def ratio(value, base):
    """value / base, or None when there is no meaningful base."""
    if base is None or value is None or base == 0:
        return None
    return value / base


def median(values):
    """Median of a non-empty list (mean of the middle two for an even count)."""
    s = sorted(values)
    if not s:
        raise ValueError("median of no values")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def paired_ratio(samples, a, b):
    """Median over rounds of a's sample / b's sample in the same round, so that what
    slows a whole round cancels. samples[name][round] = value; None without a pair."""
    ra, rb = samples.get(a, {}), samples.get(b, {})
    ratios = [ratio(ra[r], rb[r]) for r in ra if r in rb]
    ratios = [x for x in ratios if x is not None]
    return median(ratios) if ratios else None


# ---- charts ----

def have_gnuplot(prog, install):
    """True when gnuplot is there (installing gnuplot-nox if allowed); says why not."""
    if shutil.which("gnuplot") or (install and install_packages(["gnuplot-nox"], prog) and shutil.which("gnuplot")):
        return True
    say(prog, "gnuplot not found%s: no charts" % (" and not installed" if install else ""))
    return False


def gnuplot(lines, png, prog, script_path=None):
    """Draws png with the gnuplot script lines (kept in script_path when given, else
    piped). png, or None (said on stderr) when gnuplot failed."""
    script = "\n".join(lines) + "\n"
    if script_path:
        with open(script_path, "w") as f:
            f.write(script)
        r = subprocess.run(["gnuplot", script_path], capture_output=True, text=True)
    else:
        r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(png):
        say(prog, "gnuplot failed: " + r.stderr.strip())
        return None
    return png

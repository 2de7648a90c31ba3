#!/usr/bin/env python3
"""Runs the records test programs under LD_PRELOAD=libframealloc.so and checks their
reports (summary.txt, report.json, *.folded). Standard library only.

    check_records.py TEST --preload LIB --workdir DIR [--exe EXE] [--source SRC] [--plugin SO]

TEST is one of the functions named test_* below. Exits 0 when every check holds,
1 with the first failed check, 77 (meson's "skipped") when the test cannot run here.
Each check prints one "ok" line, so a test log says what was verified.

Sites are found by their innermost frame: function name, source file and line. The
line comes from the "@site:NAME" marker comment in the program's source, so editing
a test program never needs a new number here. The compiler may duplicate a call
(loop peeling), which makes several call sites with the same innermost frame; they
are added up.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT_FILES = ["summary.txt", "report.json", "allocations.folded", "live.folded", "escapes.folded"]
# The keys src/report.c writes into report.json.
TOP_KEYS = {"pid": int, "mode": str, "sample_rate_bytes": int, "records": int, "estimated_bytes": int,
            "frames": int, "arena_frame_escapes": int, "sites": list, "tags": list}
SITE_KEYS = {"id": int, "alloc_count": int, "alloc_bytes": int, "live_count": int, "live_bytes": int,
             "escape_count": int, "escape_bytes": int, "samples": int, "intent": str, "stack": list}
FRAME_KEYS = {"address": str, "function": str, "line": int, "inlined": bool, "module": str}
TAG_KEYS = {"name": str, "live_bytes": int, "peak_bytes": int, "alloc_bytes": int, "budget": int}
FULL = {"FRAMEALLOC_RECORDS": "full"}
SKIP = 77


class Failure(Exception):
    pass


def check(cond, what):
    """One check: prints it when it holds, fails the test when it does not."""
    if not cond:
        raise Failure(what)
    print("ok    " + what, flush=True)


# ---- running programs ----

def run(argv, preload=None, env=None, timeout=60, expect_rc=0):
    """Runs argv with a clean FRAMEALLOC_* environment; returns (stdout, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FRAMEALLOC_")}
    full_env.update(env or {})
    if preload:
        full_env["LD_PRELOAD"] = preload
    shown = " ".join("%s=%s" % kv for kv in sorted((env or {}).items()))
    shown = ("LD_PRELOAD=%s " % preload if preload else "") + shown + " " + " ".join(argv)
    try:
        proc = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise Failure("timed out after %d s (deadlock?): %s\n%s" % (timeout, shown, err[-2000:]))
    if expect_rc is not None and proc.returncode != expect_rc:
        how = ("killed by signal %d" % -proc.returncode) if proc.returncode < 0 else "exit %d" % proc.returncode
        raise Failure("%s (expected exit %d): %s\nstdout:\n%s\nstderr:\n%s" % (
            how, expect_rc, shown, proc.stdout[-2000:], proc.stderr[-3000:]))
    print("ran   " + shown.strip(), flush=True)
    return proc.stdout, proc.stderr


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def markers(source):
    """{name: line} for every "@site:name" comment in source."""
    found = {}
    with open(source) as f:
        for number, line in enumerate(f, 1):
            for name in re.findall(r"@site:(\w+)", line):
                found[name] = number
    return found


def expectations(stdout, word):
    """Lines 'WORD name key=value ...' printed by a test program -> {name: {key: int}}."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] == word:
            found[parts[1]] = {k: int(v) for k, v in (p.split("=", 1) for p in parts[2:])}
    return found


# ---- reading a report ----

class Report:
    def __init__(self, directory):
        self.dir = directory
        missing = [n for n in REPORT_FILES if not os.path.isfile(os.path.join(directory, n))]
        check(not missing, "%s: %s written%s" % (directory, ", ".join(REPORT_FILES),
                                                 " (missing: %s)" % ", ".join(missing) if missing else ""))
        with open(os.path.join(directory, "summary.txt")) as f:
            self.summary_text = f.read()
        self.sections, self.tags = parse_summary(self.summary_text)
        try:
            with open(os.path.join(directory, "report.json")) as f:
                self.json = json.load(f)
        except ValueError as e:
            raise Failure("%s/report.json does not parse: %s" % (directory, e))
        check_json_schema(self.json, directory)
        self.folded = {name: read_folded(os.path.join(directory, name + ".folded"))
                       for name in ("allocations", "live", "escapes")}

    def sites_at(self, function, source, line):
        """JSON sites whose innermost frame is function at source:line."""
        base = os.path.basename(source)
        return [s for s in self.json["sites"] if s["stack"] and frame_is(s["stack"][0], function, base, line)]

    def total(self, sites, key):
        return sum(s[key] for s in sites)

    def section(self, starts_with):
        for title, entries in self.sections.items():
            if title.startswith(starts_with):
                return entries
        raise Failure("%s/summary.txt has no section starting %r (has: %s)" % (
            self.dir, starts_with, ", ".join(self.sections)))

    def entries_at(self, section, function, source, line):
        """Summary entries in section whose first frame is function (file:line)."""
        base = os.path.basename(source)
        return [e for e in self.section(section) if e["frames"] and e["frames"][0][0] == function
                and os.path.basename(e["frames"][0][1] or "") == base and e["frames"][0][2] == line]


def frame_is(frame, function, base, line):
    return (frame["function"] == function and frame.get("file") is not None
            and os.path.basename(frame["file"]) == base and frame["line"] == line)


def check_json_schema(report, where):
    problems = [key for key, kind in TOP_KEYS.items() if not isinstance(report.get(key), kind)]
    check(not problems and report["mode"] in ("sample", "full"),
          "%s/report.json: the documented top-level keys, mode sample or full%s" % (
              where, " (missing or wrong: %s)" % ", ".join(problems) if problems else ""))
    for s in report["sites"]:
        for key, kind in SITE_KEYS.items():
            if not isinstance(s.get(key), kind):
                problems.append("site %s: %r" % (s.get("id"), key))
        if "tag" not in s or not (s["tag"] is None or isinstance(s["tag"], str)):
            problems.append("site %s: tag" % s.get("id"))
        for fr in s.get("stack") or []:
            for key, kind in FRAME_KEYS.items():
                if not isinstance(fr.get(key), kind):
                    problems.append("site %s frame: %r" % (s.get("id"), key))
            if "file" not in fr or not (fr["file"] is None or isinstance(fr["file"], str)):
                problems.append("site %s frame: file" % s.get("id"))
        if not s.get("stack"):
            problems.append("site %s: empty stack" % s.get("id"))
    for t in report["tags"]:
        for key, kind in TAG_KEYS.items():
            if not isinstance(t.get(key), kind):
                problems.append("tag %s: %r" % (t.get("name"), key))
    check(not problems, "%s/report.json: every site, frame and tag has the documented keys%s" % (
        where, "" if not problems else " (missing or wrong: %s)" % "; ".join(problems[:5])))


FOLDED_LINE = re.compile(r"^(\S[^\n]*) ([1-9][0-9]*)$")


FOLDED_PLACE = re.compile(r" \(([^()]*):(\d+)\)$")


def folded_function(frame):
    """A folded frame's function, without its " (file.c:line)"."""
    return FOLDED_PLACE.sub("", frame)


def read_folded(path):
    """[(frames outermost first, value)]; checks every line's form. Frames are kept as
    written ("function (file.c:line)"); see folded_function."""
    rows, bad = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            m = FOLDED_LINE.match(line.rstrip("\n"))
            frames = m.group(1).split(";") if m else []
            if not m or any(not fr.strip() for fr in frames):
                bad.append("%d: %r" % (number, line[:200]))
                continue
            rows.append((frames, int(m.group(2))))
    check(not bad, "%s: every line is 'frame;frame;... <positive integer>'%s" % (
        path, "" if not bad else " (bad lines: %s)" % "; ".join(bad[:3])))
    return rows


ENTRY = re.compile(r"^  #\d+  (.+) in (\d+) allocations, live (.+) \((\d+)\), escaped (.+) \((\d+)\); "
                   r"intent (\w+)(?:, tag \"(.*)\")?$")
FRAME_WITH_LINE = re.compile(r"^        at (.*) \(([^()]*):(\d+)\)( \[inlined\])?$")
FRAME_WITHOUT = re.compile(r"^        at (.*) \[(.*)\]$")
TAG_LINE = re.compile(r"^  (\S+)\s+live (.+?)\s+peak (.+?)\s+allocated (.+?)\s+budget (.+)$")


def parse_summary(text):
    """({section title: [entry]}, {tag: {live, peak, allocated, budget}}), bytes as text."""
    sections, tags, title, entry = {}, {}, None, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            sections[title] = []
            continue
        if title is None:
            continue
        if title == "Tags":
            m = TAG_LINE.match(line)
            if m:
                tags[m.group(1)] = dict(zip(("live", "peak", "allocated", "budget"), m.groups()[1:]))
            continue
        m = ENTRY.match(line)
        if m:
            entry = {"alloc": m.group(1), "alloc_count": int(m.group(2)), "live": m.group(3),
                     "live_count": int(m.group(4)), "escaped": m.group(5), "escape_count": int(m.group(6)),
                     "intent": m.group(7), "tag": m.group(8), "frames": []}
            sections[title].append(entry)
            continue
        m = FRAME_WITH_LINE.match(line)
        if m and entry is not None:
            entry["frames"].append((m.group(1), m.group(2), int(m.group(3)), bool(m.group(4))))
            continue
        m = FRAME_WITHOUT.match(line)
        if m and entry is not None:
            entry["frames"].append((m.group(1), None, 0, False))
    return sections, tags


UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def close_to(text, value):
    """True if the summary's '31.2 KiB' shows value to its one decimal."""
    number, unit = text.split()
    scale = UNITS[unit]
    return abs(float(number) * scale - value) <= (0.1 * scale if scale > 1 else 0)


def folded_total(rows, last_function):
    return sum(v for frames, v in rows if folded_function(frames[-1]) == last_function)


REPORT_DIR = re.compile(r"^(?P<pid>\d+)(?:\.(?P<n>\d+))?(?:-(?P<again>\d+))?$")


def report_dirs(base, program):
    """{(program, pid, snapshot, again): path} for the per-process report directories
    under FRAMEALLOC_REPORT=base: NAME.PID (exit, snapshot 0), NAME.PID.N (snapshot N),
    with "-K" when the name was taken (again 1 without it)."""
    found = {}
    for entry in sorted(os.listdir(base)):
        m = REPORT_DIR.match(entry[len(program) + 1:]) if entry.startswith(program + ".") else None
        if m and os.path.isdir(os.path.join(base, entry)):
            key = (program, int(m.group("pid")), int(m.group("n") or 0), int(m.group("again") or 1))
            found[key] = os.path.join(base, entry)
    return found


def exit_report(base, exe, pid=None):
    """The directory of exe's exit report under base (BASE/NAME.PID): the only one, or pid's."""
    name = os.path.basename(exe)
    dirs = [path for (_, p, n, _), path in report_dirs(base, name).items() if n == 0 and pid in (None, p)]
    check(len(dirs) == 1, "%s: one exit report directory %s.%s (found: %s)" % (
        base, name, pid or "PID", ", ".join(os.listdir(base)) if os.path.isdir(base) else "no directory"))
    return dirs[0]


# ---- the tests ----

def test_sites(a):
    """Leak, escape and churn sites under FRAMEALLOC_RECORDS=full."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    out, _ = run([a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=os.path.join(work, "report")))
    expect = expectations(out, "expect")
    r = Report(exit_report(os.path.join(work, "report"), a.exe))
    check(r.summary_text.startswith("framealloc records report") and "\nmode: full" in r.summary_text,
          "summary.txt starts with the title and says mode: full")
    check(r.json["mode"] == "full", "report.json mode is full")
    src = a.source

    leak = r.sites_at("leak_site", src, lines["leak"])
    check(leak, "report.json has a site at leak_site (sites.c:%d)" % lines["leak"])
    check(all(s["stack"][1]["function"] == "main" for s in leak), "leak_site's caller is main")
    want = expect["leak"]
    check(r.total(leak, "live_count") == want["count"] and r.total(leak, "live_bytes") == want["bytes"],
          "leak site: live_count %d, live_bytes %d (report: %d, %d)" % (
              want["count"], want["bytes"], r.total(leak, "live_count"), r.total(leak, "live_bytes")))
    check(r.total(leak, "alloc_count") == want["count"], "leak site: alloc_count %d" % want["count"])
    entries = r.entries_at("Still allocated", "leak_site", src, lines["leak"])
    check(sum(e["live_count"] for e in entries) == want["count"],
          "summary.txt leaks section: leak_site (sites.c:%d) live count %d" % (lines["leak"], want["count"]))
    check(len(entries) == 1 and close_to(entries[0]["live"], want["bytes"]),
          "summary.txt leaks section shows %d B live for leak_site (%s)" % (
              want["bytes"], entries[0]["live"] if entries else "none"))

    esc = r.sites_at("escape_site", src, lines["escape"])
    want = expect["escape"]
    check(esc, "report.json has a site at escape_site (sites.c:%d)" % lines["escape"])
    check(r.total(esc, "escape_count") == want["count"] and r.total(esc, "escape_bytes") == want["bytes"],
          "escape site: escape_count %d, escape_bytes %d (report: %d, %d)" % (
              want["count"], want["bytes"], r.total(esc, "escape_count"), r.total(esc, "escape_bytes")))
    check(all(s["intent"] == "frame" for s in esc), "escape site: intent frame")
    check(r.total(esc, "live_count") == 0, "escape site: live 0 after the late frees")
    entries = r.entries_at("Frame escapes", "escape_site", src, lines["escape"])
    check(sum(e["escape_count"] for e in entries) == want["count"] and all(e["intent"] == "frame" for e in entries),
          "summary.txt escapes section: escape_site (sites.c:%d) escaped %d, intent frame" % (
              lines["escape"], want["count"]))
    check(not r.entries_at("Still allocated", "escape_site", src, lines["escape"]),
          "summary.txt: escape_site is not among the leaks")
    check(not r.entries_at("Frame escapes", "leak_site", src, lines["leak"]),
          "summary.txt: leak_site is not among the escapes")

    churn = r.sites_at("churn_site", src, lines["churn"])
    want = expect["churn"]
    check(r.total(churn, "alloc_count") == want["count"] and r.total(churn, "alloc_bytes") == want["bytes"],
          "churn site: alloc_count %d, alloc_bytes %d" % (want["count"], want["bytes"]))
    check(churn and r.total(churn, "live_count") == 0 and r.total(churn, "live_bytes") == 0, "churn site: live 0")
    check(not r.entries_at("Still allocated", "churn_site", src, lines["churn"]),
          "summary.txt: churn_site is not among the leaks")
    check(r.entries_at("Top call sites by bytes", "churn_site", src, lines["churn"]),
          "summary.txt: churn_site is among the top sites by bytes")

    # Folded stacks: outermost first, the site function last, values as in the JSON.
    live = [[folded_function(x) for x in f] for f, _ in r.folded["live"] if folded_function(f[-1]) == "leak_site"]
    check(live and all(f[0] == "_start" and f[-2] == "main" for f in live),
          "live.folded: leak_site stacks run _start;...;main;leak_site (outermost first)")
    check(folded_total(r.folded["live"], "leak_site") == expect["leak"]["bytes"],
          "live.folded: leak_site %d bytes" % expect["leak"]["bytes"])
    check(folded_total(r.folded["live"], "churn_site") == 0, "live.folded: no churn_site line")
    check(folded_total(r.folded["escapes"], "escape_site") == expect["escape"]["bytes"],
          "escapes.folded: escape_site %d bytes" % expect["escape"]["bytes"])
    check(folded_total(r.folded["allocations"], "churn_site") == expect["churn"]["bytes"],
          "allocations.folded: churn_site %d bytes" % expect["churn"]["bytes"])


def sample_estimates(a, rate_kib, key, tolerance):
    """Runs the sample workload at rate_kib and compares the report's key (alloc_bytes
    or alloc_count) per site with the truth the program prints."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    out, _ = run([a.exe], a.preload, {"FRAMEALLOC_RECORDS": "sample", "FRAMEALLOC_RECORDS_RATE": str(rate_kib),
                                      "FRAMEALLOC_REPORT": os.path.join(work, "report")})
    truth = expectations(out, "truth")
    r = Report(exit_report(os.path.join(work, "report"), a.exe))
    check(r.json["mode"] == "sample" and r.json["sample_rate_bytes"] == rate_kib * 1024,
          "report.json: mode sample, sample_rate_bytes %d" % (rate_kib * 1024))
    calls = sum(t["count"] for t in truth.values())
    check(0 < r.json["records"] < calls // 4, "sampled: %d records for %d allocations" % (r.json["records"], calls))
    field = "bytes" if key == "alloc_bytes" else "count"
    for name, t in sorted(truth.items()):
        marker = name.replace("_site", "")
        sites = r.sites_at(name, a.source, lines[marker])
        got = r.total(sites, key)
        err = got / t[field] - 1
        check(abs(err) <= tolerance, "%s: estimated %s %d vs true %d (%+.1f%%, allowed ±%d%%)" % (
            name, key, got, t[field], 100 * err, round(100 * tolerance)))


def test_sample(a):
    """Estimated bytes per site under FRAMEALLOC_RECORDS=sample, within ±10%.

    At one sample per 8 KiB on average, the smallest site (600 000 x 64 B = 38.4 MB)
    gets about 4 700 samples: the relative standard deviation of its estimate is about
    1.5%, so ±10% is more than 6 standard deviations (a correct implementation fails
    less than once in 10^9 runs), while a factor-2 bias is far outside. The 1000 B and
    20 000 B sites get about 35 000 and 91 000 samples (deviations 0.5% and 0.1%)."""
    sample_estimates(a, 8, "alloc_bytes", 0.10)


def test_sample_counts(a):
    """Estimated allocation counts per site under sampling, within ±10%.

    At one sample per 16 KiB the 20 000 B site is sampled with probability 0.70; each
    sample must stand for 1/0.70 = 1.42 allocations. The smallest site gets about
    2 300 samples (deviation 2.1%, so ±10% is 4.8 deviations)."""
    sample_estimates(a, 16, "alloc_count", 0.10)


def test_dlopen(a):
    """Recording while another thread dlopens and dlcloses: must finish."""
    work = fresh_dir(a.workdir)
    lines = markers(a.source)
    for label, env in (("full", FULL), ("sample, 1 KiB", {"FRAMEALLOC_RECORDS": "sample",
                                                          "FRAMEALLOC_RECORDS_RATE": "1"})):
        exit_dir = os.path.join(work, label.split(",")[0] + "-exit")
        during = os.path.join(work, label.split(",")[0] + "-during")
        out, _ = run([a.exe, a.plugin, during, "3000"], a.preload, dict(env, FRAMEALLOC_REPORT=exit_dir), timeout=30)
        check("loads 3000" in out, "%s: 3000 dlopen/dlclose rounds finished within 30 s" % label)
        Report(during)
        r = Report(exit_report(exit_dir, a.exe))
        workers = [s for s in r.json["sites"] if s["stack"][0]["function"] == "worker_site"
                   and s["stack"][0]["line"] == lines["worker"]]
        check(len(workers) >= 12 and r.total(workers, "alloc_count") > 0,
              "%s: exit report has the worker sites (%d stacks at worker_site)" % (label, len(workers)))


def test_fork(a):
    """fork while threads allocate: children report on their own, the parent's report is intact."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    parent_dir = os.path.join(work, "parent")
    out, _ = run([a.exe, work], a.preload, dict(FULL, FRAMEALLOC_REPORT=parent_dir), timeout=45)
    children = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"^child (\d+) pid (\d+)$", out, re.M)}
    parent_pid = int(re.search(r"^parent pid (\d+)$", out, re.M).group(1))
    check(len(children) == 6, "6 children forked, each exited 0")
    for n, pid in sorted(children.items()):
        r = Report(os.path.join(work, "child-%d" % n))
        check(r.json["pid"] == pid, "child %d: report.json pid is the child's (%d)" % (n, pid))
        mine = r.sites_at("child_site", a.source, lines["child"])
        check(r.total(mine, "live_count") == 10, "child %d: child_site live_count 10 (report: %d)" % (
            n, r.total(mine, "live_count")))
        churn = r.sites_at("child_churn", a.source, lines["child_churn"])
        check(r.total(churn, "alloc_count") == 1000 and r.total(churn, "live_count") == 0,
              "child %d: child_churn alloc_count 1000, live 0" % n)
        inherited = r.sites_at("parent_site", a.source, lines["parent"])
        check(r.total(inherited, "live_count") == 5, "child %d: the parent's 5 live blocks are still listed" % n)
    # Every process's exit report in its own directory: the children's do not replace the parent's.
    exits = {pid: path for (_, pid, n, _), path in report_dirs(parent_dir, os.path.basename(a.exe)).items() if n == 0}
    check(sorted(exits) == sorted([parent_pid] + list(children.values())),
          "FRAMEALLOC_REPORT holds one exit report per process, NAME.PID for the parent and each child (%s)" % (
              ", ".join(sorted(os.listdir(parent_dir)))))
    for n, pid in sorted(children.items()):
        r = Report(exits[pid])
        check(r.json["pid"] == pid and r.total(r.sites_at("child_site", a.source, lines["child"]), "live_count") == 10,
              "child %d: its exit report %s has its own pid and child_site's 10 blocks" % (n, os.path.basename(exits[pid])))
    r = Report(exit_report(parent_dir, a.exe, parent_pid))
    check(r.json["pid"] == parent_pid, "parent: report.json pid is the parent's (%d)" % parent_pid)
    check(r.total(r.sites_at("parent_site", a.source, lines["parent"]), "live_count") == 5,
          "parent: parent_site live_count 5")
    threads = r.sites_at("thread_site", a.source, lines["thread"])
    check(r.total(threads, "alloc_count") > 1000, "parent: thread_site recorded (%d allocations)" % (
        r.total(threads, "alloc_count")))
    child_frames = [s for s in r.json["sites"] if any(f["function"] in ("child_site", "child_churn", "child_main")
                                                      for f in s["stack"])]
    check(not child_frames, "parent: no site from the children's code")
    summary_live = sum(e["live_count"] for e in r.entries_at("Still allocated", "parent_site", a.source,
                                                                lines["parent"]))
    check(summary_live == 5, "parent: summary.txt leaks section lists parent_site with 5 blocks")


def test_tags(a):
    """Tags section (live, peak) and one budget warning with records on; one note with records off."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    out, err = run([a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=os.path.join(work, "report")))
    expect = expectations(out, "expect")
    warnings = [l for l in err.splitlines() if "over its budget" in l]
    check(len(warnings) == 1, "records on: exactly one budget warning on stderr (%d)" % len(warnings))
    check(warnings[0].startswith('framealloc: tag "ui" is over its budget') and "budget 4096" in warnings[0],
          "the warning names tag \"ui\" and its budget: %s" % warnings[0][:120])
    check("budgets are checked when" not in err, "records on: no records-off note")
    r = Report(exit_report(os.path.join(work, "report"), a.exe))
    tags = {t["name"]: t for t in r.json["tags"]}
    for name in ("ui", "audio"):
        want = expect[name]
        t = tags.get(name)
        check(t is not None and (t["live_bytes"], t["peak_bytes"], t["alloc_bytes"], t["budget"]) ==
              (want["live"], want["peak"], want["alloc"], want["budget"]),
              "report.json tag %s: live %d, peak %d, allocated %d, budget %d (report: %s)" % (
                  name, want["live"], want["peak"], want["alloc"], want["budget"], t))
        s = r.tags.get(name)
        check(s is not None and close_to(s["live"], want["live"]) and close_to(s["peak"], want["peak"]),
              "summary.txt Tags: %s live %d B, peak %d B (shown: %s)" % (name, want["live"], want["peak"], s))
    ui = r.sites_at("ui_site", a.source, lines["ui"])
    tagged = [s for s in ui if s["tag"] == "ui"]
    check(r.total(tagged, "alloc_count") == 13, "ui_site: 13 allocations under tag ui")
    check([s["tag"] for s in ui if s["tag"] != "ui"] == [None], "ui_site after fa_tag_pop: no tag")
    audio = r.sites_at("audio_site", a.source, lines["audio"])
    check(audio and all(s["tag"] == "audio" for s in audio), "audio_site (nested tag): tag audio")

    out_off, err_off = run([a.exe], a.preload)
    check(out_off == out, "records off: same output")
    notes = [l for l in err_off.splitlines() if l.strip()]
    check(len(notes) == 1 and notes[0].startswith("framealloc: fa_budget_set:")
          and "FRAMEALLOC_RECORDS" in notes[0],
          "records off: stderr is exactly the one note that budgets need records (%r)" % err_off[:300])


def test_signal(a):
    """The report signal: snapshot N written to NAME.PID.N at the next fa_frame_end, the exit report to NAME.PID."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    report = os.path.join(work, "report")
    os.makedirs(report)
    out, _ = run([a.exe, "10"], a.preload, dict(FULL, FRAMEALLOC_REPORT=report, FRAMEALLOC_REPORT_SIGNAL="10"))
    pid = int(re.search(r"^pid (\d+)$", out, re.M).group(1))
    name = os.path.basename(a.exe)
    for n in (1, 2):
        check("round %d: report written at fa_frame_end, not before" % n in out,
              "round %d: the program saw %s.%d.%d appear at fa_frame_end after raise(SIGUSR1)" % (n, name, pid, n))
        r = Report(os.path.join(report, "%s.%d.%d" % (name, pid, n)))
        live = sum(e["live_count"] for e in r.entries_at("Still allocated", "signal_site", a.source, lines["signal"]))
        check(live == 25 * n, "snapshot %d: lists signal_site with %d live blocks (%d)" % (n, 25 * n, live))
    check(sorted(report_dirs(report, name)) == [(name, pid, 0, 1), (name, pid, 1, 1), (name, pid, 2, 1)],
          "FRAMEALLOC_REPORT holds exactly %s.%d, %s.%d.1 and %s.%d.2" % (name, pid, name, pid, name, pid))
    r = Report(exit_report(report, a.exe, pid))
    check(r.total(r.sites_at("signal_site", a.source, lines["signal"]), "live_count") == 50,
          "exit report: signal_site 50 live blocks")


def test_signal_records_off(a):
    """The report signal with records off: the program keeps running when the signal
    comes (it used to be killed by it), and stderr says once that no report is written."""
    for signo in ("10", "SIGRTMIN+2"):
        number = "36" if signo.startswith("SIGRT") else signo
        out, err = run([a.exe, number, "off"], a.preload, {"FRAMEALLOC_REPORT_SIGNAL": signo})
        check("records off: the program outlived the report signal" in out,
              "FRAMEALLOC_REPORT_SIGNAL=%s without records: the signal does not stop the program" % signo)
        note = "framealloc: FRAMEALLOC_REPORT_SIGNAL is set but records are off"
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith(note),
              "FRAMEALLOC_REPORT_SIGNAL=%s without records: one note on stderr (%r)" % (signo, err))


def test_off(a):
    """Records off: fa_report is -1, nothing is written, output as without the library."""
    work = fresh_dir(a.workdir)
    report = os.path.join(work, "report")
    state = os.path.join(work, "state")
    runs = [("without the library", None, {}),
            ("with the library, defaults", a.preload, {}),
            ("FRAMEALLOC_RECORDS=off, FRAMEALLOC_REPORT set", a.preload,
             {"FRAMEALLOC_RECORDS": "off", "FRAMEALLOC_REPORT": report}),
            ("FRAMEALLOC_REPORT set, records unset", a.preload, {"FRAMEALLOC_REPORT": report})]
    base = None
    for label, preload, env in runs:
        out, err = run([a.exe, report, state], preload, env)
        with open(state) as f:
            active = f.read().strip()
        check(active == ("active=1" if preload else "active=0"), "%s: %s" % (label, active))
        check("fa_report(dir) = -1" in out and "fa_report(NULL) = -1" in out, "%s: fa_report returns -1" % label)
        check(not os.path.exists(report), "%s: no report directory written" % label)
        check(sorted(os.listdir(work)) == ["state"], "%s: nothing else written" % label)
        note = "framealloc: FRAMEALLOC_REPORT is set but records are off"
        notes = [l for l in err.splitlines() if l.startswith(note)]
        check(len(notes) == (1 if "FRAMEALLOC_REPORT" in env else 0),
              "%s: %s" % (label, "one note that the report needs records" if env else "no note"))
        err = "\n".join(l for l in err.splitlines() if not l.startswith(note))
        if base is None:
            base = (out, err)
        else:
            check((out, err) == base, "%s: stdout and stderr (but the note) identical to the run without the library"
                  % label)


def test_cxx(a):
    """C++: demangled names and file:line for new, std::vector and std::string growth."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    out, _ = run([a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=os.path.join(work, "report")))
    check("exceptions caught 20 of 20" in out, "exceptions thrown and caught while recording")
    r = Report(exit_report(os.path.join(work, "report"), a.exe))
    leak = r.sites_at("game::spawn_widget(int)", a.source, lines["leak"])
    check(leak and r.total(leak, "live_count") == 50,
          "report.json: game::spawn_widget(int) at cxx.cpp:%d, live_count 50" % lines["leak"])
    entries = r.entries_at("Still allocated", "game::spawn_widget(int)", a.source, lines["leak"])
    check(sum(e["live_count"] for e in entries) == 50,
          "summary.txt leaks: game::spawn_widget(int) (cxx.cpp:%d) with 50 blocks" % lines["leak"])
    hud = [s for s in r.json["sites"] if any(f["function"] == "game::build_hud(int)" for f in s["stack"])]
    std = [s for s in hud if any(f["function"].startswith(("std::", "void std::")) for f in s["stack"])]
    check(std and all(s["intent"] == "frame" for s in std),
          "std::vector / std::string growth in game::build_hud: demangled std:: frames, intent frame")
    def innermost(s):  # the levels of the innermost return address: inlined functions, then its function
        return [f["function"] for f in s["stack"] if f["address"] == s["stack"][0]["address"]]
    check(any(n.startswith("std::__cxx11::basic_string") for s in std for n in innermost(s)),
          "std::string growth names std::__cxx11::basic_string")
    check(any("std::vector<int" in n for s in std for n in innermost(s)),
          "std::vector growth names std::vector<int")
    check(any(folded_function(f[-1]) == "game::spawn_widget(int)" and folded_function(f[-2]) == "main"
              for f, _ in r.folded["live"]),
          "live.folded: ...;main;game::spawn_widget(int)")
    check(not any(f["function"].startswith("_Z") for s in r.json["sites"] for f in s["stack"]),
          "no mangled names left in report.json")


def test_cxx_inline(a):
    """-O2 -g C++: each site names this program's file:line through the inlined STL
    frames (report.json, summary.txt, folded stacks); long names are whole."""
    lines = markers(a.source)
    base = os.path.basename(a.source)
    work = fresh_dir(a.workdir)
    out, _ = run([a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=os.path.join(work, "report")))
    check("enemies 2000 scores 2000" in out, "the program ran")
    r = Report(exit_report(os.path.join(work, "report"), a.exe))
    sites = r.json["sites"]

    def own_frame(stack, line):
        """Index of the first frame at base:line, or None."""
        return next((i for i, f in enumerate(stack) if f["file"] and os.path.basename(f["file"]) == base
                     and f["line"] == line), None)

    for name, std_word in (("new", None), ("vector", "std::vector<int"), ("string", "basic_string"),
                           ("registry", "std::")):
        line = lines[name]
        found = [(s, own_frame(s["stack"], line)) for s in sites]
        found = [(s, i) for s, i in found if i is not None]
        check(found, "report.json: a site names %s:%d (%s)" % (base, line, name))
        if std_word:
            through = [s for s, i in found if any(std_word in f["function"] and f["inlined"] for f in s["stack"][:i])]
            check(through, "report.json: %s:%d is reached through inlined %s... frames" % (base, line, std_word))
        check(any(s["stack"][i]["inlined"] and s["stack"][i]["function"].startswith("game::") for s, i in found),
              "report.json: the %s:%d frame is game::..., marked inlined (into main)" % (base, line))
        entries = [e for e in r.section("Top call sites by bytes") + r.section("Top call sites by number")
                   if any(os.path.basename(fr[1] or "") == base and fr[2] == line for fr in e["frames"])]
        check(entries, "summary.txt: a top site shows %s:%d" % (base, line))
        folded = [f for f, _ in r.folded["allocations"] if any(x.endswith("(%s:%d)" % (base, line)) for x in f)]
        check(folded, "allocations.folded: a stack with a frame at (%s:%d)" % (base, line))
    # new, directly in game::spawn inlined into main: the innermost frame is the program's.
    new_sites = [s for s in sites if own_frame(s["stack"], lines["new"]) == 0]
    check(sum(s["alloc_count"] for s in new_sites) == 2000 and sum(s["live_count"] for s in new_sites) == 2000,
          "new at %s:%d: 2000 allocations, 2000 live (leaked)" % (base, lines["new"]))
    leaks = [e for e in r.section("Still allocated") if e["frames"] and e["frames"][0][1:3] and
             os.path.basename(e["frames"][0][1] or "") == base and e["frames"][0][2] == lines["new"]]
    check(leaks and leaks[0]["frames"][0][0] == "game::spawn" and leaks[0]["frames"][0][3],
          "summary.txt leaks: first frame 'game::spawn (%s:%d) [inlined]'" % (base, lines["new"]))
    check(any(f[0] == "main" for f in leaks[0]["frames"][1:2]), "summary.txt leaks: then main")
    # Whole names: the std::map node allocation's names are thousands of characters.
    longest = max((f["function"] for s in sites for f in s["stack"]), key=len)
    check(len(longest) > 1000 and longest.count("<") == longest.count(">"),
          "report.json: function names are whole (longest %d characters, its <> balanced)" % len(longest))
    check(longest in r.summary_text, "summary.txt shows that name whole")
    check(not any(f["function"].startswith("_Z") for s in sites for f in s["stack"]), "no mangled names")


def two_runs(a, work):
    """Runs the diff program with N=100 (A) and N=300 (B), each with a frame log; returns
    the two FRAMEALLOC_REPORT directories."""
    bases = []
    for name, n in (("A", 100), ("B", 300)):
        base = os.path.join(work, name)
        run([a.exe, str(n)], a.preload, dict(FULL, FRAMEALLOC_REPORT=base,
                                             FRAMEALLOC_FRAMELOG=os.path.join(work, name + "-frames.csv")))
        bases.append(base)
    return bases


def run_script(name, *args, expect_rc=0):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", name)] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    check(proc.returncode == expect_rc, "%s exits %d (%d)%s" % (
        " ".join([name] + list(args)), expect_rc, proc.returncode,
        "" if proc.returncode == expect_rc else ": " + (proc.stderr or proc.stdout)[-1500:]))
    return proc.stdout


def test_diff(a):
    """framealloc-diff A B: the site that allocates more in B is listed as grown (bytes and
    count), the unchanged one is not, B's new leak is listed, frame times side by side."""
    lines = markers(a.source)
    base = os.path.basename(a.source)
    work = fresh_dir(a.workdir)
    dir_a, dir_b = two_runs(a, work)
    html = os.path.join(work, "diff.html")
    text = run_script("framealloc-diff", dir_a, dir_b, "--html", html)
    print(text)
    sections = {}
    for block in text.split("\n\n"):
        title, _, body = block.partition("\n")
        sections[title.rstrip(":")] = body
    grew = sections.get("Sites that grew (bytes allocated)", "")
    first = grew.splitlines()[:2]
    check(len(first) == 2 and "at grow_site (%s:%d)" % (base, lines["grow"]) in first[1],
          "the first grown site is grow_site (%s:%d): %s" % (base, lines["grow"], first))
    check("+195.3 KiB (+200%)" in first[0] and "97.7 KiB -> 293.0 KiB" in first[0] and "count 100 -> 300" in first[0],
          "grow_site: +200%% bytes, 97.7 KiB -> 293.0 KiB, count 100 -> 300 (%s)" % first[0].strip())
    steady = "steady_site (%s:%d)" % (base, lines["steady"])
    check(steady not in grew and steady not in sections.get("Sites that shrank (bytes allocated)", ""),
          "steady_site (the same in both runs) neither grew nor shrank")
    leaks = sections.get("New leaks (more still allocated in B)", "")
    check("at leak_site (%s:%d)" % (base, lines["leak"]) in leaks and "count 0 -> 5" in leaks,
          "new leaks: leak_site with 5 blocks in B only")
    frames = next((b for t, b in sections.items() if t.startswith("Frame times (ms)")), "")
    rows = {l.split()[0]: l.split()[1:] for l in frames.splitlines() if l.strip()}
    check(rows.get("frames") == ["20", "20"] and "p99" in rows and "p50" in rows,
          "frame times side by side: 20 frames each, p50 and p99 (%s)" % frames.replace("\n", " | ")[:200])
    check(os.path.isfile(html), "the HTML page is written")
    with open(html) as f:
        page = f.read()
    data = json.loads(re.search(r'<script id="fa-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    check(data["kind"] == "diff" and any(frame_is(r["stack"][0], "grow_site", base, lines["grow"])
                                         for r in data["diff"]["grew"][:1]),
          "diff.html carries the same data: grow_site first among the grown sites")
    check(data["a"]["frames"]["stats"]["frames"] == 20 and data["b"]["frames"]["stats"]["frames"] == 20,
          "diff.html has both frame logs")
    bad = run_script("framealloc-diff", dir_a, os.path.join(work, "missing"), expect_rc=2)
    check(bad == "", "a missing report: exit 2, nothing on stdout")


# ---- the HTML page in a real browser ----

def png_pixels(path):
    """(width, height, rows of RGB(A) tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "%s is a PNG" % os.path.basename(path))
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    check(width and depth == 8 and colour in (2, 6), "the PNG is 8-bit RGB or RGBA")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if filt == 2:  # the common filters without a loop per byte in Python
            line = bytearray((x + u) & 255 for x, u in zip(line, prev))
            filt = 0
        for i in range(stride if filt else 0):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + left) & 255
            elif filt == 2:
                line[i] = (line[i] + up) & 255
            elif filt == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif filt == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--window-size=1100,1300"]


def chromium(browser, page, *extra):
    """(stdout, stderr) of one headless chromium run on page, with a new empty profile."""
    with tempfile.TemporaryDirectory(prefix="fa-chromium-") as profile:
        proc = subprocess.run([browser] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile] + list(extra) +
                              ["file://" + page], capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr


def check_page(browser, page, kind, work, must_show):
    name = os.path.basename(page)
    with open(page) as f:
        text = f.read()
    external = re.findall(r"""<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=|@import|url\(\s*['"]?(?:https?:)?//""",
                          text)
    check(not external, "%s: one self-contained file (no external script, style, image or font)" % name)
    dom, err = chromium(browser, page, "--dump-dom")
    errors = [l for l in err.splitlines() if "Uncaught" in l or ("CONSOLE" in l and "ERROR" in l)]
    check(not errors, "%s: loads with no console error%s" % (name, "" if not errors else ": " + errors[0][:300]))
    check('data-rendered="%s"' % kind in dom, "%s: the script ran to the end (data-rendered=%s)" % (name, kind))
    nodes = dom.count('class="fg-node"')
    check(nodes >= 5, "%s: the flame graph's rectangles were drawn by the script (%d)" % (name, nodes))
    check('class="series"' in dom, "%s: the frame-time chart has its line" % name)
    for word in must_show:
        check(word in dom, "%s: shows %s" % (name, word))
    shot = os.path.join(work, name + ".png")
    _, err = chromium(browser, page, "--screenshot=" + shot)
    check(os.path.isfile(shot), "%s: screenshot taken" % name)
    width, height, rows = png_pixels(shot)
    colours = {px for row in rows[::4] for px in row[::2]}
    background = max(set(rows[height // 2]), key=rows[height // 2].count)
    inked = sum(1 for row in rows[::8] for px in row[::4] if px != background)
    total = len(rows[::8]) * len(rows[0][::4])
    check(len(colours) >= 50 and inked > total // 20,
          "%s: the screenshot is not blank (%dx%d, %d colours, %d%% not background)" % (
              name, width, height, len(colours), 100 * inked // total))
    return shot


def test_html(a):
    """The report page and the diff page in headless chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("SKIP: chromium is not installed (Debian package chromium; scripts/install-deps): "
              "the HTML pages were not tested in a browser")
        sys.exit(SKIP)
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    dir_a, dir_b = two_runs(a, work)
    out = run_script("framealloc-report", dir_b)
    page = out.split()[0]
    check(page.endswith("/report.html") and os.path.dirname(page) == exit_report(dir_b, a.exe),
          "framealloc-report writes report.html next to summary.txt (%s)" % page)
    check_page(browser, page, "report", work, ["grow_site", "leak_site", "Frame times", "p99.9 (ms)",
                                               "diff.c:%d" % lines["grow"]])
    diff_page = os.path.join(work, "diff.html")
    run_script("framealloc-diff", dir_a, dir_b, "--html", diff_page)
    check_page(browser, diff_page, "diff", work, ["grow_site", "Sites that grew", "+200%"])


def test_report_after_dlopen(a):
    """A library loaded after the first report is symbolized in the next report."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    first, second = os.path.join(work, "first"), os.path.join(work, "second")
    run([a.exe, a.plugin, first, second], a.preload, FULL)
    Report(first)
    r = Report(second)
    named = [s for s in r.json["sites"] if s["stack"][0]["function"].startswith("plugin_work")]
    check(named, "second report: a site in plugin_work")
    shown = named[0]["stack"][0]
    check(r.sites_at("plugin_work", a.source, lines["plugin"]),
          "second report: plugin_work with dlplugin.c:%d (shown: %s %s:%s)" % (
              lines["plugin"], shown["function"], shown["file"], shown["line"]))


def names_live(r, a, lines):
    return r.total(r.sites_at("names_site", a.source, lines["names"]), "live_count")


def test_report_names(a):
    """FRAMEALLOC_REPORT=BASE: BASE/NAME.PID.N for each snapshot and BASE/NAME.PID at exit,
    BASE created with its parents; two processes of one launcher keep their own reports;
    a pid seen again (a new pid namespace, as in containers) gets NAME.PID-2."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    base = os.path.join(work, "not", "yet", "reports")
    name = os.path.basename(a.exe)
    out, err = run(["/bin/sh", "-c", '"$0"; "$0"', a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=base))
    pids = [int(p) for p in re.findall(r"^pid (\d+)$", out, re.M)]
    check(len(pids) == 2 and pids[0] != pids[1], "a launcher ran the program twice (pids %s)" % pids)
    check(out.count("snapshot 1 = 0") == 2 and out.count("snapshot 2 = 0") == 2, "fa_report(NULL) returned 0 each time")
    check(os.path.isdir(base), "FRAMEALLOC_REPORT and its missing parents were created")
    want = sorted((name, pid, n, 1) for pid in pids for n in (0, 1, 2))
    check(sorted(report_dirs(base, name)) == want, "BASE holds NAME.PID, NAME.PID.1, NAME.PID.2 for both runs (%s)" % (
        ", ".join(sorted(os.listdir(base)))))
    for pid in pids:
        for n, live in ((1, 10), (2, 20), (0, 40)):
            path = os.path.join(base, "%s.%d%s" % (name, pid, ".%d" % n if n else ""))
            r = Report(path)
            check(r.json["pid"] == pid and names_live(r, a, lines) == live,
                  "%s: pid %d, names_site %d live blocks (report: %d)" % (os.path.basename(path), pid, live,
                                                                        names_live(r, a, lines)))
            check(r.json.get("program") == name, "%s: report.json names the program" % os.path.basename(path))
            check(("records report written to %s" % path) in err, "stderr says where %s went" % os.path.basename(path))

    # Pid reuse: the program is pid 1 in a new pid namespace, twice.
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        print("SKIP  (part) no new pid namespace here (unshare --pid: %s): pid reuse not tested" %
              probe.stderr.decode(errors="replace").strip()[:200])
        return
    again = os.path.join(work, "again")
    for _ in range(2):
        run(["unshare", "--pid", "--fork", a.exe], a.preload, dict(FULL, FRAMEALLOC_REPORT=again))
    got = sorted(report_dirs(again, name))
    check(got == sorted((name, 1, n, k) for n in (0, 1, 2) for k in (1, 2)),
          "the same pid twice: the second run's reports are NAME.1-2, NAME.1.1-2, NAME.1.2-2 (%s)" % (
              ", ".join(sorted(os.listdir(again)))))
    for k, suffix in ((1, ""), (2, "-2")):
        r = Report(os.path.join(again, "%s.1%s" % (name, suffix)))
        check(names_live(r, a, lines) == 40, "%s.1%s: a whole exit report (40 live blocks)" % (name, suffix))


def test_report_files(a):
    """fa_report(DIR): DIR created with its parents; an older report of ours replaced; a
    symlink, a file of another owner or a hard-linked file in DIR left alone."""
    lines = markers(a.source)
    work = fresh_dir(a.workdir)
    deep = os.path.join(work, "a", "b", "explicit")
    out, _ = run([a.exe, deep], a.preload, FULL)
    check("fa_report(dir) = 0" in out, "fa_report(DIR) with missing parents returns 0")
    first = Report(deep)
    check(names_live(first, a, lines) == 30, "the report in DIR has names_site with 30 blocks")

    # The same DIR again: our own files are replaced by the new report.
    os.utime(os.path.join(deep, "summary.txt"), (0, 0))
    out, _ = run([a.exe, deep], a.preload, FULL)
    check("fa_report(dir) = 0" in out, "fa_report(DIR) over an older report of ours returns 0")
    second = Report(deep)
    check(second.json["pid"] != first.json["pid"] and os.path.getmtime(os.path.join(deep, "summary.txt")) > 0,
          "the older report was replaced (pid %d, then %d)" % (first.json["pid"], second.json["pid"]))

    # Files that are not ours.
    hostile = fresh_dir(os.path.join(work, "hostile"))
    victim = os.path.join(work, "victim.txt")
    linked = os.path.join(work, "linked.txt")
    for path in (victim, linked):
        with open(path, "w") as f:
            f.write("precious\n")
    os.symlink(victim, os.path.join(hostile, "summary.txt"))
    os.link(linked, os.path.join(hostile, "live.folded"))
    others = os.path.join(hostile, "report.json")
    with open(others, "w") as f:
        f.write("someone else's\n")
    chowned = os.geteuid() == 0
    if chowned:
        os.chown(others, 65534, 65534)
    out, err = run([a.exe, hostile], a.preload, FULL)
    check("fa_report(dir) = -1" in out, "fa_report(DIR) returns -1 when a file in DIR is not its to replace")
    for path in (victim, linked):
        with open(path) as f:
            check(f.read() == "precious\n", "%s unchanged (through a %s in DIR)" % (
                os.path.basename(path), "symlink" if path == victim else "hard link"))
    check(os.path.islink(os.path.join(hostile, "summary.txt")), "the symlink itself is left in place")
    check("summary.txt (it is a symlink)" in err and "live.folded is not a file of ours" in err,
          "stderr names the symlink and the hard-linked file")
    if chowned:
        with open(others) as f:
            check(f.read() == "someone else's\n" and "report.json is not a file of ours" in err,
                  "a file of another owner (uid 65534) is left alone, and stderr says so")
    else:
        print("SKIP  (part) not root: the file-of-another-owner case is not tested")
    rows = read_folded(os.path.join(hostile, "allocations.folded"))
    check(any(folded_function(f[-1]) == "names_site" for f, _ in rows), "the other files are still written (allocations.folded)")


def test_bench_smoke(a):
    """scripts/bench-records --quick prints its table (skipped without heaptrack)."""
    work = fresh_dir(a.workdir)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "bench-records"), "--quick", "--workloads",
           "fabench,python", "--no-build", "--build-dir", a.build_dir, "--out", work]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    print(proc.stdout[-4000:])
    if proc.returncode == SKIP:
        print("SKIP: " + (proc.stderr.strip().splitlines() or ["bench-records skipped"])[-1])
        sys.exit(SKIP)
    check(proc.returncode == 0, "bench-records --quick exits 0 (%d): %s" % (proc.returncode, proc.stderr[-2000:]))
    lines = proc.stdout.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("| workload | glibc | records off")), None)
    check(start is not None and "records=sample" in lines[start] and "records=full" in lines[start]
          and "heaptrack" in lines[start], "the table header names every column")
    rows = []
    for l in lines[start + 2:]:  # the first table: header, rule, then rows up to a blank line
        if not l.startswith("|"):
            break
        rows.append(l)
    check(len(rows) == 2 and all("failed" not in l for l in rows), "a row per workload, none failed")
    check(all(re.search(r"\| [0-9.]+ s \(1\.00×\) \|", l) for l in rows),
          "every row has times, and records off is 1.00× of itself")
    check(os.path.isfile(os.path.join(work, "bench-records.csv")), "the CSV is written")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test")
    ap.add_argument("--preload")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--exe")
    ap.add_argument("--source")
    ap.add_argument("--plugin")
    ap.add_argument("--build-dir")
    a = ap.parse_args()
    fn = globals().get("test_" + a.test)
    if not fn:
        sys.exit("check_records: unknown test %r" % a.test)
    a.workdir = os.path.abspath(a.workdir)
    try:
        fn(a)
    except Failure as e:
        print("FAIL  " + str(e), flush=True)
        sys.exit(1)
    print("PASS  " + a.test)


if __name__ == "__main__":
    main()

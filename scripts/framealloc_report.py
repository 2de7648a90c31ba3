"""Reading framealloc records reports and drawing them: the HTML report page
(scripts/report/report.html, one self-contained file), frame-time statistics from
a frame log, and the difference of two reports. Standard library only.

The report page also draws learned intent (FRAMEALLOC_LEARN's PROGRAM.PID.learn.json,
written next to the records directory PROGRAM.PID), and a learn report on its own
when records were off.

Used by scripts/framealloc-report (one report -> report.html) and
scripts/framealloc-diff (two reports -> text and diff.html). Other tools can draw
their own page with the same template:

    import framealloc_report as far
    html = far.render_html(far.compare_page("title", tables=[...], runs=[...]))

where a table is {"title", "columns": [names or {"title", "num": True}], "rows": [[cells]]}
and a run is {"name", "frames": far.frames_from_log(path)} (frame-time chart and
percentiles, one colour per name, framealloc drawn on top).
"""
import csv
import json
import os

from framealloc_stats import percentile

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "report", "report.html")
PLACEHOLDER = "@FRAMEALLOC_DATA@"
FOLDED = ("allocations", "live", "escapes")
LEARN_SUFFIX = ".learn.json"


class ReportError(Exception):
    pass


# ---- reports on disk ----

def is_report(path):
    return os.path.isfile(os.path.join(path, "report.json"))


def find_reports(path):
    """The report directories at path: path itself, or the per-process directories
    under a FRAMEALLOC_REPORT directory (PROGRAM.PID, PROGRAM.PID.N), oldest first."""
    if is_report(path):
        return [path]
    if not os.path.isdir(path):
        raise ReportError("%s: no such directory" % path)
    found = [os.path.join(path, e) for e in os.listdir(path) if is_report(os.path.join(path, e))]
    if not found:
        raise ReportError("%s: no report.json here or in its subdirectories (is it a FRAMEALLOC_REPORT directory?)"
                          % path)
    return sorted(found, key=lambda p: (os.path.getmtime(os.path.join(p, "report.json")), p))


def learn_of(directory):
    """The learn report of a records report directory: DIR/../NAME.PID.learn.json for
    DIR = NAME.PID (FRAMEALLOC_REPORT's layout), else the one *.learn.json inside DIR."""
    directory = os.path.normpath(directory)
    beside = directory + LEARN_SUFFIX
    if os.path.isfile(beside):
        return beside
    try:
        inside = sorted(e for e in os.listdir(directory) if e.endswith(LEARN_SUFFIX))
    except OSError:
        return None
    return os.path.join(directory, inside[0]) if len(inside) == 1 else None


def find_pages(path):
    """What framealloc-report draws from path, oldest first: dicts of "records" (a
    report directory or None), "learn" (a learn JSON or None) and "out" (the page's
    default path: report.html in the records directory, else NAME.PID.learn.html next
    to the learn JSON). path is a report directory, a FRAMEALLOC_REPORT directory of
    them and of learn reports, or one learn JSON."""
    if os.path.isfile(path) and path.endswith(LEARN_SUFFIX):
        records = path[:-len(LEARN_SUFFIX)]
        if is_report(records):
            return [{"records": records, "learn": path, "out": os.path.join(records, "report.html")}]
        return [{"records": None, "learn": path, "out": path[:-len(".json")] + ".html"}]
    if is_report(path):
        return [{"records": path, "learn": learn_of(path), "out": os.path.join(path, "report.html")}]
    if not os.path.isdir(path):
        raise ReportError("%s: no such directory" % path)
    pages = []
    for e in os.listdir(path):
        full = os.path.join(path, e)
        if is_report(full):
            pages.append({"records": full, "learn": learn_of(full), "out": os.path.join(full, "report.html"),
                          "time": os.path.getmtime(os.path.join(full, "report.json"))})
        elif e.endswith(LEARN_SUFFIX) and os.path.isfile(full) and not is_report(full[:-len(LEARN_SUFFIX)]):
            pages.append({"records": None, "learn": full, "out": full[:-len(".json")] + ".html",
                          "time": os.path.getmtime(full)})
    if not pages:
        raise ReportError("%s: no report.json or *%s here or in its subdirectories (is it a FRAMEALLOC_REPORT "
                          "directory?)" % (path, LEARN_SUFFIX))
    pages.sort(key=lambda p: (p.pop("time"), p["out"]))
    return pages


def load_learn(path):
    try:
        with open(path) as f:
            learn = json.load(f)
    except (OSError, ValueError) as e:
        raise ReportError("%s: %s" % (path, e))
    if not isinstance(learn, dict) or not isinstance(learn.get("sites"), list) or "counterfactual" not in learn:
        raise ReportError("%s is not a framealloc learn report" % path)
    return learn


def load_report(directory):
    try:
        with open(os.path.join(directory, "report.json")) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise ReportError("%s/report.json: %s" % (directory, e))
    if not isinstance(report, dict) or not isinstance(report.get("sites"), list):
        raise ReportError("%s/report.json is not a framealloc records report" % directory)
    return report


def read_folded(path):
    """[[frames outermost first], value] from a .folded file ([] when absent)."""
    rows = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                stack, _, value = line.rstrip("\n").rpartition(" ")
                if stack and value.isdigit():
                    rows.append([stack.split(";"), int(value)])
    except OSError:
        pass
    return rows


# ---- frame logs ----

def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_framelog(path):
    """Frame times in ms of the last run in a frame log: framealloc's CSV (frametime in
    ms) or MangoHud's (a header block, then fps,frametime,... with frametime in µs).
    The unit is checked against the fps column when there is one."""
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    runs, header, current = [], None, []
    for row in rows:
        if "frametime" in row:
            if current:
                runs.append((header, current))
            header, current = row, []
            continue
        if header is None or len(row) < len(header) - 1:
            continue
        values = dict(zip(header, row))
        if current and values.get("frame") == "1":  # framealloc's log: a new run appended
            runs.append((header, current))
            current = []
        current.append(values)
    if current:
        runs.append((header, current))
    if not runs:
        raise ReportError("%s: no frametime column" % path)
    header, values = runs[-1]
    times = [_number(v.get("frametime")) for v in values]
    fps = [_number(v.get("fps")) for v in values]
    pairs = [(t, p) for t, p in zip(times, fps) if t and p]
    if pairs:  # ms when fps * frametime is near 1000, µs when near 10^6
        ratio = sorted(t * p for t, p in pairs)[len(pairs) // 2]
        scale = 1.0 if ratio < 30000 else 0.001
    else:
        scale = 1.0 if header and header[0] == "frame" else 0.001
    return [t * scale for t in times if t is not None and t > 0]


def frame_stats(times_ms):
    s = sorted(times_ms)
    if not s:
        return None
    avg = sum(s) / len(s)
    p99, p999 = percentile(s, 99), percentile(s, 99.9)
    return {"frames": len(s), "avg_ms": avg, "p50_ms": percentile(s, 50), "p90_ms": percentile(s, 90),
            "p95_ms": percentile(s, 95), "p99_ms": p99, "p999_ms": p999, "max_ms": s[-1],
            "avg_fps": 1000.0 / avg, "low1_fps": 1000.0 / p99, "low01_fps": 1000.0 / p999}


def frames_from_log(path, note_if_missing=None):
    """{"source", "frametime_ms", "stats"} for a frame log, or {"note"} saying why not."""
    if not path:
        return {"note": note_if_missing or "no frame log: set FRAMEALLOC_FRAMELOG=path for frame times"}
    try:
        times = read_framelog(path)
    except (OSError, ReportError) as e:
        return {"note": "frame log %s not read: %s" % (path, e)}
    if not times:
        return {"note": "frame log %s has no frame times" % path}
    return {"source": path, "frametime_ms": [round(t, 4) for t in times], "stats": frame_stats(times)}


def framelog_of(report, directory, override=None):
    """The frame log of a report: override, else FRAMEALLOC_FRAMELOG as recorded in
    report.json (a file, or a directory holding logs named after the program)."""
    if override:
        return override, None
    setting = report.get("framelog")
    if not setting:
        return None, "no frame log: the run had no FRAMEALLOC_FRAMELOG (set it, or pass --framelog FILE)"
    candidates = [setting] if os.path.isabs(setting) else [setting, os.path.join(directory, setting),
                                                          os.path.join(os.path.dirname(directory), setting)]
    for c in candidates:
        if os.path.isfile(c):
            return c, None
        if os.path.isdir(c):
            program = report.get("program") or ""
            logs = [os.path.join(c, e) for e in os.listdir(c) if program in e and e.endswith(".csv")]
            if logs:
                return max(logs, key=os.path.getmtime), None
    return None, "frame log FRAMEALLOC_FRAMELOG=%s not found (pass --framelog FILE)" % setting


# ---- pages ----

def render_html(data):
    """The self-contained page for data (a dict with "kind": report, diff or compare)."""
    with open(TEMPLATE) as f:
        template = f.read()
    # "<" escaped, so no string in the data can close the script element.
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return template.replace(PLACEHOLDER, payload, 1)


def report_page(directory, framelog=None, learn=None):
    """The page of a records report directory, with the learn report at path learn
    when given; directory None: the learn report alone."""
    page = {"kind": "report", "report": None, "folded": {},
            "frames": frames_from_log(framelog, "no frame log: pass --framelog FILE for frame times")}
    if directory:
        report = load_report(directory)
        path, note = framelog_of(report, directory, framelog)
        page.update(report=report, frames=frames_from_log(path, note),
                    folded={k: read_folded(os.path.join(directory, k + ".folded")) for k in FOLDED})
    if learn:
        page["learn"] = load_learn(learn)
    return page


def compare_page(title, tables=(), runs=(), subtitle=""):
    return {"kind": "compare", "title": title, "subtitle": subtitle, "tables": list(tables), "runs": list(runs)}


def write_file(path, text):
    """Writes text to path through a new file renamed into place (no symlink followed)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---- two reports ----

def frame_place(f):
    return "%s (%s:%d)" % (f["function"], os.path.basename(f["file"]), f["line"]) if f.get("file") else f["function"]


def site_key(site):
    """A site's identity across runs: its stack by function, file name and line
    (addresses change from run to run)."""
    return tuple((f["function"], os.path.basename(f.get("file") or ""), f.get("line", 0)) for f in site["stack"])


def _by_key(report):
    sites = {}
    for s in report["sites"]:
        k = site_key(s)
        t = sites.setdefault(k, {"stack": s["stack"], "alloc_bytes": 0, "alloc_count": 0, "live_bytes": 0,
                                 "live_count": 0, "escape_bytes": 0, "escape_count": 0})
        for field in ("alloc_bytes", "alloc_count", "live_bytes", "live_count", "escape_bytes", "escape_count"):
            t[field] += s.get(field, 0)
    return sites


def _changes(a, b, kind, direction):
    rows = []
    for k in set(a) | set(b):
        x, y = a.get(k), b.get(k)
        ab, bb = (x or {}).get(kind + "_bytes", 0), (y or {}).get(kind + "_bytes", 0)
        delta = bb - ab
        if delta * direction <= 0:
            continue
        rows.append({"delta_bytes": delta, "a_bytes": ab, "b_bytes": bb,
                     "a_count": (x or {}).get(kind + "_count", 0), "b_count": (y or {}).get(kind + "_count", 0),
                     "new": x is None, "stack": (y or x)["stack"]})
    rows.sort(key=lambda r: (-abs(r["delta_bytes"]), [frame_place(f) for f in r["stack"]]))
    return rows


def diff_reports(a, b):
    """What changed from report a to report b (both report.json dicts)."""
    sa, sb = _by_key(a), _by_key(b)
    tags_a = {t["name"]: t for t in a.get("tags", [])}
    tags_b = {t["name"]: t for t in b.get("tags", [])}
    tags = []
    for name in sorted(set(tags_a) | set(tags_b)):
        x, y = tags_a.get(name, {}), tags_b.get(name, {})
        tags.append({"name": name, "a_peak": x.get("peak_bytes", 0), "b_peak": y.get("peak_bytes", 0),
                     "a_alloc": x.get("alloc_bytes", 0), "b_alloc": y.get("alloc_bytes", 0),
                     "budget": y.get("budget") or x.get("budget") or 0})
    return {"totals": {"a_bytes": a.get("estimated_bytes", 0), "b_bytes": b.get("estimated_bytes", 0),
                       "a_sites": len(sa), "b_sites": len(sb)},
            "grew": _changes(sa, sb, "alloc", 1), "shrank": _changes(sa, sb, "alloc", -1),
            "new_leaks": _changes(sa, sb, "live", 1), "new_escapes": _changes(sa, sb, "escape", 1), "tags": tags}


# ---- two comparison runs (framealloc compare --out A, --out B) ----

COMPARE_FIGURES = [("fps", "avg FPS"), ("low1", "1% low"), ("low01", "0.1% low"), ("mean", "mean ms"),
                   ("p99", "p99 ms"), ("p99.9", "p99.9 ms"), ("max", "max ms"), ("hitches", "hitches"),
                   ("rss_mib", "peak RSS MiB"), ("wall", "wall s"), ("cpu", "cpu s")]


def is_compare_run(path):
    return os.path.isfile(os.path.join(path, "summary.csv"))


def read_compare_summary(path):
    with open(os.path.join(path, "summary.csv"), newline="") as f:
        return {row["allocator"]: row for row in csv.DictReader(f)}


def diff_compare_runs(dir_a, dir_b):
    """The page for two comparison runs: per allocator in both, each figure of A, of B,
    and B divided by A."""
    a, b = read_compare_summary(dir_a), read_compare_summary(dir_b)
    rows = []
    for name in [n for n in a if n in b]:
        for key, title in COMPARE_FIGURES:
            va, vb = _number(a[name].get(key, "")), _number(b[name].get(key, ""))
            if va is None or vb is None:
                continue
            rows.append([name, title, "%.4g" % va, "%.4g" % vb, "%.3fx" % (vb / va) if va else ""])
    table = {"title": "Comparison runs: B against A", "columns": ["allocator", "figure", "A", "B", "B / A"],
             "rows": rows, "note": "A: %s; B: %s. Allocators in only one run: %s." % (
                 dir_a, dir_b, ", ".join(sorted(set(a) ^ set(b))) or "none")}
    return compare_page("framealloc diff of two comparison runs", [table], (), "%s -> %s" % (dir_a, dir_b))


def compare_diff_text(page):
    table = page["tables"][0]
    lines = ["%-18s %-14s %12s %12s %9s" % tuple(table["columns"])]
    lines += ["%-18s %-14s %12s %12s %9s" % tuple(row) for row in table["rows"]]
    return "\n".join(lines + ["", table["note"], ""])


def label(report, directory):
    return "%s pid %s, %s, %s" % (report.get("program", "?"), report.get("pid"), report.get("mode"),
                                  os.path.basename(os.path.normpath(directory)))


def diff_page(dir_a, dir_b, framelog_a=None, framelog_b=None):
    a, b = load_report(dir_a), load_report(dir_b)
    runs = []
    for name, report, directory, override in (("A", a, dir_a, framelog_a), ("B", b, dir_b, framelog_b)):
        path, note = framelog_of(report, directory, override)
        runs.append({"name": name, "label": label(report, directory), "dir": directory,
                     "frames": frames_from_log(path, note)})
    return {"kind": "diff", "a": runs[0], "b": runs[1], "diff": diff_reports(a, b),
            "folded": {k: read_folded(os.path.join(dir_b, k + ".folded")) for k in FOLDED}}


def format_bytes(n):
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v, u = abs(n), 0
    while v >= 1024 and u < len(units) - 1:
        v /= 1024.0
        u += 1
    text = ("%d %s" % (v, units[u])) if u == 0 else ("%.1f %s" % (v, units[u]))
    return ("-" if n < 0 else "") + text


def site_line(stack, depth=3):
    """The first frames of a stack that are not the allocator itself, innermost first."""
    skip = ("operator new", "malloc", "calloc", "realloc", "std::__new_allocator", "std::allocator_traits")
    frames = [f for f in stack if not f["function"].startswith(skip)] or stack
    return " <- ".join(frame_place(f) for f in frames[:depth])


def diff_text(page, top=15):
    d = page["diff"]
    out = ["framealloc diff", "  A: %s" % page["a"]["label"], "  B: %s" % page["b"]["label"],
           "allocated: %s -> %s; call sites: %d -> %d" % (
               format_bytes(d["totals"]["a_bytes"]), format_bytes(d["totals"]["b_bytes"]),
               d["totals"]["a_sites"], d["totals"]["b_sites"])]

    def block(title, rows, what):
        out.append("")
        out.append("%s:" % title)
        if not rows:
            out.append("  (none)")
        for r in rows[:top]:
            pct = "new" if not r["a_bytes"] else "%+d%%" % round(100.0 * r["delta_bytes"] / r["a_bytes"])
            out.append("  %s%s (%s)  %s %s -> %s, count %d -> %d" % (
                "+" if r["delta_bytes"] > 0 else "-", format_bytes(abs(r["delta_bytes"])), pct, what,
                format_bytes(r["a_bytes"]), format_bytes(r["b_bytes"]), r["a_count"], r["b_count"]))
            out.append("      at %s" % site_line(r["stack"]))
        if len(rows) > top:
            out.append("  ... and %d more" % (len(rows) - top))

    block("Sites that grew (bytes allocated)", d["grew"], "bytes")
    block("Sites that shrank (bytes allocated)", d["shrank"], "bytes")
    block("New leaks (more still allocated in B)", d["new_leaks"], "live")
    block("New frame escapes (more in B)", d["new_escapes"], "escaped")
    out.append("")
    out.append("Tags:")
    if not d["tags"]:
        out.append("  (none)")
    for t in d["tags"]:
        out.append("  %-24s peak %s -> %s, allocated %s -> %s%s" % (
            t["name"], format_bytes(t["a_peak"]), format_bytes(t["b_peak"]), format_bytes(t["a_alloc"]),
            format_bytes(t["b_alloc"]), ", budget %s" % format_bytes(t["budget"]) if t["budget"] else ""))
    out.append("")
    fa, fb = page["a"]["frames"], page["b"]["frames"]
    if fa.get("stats") and fb.get("stats"):
        out.append("Frame times (ms)      A          B")
        for name, key in (("frames", "frames"), ("average", "avg_ms"), ("p50", "p50_ms"), ("p90", "p90_ms"),
                          ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms"), ("average FPS", "avg_fps"),
                          ("1% low FPS", "low1_fps"), ("0.1% low FPS", "low01_fps")):
            x, y = fa["stats"][key], fb["stats"][key]
            fmt = "%10d" if key == "frames" else "%10.2f"
            out.append("  %-16s %s %s" % (name, fmt % x, fmt % y))
    else:
        out.append("Frame times: %s" % "; ".join("%s: %s" % (n, f.get("note") or "read")
                                                  for n, f in (("A", fa), ("B", fb))))
    return "\n".join(out) + "\n"

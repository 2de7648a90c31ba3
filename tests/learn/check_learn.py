#!/usr/bin/env python3
"""Runs learn_program (a loop without scopes: a temporary site, a persistent site)
under LD_PRELOAD=libframealloc.so with FRAMEALLOC_LEARN and checks what it prints and
the learn report (DIR/PROGRAM.PID.learn.json). Standard library only.

    check_learn.py TEST --preload LIB --exe learn_program --workdir DIR [--plugin LIB]

TEST names a test_* function below. Exits 0 when every check holds, 1 at the first
failed one; each check prints an "ok" line.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = {"FRAMEALLOC_LEARN_RATE": "4", "FRAMEALLOC_LEARN_WARMUP": "10"}


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print("ok:", what)


def run(opts, args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEALLOC_") and k != "LD_PRELOAD"}
    full.update(env)
    full["LD_PRELOAD"] = opts.preload
    shown = " ".join("%s=%s" % kv for kv in sorted(env.items()))
    print("run: %s %s %s" % (shown, opts.exe, " ".join(args)))
    proc = subprocess.run([opts.exe] + args, env=full, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise Failed("exit status %d; stderr:\n%s" % (proc.returncode, proc.stderr))
    return proc.stdout, proc.stderr


def numbers(out, pattern):
    m = re.search(pattern, out)
    if not m:
        raise Failed("output has no line matching %r:\n%s" % (pattern, out))
    return [int(g) for g in m.groups()]


def report(opts, stderr):
    files = glob.glob(os.path.join(opts.workdir, "report", "*.learn.json"))
    check(len(files) == 1, "one learn report in FRAMEALLOC_REPORT's directory (%s)" % files)
    with open(files[0]) as f:
        data = json.load(f)
    check(os.path.exists(files[0][:-5] + ".txt"), "and its text version")
    check("framealloc learn report" in stderr, "the text report on stderr")
    return data


def site(data, function):
    found = [s for s in data["sites"] if s["stack"] and function in s["stack"][0]["function"]]
    if not found:
        raise Failed("no site in %s; sites: %s" % (function, [s["stack"][:1] for s in data["sites"]]))
    return found[0]


def fresh_workdir(opts):
    shutil.rmtree(opts.workdir, ignore_errors=True)
    os.makedirs(opts.workdir)


def test_observe(opts):
    """Observe lists the temporary site as frame-temporary with its stack, the
    persistent one as not, gives the counterfactual, and routes nothing."""
    env = dict(FAST, FRAMEALLOC_LEARN="observe", FRAMEALLOC_REPORT=os.path.join(opts.workdir, "report"))
    out, err = run(opts, ["plain", "100"], env)
    temp, _, persist, _ = numbers(out, r"plain: temp (\d+) of (\d+) from frames, persist (\d+) of (\d+)")
    check(temp == 0 and persist == 0, "observe serves nothing from frame arenas")
    data = report(opts, err)
    check(data["mode"] == "observe" and data["frames"] == 100, "mode and frames in the report")
    t, p = site(data, "temp_alloc"), site(data, "persist_alloc")
    check(t["temporary"] and t["state"] == "temporary", "temp_alloc is frame-temporary")
    check(t["stack"][0]["file"].endswith("learn_program.c") and t["stack"][0]["line"] > 0,
          "its stack names the source line")
    check(t["freed_by_age"][0] >= 0.95 * t["allocations"], "temp_alloc's blocks die within their frame")
    check(abs(t["allocations"] - 20000) < 2000, "temp_alloc's estimated allocations near 20000 (%d)" % t["allocations"])
    check(not p["temporary"], "persist_alloc is not frame-temporary")
    check(p["freed_by_age"][0] == 0, "persist_alloc's blocks never die within their frame")
    c = data["counterfactual"]
    check(c["sites"] >= 1 and abs(c["allocations"] - t["allocations"]) <= t["allocations"] // 10 + 50,
          "counterfactual: frame arenas would serve temp_alloc's allocations")
    check(c["escapes"] <= c["allocations"] // 100, "counterfactual: under 1 % escapes")
    check(c["instructions_saved"] > 0 and c["pool_pair_instructions"] > c["frame_pair_instructions"],
          "counterfactual: instructions saved by the cost model")
    check(data["routed"]["frame_allocations"] == 0, "nothing routed")


def test_route(opts):
    """Route serves the temporary site from frames after the warm-up, never the persistent one."""
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_REPORT=os.path.join(opts.workdir, "report"))
    out, err = run(opts, ["plain", "100"], env)
    first, = numbers(out, r"first frame: temp (\d+) of")
    temp, total, persist, _ = numbers(out, r"plain: temp (\d+) of (\d+) from frames, persist (\d+) of (\d+)")
    check(first == 0, "nothing routed in the first frame (warm-up)")
    # 90 routed frames of 200; one allocation in four is observed (heap).
    check(temp >= 0.6 * 90 * 200, "temp_alloc served by frame arenas after the warm-up (%d of %d)" % (temp, total))
    check(persist == 0, "persist_alloc never served by frame arenas")
    data = report(opts, err)
    check(site(data, "temp_alloc")["state"] == "routed", "temp_alloc is routed in the report")
    check(site(data, "persist_alloc")["state"] == "observed", "persist_alloc is not")
    check(data["routed"]["frame_escapes"] == 0, "no frame escapes")
    m = re.search(r"persistent corrupted (\d+)", out)
    check(m and m.group(1) == "0", "persistent blocks intact")


def test_scoped(opts):
    """An explicit scope wins: inside fa_scope_push(FA_DEFAULT) a routed site gets the pools."""
    env = dict(FAST, FRAMEALLOC_LEARN="route")
    out, _ = run(opts, ["scoped", "60"], env)
    temp, = numbers(out, r"plain: temp (\d+) of")
    check(temp > 0, "temp_alloc routed before the scope (%d)" % temp)
    scoped, = numbers(out, r"scoped: temp (\d+) of")
    check(scoped == 0, "inside an explicit FA_DEFAULT scope nothing comes from frame arenas")


def test_escape(opts):
    """A routed site whose blocks start to outlive their frames keeps their data and
    is demoted."""
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_REPORT=os.path.join(opts.workdir, "report"))
    out, err = run(opts, ["escape", "100"], env)
    kept, served, last, bad = numbers(out, r"escape: kept (\d+), frame-served (\d+), in the last 10 frames (\d+), corrupted (\d+)")
    check(served > 0, "some escaping blocks were served by frame arenas before the demotion (%d)" % served)
    check(bad == 0, "every escaped block kept its contents (%d blocks)" % kept)
    check(last == 0, "after the demotion the site no longer uses frame arenas")
    data = report(opts, err)
    check(site(data, "temp_alloc")["state"] == "demoted", "temp_alloc is demoted in the report")
    check(data["routed"]["demoted"] >= 1, "one demotion counted")
    check(data["routed"]["frame_escapes"] > 0, "the frame arenas counted the escapes")


def test_profile(opts):
    """A profile saved by one run routes the temporary site from the first frame of the next."""
    profile = os.path.join(opts.workdir, "learned.profile")
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_LEARN_PROFILE=profile)
    run(opts, ["plain", "60"], env)
    with open(profile) as f:
        text = f.read()
    check(re.search(r"^route learn_program - [0-9a-f]+$", text, re.M),
          "the profile names a site of the executable by offset")
    with open(profile, "a") as f:
        f.write("route some_other_program - 1234\n")
    env["FRAMEALLOC_LEARN_WARMUP"] = "1000000"  # nothing may be learned in this run
    out, _ = run(opts, ["plain", "20"], env)
    first, = numbers(out, r"first frame: temp (\d+) of")
    _, _, persist = numbers(out, r"plain: temp (\d+) of (\d+) from frames, persist (\d+)")
    check(first >= 100, "second run: temp_alloc served by frame arenas in its first frame (%d of 200)" % first)
    check(persist == 0, "second run: persist_alloc is not")
    with open(profile) as f:
        check("route some_other_program - 1234\n" in f.read(), "another program's lines are kept")


def test_profile_dlopen(opts):
    """A profile's site in a library the program dlopens after start is routed from
    the library's first frame in the next run (the entry waits until the module loads)."""
    check(opts.plugin, "--plugin names the library")
    profile = os.path.join(opts.workdir, "learned.profile")
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_LEARN_PROFILE=profile)
    out, _ = run(opts, ["plugin", "60", opts.plugin], env)
    learned, = numbers(out, r"plugin: first frame temp \d+ of \d+, temp (\d+) of")
    check(learned > 0, "first run: the plugin's site is learned and routed (%d frame allocations)" % learned)
    with open(profile) as f:
        text = f.read()
    check(re.search(r"^route learn_program %s [0-9a-f]+$" % re.escape(opts.plugin), text, re.M),
          "the profile names a site of the plugin by module and offset")
    env = dict(env, FRAMEALLOC_LEARN_WARMUP="1000000",  # nothing may be learned in this run
               FRAMEALLOC_REPORT=os.path.join(opts.workdir, "report"))
    out, err = run(opts, ["plugin", "20", opts.plugin], env)
    first, total, of = numbers(out, r"plugin: first frame temp (\d+) of \d+, temp (\d+) of (\d+)")
    check(first >= 100, "second run: the plugin's site served by frame arenas in its first frame (%d of 200)" % first)
    check(total >= of // 2, "second run: and in every frame after (%d of %d)" % (total, of))
    data = report(opts, err)
    s = site(data, "plugin_temp_alloc")
    check(s["from_profile"] and s["state"] == "routed", "the report: plugin_temp_alloc routed, from the profile")
    check(data["profile"]["resolved_late"] >= 1 and data["profile"]["pending"] == 0,
          "the report: the entry was resolved after start, none left pending (%s)" % data["profile"])
    with open(profile) as f:
        check(re.search(r"^route learn_program %s [0-9a-f]+$" % re.escape(opts.plugin), f.read(), re.M),
              "the plugin's site is saved again")
    # A run that never loads the library keeps its entry for the next one.
    run(opts, ["plain", "20"], env)
    with open(profile) as f:
        check(re.search(r"^route learn_program %s [0-9a-f]+$" % re.escape(opts.plugin), f.read(), re.M),
              "a run without the plugin keeps its entry in the profile")


# ---- the HTML report (scripts/framealloc-report) ----

def run_report_tool(*args):
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "framealloc-report")] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    check(proc.returncode == 0, "framealloc-report %s exits 0%s" % (
        " ".join(args), "" if proc.returncode == 0 else ": " + (proc.stderr or proc.stdout)[-1500:]))
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def page_data(page):
    with open(page) as f:
        text = f.read()
    m = re.search(r'<script id="fa-data" type="application/json">(.*?)</script>', text, re.S)
    check(m, "%s holds its data" % os.path.basename(page))
    return text, json.loads(m.group(1))


def rendered_section(page, title):
    """The text of the section titled title in the page as headless chromium draws
    it, or None when chromium is not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("SKIP (part): chromium is not installed: the page was not drawn")
        return None
    with tempfile.TemporaryDirectory(prefix="fa-chromium-") as profile:
        proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--user-data-dir=" + profile, "--dump-dom", "file://" + page],
                              capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    check('data-rendered="report"' in dom, "%s: the page's script ran to the end" % os.path.basename(page))
    m = re.search(r"<section[^>]*><h2>%s</h2>(.*?)</section>" % re.escape(title), dom, re.S)
    check(m, "%s: the page shows a section %r" % (os.path.basename(page), title))
    return m.group(1)


def check_learn_page(page, want_state):
    text, data = page_data(page)
    check(not re.search(r"""<(?:script|link|img|iframe)[^>]*(?:src|href)\s*=""", text),
          "%s: one self-contained file" % os.path.basename(page))
    learn = data.get("learn")
    check(learn and learn.get("sites"), "%s: the learn report is in the page's data" % os.path.basename(page))
    temp = [s for s in learn["sites"] if s["stack"] and "temp_alloc" in s["stack"][0]["function"]]
    check(temp and temp[0]["state"] == want_state and "from_profile" in temp[0],
          "%s: temp_alloc with its state (%s) and from_profile" % (os.path.basename(page), want_state))
    shown = rendered_section(page, "Learned intent")
    if shown is None:
        return
    for word in ("temp_alloc", "learn_program.c:", want_state, "instructions saved", "would escape"):
        check(word in shown, "%s: the Learned intent section shows %r" % (os.path.basename(page), word))
    check("persist_alloc" in shown, "%s: and the sites that are not frame-temporary" % os.path.basename(page))


def test_report_html(opts):
    """framealloc-report on a FRAMEALLOC_REPORT directory with records and learning:
    report.html has a Learned intent section with the frame-temporary site. (Sampled
    records: full records take every allocation off the learned path.)"""
    base = os.path.join(opts.workdir, "report")
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_RECORDS="sample", FRAMEALLOC_REPORT=base)
    run(opts, ["plain", "60"], env)
    pages = run_report_tool(base)
    check(len(pages) == 1 and pages[0].endswith("/report.html"), "one report.html (%s)" % pages)
    check_learn_page(pages[0], "routed")
    with open(glob.glob(os.path.join(base, "*.learn.json"))[0]) as f:
        modules = {s["module"] for s in json.load(f)["sites"]}
    check(not [m for m in modules if "libdw" in m or "libelf" in m],
          "the records report's symbolizer at exit is not learned from (modules: %s)" % sorted(modules))


def test_report_html_learn_only(opts):
    """framealloc-report on a FRAMEALLOC_REPORT directory with learn output only (records
    off): a page of its own next to the learn JSON."""
    base = os.path.join(opts.workdir, "report")
    env = dict(FAST, FRAMEALLOC_LEARN="observe", FRAMEALLOC_REPORT=base)
    run(opts, ["plain", "60"], env)
    learn_json = glob.glob(os.path.join(base, "*.learn.json"))
    check(len(learn_json) == 1 and not glob.glob(os.path.join(base, "*", "report.json")),
          "learn output only in the directory")
    pages = run_report_tool(base)
    check(pages == [learn_json[0][:-len(".json")] + ".html"], "the page is PROGRAM.PID.learn.html (%s)" % pages)
    check_learn_page(pages[0], "temporary")
    again = run_report_tool(learn_json[0])
    check(again == pages, "framealloc-report also takes the learn JSON itself")


def test_strict(opts):
    """Learned routing refuses strict frames with one line and only observes."""
    env = dict(FAST, FRAMEALLOC_LEARN="route", FRAMEALLOC_FRAME_MODE="strict")
    out, err = run(opts, ["plain", "50"], env)
    check("needs safe frames" in err and err.count("needs safe frames") == 1, "one line about strict mode")
    temp, = numbers(out, r"plain: temp (\d+) of")
    check(temp == 0, "nothing routed to strict frames")
    check("learn report (observe)" in err, "observing instead")


def test_off(opts):
    """Learning off: no report, nothing served by frame arenas without scopes."""
    out, err = run(opts, ["plain", "50"], {})
    temp, _, persist = numbers(out, r"plain: temp (\d+) of (\d+) from frames, persist (\d+)")
    check(temp == 0 and persist == 0, "nothing from frame arenas")
    check("learn report" not in err and err == "", "nothing on stderr")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test")
    ap.add_argument("--preload", required=True)
    ap.add_argument("--exe", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--plugin", help="the library learn_program plugin loads")
    opts = ap.parse_args()
    fn = globals().get("test_" + opts.test)
    if not fn:
        sys.exit("check_learn: unknown test %r" % opts.test)
    fresh_workdir(opts)
    try:
        fn(opts)
    except Failed as e:
        print("FAILED:", e)
        sys.exit(1)


if __name__ == "__main__":
    main()

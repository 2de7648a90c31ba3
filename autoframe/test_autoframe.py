#!/usr/bin/env python3
"""Tests of libframealloc_autoframe.so (suite 'autoframe'): test_autoframe.py SCENARIO.

Each scenario runs a test program (tests/gl_program.c, tests/sdl_program.c,
tests/vk_program.c, vkcube) that presents N times by one route, under
LD_AUDIT=libframealloc_autoframe.so and FRAMEALLOC_AUTOFRAME=1 with libframealloc.so
(or the probe) preloaded, and checks that exactly N frames ended and that the real
present function ran N times. Vulkan programs also get the layer
VK_LAYER_FRAMEALLOC_autoframe (VK_ADD_LAYER_PATH, VK_INSTANCE_LAYERS) and run on
lavapipe under Xvfb. The tick scenarios run tests/tick_program.c, a headless loop
of N ticks, with FRAMEALLOC_AUTOFRAME=tick: N frames. Paths come from meson in
FA_TEST_* variables. Exit 77 (skip) when something the scenario needs is not
installed (SDL 2, xvfb-run, Vulkan headers, lavapipe, vkcube).
"""

import csv
import os
import shutil
import subprocess
import sys
import tempfile

N = 50
SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "scripts")

LIB = os.environ["FA_TEST_LIB"]
PROBE = os.environ["FA_TEST_PROBE"]
AUDIT = os.environ["FA_TEST_AUTOFRAME"]
FAKEGL = os.environ["FA_TEST_FAKEGL"]
GL_DLOPEN = os.environ["FA_TEST_GL_DLOPEN"]
GL_LINKED = os.environ["FA_TEST_GL_LINKED"]
SDL2 = os.environ.get("FA_TEST_SDL2", "")
BUILD = os.environ["FA_TEST_BUILD"]
TICK = os.environ["FA_TEST_TICK"]
TICK_FORTIFY = os.environ["FA_TEST_TICK_FORTIFY"]
TICK_SDL2 = os.environ.get("FA_TEST_TICK_SDL2", "")
VKLAYER_DIR = os.environ.get("FA_TEST_VKLAYER_DIR", "")
VK = os.environ.get("FA_TEST_VK", "")
VK_LAYER = "VK_LAYER_FRAMEALLOC_autoframe"
LAVAPIPE_ICDS = ["/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"]
# With LD_AUDIT, glibc sizes static TLS before loading the preloads: their
# initial-exec TLS needs this (as framealloc-run and framealloc-compare set it).
TUNABLES = "glibc.rtld.optional_static_tls=16384"


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def clean_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith("FRAMEALLOC_") and not k.startswith("VK_")
            and k not in ("LD_PRELOAD", "LD_AUDIT", "LD_BIND_NOW", "GLIBC_TUNABLES")}


def run(command, preload=LIB, autoframe="1", extra=None):
    """Runs command with the audit module; returns (fields of its stdout, stderr)."""
    env = clean_env()
    env["LD_AUDIT"] = AUDIT
    env["GLIBC_TUNABLES"] = TUNABLES
    if preload:
        env["LD_PRELOAD"] = preload
    if autoframe is not None:
        env["FRAMEALLOC_AUTOFRAME"] = autoframe
    env.update(extra or {})
    r = subprocess.run(command, env=env, capture_output=True, text=True, timeout=100)
    shown = "$ %s\n%s%s" % (" ".join(command), r.stdout, r.stderr)
    print(shown)
    check(r.returncode == 0, "exit status %d" % r.returncode)
    fields = {}
    for line in r.stdout.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields, r.stderr


def expect(fields, swaps=N, frames=N):
    check(fields.get("checksum") in ("swaps %d" % swaps, "presents %d" % swaps),
          "the real present function ran %s times, expected %d" % (fields.get("checksum"), swaps))
    check(fields.get("frames") == str(frames), "frames: %s, expected %d" % (fields.get("frames"), frames))


def gl_dlopen(route):
    return [GL_DLOPEN, route, str(N), FAKEGL]


def gl_linked(route):
    return [GL_LINKED, route, str(N)]


def fields_of(stdout):
    return dict((k.strip(), v.strip()) for k, _, v in (l.partition(":") for l in stdout.splitlines()))


def expect_ticks(fields, frames=N):
    check(fields.get("checksum") == "ticks %d" % N, "the loop ran %s, expected %d ticks" % (fields.get("checksum"), N))
    check(fields.get("frames") == str(frames), "frames: %s, expected %d" % (fields.get("frames"), frames))


def ticks(program, route, preload=LIB, autoframe="tick", extra=None):
    return run([program, route, str(N)], preload=preload, autoframe=autoframe, extra=extra)[0]


def lavapipe():
    return next((p for p in LAVAPIPE_ICDS if os.path.exists(p)), None)


def need_vulkan():
    if not VK:
        print("SKIP: the Vulkan test program was not built (scripts/install-deps installs libvulkan-dev "
              "and libxcb1-dev)")
        sys.exit(SKIP)
    if not lavapipe():
        print("SKIP: lavapipe, Mesa's software Vulkan, is not installed (mesa-vulkan-drivers)")
        sys.exit(SKIP)
    if not shutil.which("xvfb-run") or not shutil.which("xauth"):
        print("SKIP: xvfb-run not installed (scripts/install-deps installs xvfb and xauth)")
        sys.exit(SKIP)


def vulkan_settings(preload=LIB, autoframe="1", layer=True, audit=True):
    """What framealloc-run --autoframe sets for a Vulkan game, on lavapipe."""
    settings = {"VK_ICD_FILENAMES": lavapipe(), "GLIBC_TUNABLES": TUNABLES}
    if layer:
        settings["VK_ADD_LAYER_PATH"] = VKLAYER_DIR
        settings["VK_INSTANCE_LAYERS"] = VK_LAYER
    if audit:
        settings["LD_AUDIT"] = AUDIT
    if preload:
        settings["LD_PRELOAD"] = preload
    if autoframe is not None:
        settings["FRAMEALLOC_AUTOFRAME"] = autoframe
    return settings


def run_vulkan(command, **kwargs):
    """Runs command under Xvfb with the layer (and the audit module); returns its fields."""
    extra = kwargs.pop("extra", {})
    settings = vulkan_settings(**kwargs)
    settings.update(extra)
    r = subprocess.run(xvfb(["%s=%s" % kv for kv in settings.items()] + command), env=clean_env(),
                       capture_output=True, text=True, timeout=100)
    print("$ %s %s\n%s%s" % (" ".join("%s=%s" % kv for kv in settings.items()), " ".join(command), r.stdout,
                             r.stderr))
    check(r.returncode == 0, "exit status %d" % r.returncode)
    return fields_of(r.stdout)


def frame_log_rows(path):
    """The frame rows of a frame log in MangoHud's format: the column names follow a
    system information block. The first frame has no start, so it has no row."""
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    header = next(i for i, names in enumerate(lines[:5]) if "fps" in names)
    return [dict(zip(lines[header], row)) for row in lines[header + 1:]]


def need_sdl2():
    if not SDL2:
        print("SKIP: SDL 2 was not found when configuring (scripts/install-deps installs libsdl2-dev)")
        sys.exit(SKIP)


def need_xvfb():
    need_sdl2()
    if not shutil.which("xvfb-run") or not shutil.which("xauth"):
        print("SKIP: xvfb-run not installed (scripts/install-deps installs xvfb and xauth)")
        sys.exit(SKIP)


def xvfb(command):
    # Xvfb itself runs without our variables: they go to the program through env.
    # -a looks for a free display from -n on; starting at one of our own makes two
    # tests (or other users of xvfb-run) unlikely to race for the same display.
    first = str(100 + os.getpid() % 5000)
    return ["xvfb-run", "-a", "-n", first, "-s", "-screen 0 640x480x24", "env", "LIBGL_ALWAYS_SOFTWARE=1"] + command


def run_in_xvfb(command, extra=None):
    settings = ["LD_AUDIT=" + AUDIT, "LD_PRELOAD=" + LIB, "FRAMEALLOC_AUTOFRAME=1", "GLIBC_TUNABLES=" + TUNABLES]
    settings += ["%s=%s" % kv for kv in (extra or {}).items()]
    env = clean_env()
    r = subprocess.run(xvfb(settings + command), env=env, capture_output=True, text=True, timeout=100)
    print("$ %s\n%s%s" % (" ".join(command), r.stdout, r.stderr))
    check(r.returncode == 0, "exit status %d" % r.returncode)
    return dict((k.strip(), v.strip()) for k, _, v in (l.partition(":") for l in r.stdout.splitlines()))


def scenario(name):
    if name == "dlsym":
        fields, _ = run(gl_dlopen("dlsym"))
        expect(fields)
        check(fields["audit module loaded"] == "yes", "the audit module is not loaded")
    elif name == "getproc":
        expect(run(gl_dlopen("getproc"))[0])
    elif name == "plt":
        expect(run(gl_linked("plt"))[0])
    elif name == "bind_now":
        expect(run(gl_linked("plt"), extra={"LD_BIND_NOW": "1"})[0])
    elif name == "nested":
        expect(run(gl_linked("nested"))[0])
    elif name == "nested_bind_now":
        expect(run(gl_linked("nested"), extra={"LD_BIND_NOW": "1"})[0])
    elif name == "thread":
        expect(run(gl_dlopen("thread"))[0])
        expect(run(gl_linked("nested-thread"))[0])
    elif name == "off":
        # Without FRAMEALLOC_AUTOFRAME=1 la_version returns 0: the loader drops the
        # module, and the program runs as without LD_AUDIT.
        for value in (None, "0", "2"):
            for command in (gl_dlopen("dlsym"), gl_dlopen("getproc"), gl_linked("nested")):
                fields, _ = run(command, autoframe=value)
                expect(fields, frames=0)
                check(fields["audit module loaded"] == "no", "the audit module stayed loaded")
    elif name == "probe":
        # The probe has no counters; its frame log has the frames.
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "frames.csv")
            fields, _ = run(gl_linked("nested"), preload=PROBE, extra={"FRAMEALLOC_FRAMELOG": log})
            expect(fields, frames=-1)
            # MangoHud's format: the column names follow a system information block.
            with open(log, newline="") as f:
                lines = list(csv.reader(f))
            header = next(i for i, names in enumerate(lines[:5]) if "fps" in names)
            rows = [dict(zip(lines[header], row)) for row in lines[header + 1:]]
            # The first frame has no start (it began before the first present): no row.
            check(len(rows) == N - 1, "the probe's frame log has %d rows, expected %d" % (len(rows), N - 1))
            check(all(r["frametime"] for r in rows), "a row without a frame time")
            check(rows[0]["frame"] == "2", "the first row is frame %s, expected 2" % rows[0]["frame"])
    elif name == "no_library":
        fields, err = run(gl_dlopen("dlsym"), preload=None)
        expect(fields, frames=-1)
        check(err.count("no fa_api_v1") == 1, "expected one warning about the missing library")
    elif name == "sdl2_render":
        need_sdl2()
        expect(run([SDL2, "render", str(N)], extra={"SDL_VIDEODRIVER": "dummy"})[0])
    elif name == "sdl2_surface":
        need_sdl2()
        expect(run([SDL2, "surface", str(N)], extra={"SDL_VIDEODRIVER": "dummy"})[0])
    elif name == "sdl2_gl_xvfb":
        # SDL loads libGL with dlopen and glXSwapBuffers through glXGetProcAddressARB;
        # SDL_GL_SwapWindow around it must still end one frame per present.
        need_xvfb()
        fields = run_in_xvfb([SDL2, "gl", str(N)])
        expect(fields)
        check(fields["libEGL loaded"] == "no", "SDL used EGL, not GLX")
    elif name == "sdl2_egl_xvfb":
        need_xvfb()
        fields = run_in_xvfb([SDL2, "gl", str(N)], extra={"SDL_VIDEO_X11_FORCE_EGL": "1"})
        expect(fields)
        check(fields["libEGL loaded"] == "yes", "SDL did not use EGL")
    elif name == "sdl2_gl_renderer_xvfb":
        need_xvfb()
        expect(run_in_xvfb([SDL2, "gl-render", str(N)]))
    elif name == "framealloc_run":
        command = [sys.executable, os.path.join(SCRIPTS, "framealloc-run"), "--lib", LIB, "--autoframe", "--"]
        env = clean_env()
        r = subprocess.run(command + gl_linked("nested"), env=env, capture_output=True, text=True, timeout=100)
        print(r.stdout + r.stderr)
        check(r.returncode == 0, "framealloc-run: exit status %d" % r.returncode)
        expect(dict((k.strip(), v.strip()) for k, _, v in (l.partition(":") for l in r.stdout.splitlines())))
    elif name == "tick_framealloc_run":
        command = [sys.executable, os.path.join(SCRIPTS, "framealloc-run"), "--lib", LIB, "--tick", "--"]
        r = subprocess.run(command + [TICK, "nanosleep", str(N)], env=clean_env(), capture_output=True, text=True,
                           timeout=100)
        print(r.stdout + r.stderr)
        check(r.returncode == 0, "framealloc-run: exit status %d" % r.returncode)
        expect_ticks(fields_of(r.stdout))
    elif name == "vulkan_framealloc_run_xvfb":
        # framealloc-run --autoframe sets the layer's variables itself.
        need_vulkan()
        command = [sys.executable, os.path.join(SCRIPTS, "framealloc-run"), "--lib", LIB, "--autoframe", "--"]
        env = clean_env()
        r = subprocess.run(xvfb(["VK_ICD_FILENAMES=" + lavapipe()] + command + [VK, "device", str(N)]), env=env,
                           capture_output=True, text=True, timeout=100)
        print(r.stdout + r.stderr)
        check(r.returncode == 0, "framealloc-run: exit status %d" % r.returncode)
        expect(fields_of(r.stdout))
    elif name == "framealloc_compare":
        # Every allocator's run gets the audit module, the probe runs included.
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, os.path.join(SCRIPTS, "framealloc-compare"), "--autoframe",
                       "--rounds", "1", "--allocators", "glibc,jemalloc,framealloc", "--no-install",
                       "--no-chart", "--build", BUILD, "--out", tmp, "--"] + gl_linked("nested")
            r = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=100)
            print(r.stdout + r.stderr)
            check(r.returncode == 0, "framealloc-compare: exit status %d" % r.returncode)
            with open(os.path.join(tmp, "summary.csv"), newline="") as f:
                frames = {row["allocator"]: row["frames"] for row in csv.DictReader(f)}
            for allocator in ("glibc", "framealloc") + (("jemalloc",) if "jemalloc" in frames else ()):
                check(frames.get(allocator) == str(N - 1),
                      "%s: %s timed frames, expected %d" % (allocator, frames.get(allocator), N - 1))
    elif name == "tick_sleeps":
        for route in ("nanosleep", "clock_nanosleep", "clock_abs", "usleep"):
            expect_ticks(ticks(TICK, route))
    elif name == "tick_waits":
        for route in ("poll", "ppoll", "epoll", "epoll_event", "select", "pselect"):
            expect_ticks(ticks(TICK, route))
    elif name == "tick_sleep_seconds":
        # sleep(1): a second per tick, so 3 ticks.
        fields, _ = run([TICK, "sleep", "3"], autoframe="tick")
        check(fields.get("checksum") == "ticks 3", "the loop ran %s, expected 3 ticks" % fields.get("checksum"))
        check(fields.get("frames") == "3", "frames: %s, expected 3" % fields.get("frames"))
    elif name == "tick_fortify":
        # poll and ppoll under _FORTIFY_SOURCE are __poll_chk and __ppoll_chk.
        for route in ("poll", "ppoll"):
            expect_ticks(ticks(TICK_FORTIFY, route))
    elif name == "tick_sdl_delay":
        # SDL_Delay sleeps with nanosleep: one tick, not two.
        if not TICK_SDL2:
            print("SKIP: SDL 2 was not found when configuring (scripts/install-deps installs libsdl2-dev)")
            sys.exit(SKIP)
        expect_ticks(ticks(TICK_SDL2, "sdl_delay"))
    elif name == "tick_bind_now":
        expect_ticks(ticks(TICK, "nanosleep", extra={"LD_BIND_NOW": "1"}))
    elif name == "tick_probe":
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "frames.csv")
            expect_ticks(ticks(TICK, "epoll", preload=PROBE, extra={"FRAMEALLOC_FRAMELOG": log}), frames=-1)
            rows = frame_log_rows(log)
            check(len(rows) == N - 1, "the probe's frame log has %d rows, expected %d" % (len(rows), N - 1))
    elif name == "tick_modes":
        # Presents do not end frames in tick mode, nor sleeps in present mode.
        expect_ticks(ticks(TICK, "nanosleep", autoframe="1"), frames=0)
        expect(run(gl_linked("nested"), autoframe="tick")[0], frames=0)
    elif name == "vulkan_device_xvfb":
        # vkQueuePresentKHR from vkGetDeviceProcAddr, as overlays and volk fetch it;
        # on the main thread and on another.
        need_vulkan()
        for route in ("device", "thread"):
            fields = run_vulkan([VK, route, str(N)])
            expect(fields)
            check(fields["layer loaded"] == "yes", "the layer is not loaded")
    elif name == "vulkan_instance_xvfb":
        need_vulkan()
        expect(run_vulkan([VK, "instance", str(N)]))
    elif name == "vulkan_layer_only_xvfb":
        # The layer needs no audit module.
        need_vulkan()
        expect(run_vulkan([VK, "device", str(N)], audit=False))
    elif name == "vulkan_gl_nested_xvfb":
        # GL on Vulkan (zink): each glXSwapBuffers presents with vkQueuePresentKHR.
        # One frame per present with the audit module and the layer, or either alone.
        need_vulkan()
        command = [VK, "gl", str(N), FAKEGL]
        for layer, audit in ((True, True), (True, False), (False, True)):
            fields = run_vulkan(command, layer=layer, audit=audit)
            expect(fields)
            check(fields["layer loaded"] == ("yes" if layer else "no"), "layer loaded: " + fields["layer loaded"])
    elif name == "vulkan_off_xvfb":
        # The layer passes presents through without ending frames unless
        # FRAMEALLOC_AUTOFRAME=1; without the layer, Vulkan presents end no frames.
        # (No audit module: with tick, it would count the window system's waits.)
        need_vulkan()
        for autoframe in (None, "0", "tick"):
            expect(run_vulkan([VK, "device", str(N)], autoframe=autoframe, audit=False), frames=0)
        fields = run_vulkan([VK, "device", str(N)], layer=False)
        expect(fields, frames=0)
        check(fields["layer loaded"] == "no", "the layer is loaded without VK_INSTANCE_LAYERS")
    elif name == "vulkan_probe_xvfb":
        need_vulkan()
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "frames.csv")
            expect(run_vulkan([VK, "device", str(N)], preload=PROBE, extra={"FRAMEALLOC_FRAMELOG": log}), frames=-1)
            rows = frame_log_rows(log)
            check(len(rows) == N - 1, "the probe's frame log has %d rows, expected %d" % (len(rows), N - 1))
    elif name == "vkcube_xvfb":
        # vkcube --c N presents N frames and stops: the frame log has a row for each
        # but the first, which has no start.
        need_vulkan()
        if not shutil.which("vkcube"):
            print("SKIP: vkcube is not installed (vulkan-tools)")
            sys.exit(SKIP)
        for preload in (LIB, PROBE):
            with tempfile.TemporaryDirectory() as tmp:
                log = os.path.join(tmp, "frames.csv")
                run_vulkan(["vkcube", "--c", str(N)], preload=preload, extra={"FRAMEALLOC_FRAMELOG": log})
                rows = frame_log_rows(log)
                check(len(rows) == N - 1, "%s: the frame log has %d rows, expected %d (vkcube --c %d)"
                      % (os.path.basename(preload), len(rows), N - 1, N))
    else:
        raise Failed("unknown scenario " + name)


def main():
    name = sys.argv[1]
    try:
        scenario(name)
    except Failed as e:
        print("FAIL %s: %s" % (name, e))
        return 1
    print("ok %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())

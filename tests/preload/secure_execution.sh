#!/bin/sh
# Secure execution (issue 10 item 6): a setuid-root copy of secure_probe, run by an
# unprivileged user with hostile FRAMEALLOC_FRAMELOG and FRAMEALLOC_REPORT settings
# pointing into a root-only directory, must create and touch nothing there. A
# control run of the same program without setuid, as root, shows that the same
# settings do write those files.
# usage: secure_execution.sh SECURE_PROBE
set -eu
probe=$1
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root (to make a setuid-root copy and an unprivileged user)"
    exit 77
fi
user=fa-secure-test
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/sh "$user"
fi
work=$(mktemp -d /tmp/fa-secure.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/rootonly"
chmod 700 "$work/rootonly"
cp "$probe" "$work/probe"
chown root:root "$work/probe"
chmod 4755 "$work/probe"
# The probe finds libframealloc.so through its absolute run path; the user must be
# able to read it.
if ! su -s /bin/sh "$user" -c "test -r '$probe' && '$probe'" >/dev/null 2>&1; then
    echo "SKIP: $user cannot run $probe (a directory on its path is not readable by other users)"
    exit 77
fi
hostile="FRAMEALLOC_FRAMELOG=$work/rootonly/framelog.csv FRAMEALLOC_REPORT=$work/rootonly/report FRAMEALLOC_RECORDS=full FRAMEALLOC_STATS=1"

# Control: without setuid the settings are honoured.
control=$(env $hostile "$probe" 2>/dev/null)
[ "$control" = "framealloc active 1" ] || { echo "FAIL: control run printed '$control'"; exit 1; }
[ -s "$work/rootonly/framelog.csv" ] || { echo "FAIL: control run wrote no frame log: the test would prove nothing"; exit 1; }
rm -rf "$work/rootonly"/*

out=$(su -s /bin/sh "$user" -c "env $hostile '$work/probe'" 2>"$work/stderr")
[ "$out" = "framealloc active 1" ] || { echo "FAIL: setuid run printed '$out' (framealloc not loaded?)"; exit 1; }
left=$(ls -A "$work/rootonly")
if [ -n "$left" ]; then
    echo "FAIL: the setuid program honoured FRAMEALLOC_* settings and wrote: $left"
    exit 1
fi
if [ -s "$work/stderr" ]; then
    echo "FAIL: the setuid program printed on stderr:"; cat "$work/stderr"
    exit 1
fi
echo "1 passed, 0 failed"

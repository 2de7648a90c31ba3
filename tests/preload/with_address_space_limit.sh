#!/bin/sh
# Usage: with_address_space_limit.sh KIB program [args...]
# Runs the program with its address space limited from the start (ulimit -v), so
# that libframealloc reserves a small frame and pool region (it halves the
# reservation until it fits) and the out-of-memory tests can exhaust that region
# too, without touching gigabytes of real memory.
set -eu
kib=$1
shift
ulimit -v "$kib"
exec "$@"

#!/bin/sh
# Usage: check_exports.sh libframealloc.so exports.expected
# The library must export exactly the names in the expected list: the malloc
# family, glibc's __libc_* aliases, its heap-inspection calls (mallinfo2...), the 20
# C++ operators and the fa_* API. Anything
# extra (a jemalloc name such as mallocx, mallctl, je_* or fa_je_*, or a core
# function) could capture calls meant for another allocator; anything missing
# would send calls to glibc's malloc.
set -eu
lib=$1
expected=$2
actual=$(mktemp)
wanted=$(mktemp)
trap 'rm -f "$actual" "$wanted"' EXIT

# Dynamic symbols defined by the library, without version suffixes.
nm -D --defined-only "$lib" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' | LC_ALL=C sort -u >"$actual"
grep -v '^[[:space:]]*\(#\|$\)' "$expected" | LC_ALL=C sort -u >"$wanted"

[ -s "$actual" ] || { echo "nm found no exported symbols in $lib"; exit 1; }

status=0
for name in $(LC_ALL=C comm -13 "$wanted" "$actual"); do
    echo "unexpected export: $name"
    status=1
done
for name in $(LC_ALL=C comm -23 "$wanted" "$actual"); do
    echo "missing export: $name"
    status=1
done
[ $status -eq 0 ] && echo "$(wc -l <"$actual") exports, exactly as listed in $expected"
exit $status

#!/bin/sh
# Copies Debian's static PIC jemalloc archive with every public (non je_) symbol
# renamed to fa_je_<name>. Debian builds jemalloc without a symbol prefix, so the
# archive defines malloc, free and the C++ operators; renamed, it can never capture
# those names in a process, and the library's version script keeps them hidden.
# usage: rename-jemalloc.sh INPUT.a OUTPUT.a
set -eu
in=$1
out=$2
map=$out.symbols
nm -g --defined-only "$in" | awk 'NF == 3 && $3 !~ /^je_/ { print $3 " fa_je_" $3 }' | sort -u > "$map"
grep -q '^malloc fa_je_malloc$' "$map" || { echo "rename-jemalloc: malloc not found in $in" >&2; exit 1; }
objcopy --redefine-syms="$map" "$in" "$out"

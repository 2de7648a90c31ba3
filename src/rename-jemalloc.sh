#!/bin/sh
# Copies Debian's static PIC jemalloc archive with every public (non je_) symbol
# renamed to fa_je_<name>. Debian builds jemalloc without a symbol prefix, so the
# archive defines malloc, free and the C++ operators; renamed, it can never capture
# those names in a process, and the library's version script keeps them hidden.
#
# The code of the modules framealloc never runs (mallctl's tree, profiling, the
# huge-page allocator, statistics printing) moves to .text.unlikely.*, which the
# linker places apart from the code that runs: Linux maps a library's text 64 KiB
# around each page a program touches, so code that runs spread over the whole
# text would make every process pay for all of it in resident memory (issue 9,
# footprint).
# usage: rename-jemalloc.sh INPUT.a OUTPUT.a
set -eu
in=$1
out=$2
map=$out.symbols
nm -g --defined-only "$in" | awk 'NF == 3 && $3 !~ /^je_/ { print $3 " fa_je_" $3 }' | sort -u > "$map"
grep -q '^malloc fa_je_malloc$' "$map" || { echo "rename-jemalloc: malloc not found in $in" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
objcopy --redefine-syms="$map" "$in" "$work/renamed.a"
cold="ctl prof_data prof_log prof_recent prof_stats prof_sys hpa hpa_hooks hpdata psset sec inspect log ckh
buf_writer test_hooks jemalloc_cpp san_bump"
members=$(ar t "$work/renamed.a")
(cd "$work" && ar x renamed.a)
for name in $cold; do
    [ -f "$work/$name.pic.o" ] || { echo "rename-jemalloc: $name.pic.o not in $in" >&2; exit 1; }
    objcopy --rename-section .text=.text.unlikely.fa_je_$name "$work/$name.pic.o"
done
# jemalloc's constructor initialises it when the library loads, in every process:
# about 450 KiB resident (its code and first arena) in a program that never asks
# for a block above the pools' limit. Without it jemalloc starts at its first call.
objcopy --remove-section=.init_array --remove-section=.rela.init_array "$work/jemalloc.pic.o"
rm -f "$out"
(cd "$work" && ar rcs out.a $members) && mv "$work/out.a" "$out"

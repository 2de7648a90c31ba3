#!/bin/sh
# Copies Debian's static PIC jemalloc archive with every public (non je_) symbol
# renamed to fa_je_<name>. Debian builds jemalloc without a symbol prefix, so the
# archive defines malloc, free and the C++ operators; renamed, it can never capture
# those names in a process, and the library's version script keeps them hidden.
#
# Linux maps a library's text 64 KiB around each page a program touches, so where
# code sits decides what every process pays in resident memory (issue 9,
# footprint). The linker puts .text.unlikely, .text.startup and .text.hot sections
# first, then .text in link order. framealloc's code that every process runs sits
# in .text.hot right after the PLT (FA_EVERY_PROCESS, src/config.h), so jemalloc
# keeps none of those early sections: its cold parts and its constructor get
# plain .text.* names. The library links this archive whole, in the order written
# here: the modules that run when jemalloc starts and serves blocks together;
# before them mallctl's tree, whose boot function is its last; after them the
# statistics printer, whose boot function is near its start; then the modules
# framealloc never runs (profiling, the huge-page allocator, logging). Its C++
# operators are left out: framealloc has its own, and they need libstdc++.
# usage: rename-jemalloc.sh INPUT.a OUTPUT.a
set -eu
in=$1
out=$2
map=$out.symbols
nm -g --defined-only "$in" | awk 'NF == 3 && $3 !~ /^je_/ { print $3 " fa_je_" $3 }' | sort -u > "$map"
# Two static helpers it calls, and its mmap, defined by framealloc (src/jemalloc_imports.c).
printf '%s\n' '__popcountdi2 fa_je_popcountdi2' 'pthread_atfork fa_je_pthread_atfork' 'mmap fa_je_mmap' >> "$map"
grep -q '^malloc fa_je_malloc$' "$map" || { echo "rename-jemalloc: malloc not found in $in" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
objcopy --redefine-syms="$map" "$in" "$work/renamed.a"
before="ctl"
after="stats prof_data prof_log prof_recent prof_stats prof_sys hpa hpa_hooks hpdata psset sec inspect log
buf_writer test_hooks san_bump"
left_out="jemalloc_cpp"
members=$(ar t "$work/renamed.a")
(cd "$work" && ar x renamed.a)
for name in $before $after $left_out; do
    [ -f "$work/$name.pic.o" ] || { echo "rename-jemalloc: $name.pic.o not in $in" >&2; exit 1; }
done
for m in $members; do
    objcopy --rename-section .text.unlikely=.text.fa_je_cold_parts \
        --rename-section .text.startup=.text.fa_je_startup "$work/$m"
done
# jemalloc's constructor initialises it when the library loads, in every process:
# about 450 KiB resident (its code and first arena) in a program that never asks
# for a block above the pools' limit. Without it jemalloc starts at its first call.
objcopy --remove-section=.init_array --remove-section=.rela.init_array "$work/jemalloc.pic.o"
placed=" $(echo $before $after $left_out) "
running=$(for m in $members; do case "$placed" in *" ${m%.pic.o} "*) ;; *) echo "$m" ;; esac; done)
objects() { for name in "$@"; do echo "$name.pic.o"; done; }
rm -f "$out"
(cd "$work" && ar rcs out.a $(objects $before) $running $(objects $after)) && mv "$work/out.a" "$out"

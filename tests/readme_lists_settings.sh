#!/bin/sh
# Every setting the library knows (FRAMEALLOC_HELP=1) must be documented in README.md.
set -eu
lib=$1
readme=$2
names=$(FRAMEALLOC_HELP=1 LD_PRELOAD="$lib" /bin/true 2>&1 | awk '/^  FRAMEALLOC_/ { print $1 }')
[ -n "$names" ] || { echo "FRAMEALLOC_HELP=1 printed no settings"; exit 1; }
status=0
for name in $names; do
    grep -q "\`$name\`" "$readme" || { echo "README.md does not document $name"; status=1; }
done
exit $status

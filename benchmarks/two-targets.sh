#!/bin/bash
# Two targets under load at once: one iscsi-load (../shared/bench's load generator, built from
# libiscsi-dev) per target, both running together, and the CPU the target daemon used meanwhile
# (its own process and its child processes: tgtd --workers). For the "eighth session" rows of
# BENCHMARKS.md.
#
# usage: benchmarks/two-targets.sh PID HOST:PORT IQN_A IQN_B SECONDS iscsi-load-options...
#   e.g. benchmarks/two-targets.sh 1234 127.0.0.1:3302 iqn.2026-11.wk:a iqn.2026-11.wk:b 5 \
#          --rw randread --bs 4096 --qd 32 --sessions 2
# ISCSI_LOAD: the load generator (default /tmp/iscsi-load).
# Prints: IOPS of each target, their sum, and the daemon's CPU time per I/O in microseconds.
set -euo pipefail
pid=$1 portal=$2 iqn_a=$3 iqn_b=$4 seconds=$5
shift 5
load=${ISCSI_LOAD:-/tmp/iscsi-load}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# utime + stime of the daemon and its children, in clock ticks (USER_HZ = 100).
ticks() {
  local total=0 p f
  for p in $pid $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
    read -ra f < <(cut -d' ' -f14,15 "/proc/$p/stat")
    total=$((total + f[0] + f[1]))
  done
  echo "$total"
}

iops() { grep -o '"iops":[0-9]*' "$1" | cut -d: -f2; }

before=$(ticks)
"$load" "$@" --seconds "$seconds" --quiet "iscsi://$portal/$iqn_a/1" >"$out/a" &
"$load" "$@" --seconds "$seconds" --quiet "iscsi://$portal/$iqn_b/1" >"$out/b"
wait
after=$(ticks)
a=$(iops "$out/a")
b=$(iops "$out/b")
cpu_us=$(((after - before) * 10000))
echo "a=$a b=$b sum=$((a + b)) cpu_us_per_io=$(awk -v c="$cpu_us" -v n="$(((a + b) * seconds))" 'BEGIN { printf "%.1f", c / n }')"

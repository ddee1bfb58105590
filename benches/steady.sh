#!/usr/bin/env bash
# For ../shared/bench: one fixed-rate run of a parley build (through ab.sh, so SQLite, 20
# tenants, fast numbers), and over a steady window in its middle, per message: the CPU
# of each kind of thread (runtime, SQLite writer, checkpointing connection), the system
# calls (by the kernel's syscall tracepoints, through `perf stat`), and the context
# switches (voluntary, involuntary) by kind of thread.
#
#   benches/steady.sh RATE 'LABEL=[ENV=VALUE ...] BINARY' [WINDOW_SECS]
#
#   benches/steady.sh 6000 'on=target/release/parley'
#   benches/steady.sh 6000 'off=PARLEY_SQLITE_WAL_BATCH=0 target/release/parley' 10
#
# The window starts once the server has received 40,000 messages (the run lasts long
# enough for that at rates from ~2000 msg/s). Needs `perf` (Debian's linux-perf) and
# root, or a perf_event_paranoid that allows tracepoints; without it the syscall lines
# are left out.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 2 ]] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
rate="$1" spec="$2" window="${3:-10}"
cmd="${spec#*=}" bin="${cmd##* }"
name="$(basename "$bin" | cut -c1-15)"
secs=$(( 40000 / rate + window + 25 ))
log="$(mktemp)"
"$HERE/ab.sh" "$rate" "$secs" 1 "$spec" > "$log" 2>&1 &
ab=$!

pid=""
for _ in $(seq 1 120); do
  sleep 0.5
  for p in $(pgrep -x "$name" || true); do
    ss -ltnp | grep -q "pid=$p," && pid=$p
  done
  [[ -n "$pid" ]] && break
done
[[ -n "$pid" ]] || { echo "steady.sh: no listening $name process appeared" >&2; exit 1; }
port=$(ss -ltnp | grep "pid=$pid," | head -1 | awk '{print $4}' | sed 's/.*://')
received() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^parley_messages_received_total/ {s += $2} END {print s + 0}'
}
for _ in $(seq 1 240); do
  [[ "$(received)" -ge 40000 ]] && break
  sleep 0.5
done

# Per kind of thread (the name without its number): CPU ticks, voluntary and
# involuntary switches.
threads() {
  for t in /proc/"$pid"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")" \
      "$(awk '/^voluntary/ {v = $2} /^nonvoluntary/ {n = $2} END {print v, n}' "$t/status")"
  done | awk '{c[$1] += $2; v[$1] += $3; n[$1] += $4} END {for (k in c) print k, c[k], v[k], n[k]}' | sort
}
before="$(threads)" m0="$(received)"
events='raw_syscalls:sys_enter,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex'
perf_out="$(mktemp)"
if ! perf stat -x, -e "$events" -p "$pid" -- sleep "$window" 2> "$perf_out"; then
  sleep "$window"
  : > "$perf_out"
fi
after="$(threads)" m1="$(received)"
n=$((m1 - m0))
hz=$(getconf CLK_TCK)

echo "== ${spec%%=*}: $n messages in ${window} s ($((n / window)) a second)"
join <(echo "$before") <(echo "$after") | awk -v n="$n" -v hz="$hz" '
  { cpu = ($5 - $2) * 1e6 / hz / n; tot += cpu
    printf "  %-18s %7.1f us CPU   %5.2f voluntary, %5.2f involuntary switches   a message\n",
      $1, cpu, ($6 - $3) / n, ($7 - $4) / n }
  END { printf "  %-18s %7.1f us CPU a message\n", "all threads", tot }'
awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ { printf "  %-36s %6.2f a message\n", $3, $1 / n }' "$perf_out"
wait "$ab" || true
echo "  whole run (ab.sh): $(tail -1 "$log")"
rm -f "$log" "$perf_out"

#!/usr/bin/env bash
# For ../shared/bench: userland instructions a message of parley builds, counted by
# `valgrind --tool=callgrind`, which counts the same for the same code whatever else
# the machine is doing (a fixed-rate CPU figure moves by several percent within
# minutes on a shared machine; this does not). Each build serves two fixed-rate runs
# through run.sh (SQLite, 20 tenants, fast numbers) of SHORT and LONG seconds at RATE
# msg/s; instructions a message = (long run's total - short run's) / the messages
# between them, so start-up, provisioning's probe and warm-up cancel out. At such low
# rates every message commits on its own, so the figure weighs per-commit work more
# than a loaded server does: use it to compare builds, not as a CPU cost.
#
#   benches/instructions.sh 'LABEL=BINARY' ...      (env: RATE=40 SHORT=10 LONG=40)
#
#   benches/instructions.sh 'main=/tmp/parley-main' 'new=target/release/parley'
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="${BENCH_DIR:-$HERE/../../shared/bench}"
[[ $# -ge 1 ]] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
command -v valgrind > /dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
rate="${RATE:-40}" short="${SHORT:-10}" long="${LONG:-40}"
(( long > short )) || { echo "instructions.sh: LONG must exceed SHORT" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
total() { # LABEL BINARY SECS -> total instructions of the server
  local out="$work/$1-$3.out" line
  line="$("$BENCH/run.sh" --label "$1" --rate "$rate" --secs "$3" --ready-timeout 300 \
    --sut "valgrind --tool=callgrind --callgrind-out-file=$out $2 serve" \
    --provision "$HERE/fast-number.sh $2 tenant apply {bundle}" 2>/dev/null |
    grep '"type":"step' | tail -1 || true)"
  python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["pass"] else 1)' "$line" ||
    { echo "instructions.sh: $1 did not pass its ${3} s run at $rate msg/s" >&2; exit 1; }
  for _ in $(seq 1 20); do [[ -s "$out" ]] && break; sleep 0.5; done
  awk '/^summary:/ {print $2}' "$out"
}
for spec in "$@"; do
  label="${spec%%=*}" bin="${spec#*=}"
  a="$(total "$label" "$bin" "$short")"
  b="$(total "$label" "$bin" "$long")"
  python3 -c 'import sys; l,a,b,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]); print(f"{l:12} {(b-a)/n:10.0f} instructions a message ({n} messages)")' \
    "$label" "$a" "$b" "$(( (long - short) * rate ))"
done

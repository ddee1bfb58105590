#!/usr/bin/env bash
# For ../shared/bench: alternating fixed-rate runs of several parley builds (or
# settings), one line each, so that two builds are compared on the same machine in the
# same minutes (a machine's speed drifts by several percent within an hour).
#
#   benches/ab.sh RATE SECS ROUNDS 'LABEL=[ENV=VALUE ...] BINARY' ...
#
#   benches/ab.sh 5000 20 2 'old=/tmp/parley-old' 'new=target/release/parley'
#   benches/ab.sh 5000 20 1 'linger5=PARLEY_BATCH_LINGER_MS=5 target/release/parley'
#   benches/ab.sh 2000 20 2 'pg=benches/pg-wrap.sh target/release/parley'   # PostgreSQL
#
# Each round runs every build once, the order rotated by one each round, through run.sh (SQLite, 20
# tenants, the number on the 1000 msg/s tier, benches/fast-number.sh). A line: label,
# pass, delivered fraction, duplicates, wrong token/body, parley's CPU in % of one core,
# CPU µs a delivered message, the CPU of everything outside the harness (on PostgreSQL
# mostly its server) in % of one core, e2e p50/p99 ms. Full JSON lines go to $AB_OUT
# (default /tmp/ab.jsonl).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="${BENCH_DIR:-$HERE/../../shared/bench}"
[[ $# -ge 4 ]] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
rate="$1" secs="$2" rounds="$3"; shift 3
out="${AB_OUT:-/tmp/ab.jsonl}"
specs=("$@")
n=${#specs[@]}
for ((r = 1; r <= rounds; r++)); do
  # Each round starts one build later: a run's place in the round (the machine warms,
  # its neighbours come and go) falls on every build alike.
  for ((k = 0; k < n; k++)); do
    spec="${specs[$(((r - 1 + k) % n))]}"
    label="${spec%%=*}" cmd="${spec#*=}"
    bin="${cmd##* }" envs="${cmd% *}"
    [[ "$envs" == "$cmd" ]] && envs=""
    line="$("$BENCH/run.sh" --label "$label" --rate "$rate" --secs "$secs" \
      --sut "env $envs $bin serve" \
      --provision "env $envs $HERE/fast-number.sh $bin tenant apply {bundle}" 2>/dev/null | grep '"type":"step' | tail -1 || true)"
    echo "$line" >> "$out"
    python3 - "$label" "$line" <<'PY'
import json, sys
label, line = sys.argv[1], sys.argv[2]
try:
    s = json.loads(line)
except ValueError:
    print(f"{label:12} no result"); sys.exit()
cpu = s["cpu_pct_of_one_core"]
sut = cpu.get("sut", next((v for k, v in cpu.items() if k not in ("mock", "loadgen", "machine_all_cores", "outside_bench")), 0))
e = s["e2e_ms"]
print(f"{label:12} pass={s['pass']!s:5} deliv={s['delivered_frac']:.4f} dup={s['duplicates']} "
      f"wrong={s['wrong_token']}/{s['wrong_body']} cpu={sut:6.1f}% us/msg={s['sut_cpu_us_per_msg']} "
      f"outside={cpu.get('outside_bench', 0):5.1f}% e2e={e['p50']}/{e['p99']} ms")
PY
  done
done

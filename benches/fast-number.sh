#!/usr/bin/env bash
# For ../shared/bench: applies the harness's tenant bundle with the WhatsApp number on
# Meta's upgraded throughput tier (messages_per_second = 1000) instead of the default
# 80, which alone caps 20 tenants at 1600 replies a second.
#   --provision 'benches/fast-number.sh target/release/parley tenant apply {bundle}'
# With BENCH_RATE_LIMITS=1 it also gives each tenant an hourly and a per-customer daily
# limit far above any load, so every reply is counted against both (what rate limits
# cost; no reply is limited):
#   --provision 'BENCH_RATE_LIMITS=1 benches/fast-number.sh target/release/parley tenant apply {bundle}'
set -euo pipefail
bundle="${*: -1}"
fast="$(mktemp --suffix=.json)"
trap 'rm -f "$fast"' EXIT
python3 - "$bundle" "$fast" "${BENCH_RATE_LIMITS:-0}" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
b.setdefault("whatsapp", {})["messages_per_second"] = 1000
if sys.argv[3] == "1":
    b.setdefault("settings", {})["max_messages_per_hour"] = 100000000
    b["settings"]["max_messages_per_user_per_day"] = 1000
json.dump(b, open(sys.argv[2], "w"))
PY
"${@:1:$#-1}" "$fast"

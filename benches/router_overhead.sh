#!/usr/bin/env bash
# What routing through nfai adds: a minimal OpenAI-compatible upstream on loopback, measured
# directly and through nfai (route `m` → `openai:mini/m`) in the same run: latency at a fixed
# rate (default 1000 requests/s) and closed-loop throughput.
#   bash benches/router_overhead.sh [requests/s] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
RPS="${1:-1000}"; SECS="${2:-10}"; CONNS="${3:-64}"
UP_PORT=18181; NFAI_PORT=18180

cargo build --release -p nfai-router --bin nfai -p nfai-benches --example router_overhead
BENCH=target/release/examples/router_overhead

dir=$(mktemp -d)
cat > "$dir/nfai.toml" <<TOML
serve = []
[[upstreams]]
name = "mini"
nodes = ["http://127.0.0.1:$UP_PORT"]
max_concurrency = 4096
[[routes]]
model = "m"
targets = ["openai:mini/m"]
TOML

"$BENCH" upstream "$UP_PORT" & up=$!
RUST_LOG=warn target/release/nfai serve --config "$dir/nfai.toml" --port "$NFAI_PORT" --no-fetch & nfai=$!
trap 'kill $up $nfai 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$NFAI_PORT/health" >/dev/null && break; sleep 0.1
done

direct="http://127.0.0.1:$UP_PORT/v1/chat/completions"
routed="http://127.0.0.1:$NFAI_PORT/v1/chat/completions"
"$BENCH" rate "$direct" "$RPS" "$SECS"
"$BENCH" rate "$routed" "$RPS" "$SECS"
"$BENCH" max "$direct" "$CONNS" "$SECS"
"$BENCH" max "$routed" "$CONNS" "$SECS"

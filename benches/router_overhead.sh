#!/usr/bin/env bash
# What routing through nfai adds: a minimal OpenAI-compatible upstream on loopback, measured
# directly and through nfai (route `m` → `openai:mini/m`) in the same run: latency at a fixed
# rate (default 1000 requests/s) and closed-loop throughput. A bare forwarding proxy (no
# parsing, no routing) runs beside nfai as the floor: what any proxy in between costs.
#   bash benches/router_overhead.sh [requests/s] [seconds] [connections]
#   PIN=0 bash benches/router_overhead.sh   # everything unpinned
#   STREAM=1 bash benches/router_overhead.sh  # streamed (SSE) answers
set -euo pipefail
cd "$(dirname "$0")/.."
RPS="${1:-1000}"; SECS="${2:-10}"; CONNS="${3:-64}"
UP_PORT=18181; NFAI_PORT=18180; PROXY_PORT=18182

cargo build --release -p nfai-router --bin nfai -p nfai-benches --example router_overhead
BENCH="${CARGO_TARGET_DIR:-target}"/release/examples/router_overhead

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

# With two or more cores, the upstream and the load generator share core 0 and nfai runs on
# core 1, both for the direct and the routed runs: the client and upstream get the same CPU in
# both, and the routed figures show whether nfai keeps up, as it would on a core of its own.
# PIN=0 runs everything unpinned (all three compete for every core).
PIN="${PIN:-1}"
[ "$(nproc)" -ge 2 ] || PIN=0
if [ "$PIN" = 1 ]; then near="taskset -c 0"; own="taskset -c 1"; else near=""; own=""; fi

$near "$BENCH" upstream "$UP_PORT" & up=$!
$own "$BENCH" proxy "$PROXY_PORT" "http://127.0.0.1:$UP_PORT" & proxy=$!
RUST_LOG=warn $own "${CARGO_TARGET_DIR:-target}"/release/nfai serve --config "$dir/nfai.toml" --port "$NFAI_PORT" --no-fetch & nfai=$!
trap 'kill $up $proxy $nfai 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$NFAI_PORT/health" >/dev/null && break; sleep 0.1
done

# CPU seconds process $1 has used so far (user + system).
cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }

direct="http://127.0.0.1:$UP_PORT/v1/chat/completions"
routed="http://127.0.0.1:$NFAI_PORT/v1/chat/completions"
bare="http://127.0.0.1:$PROXY_PORT/v1/chat/completions"
if [ "$PIN" = 1 ]; then echo "pinned: upstream and load generator on core 0, nfai and the bare proxy on core 1"
else echo "unpinned: upstream, load generator and nfai share every core"; fi
$near "$BENCH" rate "$direct" "$RPS" "$SECS"
$near "$BENCH" rate "$routed" "$RPS" "$SECS"

# Closed loop: prints throughput and the CPU the middle process ($2) spent per request.
closed() {
  local before after rps
  before=$(cpu "$2")
  $near "$BENCH" max "$1" "$CONNS" "$SECS" | tee "$dir/max"
  after=$(cpu "$2")
  rps=$(grep -o '[0-9]* requests/s' "$dir/max" | cut -d' ' -f1)
  awk -v b="$before" -v a="$after" -v r="$rps" -v s="$SECS" -v who="$3" \
    'BEGIN { printf "  %s CPU per request: %.1f us (%.2f s over %d requests)\n", who, (a - b) * 1e6 / (r * s), a - b, r * s }'
  echo "$rps" >> "$dir/rps"
}
closed "$direct" "$up" "upstream"
closed "$bare" "$proxy" "bare proxy"
closed "$routed" "$nfai" "nfai"
mapfile -t r < "$dir/rps"
awk -v d="${r[0]}" -v b="${r[1]}" -v n="${r[2]}" \
  'BEGIN { printf "throughput through nfai: %.1f%% of direct (bare proxy: %.1f%%)\n", 100 * n / d, 100 * b / d }'

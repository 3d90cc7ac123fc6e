#!/usr/bin/env bash
# What API keys and rate limits add per request: the same build of nfai run three ways in one
# run, each routing `m` to the minimal upstream of benches/examples/router_overhead.rs:
#   open     no keys (metrics on, as always);
#   keyed    a key from auth.keys_file with rpm and tpm limits (auth + local limits);
#   shared   the same, with the limits shared through Redis (NFAI_REDIS_URL, default
#            redis://127.0.0.1:6379).
# Rounds alternate open / keyed / shared at a fixed rate (p50/p99 each), then a closed loop
# gives each one's CPU per request. Pinned as benches/router_overhead.sh: the upstream and the
# load generator on core 0, the nfai processes on core 1. Each nfai writes its access log (one
# JSON line per request) to /dev/null.
#   bash benches/auth_overhead.sh [requests/s] [seconds] [rounds]
#   PROFILE=dev bash benches/auth_overhead.sh   # the dev profile of scripts/bench-config.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RPS="${1:-1000}"; SECS="${2:-10}"; ROUNDS="${3:-3}"
PROFILE="${PROFILE:-release}"
REDIS="${NFAI_REDIS_URL:-redis://127.0.0.1:6379}"
UP_PORT=18191; PORTS=(18192 18193 18194); NAMES=(open keyed shared)

OPT=()
if [ "$PROFILE" = dev ]; then
  # The dependencies this measures (HTTP, Redis) are at opt-level 1 in the dev profile: raise
  # them too.
  source scripts/bench-config.sh
  OPT=("${BENCH_CONFIG[@]}" --config 'profile.dev.package."*".opt-level=3')
  OUT="${CARGO_TARGET_DIR:-target}/debug"
else
  OUT="${CARGO_TARGET_DIR:-target}/$PROFILE"
fi
cargo build "${OPT[@]}" --profile "$PROFILE" -p nfai-router --bin nfai -p nfai-benches --example router_overhead
BENCH="$OUT/examples/router_overhead"

dir=$(mktemp -d)
KEY="nfai-$(python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(43)))')"
cat > "$dir/keys.toml" <<TOML
[[keys]]
name = "bench"
secret = "$KEY"
rpm = 1000000000
tpm = 1000000000000
TOML
for i in 0 1 2; do
  mkdir -p "$dir/data$i"
  {
    echo 'serve = []'
    echo '[[upstreams]]'
    echo 'name = "mini"'
    echo "nodes = [\"http://127.0.0.1:$UP_PORT\"]"
    echo 'max_concurrency = 4096'
    echo '[[routes]]'
    echo 'model = "m"'
    echo 'targets = ["openai:mini/m"]'
    if [ "$i" -gt 0 ]; then
      echo '[auth]'
      echo "keys_file = \"$dir/keys.toml\""
    fi
  } > "$dir/nfai$i.toml"
done

PIN="${PIN:-1}"
[ "$(nproc)" -ge 2 ] || PIN=0
if [ "$PIN" = 1 ]; then near="taskset -c 0"; own="taskset -c 1"; else near=""; own=""; fi

$near "$BENCH" upstream "$UP_PORT" & pids=($!)
for i in 0 1 2; do
  redis=()
  [ "$i" = 2 ] && redis=(env "NFAI_REDIS_URL=$REDIS" "NFAI_REDIS_KEY_PREFIX=nfai-bench-$$:")
  RUST_LOG=warn ${redis[@]+"${redis[@]}"} $own "$OUT/nfai" serve --config "$dir/nfai$i.toml" \
    --port "${PORTS[$i]}" --data-dir "$dir/data$i" --no-fetch >/dev/null & pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
for port in "${PORTS[@]}"; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1
  done
done
# The keyed servers refuse a request without the key: check that the key is what lets it in.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:${PORTS[1]}/v1/chat/completions" \
  -H 'content-type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}')
[ "$code" = 401 ] || { echo "the keyed server answered $code without a key" >&2; exit 1; }
export BENCH_BEARER="$KEY"

cpu() { awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
url() { echo "http://127.0.0.1:${PORTS[$1]}/v1/chat/completions"; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); profile $PROFILE"
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    line=$($near "$BENCH" rate "$(url "$i")" "$RPS" "$SECS")
    echo "round $r ${NAMES[$i]}: ${line#*: }"
    echo "${NAMES[$i]} $(sed -E 's/.*p50 ([0-9.]+) ms.*p99 ([0-9.]+) ms.*/\1 \2/' <<<"$line")" >> "$dir/rates"
  done
done
for i in 0 1 2; do
  before=$(cpu "${pids[$((i + 1))]}")
  rps=$($near "$BENCH" max "$(url "$i")" 64 "$SECS" | grep -o '[0-9]* requests/s' | cut -d' ' -f1)
  after=$(cpu "${pids[$((i + 1))]}")
  awk -v n="${NAMES[$i]}" -v b="$before" -v a="$after" -v r="$rps" -v s="$SECS" \
    'BEGIN { printf "closed loop %s: %d requests/s, nfai CPU per request %.1f us\n", n, r, (a - b) * 1e6 / (r * s) }'
done
# Median p50 and p99 of each configuration over the rounds, and what it adds to `open`.
awk '
  { p50[$1] = p50[$1] " " $2; p99[$1] = p99[$1] " " $3 }
  function median(list,   v, n, i, j, t) {
    n = split(substr(list, 2), v, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  END {
    o50 = median(p50["open"]); o99 = median(p99["open"])
    printf "| | p50 ms | p99 ms | p50 added |\n|---|---:|---:|---:|\n"
    split("open keyed shared", names, " ")
    for (k = 1; k <= 3; k++) {
      n = names[k]; m50 = median(p50[n]); m99 = median(p99[n])
      printf "| %s | %.3f | %.3f | %+.0f us |\n", n, m50, m99, (m50 - o50) * 1000
    }
  }' "$dir/rates"

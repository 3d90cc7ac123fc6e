# Sourced by the benchmark scripts: the `--config` settings (in BENCH_CONFIG) that make a
# dev-profile build measure what the release build runs, without its long LTO build. Cargo
# takes per-package profile settings from --config, not from the environment.
#   - nfai's crates at opt-level 3 (models and inference are there in Cargo.toml already);
#   - no overflow checks or debug assertions in nfai's crates and in the compute dependencies
#     (the dev profile's defaults put a check on every index computation of the kernels'
#     inner loops: the release build has none).
# The HTTP and storage dependencies stay at the dev profile's opt-level 1; a script that
# times them adds --config 'profile.dev.package."*".opt-level=3'.
BENCH_CONFIG=()
for p in nfai-router nfai-benches nfai-retrieval nfai-cache nfai-tests nfai-crm-demo; do
    BENCH_CONFIG+=(--config "profile.dev.package.$p.opt-level=3")
done
for p in nfai-models nfai-inference nfai-router nfai-benches nfai-retrieval nfai-cache \
    nfai-tests nfai-crm-demo gemm gemm-common gemm-f16 gemm-f32 gemm-f64 gemm-c32 gemm-c64 pulp \
    candle-core candle-nn half; do
    BENCH_CONFIG+=(--config "profile.dev.package.$p.overflow-checks=false"
        --config "profile.dev.package.$p.debug-assertions=false")
done

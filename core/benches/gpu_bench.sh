#!/bin/sh
# The GPU benchmark as one short run (issue #6): checks the wgpu path against the CPU on the
# machine's best adapter, then times every bundled model and FCN-8s-LRNN (n = 1024, 384x384)
# through wgpu next to candle's CPU path, and next to PyTorch (CUDA, f32) on the same card when a
# CUDA-enabled torch is installed.
#
#   core/benches/gpu_bench.sh            build here with cargo, then check and time
#   core/benches/gpu_bench.sh --kit DIR  build the two programs into DIR (for a machine without
#                                        cargo or crates.io), without running them
#   core/benches/gpu_bench.sh DIR        run the programs a --kit built (from the repository root)
set -eu
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--kit" ]; then
    # shellcheck source=core/benches/kit.sh
    . core/benches/kit.sh
    build_kit "${2:?--kit DIR}" "" "--test gpu" "--bench gpu_forward"
    exit 0
fi
if [ -n "${1:-}" ]; then
    tests="$(cd "$1" && pwd)/gpu"
    bench="$(cd "$1" && pwd)/gpu_forward --bench"
else
    cargo test --release -p lrnn-core --test gpu --no-run
    cargo bench -p lrnn-core --bench gpu_forward --no-run
    tests="cargo test --release -p lrnn-core --test gpu --"
    bench="cargo bench -p lrnn-core --bench gpu_forward"
fi
echo "== parity: every model kind, kernel and bundled model against the CPU (an adapter is required)"
# shellcheck disable=SC2086
(cd core && LRNN_REQUIRE_GPU=1 $tests --test-threads 1)
echo "== timing (and each model's per-kernel table)"
# shellcheck disable=SC2086
(cd core && LRNN_GPU_PROFILE=${LRNN_GPU_PROFILE:-1} LRNN_BENCH_RUNS=${LRNN_BENCH_RUNS:-10} $bench)

#!/bin/sh
# The CUDA scan as one short run (issue #8): the CUDA parity tests (fused scan op and L-RNN
# module against the CPU), then the scan benchmark on the GPU (fused op, candle ops step by step,
# PyTorch on CUDA, the floor at cuBLAS's rate), all built with the crate's `cuda` feature.
#
#   core/benches/cuda_bench.sh            build here with cargo (needs the CUDA toolkit), then run
#   core/benches/cuda_bench.sh --kit DIR  build the two programs into DIR (for a machine without
#                                         cargo or crates.io), without running them
#   core/benches/cuda_bench.sh DIR        run the programs a --kit built (from the repository root)
#
# Building needs nvcc and CUDA's libraries (cuBLAS, cuRAND, NVRTC, the driver API) at link time;
# BENCHMARKS.md says how the recorded run got them on a machine without a GPU. The programs load
# the same libraries at run time (LD_LIBRARY_PATH), and compile their scan kernels with NVRTC.
set -eu
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--kit" ]; then
    # shellcheck source=core/benches/kit.sh
    . core/benches/kit.sh
    build_kit "${2:?--kit DIR}" "--features cuda" "--test scan_op" "--bench lrnn_module"
    exit 0
fi
if [ -n "${1:-}" ]; then
    tests="$(cd "$1" && pwd)/scan_op"
    bench="$(cd "$1" && pwd)/lrnn_module --bench"
else
    cargo test --release -p lrnn-core --features cuda --test scan_op --no-run
    cargo bench -p lrnn-core --features cuda --bench lrnn_module --no-run
    tests="cargo test --release -p lrnn-core --features cuda --test scan_op --"
    bench="cargo bench -p lrnn-core --features cuda --bench lrnn_module"
fi
echo "== parity: the fused scan op and the L-RNN module on CUDA against the CPU"
# shellcheck disable=SC2086
(cd core && $tests --test-threads 1)
echo "== timing"
# shellcheck disable=SC2086
(cd core && LRNN_BENCH_DEVICE=cuda LRNN_BENCH_RUNS=${LRNN_BENCH_RUNS:-10} $bench)

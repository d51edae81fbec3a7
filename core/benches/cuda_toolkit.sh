#!/bin/bash
# Prepares a build of the `cuda` feature on a machine with neither a GPU nor the CUDA toolkit
# (how the recorded CUDA run of issue #8 was built): CUDA 13.0's compiler and libraries from PyPI,
# a link-time stub of the driver library, and a copy of candle-kernels whose quantized and MoE
# kernels (unused by lrnn-core, most of its build time) are stubbed. Then:
#
#   source core/benches/cuda_toolkit.sh DIR      # DIR: where to put it all (a few GB)
#   core/benches/cuda_bench.sh --kit .cudakit    # the programs, for the GPU machine
#
# Needs python3 with pip and internet access to PyPI and crates.io; on the GPU machine the
# programs use that machine's driver and CUDA 13 libraries (LD_LIBRARY_PATH).
set -eu
dir=$(mkdir -p "${1:?usage: source cuda_toolkit.sh DIR}" && cd "$1" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cu=$dir/wh/nvidia/cu13
if [ ! -x "$cu/bin/nvcc" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
        -d "$dir/wheels" "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
        "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cublas==13.0.*" \
        "nvidia-curand==10.4.*"
    for w in "$dir"/wheels/*.whl; do unzip -q -o "$w" -d "$dir/wh"; done
    for l in cudart nvrtc curand cublas cublasLt; do
        (cd "$cu/lib" && ln -sf "$(ls "lib$l.so."* | head -1)" "lib$l.so")
    done
fi
# The driver library to link against (the GPU machine has the real one): every function cudarc
# declares, each returning an error.
(cd "$root" && cargo fetch -q) # every crate of Cargo.lock, cudarc and candle-kernels too
reg=$(ls -d "$HOME"/.cargo/registry/src/*/ | head -1)
if [ ! -e "$cu/lib/stubs/libcuda.so" ]; then
    mkdir -p "$cu/lib/stubs"
    cudarc=$(ls -d "$reg"cudarc-0.19.* 2>/dev/null | tail -1)
    if [ -z "$cudarc" ]; then
        crate=$(ls "$HOME"/.cargo/registry/cache/*/cudarc-0.19.*.crate | tail -1)
        tar xzf "$crate" -C "$dir"
        cudarc=$(ls -d "$dir"/cudarc-0.19.* | tail -1)
    fi
    grep -ho '^ *fn cu[A-Za-z0-9_]*(' "$cudarc/src/driver/sys/mod.rs" | sed 's/ *fn //; s/(//' | sort -u |
        awk '{print "int " $1 "(void){return 999;}"}' >"$dir/cuda_stub.c"
    gcc -shared -fPIC -o "$cu/lib/stubs/libcuda.so.1" -Wl,-soname,libcuda.so.1 "$dir/cuda_stub.c"
    ln -sf libcuda.so.1 "$cu/lib/stubs/libcuda.so"
fi
# candle-kernels with the quantized / MoE kernels stubbed (the PTX of the others as upstream).
ck=$dir/candle-kernels
if [ ! -e "$ck/Cargo.toml" ]; then
    crate=$(ls "$HOME"/.cargo/registry/cache/*/candle-kernels-0.11.1.crate | head -1)
    tar xzf "$crate" -C "$dir" && mv "$dir/candle-kernels-0.11.1" "$ck"
    grep -ho 'pub fn [a-zA-Z_0-9]*' "$ck/src/ffi.rs" | sed 's/pub fn //' | sort -u |
        awk '{print "void " $1 "(void){ __builtin_trap(); }"}' >"$ck/stub_moe.c"
    echo 'extern "C" __global__ void quantized_disabled_in_this_build(float* x){ }' >"$ck/src/quantized.cu"
    cat >"$ck/build.rs" <<'EOF'
use cudaforge::{KernelBuilder, Result};
use std::path::PathBuf;

fn main() -> Result<()> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    KernelBuilder::new()
        .source_dir("src")
        .exclude(&["moe_*.cu", "mmvq_gguf.cu", "mmq_*.cu"])
        .arg("--expt-relaxed-constexpr")
        .arg("-std=c++17")
        .arg("-O3")
        .build_ptx()?
        .write(out_dir.join("ptx.rs"))?;
    let (obj, lib) = (out_dir.join("stub_moe.o"), out_dir.join("libmoe.a"));
    let ok = |c: &mut std::process::Command| c.status().map(|s| s.success()).unwrap_or(false);
    assert!(ok(std::process::Command::new("cc").args(["-c", "-fPIC", "stub_moe.c", "-o"]).arg(&obj)));
    assert!(ok(std::process::Command::new("ar").arg("rcs").arg(&lib).arg(&obj)));
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rustc-link-lib=static=moe");
    println!("cargo:rustc-link-lib=dylib=cudart");
    Ok(())
}
EOF
fi
# A cargo config beside the checkout (not in it): the patch applies to this build only. Remove
# it afterwards (`rm -r ../.cargo`) and `git checkout Cargo.lock`.
mkdir -p "$root/../.cargo"
printf '[patch.crates-io]\ncandle-kernels = { path = "%s" }\n' "$ck" >"$root/../.cargo/config.toml"
export PATH="$cu/bin:$PATH" CUDA_HOME="$cu" CUDA_COMPUTE_CAP=90 LIBRARY_PATH="$cu/lib:$cu/lib/stubs"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_CUDA:-$HOME/.cache/lrnn-cuda/target}"
set +eu
echo "CUDA 13.0 kit in $dir; nvcc $(nvcc --version | tail -1); builds go to $CARGO_TARGET_DIR"

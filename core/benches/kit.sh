# Sourced by gpu_bench.sh and cuda_bench.sh (from the repository root):
#   build_kit DIR "CARGO_ARGS" SPEC...
# builds each SPEC ("--test NAME" or "--bench NAME" of lrnn-core) in release with CARGO_ARGS
# (say "--features cuda") and copies it to DIR/NAME without debug information (the device machine
# takes 64 MiB of carried files).
build_kit() {
    kit_out=$1
    kit_args=$2
    shift 2
    mkdir -p "$kit_out"
    for spec in "$@"; do
        name=$(echo "$spec" | cut -d' ' -f2)
        # shellcheck disable=SC2086
        exe=$(cargo test --release -p lrnn-core $kit_args $spec --no-run --message-format=json 2>/dev/null |
            grep "\"name\":\"$name\"" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
        strip -o "$kit_out/$name" "$exe"
        echo "built $kit_out/$name"
    done
}

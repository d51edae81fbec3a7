// The gradient of global pooling's input: every position of a plane gets the plane's gradient
// divided by its size (mode 1, the mean), or the whole of it where it equals the maximum
// (mode 0: every tied position, as candle's gradient of a maximum does). One invocation per input
// element.

struct Params {
    planes: u32,
    size: u32,
    mode: u32,
    _a: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [planes, size]: the forward's input; [planes]: its output and the output's gradient.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.planes * p.size) {
        return;
    }
    let plane = i / p.size;
    if (p.mode == 1u) {
        dx[i] = g[plane] / f32(p.size);
    } else {
        dx[i] = select(0.0, g[plane], x[i] == y[plane]);
    }
}

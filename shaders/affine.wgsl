// A per-channel affine map with an optional ReLU, NCHW: y = max(x * scale[c] + shift[c], 0).
// BatchNorm in inference mode, folded at load into scale = gamma / sqrt(var + eps) and
// shift = beta - mean * scale, where it precedes a ReLU (the pre-activation CNN module's first
// BatchNorm; the second is folded into the convolution before it). With relu = 2, its gradient
// (with the ReLU): x holds the output's gradient g, shift the forward's output y, and
// y[i] = g[i] · scale[c] where the forward's output is positive, else 0. One invocation per
// element.

struct Params {
    n: u32,
    channels: u32,
    plane: u32,
    relu: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.n) {
        return;
    }
    let c = (i / p.plane) % p.channels;
    if (p.relu == 2u) {
        y[i] = select(0.0, x[i] * scale[c], shift[i] > 0.0);
        return;
    }
    var v = x[i] * scale[c] + shift[c];
    if (p.relu != 0u) {
        v = max(v, 0.0);
    }
    y[i] = v;
}

// A fully connected layer, [B, IN] to [B, OUT]: y = W x + b with W [OUT, IN] (PyTorch's layout).
// One invocation per output.

struct Params {
    batch: u32,
    inputs: u32,
    outputs: u32,
    _unused: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.batch * p.outputs) {
        return;
    }
    let o = i % p.outputs;
    let b = i / p.outputs;
    var acc = bias[o];
    for (var k = 0u; k < p.inputs; k++) {
        acc += weight[o * p.inputs + k] * x[b * p.inputs + k];
    }
    y[i] = acc;
}

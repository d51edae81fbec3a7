// Global pooling over positions, [B, C, H, W] to [B, C]: maximum (mode 0) or mean (mode 1).
// One invocation per (image, channel).

struct Params {
    planes: u32,
    size: u32,
    mode: u32,
    _unused: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.planes) {
        return;
    }
    let base = i * p.size;
    var acc = x[base];
    if (p.mode == 0u) {
        for (var k = 1u; k < p.size; k++) {
            acc = max(acc, x[base + k]);
        }
    } else {
        for (var k = 1u; k < p.size; k++) {
            acc += x[base + k];
        }
        acc = acc / f32(p.size);
    }
    y[i] = acc;
}

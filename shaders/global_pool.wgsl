// Global pooling over positions, [B, C, H, W] to [B, C]: maximum (mode 0) or mean (mode 1).
// One workgroup per (image, channel): its 64 invocations each reduce a strided part of the
// plane, then the partial results are combined in workgroup memory (so no invocation loops over
// a whole large map).

struct Params {
    planes: u32,
    size: u32,
    mode: u32,
    // Workgroups per row of the dispatch grid.
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let plane = wid.x + wid.y * p.groups_x;
    if (plane >= p.planes) {
        return;
    }
    let base = plane * p.size;
    var acc = x[base + min(lid.x, p.size - 1u)];
    if (p.mode == 1u) {
        acc = 0.0;
    }
    for (var k = lid.x; k < p.size; k += 64u) {
        let v = x[base + k];
        acc = select(acc + v, max(acc, v), p.mode == 0u);
    }
    part[lid.x] = acc;
    workgroupBarrier();
    if (lid.x == 0u) {
        var total = part[0];
        for (var i = 1u; i < 64u; i++) {
            total = select(total + part[i], max(total, part[i]), p.mode == 0u);
        }
        y[plane] = select(total / f32(p.size), total, p.mode == 0u);
    }
}

// 2x2 max-pooling with stride 2 (odd trailing rows and columns dropped, as candle's
// max_pool2d), NCHW. One invocation per output element.

struct Params {
    planes: u32,
    height: u32,
    width: u32,
    _unused: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    let oh = p.height / 2u;
    let ow = p.width / 2u;
    if (i >= p.planes * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = (plane * p.height + 2u * oy) * p.width + 2u * ox;
    y[i] = max(max(x[base], x[base + 1u]), max(x[base + p.width], x[base + p.width + 1u]));
}

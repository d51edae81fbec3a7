// Max- or average-pooling over k x k windows with stride s, no padding (trailing rows and
// columns that do not fill a window are dropped, as candle's pooling), NCHW. One invocation per
// output element.

struct Params {
    planes: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    // 0: maximum, 1: mean.
    mode: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    let oh = (p.height - p.kernel) / p.stride + 1u;
    let ow = (p.width - p.kernel) / p.stride + 1u;
    if (i >= p.planes * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = (plane * p.height + oy * p.stride) * p.width + ox * p.stride;
    var acc = x[base];
    if (p.mode == 0u) {
        for (var ky = 0u; ky < p.kernel; ky++) {
            for (var kx = 0u; kx < p.kernel; kx++) {
                acc = max(acc, x[base + ky * p.width + kx]);
            }
        }
    } else {
        acc = 0.0;
        for (var ky = 0u; ky < p.kernel; ky++) {
            for (var kx = 0u; kx < p.kernel; kx++) {
                acc += x[base + ky * p.width + kx];
            }
        }
        acc = acc / f32(p.kernel * p.kernel);
    }
    y[i] = acc;
}

// Max- or average-pooling over k x k windows with stride s, no padding, NCHW. Trailing rows and
// columns that do not fill a window are dropped (as candle's pooling), or with `ceil` = 1 pooled
// over what there is (Caffe's ceil mode: ceil((h - k) / s) + 1 rows). One invocation per output
// element.

struct Params {
    planes: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    // 0: maximum, 1: mean.
    mode: u32,
    // 1: Caffe's ceil mode (windows clipped at the bottom and right edges).
    ceil: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    var oh = (p.height - p.kernel) / p.stride + 1u;
    var ow = (p.width - p.kernel) / p.stride + 1u;
    if (p.ceil == 1u) {
        oh = (p.height + p.stride - 1u - p.kernel) / p.stride + 1u;
        ow = (p.width + p.stride - 1u - p.kernel) / p.stride + 1u;
    }
    if (i >= p.planes * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = (plane * p.height + oy * p.stride) * p.width + ox * p.stride;
    var acc = x[base];
    if (p.mode == 0u) {
        // The window clipped to the map (only ceil mode reaches past it).
        let rows = min(p.kernel, p.height - oy * p.stride);
        let cols = min(p.kernel, p.width - ox * p.stride);
        for (var ky = 0u; ky < rows; ky++) {
            for (var kx = 0u; kx < cols; kx++) {
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

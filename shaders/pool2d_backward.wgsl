// The gradient of max pooling over non-overlapping windows (kernel = stride; Caffe's ceil mode
// clips the last window): each input element receives its window's output gradient if it is
// the window's first maximum (in row-major order, as PyTorch and the CPU path), else 0. One
// invocation per input element; no atomics (each element belongs to one window).

struct Params {
    // Images x channels.
    planes: u32,
    // The forward's input size.
    height: u32,
    width: u32,
    // Window side and stride.
    kernel: u32,
    // 1: Caffe's ceil mode.
    ceil: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The forward's input [planes, H, W] and the output's gradient [planes, OH, OW].
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.planes * p.height * p.width) {
        return;
    }
    let k = p.kernel;
    var oh = p.height / k;
    var ow = p.width / k;
    if (p.ceil == 1u) {
        oh = (p.height + k - 1u) / k;
        ow = (p.width + k - 1u) / k;
    }
    let ix = i % p.width;
    let iy = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let oy = iy / k;
    let ox = ix / k;
    if (oy >= oh || ox >= ow) {
        // A trailing row or column no window covers.
        dx[i] = 0.0;
        return;
    }
    let rows = min(k, p.height - oy * k);
    let cols = min(k, p.width - ox * k);
    let base = (plane * p.height + oy * k) * p.width + ox * k;
    var best = base;
    for (var ky = 0u; ky < rows; ky++) {
        for (var kx = 0u; kx < cols; kx++) {
            let at = base + ky * p.width + kx;
            if (x[at] > x[best]) {
                best = at;
            }
        }
    }
    dx[i] = select(0.0, g[(plane * oh + oy) * ow + ox], best == i);
}

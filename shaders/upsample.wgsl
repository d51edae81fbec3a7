// Bilinear upsampling of NCHW maps with PyTorch's align_corners = False (source coordinate
// (i + 0.5) * in / out - 0.5, clamped at 0; the FCN's score upsampling), optionally plus a map of
// the output's shape (the FCN-8s fusion: up(coarse scores) + finer scores). One invocation per
// output element.

struct Params {
    planes: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    add: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> addend: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// The two taps and the second one's weight along one axis.
fn taps(i: u32, n_in: u32, n_out: u32) -> vec3<f32> {
    let src = max((f32(i) + 0.5) * f32(n_in) / f32(n_out) - 0.5, 0.0);
    let i0 = min(u32(floor(src)), n_in - 1u);
    let i1 = min(i0 + 1u, n_in - 1u);
    return vec3<f32>(f32(i0), f32(i1), src - f32(i0));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.planes * p.out_height * p.out_width) {
        return;
    }
    let ox = i % p.out_width;
    let oy = (i / p.out_width) % p.out_height;
    let plane = i / (p.out_width * p.out_height);
    let tx = taps(ox, p.in_width, p.out_width);
    let ty = taps(oy, p.in_height, p.out_height);
    let base = plane * p.in_height * p.in_width;
    let r0 = base + u32(ty.x) * p.in_width;
    let r1 = base + u32(ty.y) * p.in_width;
    let x0 = u32(tx.x);
    let x1 = u32(tx.y);
    let top = (1.0 - tx.z) * x[r0 + x0] + tx.z * x[r0 + x1];
    let bottom = (1.0 - tx.z) * x[r1 + x0] + tx.z * x[r1 + x1];
    var v = (1.0 - ty.z) * top + ty.z * bottom;
    if (p.add != 0u) {
        v += addend[i];
    }
    y[i] = v;
}

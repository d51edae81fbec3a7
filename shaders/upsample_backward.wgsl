// The gradient of bilinear upsampling (`upsample.wgsl`, align_corners = False) with respect to
// its input: each input element gathers the output gradients of the outputs that read it,
// weighted as the forward weighted it. One invocation per input element; the outputs looked at
// are the few whose taps can reach it (about 2 x out / in per axis), each checked exactly.

struct Params {
    planes: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// The output's gradient [planes, out_height, out_width].
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// The weight output o gives input i along one axis (0 when its taps miss i).
fn weight(o: u32, i: u32, n_in: u32, n_out: u32) -> f32 {
    let src = max((f32(o) + 0.5) * f32(n_in) / f32(n_out) - 0.5, 0.0);
    let i0 = min(u32(floor(src)), n_in - 1u);
    let i1 = min(i0 + 1u, n_in - 1u);
    let f = src - f32(i0);
    return select(0.0, 1.0 - f, i == i0) + select(0.0, f, i == i1);
}

// The outputs whose taps may reach input i: [first, last].
fn reach(i: u32, n_in: u32, n_out: u32) -> vec2<u32> {
    let r = f32(n_out) / f32(n_in);
    let lo = i32(floor((f32(i) - 0.5) * r - 0.5)) - 1;
    let hi = i32(ceil((f32(i) + 1.5) * r - 0.5)) + 1;
    return vec2<u32>(u32(max(lo, 0)), u32(min(hi, i32(n_out) - 1)));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.planes * p.in_height * p.in_width) {
        return;
    }
    let ix = i % p.in_width;
    let iy = (i / p.in_width) % p.in_height;
    let plane = i / (p.in_width * p.in_height);
    let ry = reach(iy, p.in_height, p.out_height);
    let rx = reach(ix, p.in_width, p.out_width);
    let base = plane * p.out_height * p.out_width;
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        let wy = weight(oy, iy, p.in_height, p.out_height);
        if (wy == 0.0) {
            continue;
        }
        var row = 0.0;
        for (var ox = rx.x; ox <= rx.y; ox++) {
            row += weight(ox, ix, p.in_width, p.out_width) * g[base + oy * p.out_width + ox];
        }
        acc += wy * row;
    }
    dx[i] = acc;
}

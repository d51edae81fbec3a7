// Direct 2D convolution with bias and optional ReLU, NCHW, square kernel, any stride and
// zero padding. One invocation per output element; the kernel loops over input channels and
// the window. (Not yet tiled through workgroup memory: see shaders/README.md.)

struct Params {
    batch: u32,
    in_channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel: u32,
    pad: u32,
    stride: u32,
    out_height: u32,
    out_width: u32,
    relu: u32,
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
    let n = p.batch * p.out_channels * p.out_height * p.out_width;
    if (i >= n) {
        return;
    }
    let ox = i % p.out_width;
    let oy = (i / p.out_width) % p.out_height;
    let o = (i / (p.out_width * p.out_height)) % p.out_channels;
    let b = i / (p.out_width * p.out_height * p.out_channels);
    var acc = bias[o];
    for (var c = 0u; c < p.in_channels; c++) {
        let x_base = (b * p.in_channels + c) * p.height;
        let w_base = (o * p.in_channels + c) * p.kernel;
        for (var ky = 0u; ky < p.kernel; ky++) {
            let iy = i32(oy * p.stride + ky) - i32(p.pad);
            if (iy < 0 || iy >= i32(p.height)) {
                continue;
            }
            let x_row = (x_base + u32(iy)) * p.width;
            let w_row = (w_base + ky) * p.kernel;
            for (var kx = 0u; kx < p.kernel; kx++) {
                let ix = i32(ox * p.stride + kx) - i32(p.pad);
                if (ix < 0 || ix >= i32(p.width)) {
                    continue;
                }
                acc += x[x_row + u32(ix)] * weight[w_row + kx];
            }
        }
    }
    if (p.relu != 0u) {
        acc = max(acc, 0.0);
    }
    y[i] = acc;
}

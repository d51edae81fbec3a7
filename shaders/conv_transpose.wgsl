// A transposed convolution without bias and without padding (Caffe's Deconvolution, PyTorch's
// ConvTranspose2d(bias=False)), NCHW: y[b, o, oy, ox] = sum over c and the taps (ky, kx) with
// oy = iy * stride + ky, ox = ix * stride + kx of x[b, c, iy, ix] * w[c, o, ky, kx]. The weight is
// [in_channels, out_channels, kernel, kernel]. One invocation per output element: it visits only
// the kernel rows and columns congruent to its position modulo the stride (kernel / stride of
// each, rounded up), so no invocation writes where another does.

struct Params {
    batch: u32,
    in_channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel: u32,
    stride: u32,
    out_height: u32,
    out_width: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    let plane = p.out_height * p.out_width;
    if (i >= p.batch * p.out_channels * plane) {
        return;
    }
    let ox = i % p.out_width;
    let oy = (i / p.out_width) % p.out_height;
    let o = (i / plane) % p.out_channels;
    let b = i / (plane * p.out_channels);
    let k = p.kernel;
    var acc = 0.0;
    for (var ky = oy % p.stride; ky < k; ky += p.stride) {
        if (ky > oy) {
            break;
        }
        let iy = (oy - ky) / p.stride;
        if (iy >= p.height) {
            continue;
        }
        for (var kx = ox % p.stride; kx < k; kx += p.stride) {
            if (kx > ox) {
                break;
            }
            let ix = (ox - kx) / p.stride;
            if (ix >= p.width) {
                continue;
            }
            for (var c = 0u; c < p.in_channels; c++) {
                let xv = x[((b * p.in_channels + c) * p.height + iy) * p.width + ix];
                acc += xv * w[((c * p.out_channels + o) * k + ky) * k + kx];
            }
        }
    }
    y[i] = acc;
}

// 2D convolution with bias and optional ReLU, NCHW, square kernel, any stride and zero padding,
// as an implicit matrix product tiled through workgroup memory:
//   y[M = out channels, N = batch x output positions] = W[M, K = in channels x k x k] * X[K, N],
// where the columns of X are gathered from the input on the fly (no im2col buffer). A workgroup
// of 16x16 invocations computes a 64x64 tile of y, each invocation 4x4 outputs; K is walked in
// slices of 16 through two workgroup tiles. Also serves linear layers (a 1x1 convolution on
// [B, C, 1, 1]: PyTorch's [OUT, IN] weight is the [M, K] matrix).
//
// With `backward` = 1 it computes a convolution's input gradient instead, the same product
// with the roles turned: x is the gradient of the forward's output (`in_channels`, `height`,
// `width` are its channels and size), y the gradient of its input (`out_channels`,
// `out_height`, `out_width`), M = the forward's input channels, K = the forward's output
// channels x k x k (the weight read transposed, W[co, ci, ky, kx] at (m = ci, k = (co, ky,
// kx))), and the columns gather the output position each tap came from (none where the stride
// skips it or it falls outside). No bias, no ReLU.

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
    // Workgroups along N per row of the dispatch grid (N tiles are folded into y when > 65,535).
    n_groups_x: u32,
    // 1: the input gradient (see above).
    backward: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM] slice of W, [TK][TN] slice of X.
var<workgroup> w_tile: array<f32, 1024>;
var<workgroup> x_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let m_total = p.out_channels;
    let kk2 = p.kernel * p.kernel;
    let k_total = p.in_channels * kk2;
    let positions = p.out_height * p.out_width;
    let n_total = p.batch * positions;
    let n_tile = wid.x + wid.y * p.n_groups_x;
    let m0 = wid.z * TM;
    let n0 = n_tile * TN;
    if (n0 >= n_total) {
        // A whole spare workgroup of the folded grid: uniform, so no barrier is skipped by half.
        return;
    }
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < k_total; k0 += TK) {
        // 256 invocations load 1,024 values of each tile, 4 each.
        for (var r = 0u; r < 4u; r++) {
            let idx = li + r * 256u;
            // W: consecutive invocations read consecutive k of one row.
            let wk = idx % TK;
            let wm = idx / TK;
            var wv = 0.0;
            if (m0 + wm < m_total && k0 + wk < k_total) {
                if (p.backward == 1u) {
                    // k = (co, tap): W[co, m, tap].
                    let kw = k0 + wk;
                    wv = weight[((kw / kk2) * m_total + m0 + wm) * kk2 + kw % kk2];
                } else {
                    wv = weight[(m0 + wm) * k_total + k0 + wk];
                }
            }
            w_tile[wk * TM + wm] = wv;
            // X: consecutive invocations read consecutive output positions.
            let xn = idx % TN;
            let xk = idx / TN;
            let n = n0 + xn;
            let k = k0 + xk;
            var xv = 0.0;
            if (n < n_total && k < k_total) {
                let c = k / kk2;
                let ky = (k / p.kernel) % p.kernel;
                let kx = k % p.kernel;
                let b = n / positions;
                let pos = n % positions;
                if (p.backward == 1u) {
                    // The forward output (oy, ox) whose tap (ky, kx) read input (ry, rx).
                    let ty = i32(pos / p.out_width) + i32(p.pad) - i32(ky);
                    let tx = i32(pos % p.out_width) + i32(p.pad) - i32(kx);
                    let s = i32(p.stride);
                    if (ty >= 0 && tx >= 0 && ty % s == 0 && tx % s == 0) {
                        let oy = u32(ty / s);
                        let ox = u32(tx / s);
                        if (oy < p.height && ox < p.width) {
                            xv = x[((b * p.in_channels + c) * p.height + oy) * p.width + ox];
                        }
                    }
                } else {
                    let iy = i32((pos / p.out_width) * p.stride + ky) - i32(p.pad);
                    let ix = i32((pos % p.out_width) * p.stride + kx) - i32(p.pad);
                    if (iy >= 0 && iy < i32(p.height) && ix >= 0 && ix < i32(p.width)) {
                        xv = x[((b * p.in_channels + c) * p.height + u32(iy)) * p.width + u32(ix)];
                    }
                }
            }
            x_tile[xk * TN + xn] = xv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var wr: array<f32, 4>;
            var xr: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                wr[i] = w_tile[kk * TM + lid.y * 4u + i];
                xr[i] = x_tile[kk * TN + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += wr[i] * xr[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        if (m >= m_total) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if (n >= n_total) {
                continue;
            }
            var v = acc[i * 4u + j];
            if (p.backward == 0u) {
                v += bias[m];
            }
            if (p.relu != 0u) {
                v = max(v, 0.0);
            }
            let b = n / positions;
            y[(b * m_total + m) * positions + n % positions] = v;
        }
    }
}

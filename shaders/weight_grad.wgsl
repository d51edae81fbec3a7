// Weight gradients as one matrix product with the input unfolded on the fly (implicit im2col):
//   mode 0:  dW[o, n] = sum_p G[o, p] · SRC[p, n],
// where p runs over the output positions of every image (b, y, x), n over (input channel i,
// kernel row ky, kernel column kx), and SRC[p, n] = src[b, i, y·stride + ky + off_y,
// x·stride + kx + off_x] (zero outside the map; off = -pad for a convolution). The same product
// gives a linear layer's (1x1 maps) and a pair's recurrence gradient (kernel 1, G the hidden
// states, src the deltas shifted one step along the scan: off = ±1 on the scanned axis).
//   mode 1:  db[o] = sum_p G[o, p] (a bias gradient): one workgroup per channel.
// Results are written (not added) at `out_offset` on, mode 0's rows `out_row` apart (a block of
// columns of a wider matrix: a GRU's three gate blocks of V).
//
// Mode 0 is tiled: a workgroup of 16x16 invocations computes a 16x16 block of dW, walking p in
// slices of 16 through two workgroup tiles.

struct Params {
    batch: u32,
    // G: [batch, out_channels, g_height, g_width].
    out_channels: u32,
    g_height: u32,
    g_width: u32,
    // src: [batch, in_channels, src_height, src_width].
    in_channels: u32,
    src_height: u32,
    src_width: u32,
    kernel: u32,
    stride: u32,
    off_y: i32,
    off_x: i32,
    out_offset: u32,
    mode: u32,
    // Mode 0: the row stride of the result in `out` (0: `cols`, rows back to back).
    out_row: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const T: u32 = 16u;

var<workgroup> g_tile: array<f32, 256>;
var<workgroup> s_tile: array<f32, 256>;
var<workgroup> part: array<f32, 256>;

// SRC[q, n] (q: a position of G, n: a column of dW), zero outside the source map.
fn unfolded(q: u32, n: u32) -> f32 {
    let kk = p.kernel * p.kernel;
    let gplane = p.g_height * p.g_width;
    let b = q / gplane;
    let r = q % gplane;
    let i = n / kk;
    let k = n % kk;
    let yy = i32((r / p.g_width) * p.stride + k / p.kernel) + p.off_y;
    let xx = i32((r % p.g_width) * p.stride + k % p.kernel) + p.off_x;
    if (yy < 0 || xx < 0 || yy >= i32(p.src_height) || xx >= i32(p.src_width)) {
        return 0.0;
    }
    return src[((b * p.in_channels + i) * p.src_height + u32(yy)) * p.src_width + u32(xx)];
}

// G[o, q].
fn grad(o: u32, q: u32) -> f32 {
    let gplane = p.g_height * p.g_width;
    return g[((q / gplane) * p.out_channels + o) * gplane + q % gplane];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let positions = p.batch * p.g_height * p.g_width;
    let flat = lid.y * T + lid.x;
    if (p.mode == 1u) {
        let o = wid.x;
        var acc = 0.0;
        if (o < p.out_channels) {
            for (var q = flat; q < positions; q += 256u) {
                acc += grad(o, q);
            }
        }
        part[flat] = acc;
        workgroupBarrier();
        for (var half = 128u; half > 0u; half = half / 2u) {
            if (flat < half) {
                part[flat] += part[flat + half];
            }
            workgroupBarrier();
        }
        if (flat == 0u && o < p.out_channels) {
            out[p.out_offset + o] = part[0];
        }
        return;
    }
    let cols = p.in_channels * p.kernel * p.kernel;
    let o = wid.y * T + lid.y;
    let n = wid.x * T + lid.x;
    var acc = 0.0;
    for (var q0 = 0u; q0 < positions; q0 += T) {
        // g_tile[row o][q], s_tile[q][column n]
        let go = wid.y * T + lid.y;
        let gq = q0 + lid.x;
        var gv = 0.0;
        if (go < p.out_channels && gq < positions) {
            gv = grad(go, gq);
        }
        g_tile[flat] = gv;
        let sq = q0 + lid.y;
        let sn = wid.x * T + lid.x;
        var sv = 0.0;
        if (sq < positions && sn < cols) {
            sv = unfolded(sq, sn);
        }
        s_tile[flat] = sv;
        workgroupBarrier();
        for (var k = 0u; k < T; k++) {
            acc += g_tile[lid.y * T + k] * s_tile[k * T + lid.x];
        }
        workgroupBarrier();
    }
    if (o < p.out_channels && n < cols) {
        let row = select(cols, p.out_row, p.out_row != 0u);
        out[p.out_offset + o * row + n] = acc;
    }
}

// One step of a vanilla pair's scan (SPEC §1: h_t = relu(xi_t + V h_(t-1)), h_(-1) = 0) for
// every sequence of both directions at once, as one matrix product per direction:
//   H_t[S, D] = relu(XI_t[S, D] + H_(t-1)[S, D] · V^T[D, D]),
// S = the sequences (image rows of a horizontal pair, columns of a vertical one, over the
// batch). The executor records one dispatch per step, all in one command buffer; each reads the
// states the previous step wrote. Tiled like `conv2d.wgsl`: a workgroup of 16x16 invocations
// computes a 64x64 tile of H_t (64 sequences x 64 hidden units), each invocation 4x4 values;
// the product's K = D is walked in slices of 16 through two workgroup tiles; the input
// projection and the ReLU are the epilogue. workgroup_id.z is the direction (0: left-to-right
// or top-to-bottom, 1: the reverse).
//
// Used for wide states, where `scan_pair.wgsl`'s one workgroup per sequence walking a D x D
// matrix-vector product alone leaves a GPU idle (each workgroup reads all of V every step; here
// a tile of V is read once for 64 sequences).

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    // 0: horizontal (sequences are rows), 1: vertical (sequences are columns).
    axis: u32,
    // Channels of the xi buffer, and where direction 1's projection starts among them (0 when
    // both directions share one).
    xi_channels: u32,
    dir_offset: u32,
    // The step this dispatch computes.
    step: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [B, xi_channels, H, W]
@group(0) @binding(1) var<storage, read> xi: array<f32>;
// [2, D, D]: each direction's V transposed (row: from, column: to).
@group(0) @binding(2) var<storage, read> vt: array<f32>;
// [B, D, H, W] each: the two directions' hidden states.
@group(0) @binding(3) var<storage, read_write> ha: array<f32>;
@group(0) @binding(4) var<storage, read_write> hb: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM] slice of H_(t-1) (k-major), [TK][TN] slice of V^T.
var<workgroup> h_tile: array<f32, 1024>;
var<workgroup> v_tile: array<f32, 1024>;

fn load(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
}

fn store(dir: u32, i: u32, value: f32) {
    if (dir == 0u) {
        ha[i] = value;
    } else {
        hb[i] = value;
    }
}

// Where step t of sequence s is, in direction dir: (image, position y * width + x).
fn place(dir: u32, t: u32, s: u32) -> vec2<u32> {
    let lines = select(p.height, p.width, p.axis == 1u);
    let steps = select(p.width, p.height, p.axis == 1u);
    let b = s / lines;
    let line = s % lines;
    let at = select(t, steps - 1u - t, dir == 1u);
    if (p.axis == 1u) {
        return vec2<u32>(b, at * p.width + line);
    }
    return vec2<u32>(b, line * p.width + at);
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let dir = wid.z;
    let d = p.hidden;
    let plane = p.height * p.width;
    let lines = select(p.height, p.width, p.axis == 1u);
    let s_total = p.batch * lines;
    let s0 = wid.y * TM;
    let j0 = wid.x * TN;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    // (p.step is uniform: every invocation takes the same branch, so the barriers are reached
    // by all.)
    if (p.step > 0u) {
        let v_base = dir * d * d;
        for (var k0 = 0u; k0 < d; k0 += TK) {
            // 256 invocations load 1,024 values of each tile, 4 each.
            for (var r = 0u; r < 4u; r++) {
                let idx = li + r * 256u;
                // H_(t-1): consecutive invocations read consecutive sequences.
                let hs = idx % TM;
                let hk = idx / TM;
                var hv = 0.0;
                if (s0 + hs < s_total && k0 + hk < d) {
                    let at = place(dir, p.step - 1u, s0 + hs);
                    hv = load(dir, (at.x * d + k0 + hk) * plane + at.y);
                }
                h_tile[hk * TM + hs] = hv;
                // V^T: consecutive invocations read consecutive units of one row.
                let vj = idx % TN;
                let vk = idx / TN;
                var vv = 0.0;
                if (j0 + vj < d && k0 + vk < d) {
                    vv = vt[v_base + (k0 + vk) * d + j0 + vj];
                }
                v_tile[vk * TN + vj] = vv;
            }
            workgroupBarrier();
            for (var kk = 0u; kk < TK; kk++) {
                var hr: array<f32, 4>;
                var vr: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    hr[i] = h_tile[kk * TM + lid.y * 4u + i];
                    vr[i] = v_tile[kk * TN + lid.x * 4u + i];
                }
                for (var i = 0u; i < 4u; i++) {
                    for (var j = 0u; j < 4u; j++) {
                        acc[i * 4u + j] += hr[i] * vr[j];
                    }
                }
            }
            workgroupBarrier();
        }
    }
    let in_offset = dir * p.dir_offset;
    for (var i = 0u; i < 4u; i++) {
        let s = s0 + lid.y * 4u + i;
        if (s >= s_total) {
            continue;
        }
        let at = place(dir, p.step, s);
        for (var j = 0u; j < 4u; j++) {
            let unit = j0 + lid.x * 4u + j;
            if (unit >= d) {
                continue;
            }
            let pre = xi[(at.x * p.xi_channels + in_offset + unit) * plane + at.y] + acc[i * 4u + j];
            store(dir, (at.x * d + unit) * plane + at.y, max(pre, 0.0));
        }
    }
}

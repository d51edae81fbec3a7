// One step of a vanilla pair's scan (SPEC §1: h_t = relu(a_t), a_t = xi_t + V h_(t-1),
// h_(-1) = 0) for every sequence of both directions at once, as one matrix product per direction
// (S = the sequences: image rows of a horizontal pair, columns of a vertical one, over the
// batch); or, with `backward` = 1, one step of its gradient:
//   forward:   H_t[S, D] = relu(XI_t[S, D] + H_(t-1)[S, D] · V^T),
//   backward:  delta_t = (scale · G_t + delta_(t+1) · V) ⊙ [h_t > 0],
// where G is the gradient of the pair's merged output (this direction's channels: from 0, or
// from `src_offset` for direction 1 of a concatenation; `scale` 1/2 for the mean merge) and
// delta_t the gradient of a_t, which is also the projection's. The executor records one
// dispatch per step (forward: first to last; backward: last to first), all in one command
// buffer; each reads what the previous one wrote.
//
// Tiled like `conv2d.wgsl`: a workgroup of 16x16 invocations computes a 64x64 tile (64 sequences
// x 64 hidden units), each invocation 4x4 values; the product's K = D is walked in slices of 16
// through two workgroup tiles; the projection (or G) and the ReLU (or its mask) are the
// epilogue. workgroup_id.z is the direction (0: left-to-right or top-to-bottom, 1: the reverse).
//
// Used for wide states, where `scan_pair.wgsl`'s one workgroup per sequence walking a D x D
// matrix-vector product alone leaves a GPU idle (each workgroup reads all of V every step; here
// a tile of V is read once for 64 sequences), and for every vanilla pair's gradient.

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    // 0: horizontal (sequences are rows), 1: vertical (sequences are columns).
    axis: u32,
    // Channels of `src` (the projection, or G), and where direction 1's start among them (0 when
    // both directions share them).
    src_channels: u32,
    src_offset: u32,
    // The step this dispatch computes (the direction's own order).
    step: u32,
    // 1: the gradient.
    backward: u32,
    // The merge's factor on G, as f32 bits (backward only).
    scale_bits: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [B, src_channels, H, W]: the projection (forward) or G (backward).
@group(0) @binding(1) var<storage, read> src: array<f32>;
// [2, D, D]: each direction's V transposed (row: from, column: to).
@group(0) @binding(2) var<storage, read> vt: array<f32>;
// [B, D, H, W] each: the two directions' hidden states (written forward, read backward).
@group(0) @binding(3) var<storage, read_write> ha: array<f32>;
@group(0) @binding(4) var<storage, read_write> hb: array<f32>;
// [B, D, H, W] each: the two directions' delta (backward; the forward binds ha and hb here).
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> db: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM] slice of the left factor (H_(t-1) or delta_(t+1), k-major), [TK][TN] slice of V^T
// (forward) or V (backward).
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> v_tile: array<f32, 1024>;

fn load(dir: u32, delta: bool, i: u32) -> f32 {
    if (delta) {
        if (dir == 0u) {
            return da[i];
        }
        return db[i];
    }
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
}

fn store(dir: u32, delta: bool, i: u32, value: f32) {
    if (delta) {
        if (dir == 0u) {
            da[i] = value;
        } else {
            db[i] = value;
        }
    } else if (dir == 0u) {
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
    let back = p.backward == 1u;
    let plane = p.height * p.width;
    let lines = select(p.height, p.width, p.axis == 1u);
    let steps = select(p.width, p.height, p.axis == 1u);
    let s_total = p.batch * lines;
    let s0 = wid.y * TM;
    let j0 = wid.x * TN;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    // The step the product reads: the previous one forward, the next one backward (none at the
    // first step forward, at the last backward). p is uniform: every invocation takes the same
    // branch, so the barriers are reached by all.
    let hsaother = select(p.step > 0u, p.step + 1u < steps, back);
    if (hsaother) {
        let other = select(p.step - 1u, p.step + 1u, back);
        let v_base = dir * d * d;
        for (var k0 = 0u; k0 < d; k0 += TK) {
            // 256 invocations load 1,024 values of each tile, 4 each.
            for (var r = 0u; r < 4u; r++) {
                let idx = li + r * 256u;
                // Consecutive invocations read consecutive sequences.
                let sa = idx % TM;
                let ak = idx / TM;
                var av = 0.0;
                if (s0 + sa < s_total && k0 + ak < d) {
                    let at = place(dir, other, s0 + sa);
                    av = load(dir, back, (at.x * d + k0 + ak) * plane + at.y);
                }
                a_tile[ak * TM + sa] = av;
                var vv = 0.0;
                if (back) {
                    // V[k][j] = vt[j][k]: consecutive invocations read consecutive k of a row.
                    let vk = idx % TK;
                    let vj = idx / TK;
                    if (j0 + vj < d && k0 + vk < d) {
                        vv = vt[v_base + (j0 + vj) * d + k0 + vk];
                    }
                    v_tile[vk * TN + vj] = vv;
                } else {
                    // V^T[k][j]: consecutive invocations read consecutive units of a row.
                    let vj = idx % TN;
                    let vk = idx / TN;
                    if (j0 + vj < d && k0 + vk < d) {
                        vv = vt[v_base + (k0 + vk) * d + j0 + vj];
                    }
                    v_tile[vk * TN + vj] = vv;
                }
            }
            workgroupBarrier();
            for (var kk = 0u; kk < TK; kk++) {
                var ar: array<f32, 4>;
                var vr: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    ar[i] = a_tile[kk * TM + lid.y * 4u + i];
                    vr[i] = v_tile[kk * TN + lid.x * 4u + i];
                }
                for (var i = 0u; i < 4u; i++) {
                    for (var j = 0u; j < 4u; j++) {
                        acc[i * 4u + j] += ar[i] * vr[j];
                    }
                }
            }
            workgroupBarrier();
        }
    }
    let src_off = dir * p.src_offset;
    let scale = select(1.0, bitcast<f32>(p.scale_bits), back);
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
            let here = (at.x * d + unit) * plane + at.y;
            let total = scale * src[(at.x * p.src_channels + src_off + unit) * plane + at.y] + acc[i * 4u + j];
            if (back) {
                store(dir, true, here, select(0.0, total, load(dir, false, here) > 0.0));
            } else {
                store(dir, false, here, max(total, 0.0));
            }
        }
    }
}

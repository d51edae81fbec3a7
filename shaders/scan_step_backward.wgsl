// The gradient of a vanilla pair's scan (SPEC §1, h_t = relu(a_t), a_t = xi_t + V h_(t-1)),
// one step of both directions per dispatch, walked from each direction's last step back to its
// first (the executor records `step` = steps - 1 down to 0):
//   delta_t = (scale · g_t + delta_(t+1) · V) ⊙ [h_t > 0],
// where g is the gradient of the pair's merged output (this direction's channels: from 0, or
// from `g_offset` for direction 1 of a concatenation; `scale` 1/2 for the mean merge) and
// delta_t the gradient of a_t, which is also that of the projection xi_t. As `scan_step.wgsl`:
// a 64x64 tile of delta_t (sequences x units) per workgroup, 4x4 values an invocation, the
// product with V walked in slices of 16 through workgroup memory; workgroup_id.z is the
// direction.

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    // 0: horizontal (sequences are rows), 1: vertical (sequences are columns).
    axis: u32,
    // Channels of g, and where direction 1's start among them.
    g_channels: u32,
    g_offset: u32,
    // The step this dispatch computes (the direction's own order).
    step: u32,
    // The merge's factor on g, as f32 bits.
    scale_bits: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [B, g_channels, H, W]
@group(0) @binding(1) var<storage, read> g: array<f32>;
// [2, D, D]: each direction's V transposed (row: from, column: to).
@group(0) @binding(2) var<storage, read> vt: array<f32>;
// [B, D, H, W] each: the forward's hidden states.
@group(0) @binding(3) var<storage, read> ha: array<f32>;
@group(0) @binding(4) var<storage, read> hb: array<f32>;
// [B, D, H, W] each: delta of the two directions.
@group(0) @binding(5) var<storage, read_write> da: array<f32>;
@group(0) @binding(6) var<storage, read_write> db: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [TK][TM] slice of delta_(t+1) (k-major), [TK][TN] slice of V (row k: to, column j: from).
var<workgroup> d_tile: array<f32, 1024>;
var<workgroup> v_tile: array<f32, 1024>;

fn load_delta(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return da[i];
    }
    return db[i];
}

fn store_delta(dir: u32, i: u32, value: f32) {
    if (dir == 0u) {
        da[i] = value;
    } else {
        db[i] = value;
    }
}

fn state(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
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
    let steps = select(p.width, p.height, p.axis == 1u);
    let s_total = p.batch * lines;
    let s0 = wid.y * TM;
    let j0 = wid.x * TN;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    // (p.step is uniform: every invocation takes the same branch.)
    if (p.step + 1u < steps) {
        let v_base = dir * d * d;
        for (var k0 = 0u; k0 < d; k0 += TK) {
            for (var r = 0u; r < 4u; r++) {
                let idx = li + r * 256u;
                let ds = idx % TM;
                let dk = idx / TM;
                var dv = 0.0;
                if (s0 + ds < s_total && k0 + dk < d) {
                    let at = place(dir, p.step + 1u, s0 + ds);
                    dv = load_delta(dir, (at.x * d + k0 + dk) * plane + at.y);
                }
                d_tile[dk * TM + ds] = dv;
                // V[k][j] = vt[j][k]: consecutive invocations read consecutive k of one row.
                let vk = idx % TK;
                let vj = idx / TK;
                var vv = 0.0;
                if (j0 + vj < d && k0 + vk < d) {
                    vv = vt[v_base + (j0 + vj) * d + k0 + vk];
                }
                v_tile[vk * TN + vj] = vv;
            }
            workgroupBarrier();
            for (var kk = 0u; kk < TK; kk++) {
                var dr: array<f32, 4>;
                var vr: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    dr[i] = d_tile[kk * TM + lid.y * 4u + i];
                    vr[i] = v_tile[kk * TN + lid.x * 4u + i];
                }
                for (var i = 0u; i < 4u; i++) {
                    for (var j = 0u; j < 4u; j++) {
                        acc[i * 4u + j] += dr[i] * vr[j];
                    }
                }
            }
            workgroupBarrier();
        }
    }
    let scale = bitcast<f32>(p.scale_bits);
    let g_off = dir * p.g_offset;
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
            let total = scale * g[(at.x * p.g_channels + g_off + unit) * plane + at.y] + acc[i * 4u + j];
            store_delta(dir, here, select(0.0, total, state(dir, here) > 0.0));
        }
    }
}

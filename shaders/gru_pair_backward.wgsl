// The gradient of a pair of GRU spatial RNNs (see `scan_pair.wgsl`; SPEC §1, the candidate's
// f = ReLU):
//   z = sig(xz + Vz h'),  r = sig(xr + Vr h'),  s = r ⊙ h',  c = relu(xh + Vh s),
//   h = (1 - z) ⊙ c + z ⊙ h'                                  (h' = h_(t-1), zero at t = 0)
// walked from the last step back for every sequence and both directions:
//   dh   = scale · G_t + carry_(t+1)                           (G: the merged output's gradient)
//   dah  = dh ⊙ (1 - z) ⊙ [c > 0]                             (xh's gradient)
//   daz  = dh ⊙ (h' - c) ⊙ z ⊙ (1 - z)                         (xz's)
//   ds   = Vh^T dah,   dar = ds ⊙ h' ⊙ r ⊙ (1 - r)             (xr's)
//   carry_t = dh ⊙ z + ds ⊙ r + Vz^T daz + Vr^T dar            (h_(t-1)'s gradient)
// z, r and c are recomputed from xi and the stored h_(t-1) (the forward keeps only h).
//
// `dd` ([2, B, 4D, H, W]: direction, image, then daz, dar, dah and s as channels) receives the
// three projections' gradients in xi's channel order and s = r ⊙ h_(t-1), from which the executor
// takes Vh's gradient (sum over positions of s_t ⊗ dah_t); Vz's and Vr's come from the stored
// states against daz / dar one step later. `carry` ([S, 2, D]) holds h's gradient between the
// dispatches of a long scan (llvmpipe's loop limit: the executor splits it into chunks of steps
// [first_step, first_step + step_count), counted from the last).
//
// One workgroup per (sequence, direction), as the forward; each of its 256 invocations owns the
// units k ≡ lid (mod 256) and keeps their z, r, h_(t-1), dh and carry in registers; three arrays
// of workgroup memory hold what the products read across units (12 KiB at D = 1024).

const MAX_HIDDEN: u32 = 1024u;
const WG: u32 = 256u;
// Units per invocation at most (MAX_HIDDEN / WG).
const PER: u32 = 4u;

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    axis: u32,
    // Channels of xi and where direction 1's projection starts among them (0: shared).
    xi_channels: u32,
    dir_offset: u32,
    // Channels of G and where direction 1's start among them (a concatenation's second half).
    g_channels: u32,
    g_offset: u32,
    // The merge's factor on G (1/2 for the mean).
    scale: f32,
    first_step: u32,
    step_count: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xi: array<f32>;
// [2, D, 3D]: each direction's V transposed (row: from, column: to; blocks z, r, h).
@group(0) @binding(2) var<storage, read> vt: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
// [B, D, H, W] each: the forward's hidden states.
@group(0) @binding(4) var<storage, read> ha: array<f32>;
@group(0) @binding(5) var<storage, read> hb: array<f32>;
@group(0) @binding(6) var<storage, read_write> dd: array<f32>;
@group(0) @binding(7) var<storage, read_write> carry_out: array<f32>;

// h_(t-1), then daz.
var<workgroup> wa: array<f32, MAX_HIDDEN>;
// r ⊙ h_(t-1), then dar.
var<workgroup> wb: array<f32, MAX_HIDDEN>;
// dah.
var<workgroup> wc: array<f32, MAX_HIDDEN>;

fn h_at(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
}

fn position(dir: u32, t: u32, line: u32, steps: u32) -> u32 {
    let s = select(t, steps - 1u - t, dir == 1u);
    if (p.axis == 1u) {
        return s * p.width + line;
    }
    return line * p.width + s;
}

fn sigmoid(a: f32) -> f32 {
    return 1.0 / (1.0 + exp(-a));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dir = wid.y;
    let lines = select(p.width, p.height, p.axis == 0u);
    let steps = select(p.height, p.width, p.axis == 0u);
    let b = wid.x / lines;
    let line = wid.x % lines;
    let d = p.hidden;
    let gd = 3u * d;
    let plane = p.height * p.width;
    let map_base = b * d * plane;
    let in_base = (b * p.xi_channels + dir * p.dir_offset) * plane;
    let g_base = (b * p.g_channels + dir * p.g_offset) * plane;
    let dd_base = (dir * p.batch + b) * 4u * d * plane;
    let v_base = dir * d * gd;
    let carry_base = (wid.x * 2u + dir) * d;

    var carry: array<f32, PER>;
    var hp: array<f32, PER>;
    var zs: array<f32, PER>;
    var rs: array<f32, PER>;
    var dh: array<f32, PER>;
    var m = 0u;
    for (var k = lid.x; k < d; k += WG) {
        carry[m] = 0.0;
        if (p.first_step != 0u) {
            carry[m] = carry_out[carry_base + k];
        }
        m++;
    }
    let last = min(p.first_step + p.step_count, steps);
    for (var i = p.first_step; i < last; i++) {
        let t = steps - 1u - i;
        let pos = position(dir, t, line, steps);
        // h_(t-1)
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var v = 0.0;
            if (t > 0u) {
                v = h_at(dir, map_base + k * plane + position(dir, t - 1u, line, steps));
            }
            wa[k] = v;
            hp[m] = v;
            m++;
        }
        workgroupBarrier();
        // z, r and s = r ⊙ h_(t-1)
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var az = xi[in_base + k * plane + pos];
            var ar = xi[in_base + (d + k) * plane + pos];
            for (var j = 0u; j < d; j++) {
                let row = v_base + j * gd;
                az += vt[row + k] * wa[j];
                ar += vt[row + d + k] * wa[j];
            }
            zs[m] = sigmoid(az);
            rs[m] = sigmoid(ar);
            let s = rs[m] * hp[m];
            wb[k] = s;
            dd[dd_base + (3u * d + k) * plane + pos] = s;
            m++;
        }
        workgroupBarrier();
        // c, dh, dah and daz (into wa: nobody reads h_(t-1) from it any more)
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var ah = xi[in_base + (2u * d + k) * plane + pos];
            for (var j = 0u; j < d; j++) {
                ah += vt[v_base + j * gd + 2u * d + k] * wb[j];
            }
            let c = max(ah, 0.0);
            let z = zs[m];
            let grad = p.scale * g[g_base + k * plane + pos] + carry[m];
            dh[m] = grad;
            let dah = select(0.0, grad * (1.0 - z), ah > 0.0);
            let daz = grad * (hp[m] - c) * z * (1.0 - z);
            wc[k] = dah;
            wa[k] = daz;
            dd[dd_base + k * plane + pos] = daz;
            dd[dd_base + (2u * d + k) * plane + pos] = dah;
            m++;
        }
        workgroupBarrier();
        // ds = Vh^T dah, dar (into wb: s is read no more), the carry's first two terms
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var ds = 0.0;
            let row = v_base + k * gd + 2u * d;
            for (var j = 0u; j < d; j++) {
                ds += vt[row + j] * wc[j];
            }
            let r = rs[m];
            let dar = ds * hp[m] * r * (1.0 - r);
            wb[k] = dar;
            dd[dd_base + (d + k) * plane + pos] = dar;
            carry[m] = dh[m] * zs[m] + ds * r;
            m++;
        }
        workgroupBarrier();
        // carry += Vz^T daz + Vr^T dar
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var acc = 0.0;
            let row = v_base + k * gd;
            for (var j = 0u; j < d; j++) {
                acc += vt[row + j] * wa[j] + vt[row + d + j] * wb[j];
            }
            carry[m] += acc;
            m++;
        }
        workgroupBarrier();
    }
    m = 0u;
    for (var k = lid.x; k < d; k += WG) {
        carry_out[carry_base + k] = carry[m];
        m++;
    }
}

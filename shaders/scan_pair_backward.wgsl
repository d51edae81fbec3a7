// The gradient of a pair of vanilla + LayerNorm spatial RNNs (see `scan_pair.wgsl`):
//   a_t = xi_t + V h_(t-1),  z_t = gain ⊙ (a_t - mean) / sd + bias,  h_t = relu(z_t),
// walked from the last step back for every sequence and both directions:
//   dh_t    = scale · G_t + V^T delta_(t+1)        (G: the merged output's gradient)
//   dz_t    = dh_t ⊙ [h_t > 0]
//   delta_t = (gain ⊙ dz - mean(gain ⊙ dz) - x̂ ⊙ mean(gain ⊙ dz ⊙ x̂)) / sd,  x̂ = (a_t - mean) / sd,
// delta_t (the gradient of a_t, which is also xi_t's) written to the direction's half of `dd`, and
// d gain = sum dz ⊙ x̂, d bias = sum dz accumulated per sequence into `partial` ([S, 2, 2, D]:
// sequence, direction, gain / bias, unit), summed over sequences by another dispatch. a_t is
// recomputed from xi and the stored h_(t-1) (one more matrix-vector product per step).
//
// One workgroup per (sequence, direction), as the forward; a dispatch runs the steps
// [first_step, first_step + step_count) counted from the last one (llvmpipe's loop limit: the
// executor splits long scans), each chunk starting from the delta the previous one wrote.

const MAX_HIDDEN: u32 = 1024u;
const LN_EPS: f32 = 1e-5;
const WG: u32 = 256u;

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
@group(0) @binding(2) var<storage, read> vt: array<f32>;
@group(0) @binding(3) var<storage, read> ln: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
// [B, D, H, W] each: the forward's hidden states.
@group(0) @binding(5) var<storage, read_write> ha: array<f32>;
@group(0) @binding(6) var<storage, read_write> hb: array<f32>;
// [2, B, D, H, W]: the two directions' deltas, one after the other.
@group(0) @binding(7) var<storage, read_write> dd: array<f32>;
@group(0) @binding(8) var<storage, read_write> partial: array<f32>;

var<workgroup> prev: array<f32, MAX_HIDDEN>;
var<workgroup> act: array<f32, MAX_HIDDEN>;
var<workgroup> later: array<f32, MAX_HIDDEN>;
var<workgroup> red: array<f32, 256>;

fn h_at(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
}

fn delta_at(dir: u32, i: u32) -> f32 {
    return dd[dir * p.batch * p.hidden * p.height * p.width + i];
}

fn set_delta(dir: u32, i: u32, value: f32) {
    dd[dir * p.batch * p.hidden * p.height * p.width + i] = value;
}

fn position(dir: u32, t: u32, line: u32, steps: u32) -> u32 {
    let s = select(t, steps - 1u - t, dir == 1u);
    if (p.axis == 1u) {
        return s * p.width + line;
    }
    return line * p.width + s;
}

fn reduce(i: u32) -> f32 {
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        workgroupBarrier();
        if (i < stride) {
            red[i] += red[i + stride];
        }
    }
    workgroupBarrier();
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dir = wid.y;
    let lines = select(p.width, p.height, p.axis == 0u);
    let steps = select(p.height, p.width, p.axis == 0u);
    let b = wid.x / lines;
    let line = wid.x % lines;
    let d = p.hidden;
    let plane = p.height * p.width;
    let map_base = b * d * plane;
    let in_base = (b * p.xi_channels + dir * p.dir_offset) * plane;
    let g_base = (b * p.g_channels + dir * p.g_offset) * plane;
    let v_base = dir * d * d;
    let ln_base = dir * 2u * d;
    let part_base = (wid.x * 2u + dir) * 2u * d;
    // delta of the step after the chunk's first (zero after the last step).
    if (p.first_step == 0u) {
        for (var k = lid.x; k < d; k += WG) {
            later[k] = 0.0;
            partial[part_base + k] = 0.0;
            partial[part_base + d + k] = 0.0;
        }
    } else {
        let after = position(dir, steps - p.first_step, line, steps);
        for (var k = lid.x; k < d; k += WG) {
            later[k] = delta_at(dir, map_base + k * plane + after);
        }
    }
    workgroupBarrier();
    let last = min(p.first_step + p.step_count, steps);
    for (var i = p.first_step; i < last; i++) {
        let t = steps - 1u - i;
        let pos = position(dir, t, line, steps);
        // h_(t-1)
        if (t == 0u) {
            for (var k = lid.x; k < d; k += WG) {
                prev[k] = 0.0;
            }
        } else {
            let before = position(dir, t - 1u, line, steps);
            for (var k = lid.x; k < d; k += WG) {
                prev[k] = h_at(dir, map_base + k * plane + before);
            }
        }
        workgroupBarrier();
        // a_t, and dh_t (in `later`'s place once every invocation has read delta_(t+1))
        var dh: array<f32, 4>;
        var m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            var acc = xi[in_base + k * plane + pos];
            var carry = 0.0;
            for (var j = 0u; j < d; j++) {
                acc += vt[v_base + j * d + k] * prev[j];
                carry += vt[v_base + k * d + j] * later[j];
            }
            act[k] = acc;
            dh[m] = p.scale * g[g_base + k * plane + pos] + carry;
            m++;
        }
        workgroupBarrier();
        var part = 0.0;
        for (var k = lid.x; k < d; k += WG) {
            part += act[k];
        }
        red[lid.x] = part;
        let mean = reduce(lid.x) / f32(d);
        part = 0.0;
        for (var k = lid.x; k < d; k += WG) {
            let c = act[k] - mean;
            part += c * c;
        }
        red[lid.x] = part;
        let sd = sqrt(reduce(lid.x) / f32(d) + LN_EPS);
        // dz, gain ⊙ dz and its two means
        var s1 = 0.0;
        var s2 = 0.0;
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            let xhat = (act[k] - mean) / sd;
            let on = h_at(dir, map_base + k * plane + pos) > 0.0;
            let dz = select(0.0, dh[m], on);
            partial[part_base + k] += dz * xhat;
            partial[part_base + d + k] += dz;
            let gz = ln[ln_base + k] * dz;
            dh[m] = gz;
            s1 += gz;
            s2 += gz * xhat;
            m++;
        }
        red[lid.x] = s1;
        let m1 = reduce(lid.x) / f32(d);
        red[lid.x] = s2;
        let m2 = reduce(lid.x) / f32(d);
        m = 0u;
        for (var k = lid.x; k < d; k += WG) {
            let xhat = (act[k] - mean) / sd;
            let delta = (dh[m] - m1 - xhat * m2) / sd;
            later[k] = delta;
            set_delta(dir, map_base + k * plane + pos, delta);
            m++;
        }
        workgroupBarrier();
    }
}

// A bidirectional pair of spatial RNNs (SPEC §1) along one axis, both directions in one
// dispatch, for the three cells:
//   vanilla:     h_t = relu(xi_t + V h_(t-1))
//   vanilla_ln:  h_t = relu(LN(xi_t + V h_(t-1)))        LN over the D units, gain and bias
//   gru:         z = sig(xz + Vz h), r = sig(xr + Vr h), c = relu(xh + Vh (r * h)),
//                h_t = (1 - z) * c + z * h_(t-1)
// with h_(-1) = 0. The input projection xi = U x + b (G = 1 or 3 blocks of D: z, r, h) is
// computed before by a convolution: either one shared by both directions (a pair inserted into
// a pre-trained convolution) or both directions' own, stacked along channels.
//
// One workgroup per (sequence, direction): workgroup_id.x is the sequence (an image row for a
// horizontal pair, a column for a vertical one), workgroup_id.y the direction (0: left-to-right
// or top-to-bottom, 1: the reverse). The workgroup loops over the steps inside the shader; its
// 256 invocations share the hidden units of a step, the previous state lives in workgroup memory
// and barriers separate the phases of a step.
//
// On a hardware GPU one dispatch runs all the steps. A dispatch may also run a chunk of them
// (`first_step`, `step_count`), starting from the state the previous chunk wrote to the output:
// llvmpipe (lavapipe) stops any loop after 65,535 iterations counted over everything nested in
// it, so the executor there splits long scans into chunks that stay under that count.

const MAX_HIDDEN: u32 = 1024u;
const LN_EPS: f32 = 1e-5;
// Invocations per workgroup.
const WG: u32 = 256u;

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    // 0: horizontal (sequences are rows), 1: vertical (sequences are columns).
    axis: u32,
    // 0: vanilla, 1: vanilla_ln, 2: gru.
    cell: u32,
    // Channels of the xi buffer, and where direction 1's projection starts among them (0 when
    // both directions share one).
    xi_channels: u32,
    dir_offset: u32,
    // The steps this dispatch runs: [first_step, first_step + step_count).
    first_step: u32,
    step_count: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [B, xi_channels, H, W]
@group(0) @binding(1) var<storage, read> xi: array<f32>;
// [2, D, G*D]: each direction's V transposed (row: from, column: to), so that the invocations
// of a step read consecutive values.
@group(0) @binding(2) var<storage, read> vt: array<f32>;
// [2, 2, D]: each direction's LayerNorm gain and bias (vanilla_ln only; unread otherwise).
@group(0) @binding(3) var<storage, read> ln: array<f32>;
// [B, D, H, W] each: the two directions' hidden states.
@group(0) @binding(4) var<storage, read_write> ha: array<f32>;
@group(0) @binding(5) var<storage, read_write> hb: array<f32>;

var<workgroup> prev: array<f32, MAX_HIDDEN>;
var<workgroup> next: array<f32, MAX_HIDDEN>;
// GRU: r * h_(t-1).
var<workgroup> rs: array<f32, MAX_HIDDEN>;
// LayerNorm: one partial sum per invocation, then a tree reduction.
var<workgroup> red: array<f32, 256>;

fn store(dir: u32, i: u32, value: f32) {
    if (dir == 0u) {
        ha[i] = value;
    } else {
        hb[i] = value;
    }
}

fn load(dir: u32, i: u32) -> f32 {
    if (dir == 0u) {
        return ha[i];
    }
    return hb[i];
}

// The position (y * width + x) of step t of a line, in direction dir.
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

// Sum of the WG partials in `red` (each invocation stored its own), the same in every
// invocation; ends with a barrier so that `red` may be written again.
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
    let gd = select(d, 3u * d, p.cell == 2u);
    let plane = p.height * p.width;
    let out_base = b * d * plane;
    let in_base = (b * p.xi_channels + dir * p.dir_offset) * plane;
    let v_base = dir * d * gd;
    let ln_base = dir * 2u * d;
    if (p.first_step == 0u) {
        for (var k = lid.x; k < d; k += WG) {
            prev[k] = 0.0;
        }
    } else {
        let before = position(dir, p.first_step - 1u, line, steps);
        for (var k = lid.x; k < d; k += WG) {
            prev[k] = load(dir, out_base + k * plane + before);
        }
    }
    workgroupBarrier();
    let last = min(p.first_step + p.step_count, steps);
    for (var t = p.first_step; t < last; t++) {
        let pos = position(dir, t, line, steps);
        if (p.cell == 2u) {
            for (var k = lid.x; k < d; k += WG) {
                var az = xi[in_base + k * plane + pos];
                var ar = xi[in_base + (d + k) * plane + pos];
                for (var j = 0u; j < d; j++) {
                    let row = v_base + j * gd;
                    az += vt[row + k] * prev[j];
                    ar += vt[row + d + k] * prev[j];
                }
                next[k] = sigmoid(az);
                rs[k] = sigmoid(ar) * prev[k];
            }
            workgroupBarrier();
            for (var k = lid.x; k < d; k += WG) {
                var ah = xi[in_base + (2u * d + k) * plane + pos];
                for (var j = 0u; j < d; j++) {
                    ah += vt[v_base + j * gd + 2u * d + k] * rs[j];
                }
                let z = next[k];
                let value = (1.0 - z) * max(ah, 0.0) + z * prev[k];
                next[k] = value;
                store(dir, out_base + k * plane + pos, value);
            }
        } else {
            for (var k = lid.x; k < d; k += WG) {
                var acc = xi[in_base + k * plane + pos];
                for (var j = 0u; j < d; j++) {
                    acc += vt[v_base + j * gd + k] * prev[j];
                }
                next[k] = acc;
            }
            if (p.cell == 1u) {
                workgroupBarrier();
                var part = 0.0;
                for (var k = lid.x; k < d; k += WG) {
                    part += next[k];
                }
                red[lid.x] = part;
                let mean = reduce(lid.x) / f32(d);
                part = 0.0;
                for (var k = lid.x; k < d; k += WG) {
                    let c = next[k] - mean;
                    part += c * c;
                }
                red[lid.x] = part;
                let sd = sqrt(reduce(lid.x) / f32(d) + LN_EPS);
                for (var k = lid.x; k < d; k += WG) {
                    next[k] = (next[k] - mean) / sd * ln[ln_base + k] + ln[ln_base + d + k];
                }
            }
            for (var k = lid.x; k < d; k += WG) {
                let value = max(next[k], 0.0);
                next[k] = value;
                store(dir, out_base + k * plane + pos, value);
            }
        }
        workgroupBarrier();
        for (var k = lid.x; k < d; k += WG) {
            prev[k] = next[k];
        }
        workgroupBarrier();
    }
}

// A bidirectional pair of vanilla spatial RNNs (SPEC §1) along one axis, both directions in one
// dispatch: h_t = relu(xi_t + V h_(t-1)), h_(-1) = 0. The projection xi = U x + b is computed
// before (by the convolution the pair was inserted into, or a 1x1 one).
//
// One workgroup per (sequence, direction): workgroup_id.x is the sequence (an image row for a
// horizontal pair, a column for a vertical one), workgroup_id.y the direction (0: left-to-right
// or top-to-bottom, 1: the reverse). The workgroup loops over the steps inside the shader; its
// 64 invocations share the hidden units of the step, the previous state lives in workgroup
// memory, and a barrier separates the steps.

const MAX_HIDDEN: u32 = 1024u;

struct Params {
    batch: u32,
    hidden: u32,
    height: u32,
    width: u32,
    // 0: horizontal (sequences are rows), 1: vertical (sequences are columns).
    axis: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// [B, D, H, W]
@group(0) @binding(1) var<storage, read> xi: array<f32>;
// [2, D, D]: the forward direction's V, then the reverse's (row: to, column: from).
@group(0) @binding(2) var<storage, read> v: array<f32>;
// [2, B, D, H, W]: each direction's hidden states.
@group(0) @binding(3) var<storage, read_write> h: array<f32>;

var<workgroup> prev: array<f32, MAX_HIDDEN>;
var<workgroup> next: array<f32, MAX_HIDDEN>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let dir = wid.y;
    let lines = select(p.width, p.height, p.axis == 0u);
    let steps = select(p.height, p.width, p.axis == 0u);
    let b = wid.x / lines;
    let line = wid.x % lines;
    let d = p.hidden;
    let plane = p.height * p.width;
    let out_base = (dir * p.batch + b) * d * plane;
    let in_base = b * d * plane;
    let v_base = dir * d * d;
    for (var k = lid.x; k < d; k += 64u) {
        prev[k] = 0.0;
    }
    workgroupBarrier();
    for (var t = 0u; t < steps; t++) {
        let s = select(t, steps - 1u - t, dir == 1u);
        // Position of step s on this line.
        var pos = line * p.width + s;
        if (p.axis == 1u) {
            pos = s * p.width + line;
        }
        for (var k = lid.x; k < d; k += 64u) {
            var acc = xi[in_base + k * plane + pos];
            let row = v_base + k * d;
            for (var j = 0u; j < d; j++) {
                acc += v[row + j] * prev[j];
            }
            let value = max(acc, 0.0);
            next[k] = value;
            h[out_base + k * plane + pos] = value;
        }
        workgroupBarrier();
        for (var k = lid.x; k < d; k += 64u) {
            prev[k] = next[k];
        }
        workgroupBarrier();
    }
}

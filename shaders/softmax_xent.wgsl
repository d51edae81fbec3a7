// Softmax cross-entropy and its gradient, per row of class scores: an image's scores
// ([B, K], plane 1) or a pixel's ([B, K, H, W], plane H·W, classes a plane apart). For a row with
// label l (`ignore`, 255 for pixels, none for images: nothing counted):
//   loss[row] = log(sum_k exp(s_k)) - s_l,
//   grad[row, k] = scale · (softmax(s)_k - [k == l]),
//   pred[row] = the first class of the highest score,
// with `scale` 1 / (rows counted), so the gradient is the mean loss's. One invocation per row.

struct Params {
    rows: u32,
    classes: u32,
    plane: u32,
    scale: f32,
    // The label that counts for nothing (0xffffffff: none).
    ignore: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> pred: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = gid.x + gid.y * groups.x * 64u;
    if (row >= p.rows) {
        return;
    }
    let base = (row / p.plane) * p.classes * p.plane + row % p.plane;
    var top = scores[base];
    var best = 0u;
    for (var k = 1u; k < p.classes; k++) {
        let s = scores[base + k * p.plane];
        if (s > top) {
            top = s;
            best = k;
        }
    }
    var total = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        total += exp(scores[base + k * p.plane] - top);
    }
    let label = labels[row];
    pred[row] = best;
    if (label == p.ignore || label >= p.classes) {
        loss[row] = 0.0;
        for (var k = 0u; k < p.classes; k++) {
            grad[base + k * p.plane] = 0.0;
        }
        return;
    }
    loss[row] = log(total) + top - scores[base + label * p.plane];
    for (var k = 0u; k < p.classes; k++) {
        let soft = exp(scores[base + k * p.plane] - top) / total;
        grad[base + k * p.plane] = p.scale * (soft - select(0.0, 1.0, k == label));
    }
}

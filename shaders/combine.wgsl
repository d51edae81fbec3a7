// Joins two NCHW maps of the same batch and size: the sum (mode 0), the mean (mode 1, the merge
// of a pair inserted into a pre-trained convolution) or the concatenation along channels
// (mode 2: a's channels, then b's). For gradients: a masked by b (mode 3: a where b > 0, else
// 0: the ReLU's backward, b its output) and a slice of a's channels (mode 4: b_channels of
// them from `offset` on: the concatenation's backward; b unread), and the product (mode 5:
// dropout's mask applied, forward and backward). One invocation per output element.

struct Params {
    batch: u32,
    // Channels of a and of b (equal for the sum and the mean).
    a_channels: u32,
    b_channels: u32,
    // Positions per channel (H x W).
    plane: u32,
    mode: u32,
    // Mode 4: the first of a's channels taken.
    offset: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (p.mode == 2u) {
        let channels = p.a_channels + p.b_channels;
        if (i >= p.batch * channels * p.plane) {
            return;
        }
        let pos = i % p.plane;
        let c = (i / p.plane) % channels;
        let n = i / (p.plane * channels);
        if (c < p.a_channels) {
            y[i] = a[(n * p.a_channels + c) * p.plane + pos];
        } else {
            y[i] = b[(n * p.b_channels + c - p.a_channels) * p.plane + pos];
        }
        return;
    }
    if (p.mode == 4u) {
        if (i >= p.batch * p.b_channels * p.plane) {
            return;
        }
        let pos = i % p.plane;
        let c = (i / p.plane) % p.b_channels;
        let n = i / (p.plane * p.b_channels);
        y[i] = a[(n * p.a_channels + p.offset + c) * p.plane + pos];
        return;
    }
    if (i >= p.batch * p.a_channels * p.plane) {
        return;
    }
    if (p.mode == 3u) {
        y[i] = select(0.0, a[i], b[i] > 0.0);
        return;
    }
    if (p.mode == 5u) {
        y[i] = a[i] * b[i];
        return;
    }
    let s = a[i] + b[i];
    y[i] = select(s, s * 0.5, p.mode == 1u);
}

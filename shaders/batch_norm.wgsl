// BatchNorm + ReLU in training mode (the batch's statistics) and its gradient, over x
// [B, C, H, W] with n = B·H·W values per channel; wb holds the gains then the biases ([2, C]),
// stats each channel's mean then 1 / sqrt(var + eps) ([2, C], biased variance), running the
// running mean then the running variance ([2, C], momentum 0.1, the unbiased batch variance):
//   mode 0: the statistics, and the running ones updated (a workgroup per channel);
//   mode 1: y = max(gain · (x - mean) · inv_std + bias, 0) (one invocation per value);
//   mode 2: the gains' and biases' gradients into gw ([2, C]): with dz = g where y > 0,
//           d gain = sum dz · x_hat, d bias = sum dz (a workgroup per channel);
//   mode 3: dx = gain · inv_std · (dz - d bias / n - x_hat · d gain / n) (one per value).
// Every buffer is read-write so that any of them may stand in for an unused one.

struct Params {
    batch: u32,
    channels: u32,
    plane: u32,
    mode: u32,
    eps: f32,
    // Workgroups per row of the dispatch grid (the per-value modes).
    groups_x: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> wb: array<f32>;
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> running: array<f32>;
@group(0) @binding(8) var<storage, read_write> gw: array<f32>;

var<workgroup> part: array<f32, 256>;
var<workgroup> part2: array<f32, 256>;

// The k-th value of channel c (k over images, then positions).
fn at(c: u32, k: u32) -> u32 {
    return ((k / p.plane) * p.channels + c) * p.plane + k % p.plane;
}

fn reduce(t: u32) {
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (t < half) {
            part[t] += part[t + half];
            part2[t] += part2[t + half];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n = p.batch * p.plane;
    let t = lid.x;
    if (p.mode == 0u || p.mode == 2u) {
        let c = wid.x;
        if (c >= p.channels) {
            return;
        }
        if (p.mode == 0u) {
            var s = 0.0;
            for (var k = t; k < n; k += 256u) {
                s += x[at(c, k)];
            }
            part[t] = s;
            part2[t] = 0.0;
            reduce(t);
            let mean = part[0] / f32(n);
            workgroupBarrier();
            var q = 0.0;
            for (var k = t; k < n; k += 256u) {
                let d = x[at(c, k)] - mean;
                q += d * d;
            }
            part[t] = q;
            part2[t] = 0.0;
            reduce(t);
            if (t == 0u) {
                let var_b = part[0] / f32(n);
                stats[c] = mean;
                stats[p.channels + c] = 1.0 / sqrt(var_b + p.eps);
                let unbiased = var_b * f32(n) / max(f32(n) - 1.0, 1.0);
                running[c] = 0.9 * running[c] + 0.1 * mean;
                running[p.channels + c] = 0.9 * running[p.channels + c] + 0.1 * unbiased;
            }
            return;
        }
        let mean = stats[c];
        let inv = stats[p.channels + c];
        var sd = 0.0;
        var sdx = 0.0;
        for (var k = t; k < n; k += 256u) {
            let i = at(c, k);
            let dz = select(0.0, g[i], y[i] > 0.0);
            sd += dz;
            sdx += dz * (x[i] - mean) * inv;
        }
        part[t] = sd;
        part2[t] = sdx;
        reduce(t);
        if (t == 0u) {
            gw[c] = part2[0];
            gw[p.channels + c] = part[0];
        }
        return;
    }
    let i = (wid.x + wid.y * p.groups_x) * 256u + t;
    if (i >= n * p.channels) {
        return;
    }
    let c = (i / p.plane) % p.channels;
    let mean = stats[c];
    let inv = stats[p.channels + c];
    let gain = wb[c];
    let xhat = (x[i] - mean) * inv;
    if (p.mode == 1u) {
        y[i] = max(gain * xhat + wb[p.channels + c], 0.0);
        return;
    }
    let dz = select(0.0, g[i], y[i] > 0.0);
    let nf = f32(n);
    dx[i] = gain * inv * (dz - gw[p.channels + c] / nf - xhat * gw[c] / nf);
}

// One optimiser update of a weight buffer from its gradient, with torch.optim's rules (the state
// buffers start at zero, which gives PyTorch's first step):
//   mode 0, RMSprop:  s = a·s + (1 - a)·g²;  w -= lr · g / (sqrt(s) + eps)
//   mode 1, SGD:      s = a·s + g;           w -= lr · s            (a: momentum)
//   mode 2, Adam:     s = a·s + (1 - a)·g;  t = b·t + (1 - b)·g²;
//                     w -= lr · (s / c1) / (sqrt(t / c2) + eps)     (c1, c2: bias corrections)
// One invocation per weight.

struct Params {
    n: u32,
    mode: u32,
    lr: f32,
    a: f32,
    b: f32,
    eps: f32,
    c1: f32,
    c2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> s: array<f32>;
@group(0) @binding(4) var<storage, read_write> t: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.n) {
        return;
    }
    let gi = g[i];
    if (p.mode == 0u) {
        let si = p.a * s[i] + (1.0 - p.a) * gi * gi;
        s[i] = si;
        w[i] -= p.lr * gi / (sqrt(si) + p.eps);
    } else if (p.mode == 1u) {
        let si = p.a * s[i] + gi;
        s[i] = si;
        w[i] -= p.lr * si;
    } else {
        let m = p.a * s[i] + (1.0 - p.a) * gi;
        let v = p.b * t[i] + (1.0 - p.b) * gi * gi;
        s[i] = m;
        t[i] = v;
        w[i] -= p.lr * (m / p.c1) / (sqrt(v / p.c2) + p.eps);
    }
}

// A crop (Caffe's Crop layer on the spatial axes): y[plane, oy, ox] = x[plane, oy + offset,
// ox + offset], NCHW, the planes being images times channels. One invocation per output element.
// Mode 1 is its gradient: `x` is then the small map's gradient (out_height x out_width), `y` the
// large one's (height x width), zero outside the cropped window.

struct Params {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    offset: u32,
    mode: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (p.mode == 1u) {
        if (i >= p.planes * p.height * p.width) {
            return;
        }
        let x0 = i % p.width;
        let y0 = (i / p.width) % p.height;
        let pl = i / (p.width * p.height);
        var v = 0.0;
        if (y0 >= p.offset && x0 >= p.offset && y0 - p.offset < p.out_height && x0 - p.offset < p.out_width) {
            v = x[(pl * p.out_height + y0 - p.offset) * p.out_width + x0 - p.offset];
        }
        y[i] = v;
        return;
    }
    if (i >= p.planes * p.out_height * p.out_width) {
        return;
    }
    let ox = i % p.out_width;
    let oy = (i / p.out_width) % p.out_height;
    let plane = i / (p.out_width * p.out_height);
    y[i] = x[(plane * p.height + oy + p.offset) * p.width + ox + p.offset];
}

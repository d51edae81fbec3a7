// Colour-maps a map's values on the GPU (the app's large maps without a CPU round trip): the
// same maps as `colour::ColourMap` (viridis and cividis with 5 anchors, grey, blue-white-red),
// one packed RGBA8 (alpha 255) per value; NaN is white.

struct Params {
    n: u32,
    // 0: viridis, 1: grey, 2: diverging, 3: cividis.
    map: u32,
    lo: f32,
    hi: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> rgba: array<u32>;

const VIRIDIS = array<vec3<f32>, 5>(
    vec3<f32>(68.0, 1.0, 84.0),
    vec3<f32>(59.0, 82.0, 139.0),
    vec3<f32>(33.0, 145.0, 140.0),
    vec3<f32>(94.0, 201.0, 98.0),
    vec3<f32>(253.0, 231.0, 37.0),
);

const CIVIDIS = array<vec3<f32>, 5>(
    vec3<f32>(0.0, 32.0, 77.0),
    vec3<f32>(65.0, 77.0, 107.0),
    vec3<f32>(124.0, 123.0, 120.0),
    vec3<f32>(188.0, 175.0, 111.0),
    vec3<f32>(255.0, 234.0, 70.0),
);

fn pack(c: vec3<u32>) -> u32 {
    return c.x | (c.y << 8u) | (c.z << 16u) | (255u << 24u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.n) {
        return;
    }
    let v = values[i];
    // NaN by its bits: `v != v` may be folded away by shader compilers.
    let bits = bitcast<u32>(v);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0u) {
        rgba[i] = pack(vec3<u32>(255u, 255u, 255u));
        return;
    }
    var t = 0.5;
    if (p.hi > p.lo) {
        t = (v - p.lo) / (p.hi - p.lo);
    }
    if (p.map == 0u || p.map == 3u) {
        let s = clamp(t, 0.0, 1.0) * 4.0;
        let k = min(u32(floor(s)), 3u);
        let f = s - f32(k);
        var c = VIRIDIS[k] * (1.0 - f) + VIRIDIS[k + 1u] * f;
        if (p.map == 3u) {
            c = CIVIDIS[k] * (1.0 - f) + CIVIDIS[k + 1u] * f;
        }
        rgba[i] = pack(vec3<u32>(c));
    } else if (p.map == 1u) {
        let g = u32(255.0 * clamp(t, 0.0, 1.0));
        rgba[i] = pack(vec3<u32>(g, g, g));
    } else {
        let d = clamp(2.0 * t - 1.0, -1.0, 1.0);
        if (d >= 0.0) {
            let w = u32(255.0 * (1.0 - d));
            rgba[i] = pack(vec3<u32>(255u, w, w));
        } else {
            let w = u32(255.0 * (1.0 + d));
            rgba[i] = pack(vec3<u32>(w, w, 255u));
        }
    }
}

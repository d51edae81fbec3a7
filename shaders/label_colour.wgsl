// A segmentation network's scores [classes, H, W] (one image of a batch) to a label map and its
// picture: each pixel's label is the first class of highest score (as candle's argmax), coloured
// in the palette and laid over the photo at `opacity` (background, label 0, shows the photo), as
// probe::render::label_overlay does on the CPU. One invocation per pixel.

struct Params {
    classes: u32,
    plane: u32,
    // Offset of the image's scores in the buffer (image index x classes x plane).
    offset: u32,
    opacity: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
// RGBA8 per pixel, packed little-endian (r in the low byte).
@group(0) @binding(2) var<storage, read> photo: array<u32>;
// 256 palette colours, packed as the photo.
@group(0) @binding(3) var<storage, read> palette: array<u32>;
@group(0) @binding(4) var<storage, read_write> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> picture: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 64u;
    if (i >= p.plane) {
        return;
    }
    var best = 0u;
    var top = scores[p.offset + i];
    for (var c = 1u; c < p.classes; c++) {
        let v = scores[p.offset + c * p.plane + i];
        if (v > top) {
            top = v;
            best = c;
        }
    }
    labels[i] = best;
    let base = unpack4x8unorm(photo[i]);
    if (best == 0u) {
        picture[i] = photo[i] | 0xff000000u;
        return;
    }
    let colour = unpack4x8unorm(palette[min(best, 255u)]);
    let a = clamp(p.opacity, 0.0, 1.0);
    let mixed = a * colour.rgb + (1.0 - a) * base.rgb;
    picture[i] = pack4x8unorm(vec4<f32>(mixed, 1.0));
}

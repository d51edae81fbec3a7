//! Pictures of probe results: a map as a colour-mapped heatmap with a colour bar, and CSV.

use image::{Rgb, RgbImage};

/// A perceptually ordered colour map (viridis, 5 anchors, linear in between) for values in [0, 1].
fn viridis(t: f32) -> [u8; 3] {
    const A: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let mix = |c: usize| (A[i][c] * (1.0 - f) + A[i + 1][c] * f) as u8;
    [mix(0), mix(1), mix(2)]
}

/// Blue (−1) — white (0) — red (+1), for signed maps.
fn diverging(t: f32) -> [u8; 3] {
    let t = t.clamp(-1.0, 1.0);
    if t >= 0.0 {
        let v = (255.0 * (1.0 - t)) as u8;
        [255, v, v]
    } else {
        let v = (255.0 * (1.0 + t)) as u8;
        [v, v, 255]
    }
}

/// Renders `values` (`[h, w]` row-major) scaled up by `scale`, with a colour bar on the right:
/// signed maps use a diverging map over `±max|v|`, others viridis over `[min, max]`; NaN values
/// (gaps between tiles) are white.
pub fn heatmap(values: &[f32], h: usize, w: usize, signed: bool, scale: u32) -> RgbImage {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let peak = lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE);
    let colour = |v: f32| {
        if v.is_nan() {
            [255, 255, 255]
        } else if signed {
            diverging(v / peak)
        } else {
            viridis(if hi > lo { (v - lo) / (hi - lo) } else { 0.0 })
        }
    };
    let (iw, ih) = (w as u32 * scale, h as u32 * scale);
    let bar = 12u32;
    let mut img = RgbImage::from_pixel(iw + 6 + bar, ih, Rgb([255, 255, 255]));
    for y in 0..ih {
        for x in 0..iw {
            let v = values[(y / scale) as usize * w + (x / scale) as usize];
            img.put_pixel(x, y, Rgb(colour(v)));
        }
        // Colour bar: top = maximum, bottom = minimum (or -peak).
        let t = 1.0 - y as f32 / (ih.max(2) - 1) as f32;
        let c = if signed { diverging(2.0 * t - 1.0) } else { viridis(t) };
        for x in iw + 6..iw + 6 + bar {
            img.put_pixel(x, y, Rgb(c));
        }
    }
    img
}

/// `values` (`[h, w]`) as CSV: one line per row.
pub fn csv(values: &[f32], w: usize) -> String {
    let mut s = String::new();
    for row in values.chunks(w.max(1)) {
        let line: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        s.push_str(&line.join(","));
        s.push('\n');
    }
    s
}

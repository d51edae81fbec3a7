//! Pictures of probe results: a map as a colour-mapped heatmap with a colour bar, and CSV.

use image::{Rgb, RgbImage};

use crate::colour::{diverging, viridis};

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

/// An effective receptive field over a grey picture: `background` (`[h, w]` in [0, 1]) dimmed,
/// with `erf`'s magnitude (`[h, w]`, peak 1) laid over it in viridis, opaque where the ERF is
/// strong and clear where it vanishes (`sqrt` of the magnitude, so faint tails stay visible),
/// scaled up by `scale`.
pub fn erf_overlay(background: &[f32], erf: &[f32], h: usize, w: usize, scale: u32) -> RgbImage {
    let peak = erf.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let mut img = RgbImage::new(w as u32 * scale, h as u32 * scale);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let i = (y / scale) as usize * w + (x / scale) as usize;
        let a = (erf[i].abs() / peak).sqrt();
        let grey = 0.6 * background[i].clamp(0.0, 1.0) * 255.0;
        let c = viridis(a);
        *p = Rgb(std::array::from_fn(|k| (grey * (1.0 - a) + f32::from(c[k]) * a) as u8));
    }
    img
}

/// Draws the outline of the rectangle `rows` x `cols` (pixel ranges, inclusive, before `scale`)
/// onto `img`, two pixels wide.
pub fn outline(img: &mut RgbImage, rows: (usize, usize), cols: (usize, usize), scale: u32, colour: [u8; 3]) {
    let (w, h) = img.dimensions();
    let (y0, y1) = (rows.0 as u32 * scale, ((rows.1 + 1) as u32 * scale).min(h) - 1);
    let (x0, x1) = (cols.0 as u32 * scale, ((cols.1 + 1) as u32 * scale).min(w) - 1);
    for t in 0..2 {
        for x in x0..=x1 {
            for y in [y0 + t, y1.saturating_sub(t)] {
                img.put_pixel(x, y.min(h - 1), Rgb(colour));
            }
        }
        for y in y0..=y1 {
            for x in [x0 + t, x1.saturating_sub(t)] {
                img.put_pixel(x.min(w - 1), y, Rgb(colour));
            }
        }
    }
}

/// Pictures side by side on white, `gap` pixels apart, top-aligned.
pub fn side_by_side(pictures: &[RgbImage], gap: u32) -> RgbImage {
    let width =
        pictures.iter().map(RgbImage::width).sum::<u32>() + gap * pictures.len().saturating_sub(1) as u32;
    let height = pictures.iter().map(RgbImage::height).max().unwrap_or(0);
    let mut out = RgbImage::from_pixel(width.max(1), height.max(1), Rgb([255, 255, 255]));
    let mut left = 0;
    for p in pictures {
        image::imageops::replace(&mut out, p, i64::from(left), 0);
        left += p.width() + gap;
    }
    out
}

/// A label map in the VOC palette over a photo (`w x h` RGB bytes, row-major): each pixel is
/// `opacity` of its class's colour and the rest of the photo; background (0) and ignored (255)
/// pixels show the photo alone, so objects stand out.
pub fn label_overlay(photo: &[u8], labels: &[u8], w: usize, h: usize, opacity: f32) -> RgbImage {
    let palette = crate::colour::palette();
    let a = opacity.clamp(0.0, 1.0);
    let mut img = RgbImage::new(w as u32, h as u32);
    for (i, px) in img.pixels_mut().enumerate() {
        let l = labels.get(i).copied().unwrap_or(0);
        let base = [photo[3 * i], photo[3 * i + 1], photo[3 * i + 2]];
        px.0 = if l == 0 || l == 255 {
            base
        } else {
            let c = palette[usize::from(l)];
            std::array::from_fn(|k| (a * f32::from(c[k]) + (1.0 - a) * f32::from(base[k])).round() as u8)
        };
    }
    img
}

/// A label map in the VOC palette (255, VOC's "ignore", in its cream colour).
pub fn label_image(labels: &[u8], w: usize, h: usize) -> RgbImage {
    let palette = crate::colour::palette();
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        Rgb(palette[usize::from(labels.get(y as usize * w + x as usize).copied().unwrap_or(0))])
    })
}

//! Line charts as PNG pictures, for the CLI's plots (receptive field against depth, spectra over
//! training): axes with ticks and labels, named categories or numbers along x, solid or dashed
//! series, horizontal reference lines and a legend. Text is drawn with the font egui ships.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

/// One series of points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Line colour.
    pub colour: [u8; 3],
    /// Dashed instead of solid.
    pub dashed: bool,
    /// `(x, y)`; a `None` y breaks the line.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A horizontal reference line (`the image's side`).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its label, written above it at the right.
    pub label: String,
    /// Where.
    pub y: f64,
}

/// A chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Title at the top.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Names along x (`x = 0, 1, …`), written slanted under the axis; empty: numeric ticks.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Horizontal reference lines.
    pub rules: Vec<Rule>,
}

/// Colours that stay apart for colour-blind readers (Okabe & Ito 2008).
pub const OKABE_ITO: [[u8; 3]; 7] =
    [[0, 114, 178], [213, 94, 0], [0, 158, 115], [204, 121, 167], [230, 159, 0], [86, 180, 233], [0, 0, 0]];

struct Canvas {
    img: RgbImage,
    font: FontRef<'static>,
}

impl Canvas {
    fn blend(&mut self, x: i64, y: i64, colour: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.img.width()) || y >= i64::from(self.img.height()) {
            return;
        }
        let p = self.img.get_pixel_mut(x as u32, y as u32);
        for (c, &t) in p.0.iter_mut().zip(&colour) {
            *c = (f32::from(*c) * (1.0 - alpha) + f32::from(t) * alpha).round() as u8;
        }
    }

    /// A line `width` px wide (dashed: 6 px on, 4 off).
    fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        colour: [u8; 3],
        width: f64,
        dashed: bool,
    ) {
        let len = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
        let steps = (len * 2.0).ceil().max(1.0) as usize;
        let r = width / 2.0;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            if dashed && (t * len) % 10.0 > 6.0 {
                continue;
            }
            let (cx, cy) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            let (lo_x, hi_x) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
            let (lo_y, hi_y) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
            for py in lo_y..=hi_y {
                for px in lo_x..=hi_x {
                    let d = ((px as f64 - cx).powi(2) + (py as f64 - cy).powi(2)).sqrt();
                    let a = (r + 0.5 - d).clamp(0.0, 1.0) as f32;
                    if a > 0.0 {
                        // Overlapping samples of one line do not pile up.
                        self.blend_max(px, py, colour, a);
                    }
                }
            }
        }
    }

    /// Blends towards `colour` unless the pixel is already at least that close to it.
    fn blend_max(&mut self, x: i64, y: i64, colour: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.img.width()) || y >= i64::from(self.img.height()) {
            return;
        }
        let p = self.img.get_pixel_mut(x as u32, y as u32);
        for (c, &t) in p.0.iter_mut().zip(&colour) {
            let target = (f32::from(255u8) * (1.0 - alpha) + f32::from(t) * alpha).round() as u8;
            // Move from white towards the colour by alpha, keeping whatever is already nearer.
            if (i32::from(target) - i32::from(t)).abs() < (i32::from(*c) - i32::from(t)).abs() {
                *c = target;
            }
        }
    }

    fn dot(&mut self, (x, y): (f64, f64), colour: [u8; 3], r: f64) {
        for py in (y - r - 1.0).floor() as i64..=(y + r + 1.0).ceil() as i64 {
            for px in (x - r - 1.0).floor() as i64..=(x + r + 1.0).ceil() as i64 {
                let d = ((px as f64 - x).powi(2) + (py as f64 - y).powi(2)).sqrt();
                let a = (r + 0.5 - d).clamp(0.0, 1.0) as f32;
                if a > 0.0 {
                    self.blend(px, py, colour, a);
                }
            }
        }
    }

    fn text_width(&self, text: &str, size: f32) -> f64 {
        let f = self.font.as_scaled(PxScale::from(size));
        f64::from(text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum::<f32>())
    }

    /// Writes `text` with its top-left corner at `(x, y)`.
    fn text(&mut self, text: &str, (x, y): (f64, f64), size: f32, colour: [u8; 3]) {
        let scale = PxScale::from(size);
        let font = self.font.clone();
        let f = font.as_scaled(scale);
        let mut pen = x as f32;
        let baseline = y as f32 + f.ascent();
        for c in text.chars() {
            let id = f.glyph_id(c);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, baseline));
            pen += f.h_advance(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                let mut cover = Vec::new();
                outline.draw(|gx, gy, a| cover.push((gx, gy, a)));
                for (gx, gy, a) in cover {
                    self.blend(
                        i64::from(b.min.x as i32) + i64::from(gx),
                        i64::from(b.min.y as i32) + i64::from(gy),
                        colour,
                        a,
                    );
                }
            }
        }
    }

    /// `text` turned 90° anticlockwise (read bottom to top), its right end at `(x, y)` before
    /// turning: the string's left end is lowest.
    fn text_up(&mut self, text: &str, (x, y): (f64, f64), size: f32, colour: [u8; 3]) {
        let w = self.text_width(text, size).ceil() as u32 + 2;
        let h = (size * 1.4).ceil() as u32;
        let mut sub =
            Canvas { img: RgbImage::from_pixel(w, h, Rgb([255, 255, 255])), font: self.font.clone() };
        sub.text(text, (0.0, 0.0), size, colour);
        let turned = image::imageops::rotate270(&sub.img);
        // Paste multiplying, so the white background leaves the chart as it is.
        for (px, py, p) in turned.enumerate_pixels() {
            let (tx, ty) = (x as i64 + i64::from(px), y as i64 - i64::from(turned.height()) + i64::from(py));
            if tx < 0 || ty < 0 || tx >= i64::from(self.img.width()) || ty >= i64::from(self.img.height()) {
                continue;
            }
            let q = self.img.get_pixel_mut(tx as u32, ty as u32);
            for (a, b) in q.0.iter_mut().zip(p.0) {
                *a = ((u16::from(*a) * u16::from(b)) / 255) as u8;
            }
        }
    }
}

/// A "nice" tick step for a range: 1, 2 or 5 times a power of ten, about `n` ticks.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

impl Chart {
    /// Draws the chart on a `width x height` white picture.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)
            .unwrap_or_else(|_| unreachable!("egui's bundled font parses"));
        let mut c = Canvas { img: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])), font };
        let (w, h) = (f64::from(width), f64::from(height));
        let label_room = if self.categories.is_empty() {
            20.0
        } else {
            let longest = self.categories.iter().map(|s| c.text_width(s, 13.0)).fold(0.0, f64::max);
            longest.min(h * 0.35) * 0.75 + 12.0
        };
        let (left, right, top) = (64.0, w - 16.0, 40.0);
        let bottom = h - 34.0 - label_room;
        // Ranges.
        let xs: Vec<f64> = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
        let ys: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .chain(self.rules.iter().map(|r| r.y))
            .collect();
        let (x0, x1) = if self.categories.is_empty() {
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (0.0, 1.0)
            }
        } else {
            (-0.5, self.categories.len() as f64 - 0.5)
        };
        let y_hi = ys.iter().copied().fold(0.0, f64::max);
        let y_step = tick_step(y_hi.max(1e-9), 5.0);
        let y1 = (y_hi / y_step).ceil().max(1.0) * y_step;
        let y0 = 0.0;
        let px = |x: f64| left + (x - x0) / (x1 - x0) * (right - left);
        let py = |y: f64| bottom - (y - y0) / (y1 - y0) * (bottom - top);
        let grey = [200, 200, 200];
        let ink = [40, 40, 40];
        // Grid and y ticks.
        let mut t = y0;
        while t <= y1 + 1e-9 {
            c.line((left, py(t)), (right, py(t)), [235, 235, 235], 1.0, false);
            let label = if y_step >= 1.0 { format!("{t:.0}") } else { format!("{t}") };
            let lw = c.text_width(&label, 13.0);
            c.text(&label, (left - 6.0 - lw, py(t) - 8.0), 13.0, ink);
            t += y_step;
        }
        // x ticks.
        if self.categories.is_empty() {
            let step = tick_step(x1 - x0, 6.0);
            let mut t = (x0 / step).ceil() * step;
            while t <= x1 + 1e-9 {
                c.line((px(t), bottom), (px(t), bottom + 4.0), ink, 1.0, false);
                let label = if step >= 1.0 { format!("{t:.0}") } else { format!("{t:.2}") };
                let lw = c.text_width(&label, 13.0);
                c.text(&label, (px(t) - lw / 2.0, bottom + 6.0), 13.0, ink);
                t += step;
            }
        } else {
            for (i, name) in self.categories.iter().enumerate() {
                let x = px(i as f64);
                c.line((x, bottom), (x, bottom + 4.0), ink, 1.0, false);
                c.text_up(name, (x - 8.0, bottom + 8.0 + c.text_width(name, 13.0).min(h * 0.35)), 13.0, ink);
            }
        }
        // Axes.
        c.line((left, top), (left, bottom), grey, 1.0, false);
        c.line((left, bottom), (right, bottom), grey, 1.0, false);
        // Rules.
        for r in &self.rules {
            c.line((left, py(r.y)), (right, py(r.y)), [120, 120, 120], 1.0, true);
            let lw = c.text_width(&r.label, 12.0);
            c.text(&r.label, (right - lw - 2.0, py(r.y) - 16.0), 12.0, [90, 90, 90]);
        }
        // Series.
        for s in &self.series {
            let mut last: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                match y {
                    Some(y) => {
                        let p = (px(x), py(y));
                        if let Some(q) = last {
                            c.line(q, p, s.colour, 2.0, s.dashed);
                        }
                        c.dot(p, s.colour, 2.5);
                        last = Some(p);
                    }
                    None => last = None,
                }
            }
        }
        // Title, axis labels, legend.
        c.text(&self.title, (left, 10.0), 16.0, ink);
        let xw = c.text_width(&self.x_label, 13.0);
        c.text(&self.x_label, ((left + right - xw) / 2.0, h - 22.0), 13.0, ink);
        c.text_up(&self.y_label, (6.0, (top + bottom + c.text_width(&self.y_label, 13.0)) / 2.0), 13.0, ink);
        // The legend on a white box, so the lines and rules under it do not cross its text.
        let widest = self.series.iter().map(|s| c.text_width(&s.name, 13.0)).fold(0.0, f64::max);
        let (bx, by) = (left + 6.0, top + 1.0);
        let (bw, bh) = (widest + 50.0, 18.0 * self.series.len() as f64 + 6.0);
        if !self.series.is_empty() {
            for y in by as i64..(by + bh) as i64 {
                for x in bx as i64..(bx + bw) as i64 {
                    c.blend(x, y, [255, 255, 255], 1.0);
                }
            }
            let frame = [225, 225, 225];
            c.line((bx, by), (bx + bw, by), frame, 1.0, false);
            c.line((bx, by + bh), (bx + bw, by + bh), frame, 1.0, false);
            c.line((bx, by), (bx, by + bh), frame, 1.0, false);
            c.line((bx + bw, by), (bx + bw, by + bh), frame, 1.0, false);
        }
        let mut ly = top + 4.0;
        for s in &self.series {
            let lx = left + 12.0;
            c.line((lx, ly + 8.0), (lx + 26.0, ly + 8.0), s.colour, 2.0, s.dashed);
            c.text(&s.name, (lx + 32.0, ly), 13.0, ink);
            ly += 18.0;
        }
        c.img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_land_where_their_values_say() {
        let chart = Chart {
            title: "t".into(),
            series: vec![Series {
                name: "s".into(),
                colour: [255, 0, 0],
                dashed: false,
                points: vec![(0.0, Some(0.0)), (1.0, Some(10.0))],
            }],
            ..Chart::default()
        };
        let img = chart.render(300, 200);
        // The line rises from the bottom-left to the top-right of the plot area: red pixels in
        // the lower left and the upper right quarters, none in the upper left.
        let red = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (x0..x1).flat_map(|x| (y0..y1).map(move |y| (x, y))).any(|(x, y)| {
                let p = img.get_pixel(x, y).0;
                p[0] > 200 && p[1] < 80 && p[2] < 80
            })
        };
        assert!(red(64, 120, 110, 150));
        assert!(red(230, 284, 40, 80));
        // (The legend sits at the top left, above y = 64.)
        assert!(!red(64, 120, 66, 100));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(37.0, 5.0), 10.0);
        assert_eq!(tick_step(0.9, 5.0), 0.2);
        assert_eq!(tick_step(400.0, 5.0), 100.0);
    }
}

//! On-the-fly augmentation (SPEC §5): horizontal flips, small rotations and scaling, drawn from
//! the seeded [`Rng`].

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Augmentation settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Flip horizontally with probability 1/2.
    pub flip: bool,
    /// Rotate by a uniform angle in `±max_rotation_deg` degrees.
    pub max_rotation_deg: f32,
    /// Scale by a uniform factor in `1 ± max_scale`.
    pub max_scale: f32,
}

impl Default for Augment {
    /// Flips, ±10° rotations and ±10% scaling.
    fn default() -> Self {
        Self { flip: true, max_rotation_deg: 10.0, max_scale: 0.1 }
    }
}

impl Augment {
    /// No augmentation at all.
    pub const NONE: Augment = Augment { flip: false, max_rotation_deg: 0.0, max_scale: 0.0 };

    /// Augments one `[C, H, W]` image: a random similarity transform about the centre, sampled
    /// bilinearly with zeros outside.
    pub fn apply(&self, img: &[f32], (c, h, w): (usize, usize, usize), rng: &mut Rng) -> Vec<f32> {
        let flip = self.flip && rng.uniform() < 0.5;
        let angle = rng.symmetric(self.max_rotation_deg).to_radians();
        let scale = 1.0 + rng.symmetric(self.max_scale);
        if !flip && angle == 0.0 && scale == 1.0 {
            return img.to_vec();
        }
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (sin, cos) = angle.sin_cos();
        let mut out = vec![0f32; img.len()];
        for y in 0..h {
            for x in 0..w {
                // Inverse map: output pixel -> source position.
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let mut sx = (cos * dx + sin * dy) / scale + cx;
                let sy = (-sin * dx + cos * dy) / scale + cy;
                if flip {
                    sx = w as f32 - 1.0 - sx;
                }
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                for ch in 0..c {
                    let at = |yy: f32, xx: f32| -> f32 {
                        if yy < 0.0 || xx < 0.0 || yy >= h as f32 || xx >= w as f32 {
                            0.0
                        } else {
                            img[(ch * h + yy as usize) * w + xx as usize]
                        }
                    };
                    let v = at(y0, x0) * (1.0 - fx) * (1.0 - fy)
                        + at(y0, x0 + 1.0) * fx * (1.0 - fy)
                        + at(y0 + 1.0, x0) * (1.0 - fx) * fy
                        + at(y0 + 1.0, x0 + 1.0) * fx * fy;
                    out[(ch * h + y) * w + x] = v;
                }
            }
        }
        out
    }
}

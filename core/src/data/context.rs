//! A generated long-range context task, the teaching demo: each grey image holds two small bright
//! marks on one row, far apart, on faint noise, and the label says which of the two is brighter
//! ("left brighter" or "right brighter"). The marks are at least `min_distance` pixels apart and
//! at least `margin` pixels from the left and right borders, both more than the receptive field of
//! a small CNN (`Context-CNN`'s is 16 px): no unit of such a CNN sees both marks, and none sees a
//! mark and a border, so after global pooling it cannot tell the left mark from the right one and
//! is left at chance. An L-RNN's horizontal scan carries what it saw along the whole row.
//!
//! (A first version put the marks anywhere in 64x64 images: a CNN with a 32 px receptive field
//! then told left from right by the nearby border and solved the task, 1.2% validation error
//! after one epoch.)

use super::image_set::{ImageSet, Splits};
use crate::rng::Rng;

/// Parameters of the generated task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextTask {
    /// Image side in pixels.
    pub size: usize,
    /// Minimum horizontal distance between the two marks, in pixels.
    pub min_distance: usize,
    /// Minimum distance of every mark from the left and right borders, in pixels.
    #[serde(default)]
    pub margin: usize,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Test images.
    pub test: usize,
    /// Seed of the generator (the same seed gives the same images).
    pub seed: u64,
}

impl Default for ContextTask {
    /// 96x96 images, marks at least 24 px apart and 20 px from the borders (`Context-CNN`'s
    /// receptive field is 16 px), 8000 / 1000 / 1000 images.
    fn default() -> Self {
        Self { size: 96, min_distance: 24, margin: 20, train: 8000, val: 1000, test: 1000, seed: 2017 }
    }
}

/// Class names, by label.
pub const CLASSES: [&str; 2] = ["left brighter", "right brighter"];

const MARK: usize = 3;

fn generate_set(task: &ContextTask, n: usize, rng: &mut Rng) -> ImageSet {
    let s = task.size;
    let margin = task.margin.max(2);
    assert!(s >= task.min_distance + MARK + 2 * margin, "images too small for the distance and margin");
    let mut pixels = vec![0u8; n * s * s];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let img = &mut pixels[i * s * s..(i + 1) * s * s];
        for p in img.iter_mut() {
            *p = (rng.uniform() * 40.0) as u8;
        }
        // Columns of the marks' left edges: x1 in [margin, last - d], x2 in [x1 + d, last].
        let last = s - margin - MARK;
        let x1 = margin + rng.below(last - task.min_distance - margin + 1);
        let x2 = x1 + task.min_distance + rng.below(last - x1 - task.min_distance + 1);
        let y = 2 + rng.below(s - MARK - 3);
        let (y1, y2) = (y, y);
        // Two brightnesses at least 0.25 apart in [0.35, 1].
        let (a, b) = loop {
            let (a, b) = (0.35 + 0.65 * rng.uniform(), 0.35 + 0.65 * rng.uniform());
            if (a - b).abs() >= 0.25 {
                break (a, b);
            }
        };
        for (x0, y0, v) in [(x1, y1, a), (x2, y2, b)] {
            for y in y0..y0 + MARK {
                for x in x0..x0 + MARK {
                    img[y * s + x] = (v * 255.0) as u8;
                }
            }
        }
        labels.push(u8::from(b > a));
    }
    ImageSet { pixels, labels, shape: (1, s, s), classes: CLASSES.map(String::from).to_vec() }
}

/// Generates the three splits.
pub fn generate(task: &ContextTask) -> Splits {
    let mut rng = Rng(task.seed);
    Splits {
        train: generate_set(task, task.train, &mut rng),
        val: generate_set(task, task.val, &mut rng),
        test: generate_set(task, task.test, &mut rng),
    }
}

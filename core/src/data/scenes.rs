//! Generated scenes for segmentation, the demo when PASCAL VOC is absent: the right label of a
//! region depends on context far away.
//!
//! Each RGB image holds one textured grey disc (the *object*) on grey noise, and a small red or
//! blue square (the *mark*) at least `min_distance` pixels away horizontally. The object's pixels
//! are labelled `red-marked object` when the mark is red and `blue-marked object` when it is blue;
//! everything else, the mark included, is `background`, and a one-pixel ring around the object is
//! 255 (ignored, as VOC's object borders). The object looks the same in both classes, so a unit
//! that does not see the mark can only guess which of the two it is; the mark sits outside the
//! part of the image that the fine FCN-8s branches see (pool3's receptive field is 44 px, pool4's
//! 100 px), so those branches need the coarse one, or an L-RNN's scan along the row, to know.

use super::seg_set::{SegSet, SegSplits};
use crate::rng::Rng;

/// Parameters of the generated scenes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SceneTask {
    /// Image height in pixels (a multiple of 32 for the FCNs), and width unless `width` is given.
    pub size: usize,
    /// Image width in pixels when it differs from `size`: wide scenes put the mark beyond a
    /// CNN's reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// Minimum horizontal distance between the object's centre and the mark's, in pixels.
    pub min_distance: usize,
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub val: usize,
    /// Seed of the generator (the same seed gives the same images).
    pub seed: u64,
}

impl Default for SceneTask {
    /// 96x96 images, the mark at least 48 px from the object's centre, 2000 / 200 images.
    fn default() -> Self {
        Self { size: 96, width: None, min_distance: 48, train: 2000, val: 200, seed: 2017 }
    }
}

/// Class names, by label.
pub const CLASSES: [&str; 3] = ["background", "red-marked object", "blue-marked object"];

/// Generates one scene: RGB bytes (NCHW) and labels.
impl SceneTask {
    /// Height and width.
    pub fn dims(&self) -> (usize, usize) {
        (self.size, self.width.unwrap_or(self.size))
    }

    /// The mark's side, the objects' smallest radius and how many radii there are (the radius is
    /// drawn from `smallest..smallest + count`), all from the height.
    fn shapes(&self) -> (usize, usize, usize) {
        let h = self.size;
        ((h / 16).max(3), (h / 10).max(3), (h / 16).max(1))
    }

    /// Why these scenes cannot be drawn, if they cannot.
    pub fn check(&self) -> Option<String> {
        let (h, w) = self.dims();
        if h < 32 || w < 32 {
            return Some(format!("scenes of {h}x{w} px: at least 32 px a side"));
        }
        // The farthest an object's centre and the mark can be (see `scene`), for the largest
        // object: the generator's rejection loop must always find a pair.
        let (mark, smallest, count) = self.shapes();
        let radius = smallest + count - 1;
        let reach = w.saturating_sub(radius + 3 + mark / 2);
        (self.min_distance > reach).then(|| {
            format!("scenes {w} px wide cannot hold a mark {} px from the object", self.min_distance)
        })
    }
}

fn scene(task: &SceneTask, rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let (s, sw) = task.dims();
    let plane = s * sw;
    let mut rgb = vec![0u8; 3 * plane];
    for p in 0..plane {
        let grey = 90.0 + 60.0 * rng.uniform();
        for c in 0..3 {
            rgb[c * plane + p] = (grey + rng.symmetric(12.0)).clamp(0.0, 255.0) as u8;
        }
    }
    let (mark, smallest, count) = task.shapes();
    let radius = smallest + rng.below(count);
    let (cx, mx) = loop {
        let cx = radius + 1 + rng.below(sw - 2 * radius - 2);
        let mx = 1 + rng.below(sw - mark - 2) + mark / 2;
        if cx.abs_diff(mx) >= task.min_distance {
            break (cx, mx);
        }
    };
    let cy = radius + 1 + rng.below(s - 2 * radius - 2);
    let my = 1 + rng.below(s - mark - 2);
    let red = rng.uniform() < 0.5;
    let class = if red { 1 } else { 2 };
    let mut labels = vec![0u8; plane];
    for y in 0..s {
        for x in 0..sw {
            let d = ((x as f32 - cx as f32).powi(2) + (y as f32 - cy as f32).powi(2)).sqrt();
            if d <= radius as f32 + 1.0 {
                let p = y * sw + x;
                if d <= radius as f32 {
                    // The same stripes for both classes.
                    let v = if (x + y) / 3 % 2 == 0 { 175 } else { 215 };
                    for c in 0..3 {
                        rgb[c * plane + p] = v;
                    }
                    labels[p] = if d > radius as f32 - 1.0 { 255 } else { class };
                } else {
                    labels[p] = 255;
                }
            }
        }
    }
    let colour: [u8; 3] = if red { [220, 30, 30] } else { [30, 60, 220] };
    for y in my..my + mark {
        for x in mx - mark / 2..mx - mark / 2 + mark {
            for c in 0..3 {
                rgb[c * plane + y * sw + x] = colour[c];
            }
        }
    }
    (rgb, labels)
}

fn generate_set(task: &SceneTask, n: usize, first: usize, rng: &mut Rng) -> SegSet {
    let mut set = SegSet::new(task.dims(), CLASSES.map(String::from).to_vec());
    for i in 0..n {
        let (rgb, labels) = scene(task, rng);
        set.push(format!("scene-{:05}", first + i), &rgb, &labels);
    }
    set
}

/// Generates the training and validation scenes.
///
/// # Panics
/// When [`SceneTask::check`] finds the scenes cannot be drawn: a configuration error the
/// callers check first.
pub fn generate(task: &SceneTask) -> SegSplits {
    if let Some(problem) = task.check() {
        panic!("{problem}");
    }
    let mut rng = Rng(task.seed);
    let train = generate_set(task, task.train, 0, &mut rng);
    let val = generate_set(task, task.val, task.train, &mut rng);
    SegSplits { train, val }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scene_has_an_object_of_the_marks_class_far_from_the_mark() {
        let task = SceneTask { size: 64, width: None, min_distance: 40, train: 30, val: 5, seed: 3 };
        let splits = generate(&task);
        assert_eq!((splits.train.len(), splits.val.len()), (30, 5));
        let plane = 64 * 64;
        let mut seen = [0usize; 3];
        for i in 0..splits.train.len() {
            let img = splits.train.image(i);
            let labels = splits.train.label(i).labels;
            let object: Vec<usize> = (0..plane).filter(|&p| labels[p] == 1 || labels[p] == 2).collect();
            assert!(object.len() > 20, "scene {i} has an object");
            let class = labels[object[0]];
            assert!(object.iter().all(|&p| labels[p] == class), "one class per object");
            assert!(labels.contains(&255), "an ignored ring");
            // The mark: the pixels whose red or blue channel dominates.
            let red = (0..plane).filter(|&p| img[p] > 200 && img[2 * plane + p] < 50).count();
            let blue = (0..plane).filter(|&p| img[2 * plane + p] > 200 && img[p] < 50).count();
            assert_eq!(
                (red > 0, blue > 0),
                (class == 1, class == 2),
                "scene {i}: the mark decides the class"
            );
            let mark_x = (0..plane).find(|&p| img[p].abs_diff(img[2 * plane + p]) > 150).unwrap() % 64;
            let centre_x = object.iter().map(|p| p % 64).sum::<usize>() / object.len();
            assert!(mark_x.abs_diff(centre_x) + 2 >= 40, "scene {i}: mark {mark_x}, object {centre_x}");
            seen[usize::from(class)] += 1;
        }
        assert!(seen[1] > 5 && seen[2] > 5, "both classes: {seen:?}");
        assert_eq!(generate(&task).train, splits.train, "the seed fixes the scenes");
    }
}

#[cfg(test)]
mod wide {
    use super::*;

    #[test]
    fn wide_scenes_put_the_mark_far_from_every_object_pixel() {
        let task = SceneTask { size: 32, width: Some(160), min_distance: 100, train: 10, val: 0, seed: 4 };
        let set = generate(&task).train;
        assert_eq!(set.size, (32, 160));
        let plane = 32 * 160;
        for i in 0..set.len() {
            let (img, labels) = (set.image(i), set.label(i).labels);
            let object: Vec<usize> = (0..plane).filter(|&p| labels[p] == 1 || labels[p] == 2).collect();
            let mark: Vec<usize> =
                (0..plane).filter(|&p| img[p].abs_diff(img[2 * plane + p]) > 150).collect();
            assert!(!object.is_empty() && !mark.is_empty());
            let centre = object.iter().map(|p| p % 160).sum::<usize>() / object.len();
            assert!(mark.iter().all(|p| (p % 160).abs_diff(centre) + 2 >= 100), "scene {i}");
        }
        assert!(SceneTask { min_distance: 155, ..task }.check().is_some(), "too far to fit");
    }
}

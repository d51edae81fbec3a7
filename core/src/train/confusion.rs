//! Segmentation scores (SPEC §6): a confusion matrix accumulated over a whole split, pixel
//! accuracy, per-class IoU and mean IoU over the classes. Pixels labelled 255 are ignored;
//! pixels whose true label is no class of the model (a VOC photo scored against a model of other
//! classes) count as wrong, and which labels those were is kept to say so.

/// A `classes x classes` confusion matrix: `counts[truth][prediction]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    classes: usize,
    counts: Vec<u64>,
    /// Per true class, pixels predicted as no class at all (e.g. 255): wrong, but no class's FP.
    invalid: Vec<u64>,
    /// Per predicted class (and one more for predictions outside the classes), pixels whose
    /// true label is outside the classes and not 255: wrong, and a false positive of the class
    /// predicted.
    foreign: Vec<u64>,
    /// Which true labels (0..=254) outside the classes were seen.
    foreign_labels: Vec<bool>,
}

impl Confusion {
    /// An empty matrix.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
            invalid: vec![0; classes],
            foreign: vec![0; classes + 1],
            foreign_labels: vec![false; 255],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Adds one image: predicted and true labels pixel by pixel (same length). Truth 255 is
    /// ignored; a prediction outside the classes counts as wrong, and so does any pixel whose
    /// truth is outside the classes (see [`Confusion::foreign_labels`]).
    pub fn add(&mut self, prediction: &[u8], truth: &[u8]) {
        for (&p, &t) in prediction.iter().zip(truth) {
            let (p, t) = (usize::from(p), usize::from(t));
            if t == 255 {
                continue;
            }
            if t >= self.classes {
                self.foreign[p.min(self.classes)] += 1;
                self.foreign_labels[t] = true;
                continue;
            }
            if p < self.classes {
                self.counts[t * self.classes + p] += 1;
            } else {
                self.invalid[t] += 1;
            }
        }
    }

    /// `counts[truth][prediction]`.
    pub fn count(&self, truth: usize, prediction: usize) -> u64 {
        self.counts[truth * self.classes + prediction]
    }

    /// Adds another matrix of the same classes (e.g. one image's to a running total).
    ///
    /// # Panics
    /// When the class counts differ (a programming error).
    pub fn merge(&mut self, other: &Confusion) {
        assert_eq!(self.classes, other.classes, "confusion matrices of different classes");
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.invalid.iter_mut().zip(&other.invalid).for_each(|(a, b)| *a += b);
        self.foreign.iter_mut().zip(&other.foreign).for_each(|(a, b)| *a += b);
        self.foreign_labels.iter_mut().zip(&other.foreign_labels).for_each(|(a, b)| *a |= b);
    }

    /// The true labels outside the classes (other than 255) seen so far, and their pixels: the
    /// truth holds classes this model does not know, and those pixels counted as wrong.
    pub fn foreign_labels(&self) -> (Vec<u8>, u64) {
        let labels = (0..255u8).filter(|&l| self.foreign_labels[usize::from(l)]).collect();
        (labels, self.foreign.iter().sum())
    }

    /// Correct pixels over counted pixels (`None` when nothing was counted).
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let total: u64 = self.counts.iter().sum::<u64>()
            + self.invalid.iter().sum::<u64>()
            + self.foreign.iter().sum::<u64>();
        let correct: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// IoU of each class, `TP / (TP + FP + FN)`; `None` for a class that appears in neither the
    /// truth nor the predictions.
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| {
                let tp = self.count(c, c);
                let fn_: u64 =
                    (0..self.classes).map(|p| self.count(c, p)).sum::<u64>() - tp + self.invalid[c];
                let fp: u64 = (0..self.classes).map(|t| self.count(t, c)).sum::<u64>() - tp + self.foreign[c];
                let union = tp + fp + fn_;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// Mean IoU over the classes that appear (`None` when none does).
    pub fn mean_iou(&self) -> Option<f64> {
        let present: Vec<f64> = self.iou().into_iter().flatten().collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    }
}

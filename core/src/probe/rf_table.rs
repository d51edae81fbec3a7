//! The receptive-field arithmetic of a whole network, layer by layer, as in Araujo, Norris & Sim,
//! "Computing Receptive Fields of Convolutional Neural Networks" (Distill, 2019): for each op of
//! the model's graph, its kernel, stride and padding, the effective stride (jump, in input pixels
//! between neighbouring units), the receptive field's size, and the centre of the first unit's
//! field in input coordinates:
//!
//! `r_out = r_in + (k − 1) · j_in`, `j_out = j_in · s`, `c_out = c_in + ((k − 1) / 2 − p) · j_in`.
//!
//! Upsampling divides the jump (a transposed convolution of kernel `k` and stride `s` reads
//! `ceil(k / s)` inputs per output, bilinear upsampling two), a crop moves the first unit by
//! `offset · j`, and an L-RNN pair reaches the whole row (horizontal) or column (vertical): the
//! field is then "the whole width / height". Where two branches meet (a sum, a concatenation)
//! the field is the larger of the two. Computed from the op graph alone, so every model kind
//! has one, Long et al.'s FCNs with their padding of 100 included.

use crate::models::graph::{Graph, Op};
use crate::nn::Axis;

/// One axis of a receptive field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extent {
    /// Size in input pixels, `None` for the whole image along this axis.
    pub size: Option<f64>,
    /// Effective stride: input pixels between neighbouring units.
    pub jump: f64,
    /// Centre of the first unit's field (input pixel coordinates, 0 = the first pixel's centre).
    pub start: f64,
}

impl Extent {
    const INPUT: Extent = Extent { size: Some(1.0), jump: 1.0, start: 0.0 };

    fn window(self, kernel: usize, stride: usize, pad: usize) -> Self {
        let k = kernel as f64;
        Extent {
            size: self.size.map(|r| r + (k - 1.0) * self.jump),
            jump: self.jump * stride as f64,
            start: self.start + ((k - 1.0) / 2.0 - pad as f64) * self.jump,
        }
    }

    /// Upsampling by `factor`, each output reading `taps` neighbouring inputs.
    fn upsample(self, factor: f64, taps: f64, start: f64) -> Self {
        Extent { size: self.size.map(|r| r + (taps - 1.0) * self.jump), jump: self.jump / factor, start }
    }

    fn larger(self, other: Self) -> Self {
        match (self.size, other.size) {
            (None, _) => self,
            (_, None) => other,
            (Some(a), Some(b)) if b > a => other,
            _ => self,
        }
    }
}

/// One row of the table: an op of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct RfRow {
    /// The layer's name (its capture or weight name).
    pub name: String,
    /// What it is: `conv 3x3`, `max pool 2x2`, `L-RNN pair (horizontal)`, …
    pub kind: String,
    /// Kernel side (1 for element-wise ops).
    pub kernel: usize,
    /// Stride (upsampling: the factor, as `1/s`, is in `kind`).
    pub stride: usize,
    /// Padding.
    pub pad: usize,
    /// The field along the height.
    pub height: Extent,
    /// The field along the width.
    pub width: Extent,
}

impl RfRow {
    /// The field's size in words: `212 px`, `212 x 356 px`, `the whole row`, `the whole image`.
    pub fn size_words(&self) -> String {
        match (self.height.size, self.width.size) {
            (None, None) => "the whole image".into(),
            (Some(h), None) => format!("the whole row, {h:.0} px tall"),
            (None, Some(w)) => format!("the whole column, {w:.0} px wide"),
            (Some(h), Some(w)) if (h - w).abs() < 1e-9 => format!("{h:.0} px"),
            (Some(h), Some(w)) => format!("{h:.0} x {w:.0} px"),
        }
    }
}

/// The receptive-field arithmetic of every op of `graph` that changes the field or is
/// captured, in forward order (ReLUs, BatchNorm and dropout only pass it on).
pub fn rf_table(graph: &Graph) -> Vec<RfRow> {
    table(graph, true)
}

/// The same table for the CNN the L-RNNs sit in: every recurrence at zero, so each scan pair
/// acts on one position at a time (`h = f(U x + b)`) and passes the field on unchanged.
pub fn rf_table_without_recurrence(graph: &Graph) -> Vec<RfRow> {
    table(graph, false)
}

fn table(graph: &Graph, recurrent: bool) -> Vec<RfRow> {
    let mut fields: Vec<(Extent, Extent)> = vec![(Extent::INPUT, Extent::INPUT)];
    let mut rows = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let last_node = i + 1 == graph.nodes.len();
        let arg = |k: usize| node.inputs.get(k).and_then(|&v| fields.get(v)).copied();
        let (h, w) = arg(0).unwrap_or((Extent::INPUT, Extent::INPUT));
        let (field, kind, geom) = match &node.op {
            Op::Conv { name, kernel, pad, .. } => {
                let f = (h.window(*kernel, 1, *pad), w.window(*kernel, 1, *pad));
                (f, Some((name.clone(), format!("conv {kernel}x{kernel}"))), (*kernel, 1, *pad))
            }
            Op::Linear { name, .. } => ((h, w), Some((name.clone(), "linear".into())), (1, 1, 0)),
            Op::MaxPool2x2 => (
                (h.window(2, 2, 0), w.window(2, 2, 0)),
                Some((String::new(), "max pool 2x2".into())),
                (2, 2, 0),
            ),
            Op::MaxPoolCeil => (
                (h.window(2, 2, 0), w.window(2, 2, 0)),
                Some((String::new(), "max pool 2x2, ceil mode".into())),
                (2, 2, 0),
            ),
            Op::ScanPair { prefix, axis, .. } => {
                let whole = |e: Extent| Extent { size: None, ..e };
                let (f, dir) = match axis {
                    Axis::Horizontal => ((h, whole(w)), "horizontal"),
                    Axis::Vertical => ((whole(h), w), "vertical"),
                };
                if recurrent {
                    (f, Some((prefix.clone(), format!("L-RNN pair ({dir})"))), (1, 1, 0))
                } else {
                    ((h, w), Some((prefix.clone(), format!("L-RNN pair ({dir}), V = 0"))), (1, 1, 0))
                }
            }
            Op::GlobalPool(_) => {
                let whole = |e: Extent| Extent { size: None, ..e };
                ((whole(h), whole(w)), Some((String::new(), "global pooling".into())), (1, 1, 0))
            }
            Op::Add | Op::Concat => {
                let (h2, w2) = arg(1).unwrap_or((h, w));
                let what = if node.op == Op::Add { "sum" } else { "concatenation" };
                ((h.larger(h2), w.larger(w2)), Some((String::new(), what.into())), (1, 1, 0))
            }
            Op::Upsample => {
                let (th, tw) = arg(1).unwrap_or((h, w));
                // Bilinear: two taps per output; the jump and first unit become the target's.
                let f = (
                    Extent { jump: th.jump, start: th.start, ..h.upsample(1.0, 2.0, 0.0) },
                    Extent { jump: tw.jump, start: tw.start, ..w.upsample(1.0, 2.0, 0.0) },
                );
                (f, Some((String::new(), "bilinear upsampling".into())), (1, 1, 0))
            }
            Op::ConvTranspose { name, kernel, stride, .. } => {
                let (k, s) = (*kernel as f64, *stride as f64);
                let taps = (k / s).ceil();
                // Output 0 is input 0's top-left tap: its centre sits (k − 1)/2 output steps
                // before the first input unit's centre.
                let up = |e: Extent| e.upsample(s, taps, e.start - (k - 1.0) / 2.0 * e.jump / s);
                (
                    (up(h), up(w)),
                    Some((name.clone(), format!("transposed conv {kernel}x{kernel}, x{stride}"))),
                    (*kernel, 1, 0),
                )
            }
            Op::Crop { offset } => {
                let shift = |e: Extent| Extent { start: e.start + *offset as f64 * e.jump, ..e };
                ((shift(h), shift(w)), Some((String::new(), format!("crop at {offset}"))), (1, 1, 0))
            }
            Op::Relu | Op::BatchNormRelu { .. } | Op::Dropout(_) => ((h, w), None, (1, 1, 0)),
        };
        fields.push(field);
        let name = node
            .capture
            .clone()
            .or_else(|| kind.as_ref().map(|(n, _)| n.clone()).filter(|n| !n.is_empty()))
            .or_else(|| last_node.then(|| "output".to_string()));
        if let (Some((_, kind)), Some(name)) = (kind, name) {
            rows.push(RfRow {
                name,
                kind,
                kernel: geom.0,
                stride: geom.1,
                pad: geom.2,
                height: field.0,
                width: field.1,
            });
        } else if let Some(last) = rows.last_mut().filter(|_| node.capture.is_some()) {
            // A ReLU / dropout that carries the layer's capture name: the row keeps its field.
            if let Some(c) = &node.capture {
                last.name.clone_from(c);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelDesc;

    fn row<'a>(rows: &'a [RfRow], name: &str) -> &'a RfRow {
        rows.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
    }

    #[test]
    fn vgg16_matches_the_published_receptive_fields() {
        // Araujo et al.'s table for VGG-16: pool3 44, pool4 100, conv5_3 196, pool5 212; jumps
        // 8, 16, 16, 32.
        for desc in ["FCN-32s", "FCN-8s-Caffe"] {
            let rows = rf_table(&ModelDesc::from_name_or_file(desc).unwrap().graph().unwrap());
            for (layer, size, jump) in [
                ("conv1_1", 3.0, 1.0),
                ("pool3", 44.0, 8.0),
                ("pool4", 100.0, 16.0),
                ("conv5_3", 196.0, 16.0),
                ("pool5", 212.0, 32.0),
            ] {
                let r = row(&rows, layer);
                assert_eq!((r.height.size, r.width.jump), (Some(size), jump), "{desc} {layer}");
            }
        }
        // The paper's fc1 (7x7 on pool5): 212 + 6 · 32 = 404.
        let rows = rf_table(&ModelDesc::from_name_or_file("FCN-32s").unwrap().graph().unwrap());
        assert_eq!(row(&rows, "fc1").width.size, Some(404.0));
        // Long et al.'s conv1_1 pads by 100: its first unit is centred 99 px before the image.
        let caffe = rf_table(&ModelDesc::from_name_or_file("FCN-8s-Caffe").unwrap().graph().unwrap());
        assert_eq!(row(&caffe, "conv1_1").width.start, -99.0);
        assert_eq!(row(&caffe, "fc6").width.size, Some(404.0));
    }

    #[test]
    fn an_lrnn_pair_reaches_the_whole_row_and_two_the_whole_image() {
        let rows = rf_table(&ModelDesc::from_name_or_file("FCN-8s-Caffe-LRNN").unwrap().graph().unwrap());
        let fc6 = rows.iter().find(|r| r.kind.contains("horizontal")).unwrap();
        assert_eq!((fc6.width.size, fc6.height.size), (None, Some(404.0)));
        assert_eq!(fc6.size_words(), "the whole row, 404 px tall");
        // With every V at zero the pairs pass the CNN's field on.
        let cnn = rf_table_without_recurrence(
            &ModelDesc::from_name_or_file("FCN-8s-Caffe-LRNN").unwrap().graph().unwrap(),
        );
        let fc6_cnn = cnn.iter().find(|r| r.kind.contains("horizontal")).unwrap();
        assert_eq!(fc6_cnn.size_words(), "404 px");
        let fc7 = rows.iter().find(|r| r.kind.contains("vertical")).unwrap();
        assert_eq!(fc7.size_words(), "the whole image");
        // The output (after the crop) is at the input's grid: jump 1, first unit at 0.
        let out = rows.last().unwrap();
        assert_eq!((out.width.jump, out.width.start), (1.0, 0.0), "{out:?}");
    }
}

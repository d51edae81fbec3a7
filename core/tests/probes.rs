//! Probes: effective receptive fields (a 3x3 convolution's is its kernel's footprint; inserting
//! L-RNNs with V = 0 leaves it unchanged; a recurrence along rows spreads it along rows),
//! theoretical receptive fields of VGG-16, eigenvalues of known matrices, and activations in
//! forward order.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, Module, Tensor};
use common::{builder, rand_tensor, set};
use lrnn_core::models::fcn::vgg16_trunk;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::geometry::Geom;
use lrnn_core::nn::{Axis, Conv, ConvWithRnn, Layer, ScanBackend};
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::recurrence::analyse;
use lrnn_core::probe::rf::receptive_field;

fn inputs() -> Vec<Tensor> {
    (0..3).map(|i| rand_tensor(&[2, 2, 9, 11], 1.0, 40 + i, DType::F32)).collect()
}

#[test]
fn erf_of_a_3x3_convolution_is_its_kernel_footprint() {
    let (_vm, vb) = builder(DType::F32);
    let conv = Conv::new(2, 3, 3, 1, true, &vb.pp("c")).unwrap();
    let unit = Unit { channel: 1, y: 4, x: 5 };
    let e = erf(|x, _| conv.forward(x), &inputs(), unit, Mode::Signed).unwrap();
    assert_eq!(e.support(), Some(((3, 5), (4, 6))), "exactly the 3x3 around (4, 5)");
    // Signed and linear: the ERF is Σ_k w[1, k, u, v], placed at (3 + u, 4 + v), up to the peak scale.
    let w: Vec<f32> = conv.weight().get(1).unwrap().sum(0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let peak = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    for u in 0..3 {
        for v in 0..3 {
            let got = e.map[(3 + u) * 11 + 4 + v];
            assert!((got - w[u * 3 + v] / peak).abs() < 1e-5, "({u}, {v}): {got} vs {}", w[u * 3 + v] / peak);
        }
    }
    assert_eq!(e.mass_sides()[2], Some(3));
}

#[test]
fn erf_with_zero_recurrence_equals_the_cnns_and_spreads_along_rows_once_v_is_set() {
    let (vm, vb) = builder(DType::F32);
    let conv = Conv::new(2, 4, 3, 1, true, &vb.pp("fc1")).unwrap();
    let inserted = ConvWithRnn::insert(conv.clone(), Axis::Horizontal, &vb.pp("fc1")).unwrap();
    // Seeded weights and a positive bias: candle's own initialisation is not seeded, and a
    // draw where the ReLU cuts every path along the row made this test fail now and then.
    set(&vm, "fc1.weight", &common::rand_vec(4 * 2 * 9, 11));
    set(&vm, "fc1.bias", &[1.0; 4]);
    let unit = Unit { channel: 2, y: 4, x: 5 };
    let cnn = erf(|x, _| conv.forward(x)?.relu(), &inputs(), unit, Mode::Abs).unwrap();
    let lrnn = erf(|x, f| inserted.forward(x, f), &inputs(), unit, Mode::Abs).unwrap();
    assert_eq!(cnn, lrnn, "V = 0: the same ERF");
    // A left-to-right recurrence carries the left part of the row to the unit.
    let mut eye = vec![0f64; 16];
    for i in 0..4 {
        eye[i * 4 + i] = 0.8;
    }
    set(&vm, "fc1.v_lr.weight", &eye);
    let spread = erf(|x, f| inserted.forward(x, f), &inputs(), unit, Mode::Abs).unwrap();
    let ((r0, r1), (c0, c1)) = spread.support().unwrap();
    assert_eq!((r0, r1), (3, 5), "rows unchanged: the scan runs along rows");
    assert!(c0 < 4 && c1 == 6, "columns reach left of the 3x3 footprint: {c0}..{c1}");
    assert!(
        spread.mass_sides()[2] > cnn.mass_sides()[2],
        "{:?} vs {:?}",
        spread.mass_sides(),
        cnn.mass_sides()
    );
}

#[test]
fn theoretical_receptive_fields_of_vgg16() {
    for (layer, want) in [("pool3", 44), ("pool4", 100), ("conv5_3", 196), ("pool5", 212), ("conv1_1", 3)] {
        let rf = receptive_field(&vgg16_trunk(layer).unwrap());
        assert_eq!((rf.height, rf.width), (Some(want), Some(want)), "{layer}");
    }
    assert!(vgg16_trunk("fc6").is_err());
    // An L-RNN pair after pool5: whole rows, then whole columns.
    let mut layers = vgg16_trunk("pool5").unwrap();
    layers.push(Geom::RowScan);
    assert_eq!(receptive_field(&layers).width, None);
    assert_eq!(receptive_field(&layers).height, Some(212));
    layers.push(Geom::ColumnScan);
    assert_eq!(receptive_field(&layers).height, None);
}

#[test]
fn eigenvalues_of_known_matrices() {
    // Rotation by 30° scaled by 0.9: eigenvalues 0.9 e^{±iπ/6}.
    let (c, s) = (0.9 * (std::f32::consts::PI / 6.0).cos(), 0.9 * (std::f32::consts::PI / 6.0).sin());
    let sp = analyse(&[c, -s, s, c], 2);
    assert!((sp.spectral_radius - 0.9).abs() < 1e-6);
    for (re, im) in &sp.eigenvalues {
        assert!((re - f64::from(c)).abs() < 1e-6 && (im.abs() - f64::from(s)).abs() < 1e-6, "{re} {im}");
    }
    assert!((sp.memory_length.unwrap() - (-1.0 / 0.9f64.ln())).abs() < 1e-4);
    // Diagonal: eigenvalues and singular values are the entries.
    let sp = analyse(&[0.5, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.25], 3);
    let re: Vec<f64> = sp.eigenvalues.iter().map(|e| e.0).collect();
    assert_eq!(re.len(), 3);
    for (a, b) in re.iter().zip([-2.0, 0.5, 0.25]) {
        assert!((a - b).abs() < 1e-9);
    }
    assert!(sp.eigenvalues.iter().all(|e| e.1 == 0.0));
    assert_eq!(sp.singular_values.len(), 3);
    assert!((sp.singular_values[0] - 2.0).abs() < 1e-9);
    assert_eq!(sp.memory_length, None, "radius 2: no decay");
    // The zero matrix: no memory at all.
    assert_eq!(analyse(&[0.0; 4], 2).memory_length, Some(0.0));
}

#[test]
fn switching_off_one_direction_changes_only_what_depends_on_it() {
    use lrnn_core::models::Model;
    use lrnn_core::models::ModelDesc;
    use lrnn_core::nn::{Cell, LayerRnnConfig, Merge};
    use lrnn_core::probe::contribution::{direction_contributions, is_recurrence};
    let cfg = LayerRnnConfig { in_channels: 2, hidden: 4, cell: Cell::Vanilla, merge: Merge::Sum };
    let model = Model::new_seeded(ModelDesc::Lrnn(cfg), &candle_core::Device::Cpu, 3).unwrap();
    let x = rand_tensor(&[1, 2, 5, 6], 1.0, 9, DType::F32);
    let before = model.weights().unwrap();
    // On the output every direction matters.
    let out = direction_contributions(&model, &x, "output").unwrap();
    let names: Vec<&str> = out.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bt.v.weight", "lr.v.weight", "rl.v.weight", "tb.v.weight"]);
    assert!(out.iter().all(|e| e.relative_change > 1e-4), "{out:?}");
    // The left-to-right map depends on its own recurrence only.
    let lr = direction_contributions(&model, &x, "lr").unwrap();
    for e in &lr {
        if e.name == "lr.v.weight" {
            assert!(e.relative_change > 1e-4, "{e:?}");
        } else {
            assert_eq!(e.relative_change, 0.0, "{e:?}");
        }
    }
    // The weights are restored.
    let after = model.weights().unwrap();
    for (n, t) in &before {
        assert_eq!(common::flat(t), common::flat(&after[n]), "{n}");
    }
    assert!(
        is_recurrence("fc1.v_lr.weight")
            && is_recurrence("stage3.0.lrnn.tb.v.weight")
            && is_recurrence("v.weight")
    );
    assert!(
        !is_recurrence("lr.u.weight")
            && !is_recurrence("fc1.weight")
            && !is_recurrence("stage1.0.cnn.conv1.weight")
    );
}

#[test]
fn activations_come_in_forward_order_with_every_direction() {
    use lrnn_core::models::capture::MapKind;
    use lrnn_core::probe::activations::{activations, channel_grid};
    let model =
        Model::new_seeded(ModelDesc::from_name_or_file("Context-LRNN").unwrap(), &Device::Cpu, 2).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 1, 24, 40), &Device::Cpu).unwrap();
    let maps = activations(&model, &x, ScanBackend::Auto).unwrap();
    let names: Vec<&str> = maps.iter().map(|a| a.name.as_str()).collect();
    let want = [
        "conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "conv5.lr", "conv5.rl", "conv5", "conv6.tb",
        "conv6.bt", "conv6", "output",
    ];
    assert_eq!(names, want);
    for a in &maps {
        let kind = match a.name.as_str() {
            "output" => MapKind::Output,
            n if n.contains(".") => MapKind::Direction,
            _ => MapKind::Layer,
        };
        assert_eq!(a.kind, kind, "{}", a.name);
        let again = model.forward_map(&x, &a.name, ScanBackend::Auto).unwrap();
        assert_eq!(again.dims(), a.tensor.dims(), "{}", a.name);
    }
    assert_eq!(maps[6].tensor.dims(), &[1, 32, 6, 10], "conv5.lr after two pools");
    // Two 2x2 channels, two columns: [a b] gap [c d] / [e f] gap [g h].
    let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let (grid, gh, gw) = channel_grid(&values, (2, 2, 2), 2);
    assert_eq!((gh, gw), (2, 5));
    let shown: Vec<String> =
        grid.iter().map(|v| if v.is_nan() { "-".into() } else { v.to_string() }).collect();
    assert_eq!(shown, ["1", "2", "-", "5", "6", "3", "4", "-", "7", "8"]);
}

#[test]
fn the_recurrence_scale_goes_from_the_plain_cnn_to_the_trained_model_and_back_exactly() {
    use lrnn_core::models::convnet::Insertion;
    use lrnn_core::nn::Axis;
    use lrnn_core::probe::contribution::RecurrenceScale;
    let cnn =
        Model::new_seeded(ModelDesc::from_name_or_file("Context-CNN").unwrap(), &Device::Cpu, 4).unwrap();
    let insert = [Insertion { layer: "conv5".into(), axis: Axis::Horizontal, v_init: 0.8 }];
    let lrnn = cnn.with_insertions(&insert).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 1, 32, 32), &Device::Cpu).unwrap();
    let score = |m: &Model| common::flat(&m.forward_map(&x, "output", ScanBackend::Auto).unwrap());
    let (plain, trained) = (score(&cnn), score(&lrnn));
    assert_ne!(plain, trained, "V = 0.8 I changes the scores");
    let mut s = RecurrenceScale::of(&lrnn).unwrap();
    assert_eq!(s.len(), 2, "one pair: left-to-right and right-to-left");
    s.set(0.0).unwrap();
    assert_eq!(score(&lrnn), plain, "scale 0 is exactly the CNN the pair was inserted into");
    s.set(0.5).unwrap();
    let half = score(&lrnn);
    assert!(half != plain && half != trained);
    s.restore().unwrap();
    assert_eq!(score(&lrnn), trained, "scale 1 is exactly the trained model again");
    assert!(RecurrenceScale::of(&cnn).unwrap().is_empty());
}

#[test]
fn colour_maps_cover_their_range_and_keep_zero_white_when_diverging() {
    use lrnn_core::colour::ColourMap;
    let values = [-2.0f32, 0.0, 1.0, f32::NAN];
    assert_eq!(ColourMap::Viridis.range(&values), (-2.0, 1.0));
    assert_eq!(ColourMap::Diverging.range(&values), (-2.0, 2.0));
    let r = ColourMap::Diverging.range(&values);
    assert_eq!(ColourMap::Diverging.colour(0.0, r), [255, 255, 255]);
    assert_eq!(ColourMap::Diverging.colour(-2.0, r), [0, 0, 255]);
    assert_eq!(ColourMap::Diverging.colour(2.0, r), [255, 0, 0]);
    let r = ColourMap::Grey.range(&values);
    assert_eq!(ColourMap::Grey.colour(-2.0, r), [0, 0, 0]);
    assert_eq!(ColourMap::Grey.colour(1.0, r), [255, 255, 255]);
    assert_eq!(ColourMap::Viridis.colour(-2.0, r), [68, 1, 84], "viridis starts dark purple");
    assert_eq!(ColourMap::Viridis.colour(1.0, r), [253, 231, 37], "and ends yellow");
    assert_eq!(ColourMap::Viridis.colour(f32::NAN, r), [255, 255, 255], "gaps are white");
    assert_eq!(ColourMap::Grey.paint(&[-2.0, 1.0], r), vec![0, 0, 0, 255, 255, 255]);
    assert_eq!(ColourMap::Viridis.range(&[f32::NAN]), (0.0, 0.0));
}

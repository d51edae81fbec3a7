//! Receptive field against depth (`probe::rf_depth`) on the bundled models: each layer's ERF
//! sides are those the ERF probe gives for the same unit and inputs, the theoretical sides are
//! the receptive-field table's, the CNN curve is the model with every recurrence at zero, and the
//! teaching point holds on the bundled context pair: the CNN's field stops at 16 px while the
//! L-RNN layers reach the whole image.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lrnn_core::probe::contribution::RecurrenceScale;
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::rf_depth::{rf_depth, Channels, RfDepth};
use lrnn_core::probe::rf_table::{rf_table, rf_table_without_recurrence};
use lrnn_core::train::Checkpoint;

fn open(folder: &str) -> lrnn_core::models::Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/models").join(folder);
    Checkpoint::open(&dir, &Device::Cpu).expect("the bundled checkpoint loads").model
}

fn inputs(model: &lrnn_core::models::Model, n: usize) -> Vec<Tensor> {
    let s = model.desc().input_size();
    let c = model.desc().in_channels();
    (0..n)
        .map(|i| {
            let mut rng = lrnn_core::rng::Rng(7 + i as u64);
            let v: Vec<f32> = (0..c * s * s).map(|_| 0.5 * rng.normal()).collect();
            Tensor::from_vec(v, (1, c, s, s), &Device::Cpu).expect("input")
        })
        .collect()
}

/// The ERF probe's sides for the centre unit of the channel mean of `map`.
fn probe_sides(model: &lrnn_core::models::Model, xs: &[Tensor], map: &str) -> (Option<usize>, Option<usize>) {
    let pick = |x: &Tensor, f: &mut lrnn_core::nn::Forward| -> candle_core::Result<Tensor> {
        model.forward_map(x, map, f.backend).map_err(candle_core::Error::wrap)?.mean_keepdim(1)
    };
    let (_, _, h, w) = pick(&xs[0], &mut lrnn_core::nn::Forward::eval()).expect("map").dims4().expect("4D");
    let e = erf(pick, xs, Unit { channel: 0, y: h / 2, x: w / 2 }, Mode::Abs).expect("erf");
    (e.side_holding(0.5), e.side_holding(0.99))
}

fn run(model: &lrnn_core::models::Model, xs: &[Tensor]) -> RfDepth {
    let mut calls = 0;
    let r = rf_depth(model, xs, Channels::Mean, &mut |done, total| {
        calls += 1;
        assert!(done <= total && done == calls, "progress {done}/{total} after {calls} calls");
        true
    })
    .expect("rf-depth");
    assert!(calls > 0, "progress reported");
    r
}

#[test]
fn each_layer_agrees_with_the_erf_probe_and_the_rf_table() {
    for folder in ["context-lrnn-finetuned", "e-rnn-max-fashion-mnist"] {
        let model = open(folder);
        let xs = inputs(&model, 2);
        let r = run(&model, &xs);
        let cnn = r.cnn.clone().expect("the model has recurrences");
        assert_eq!(cnn.len(), r.model.len());
        let table = rf_table(model.graph());
        let table0 = rf_table_without_recurrence(model.graph());
        for (row, row0) in r.model.iter().zip(&cnn) {
            assert_eq!(row.name, row0.name);
            assert_eq!(probe_sides(&model, &xs, &row.name), (row.erf50, row.erf99), "{folder} {}", row.name);
            let t = table.iter().rev().find(|t| t.name == row.name).expect("in the table");
            assert_eq!(row.whole_image, t.height.size.is_none() && t.width.size.is_none());
            if let (Some(a), Some(b)) = (t.height.size, t.width.size) {
                assert_eq!(row.theoretical, a.max(b), "{}", row.name);
            }
            let t0 = table0.iter().rev().find(|t| t.name == row.name).expect("in the table");
            if let (Some(a), Some(b)) = (t0.height.size, t0.width.size) {
                assert_eq!(row0.theoretical, a.max(b), "{} with V = 0", row0.name);
            }
        }
        // The CNN curve is the model with every V at zero.
        let mut scale = RecurrenceScale::of(&model).expect("recurrences");
        scale.set(0.0).expect("zero");
        for row in &cnn {
            assert_eq!(
                probe_sides(&model, &xs, &row.name),
                (row.erf50, row.erf99),
                "{folder} V=0 {}",
                row.name
            );
        }
        scale.restore().expect("restore");
        // The model's recurrences are back: its curve repeats bit for bit.
        assert_eq!(run(&model, &xs), r);
    }
}

#[test]
fn the_cnn_stops_at_its_theoretical_field_and_the_lrnn_reaches_the_image() {
    let model = open("context-lrnn-finetuned");
    let xs = inputs(&model, 2);
    let r = run(&model, &xs);
    let cnn = r.cnn.as_ref().expect("CNN curve");
    let last = r.model.last().expect("rows");
    let last0 = cnn.last().expect("rows");
    // The CNN (V = 0): 16 px theoretically, its effective field within it.
    assert_eq!(last0.theoretical, 16.0);
    assert!(last0.erf99.expect("ERF") <= 16, "{last0:?}");
    // The fine-tuned L-RNN: the whole image, and 99% of its ERF spreads far past 16 px.
    assert!(last.whole_image);
    assert!(last.erf99.expect("ERF") >= 64, "{last:?}");
    // A CNN's ERF never exceeds its theoretical field; the 50% square is inside the 99% one.
    for row in cnn {
        let (e50, e99) = (row.erf50.expect("50"), row.erf99.expect("99"));
        assert!(e50 <= e99 && e99 as f64 <= row.theoretical.max(1.0) + 1.0, "{row:?}");
    }
    // The CSV has one line per layer and the header.
    let csv = r.csv();
    assert_eq!(csv.lines().count(), r.model.len() + 1);
    assert!(csv.starts_with(lrnn_core::probe::rf_depth::CSV_HEADER));
}

#[test]
fn a_plain_cnn_has_no_second_curve_and_a_stop_is_an_error() {
    let model = open("context-cnn");
    let xs = inputs(&model, 1);
    assert!(run(&model, &xs).cnn.is_none());
    let stopped = rf_depth(&model, &xs, Channels::Mean, &mut |done, _| done < 2);
    assert!(stopped.expect_err("stopped").to_string().contains("stopped"));
    // One channel: a value wherever the unit responds (the first layer's always does: it is
    // linear in the input); none in layers without that channel.
    let one = rf_depth(&model, &xs, Channels::One(0), &mut |_, _| true).expect("channel 0");
    assert_eq!(one.model[0].erf99, Some(3), "{:?}", one.model[0]);
    let beyond = rf_depth(&model, &xs, Channels::One(1_000_000), &mut |_, _| true).expect("channel");
    assert!(beyond.model.iter().all(|r| r.erf99.is_none()));
    assert!(rf_depth(&model, &[], Channels::Mean, &mut |_, _| true).is_err());
}

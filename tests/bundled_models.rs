//! The trained models bundled in `assets/models/` load as checkpoints and classify held-out
//! images as well as recorded in RESULTS.md: Fashion-MNIST test images (a committed sample of
//! 500), and the generated context task's 1,000 test images, where the CNN is at chance and the
//! L-RNNs (trained from scratch, or inserted into that CNN and fine-tuned) are nearly perfect.

use std::path::PathBuf;

use candle_core::Device;
use lrnn_core::data::fashion_mnist;
use lrnn_core::train::trainer::evaluate;
use lrnn_core::train::Checkpoint;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads a bundled Fashion-MNIST checkpoint and returns its top-1 error on the sample.
fn sample_error(folder: &str, parameters: usize) -> f32 {
    let dir = root().join("assets/models").join(folder);
    let ckpt = Checkpoint::open(&dir, &Device::Cpu).expect("the bundled checkpoint loads");
    let mean = ckpt.mean.clone().expect("trained with a mean");
    let (model, state) = ckpt.into_run().expect("a run's checkpoint");
    assert_eq!(model.parameter_count().expect("count"), parameters, "{folder}: one input channel");
    assert_eq!(state.global_step, 626);
    let sample = fashion_mnist::read_pair(&root().join("tests/fixtures/fashion-mnist-sample"), "t10k")
        .expect("the committed sample")
        .pad_to(32, 32);
    assert_eq!(sample.len(), 500);
    let error = evaluate(&model, &sample, Some(&mean), 100).expect("evaluate");
    println!("bundled {folder}: top-1 error {:.1}% on the 500-image sample", 100.0 * error);
    error
}

#[test]
fn bundled_e_rnn_max_classifies_fashion_mnist() {
    let error = sample_error("e-rnn-max-fashion-mnist", 966_026);
    assert!(error < 0.2, "top-1 error {error} (16.1% on the whole test set when bundled)");
}

#[test]
fn bundled_baseline_cnn_max_classifies_fashion_mnist() {
    let error = sample_error("baseline-cnn-max-fashion-mnist", 1_555_850);
    assert!(error < 0.2, "top-1 error {error} (15.4% on the whole test set when bundled)");
}

/// Loads a bundled context-task checkpoint and returns its top-1 error on the task's test split.
fn context_error(folder: &str, parameters: usize) -> f32 {
    let dir = root().join("assets/models").join(folder);
    let ckpt = Checkpoint::open(&dir, &Device::Cpu).expect("the bundled checkpoint loads");
    let mean = ckpt.mean.clone().expect("trained with a mean");
    let model = ckpt.model;
    assert_eq!(model.parameter_count().expect("count"), parameters, "{folder}");
    let splits = lrnn_core::data::context::generate(&lrnn_core::data::context::ContextTask::default());
    let error = evaluate(&model, &splits.test, Some(&mean), 100).expect("evaluate");
    println!("bundled {folder}: top-1 error {:.1}% on the context task's test split", 100.0 * error);
    error
}

#[test]
fn bundled_context_cnn_is_left_at_chance() {
    let error = context_error("context-cnn", 5_818);
    assert!(error > 0.4, "top-1 error {error}: a CNN that sees no mark pair should be near 50%");
}

#[test]
fn bundled_context_lrnn_sees_both_marks() {
    let error = context_error("context-lrnn", 9_914);
    assert!(error < 0.05, "top-1 error {error}");
}

#[test]
fn bundled_context_cnn_with_inserted_lrnns_fine_tuned_sees_both_marks() {
    let error = context_error("context-lrnn-finetuned", 9_914);
    assert!(error < 0.05, "top-1 error {error}");
}

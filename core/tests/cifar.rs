//! The CIFAR-10 networks of SPEC §5: exact parameter counts ("this reading" column), shapes,
//! captured maps, and names.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use candle_core::{DType, Device, Tensor};
use lrnn_core::models::cifar::{CifarArch, CifarConfig, NETWORK_NAMES};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::Forward;

/// SPEC §5, "this reading".
const COUNTS: [(&str, usize); 11] = [
    ("Baseline-CNN-Max", 1_557_002),
    ("A-Concat-RNN-Max", 903_690),
    ("A-Forward-GRU-Max", 1_679_242),
    ("A-Concat-GRU-Max", 1_952_266),
    ("A-Sum-GRU-Max", 1_720_202),
    ("B-GRU-Max", 2_321_674),
    ("B-RNN-Max", 1_273_098),
    ("C-GRU-Max", 2_691_082),
    ("D-GRU-Max", 3_725_066),
    ("E-RNN-Max", 967_178),
    ("F-RNN-Max", 1_392_906),
];

#[test]
fn parameter_counts_match_the_spec_for_every_network_and_pooling() {
    assert_eq!(COUNTS.map(|(n, _)| n), NETWORK_NAMES);
    for (name, want) in COUNTS {
        for pooled in [name.to_string(), name.replace("-Max", "-Avg")] {
            let model = Model::new(ModelDesc::Cifar(CifarConfig::named(&pooled)), &Device::Cpu).unwrap();
            assert_eq!(model.parameter_count().unwrap(), want, "{pooled}");
        }
    }
}

#[test]
fn networks_map_images_to_class_scores_and_capture_every_stage() {
    let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
    for name in ["E-RNN-Max", "A-Sum-GRU-Avg", "Baseline-CNN-Max"] {
        let model = Model::new(ModelDesc::Cifar(CifarConfig::named(name)), &Device::Cpu).unwrap();
        let mut fwd = Forward::train().capturing();
        let y = model.forward(&x, &mut fwd).unwrap();
        assert_eq!(y.dims(), [2, 10], "{name}");
        assert_eq!(y.dtype(), DType::F32);
        let maps = fwd.take_captured();
        assert!(maps.contains_key("stem") && maps.contains_key("stage3.0"), "{name}: {:?}", maps.keys());
        if name.starts_with('E') {
            assert_eq!(maps["stage2.0.lrnn.lr"].dims(), [2, 128, 16, 16]);
            assert_eq!(maps["stage3.0.lrnn.bt"].dims(), [2, 128, 8, 8]);
            assert_eq!(maps["stage3.1"].dims(), [2, 256, 8, 8]);
        }
    }
}

#[test]
fn unknown_names_are_refused_with_the_list() {
    let err = CifarArch::from_name("G-RNN-Max").unwrap_err();
    assert!(err.contains("G-RNN-Max") && err.contains("E-RNN-Max"), "{err}");
    assert!(CifarArch::from_name("E-RNN-Mean").is_err());
    assert!(CifarArch::from_name("A-Cat-GRU-Max").is_err());
    let err = ModelDesc::from_name_or_file("E-LSTM-Max").unwrap_err().to_string();
    assert!(err.contains("E-LSTM-Max"), "{err}");
}

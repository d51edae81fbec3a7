//! The op graph every backend walks: for every model kind it is well formed (each node reads
//! earlier values), it names exactly the weights the model holds (names and shapes), and walking
//! it captures the maps in the order the graph lists them (layers and scan directions).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use lrnn_core::models::fcn::{FcnConfig, Variant};
use lrnn_core::models::graph::{Graph, Op};
use lrnn_core::models::{Model, ModelDesc};
use lrnn_core::nn::forward::join_name;
use lrnn_core::nn::{Cell, LayerRnnConfig, Merge};
use lrnn_core::probe::activations::activations;

/// One model of every kind, small.
fn descs() -> Vec<(String, ModelDesc)> {
    let mut out = Vec::new();
    for cell in [Cell::Vanilla, Cell::VanillaLn, Cell::Gru] {
        for merge in [Merge::Sum, Merge::Concat] {
            let desc = ModelDesc::Lrnn(LayerRnnConfig { in_channels: 3, hidden: 5, cell, merge });
            out.push((format!("lrnn {cell:?} {merge:?}"), desc));
        }
    }
    for name in
        ["E-RNN-Max", "Baseline-CNN-Max", "A-Sum-GRU-Avg", "A-Forward-GRU-Max", "Context-LRNN", "Context-CNN"]
    {
        out.push((name.to_string(), ModelDesc::from_name_or_file(name).unwrap()));
    }
    for (variant, lrnn) in [(Variant::Fcn32s, false), (Variant::Fcn8s, true)] {
        let cfg = FcnConfig { variant, heads: 8, lrnn, classes: 3, input_size: Some(64), v_init: 0.0 };
        out.push((format!("{variant:?} lrnn={lrnn}"), ModelDesc::Fcn(cfg)));
    }
    out
}

/// The names the graph captures, in order: each node's scan directions, then its own name.
fn graph_captures(g: &Graph) -> Vec<String> {
    let mut names = Vec::new();
    for node in &g.nodes {
        if let Op::ScanPair { prefix, axis, .. } = &node.op {
            names.extend(axis.directions().map(|d| join_name(prefix, d.name())));
        }
        names.extend(node.capture.clone());
    }
    names
}

#[test]
fn every_model_kind_lowers_to_a_well_formed_graph() {
    for (what, desc) in descs() {
        let g = desc.graph().unwrap();
        assert!(!g.nodes.is_empty(), "{what}: no node");
        for (i, node) in g.nodes.iter().enumerate() {
            assert!(node.inputs.iter().all(|&v| v <= i), "{what}: node {i} reads a later value");
            let arity = match node.op {
                Op::Add | Op::Concat | Op::Upsample => 2,
                _ => 1,
            };
            assert_eq!(node.inputs.len(), arity, "{what}: node {i} {:?}", node.op);
        }
        let names = graph_captures(&g);
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{what}: a capture name repeats: {names:?}");
    }
}

#[test]
fn the_graph_names_exactly_the_models_weights() {
    for (what, desc) in descs() {
        let model = Model::new(desc, &Device::Cpu).unwrap();
        let held: BTreeMap<String, Vec<usize>> =
            model.weights().unwrap().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
        let named: BTreeMap<String, Vec<usize>> = model.graph().weights().into_iter().collect();
        assert_eq!(held, named, "{what}");
    }
}

#[test]
fn walking_the_graph_captures_its_names_in_order() {
    for (what, desc) in descs() {
        let model = Model::new_seeded(desc.clone(), &Device::Cpu, 3).unwrap();
        let side = if matches!(desc, ModelDesc::Fcn(_)) { 64 } else { 12 };
        let x = Tensor::randn(0f32, 1.0, (1, desc.in_channels(), side, side), &Device::Cpu).unwrap();
        let maps = activations(&model, &x, lrnn_core::nn::ScanBackend::Auto).unwrap();
        let got: Vec<String> = maps.iter().map(|a| a.name.clone()).filter(|n| n != "output").collect();
        assert_eq!(got, graph_captures(model.graph()), "{what}");
    }
}

#[test]
fn inputs_that_do_not_fit_are_refused_before_running() {
    // A convnet that halves its maps three times cannot take a 4x4 input (a map would be empty),
    // an FCN needs multiples of 32; the message says why.
    let convnet =
        Model::new_seeded(ModelDesc::from_name_or_file("Context-CNN").unwrap(), &Device::Cpu, 1).unwrap();
    let min = convnet.graph().min_input();
    assert!(min > 1);
    let tiny = Tensor::zeros((1, 1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = convnet.forward(&tiny, &mut lrnn_core::nn::Forward::eval()).unwrap_err().to_string();
    assert!(err.contains(&format!("at least {min}")), "{err}");
    let cfg = FcnConfig {
        variant: Variant::Fcn32s,
        heads: 4,
        lrnn: false,
        classes: 2,
        input_size: None,
        v_init: 0.0,
    };
    let fcn = Model::new_seeded(ModelDesc::Fcn(cfg), &Device::Cpu, 1).unwrap();
    let x = Tensor::zeros((1, 3, 40, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = fcn.forward(&x, &mut lrnn_core::nn::Forward::eval()).unwrap_err().to_string();
    assert!(err.contains("multiples of 32"), "{err}");
}

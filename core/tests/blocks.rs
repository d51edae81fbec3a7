//! The CNN module, the three fusions, global pooling and dropout (SPEC §3, §5).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, Tensor};
use common::{builder, flat, rand_tensor};
use lrnn_core::nn::{
    dropout, Cell, CnnBlock, Forward, Fused, Fusion, GlobalPool, Layer, LayerRnn, LayerRnnConfig, Merge,
};

#[test]
fn cnn_block_has_pytorch_names_and_keeps_the_map_size() {
    let (vm, vb) = builder(DType::F32);
    let block = CnnBlock::new(3, 8, &vb.pp("b")).unwrap();
    let mut names: Vec<(String, Vec<usize>)> =
        vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
    names.sort();
    let want = [
        ("b.bn1.bias", vec![3]),
        ("b.bn1.running_mean", vec![3]),
        ("b.bn1.running_var", vec![3]),
        ("b.bn1.weight", vec![3]),
        ("b.bn2.bias", vec![8]),
        ("b.bn2.running_mean", vec![8]),
        ("b.bn2.running_var", vec![8]),
        ("b.bn2.weight", vec![8]),
        ("b.conv1.weight", vec![8, 3, 3, 3]),
        ("b.conv2.weight", vec![8, 8, 3, 3]),
    ];
    assert_eq!(names, want.iter().map(|(n, s)| (n.to_string(), s.clone())).collect::<Vec<_>>());
    let x = rand_tensor(&[2, 3, 5, 6], 1.0, 1, DType::F32);
    for mut fwd in [Forward::eval(), Forward::train()] {
        assert_eq!(block.forward(&x, &mut fwd).unwrap().dims(), [2, 8, 5, 6]);
    }
}

#[test]
fn fusions_forward_sum_and_concat() {
    let x = rand_tensor(&[2, 4, 3, 3], 1.0, 2, DType::F32);
    let (vm, vb) = builder(DType::F32);
    let cfg = LayerRnnConfig { in_channels: 4, hidden: 4, cell: Cell::VanillaLn, merge: Merge::Sum };
    let inner = || Box::new(LayerRnn::new(cfg, &vb.pp("m")).unwrap());
    let f = LayerRnn::new(cfg, &vb.pp("m")).unwrap().forward(&x, &mut Forward::eval()).unwrap();
    let fwd = Fused::new(inner(), Fusion::Forward, 4, 4, &vb.pp("m")).unwrap();
    assert_eq!(flat(&fwd.forward(&x, &mut Forward::eval()).unwrap()), flat(&f));
    let sum = Fused::new(inner(), Fusion::Sum, 4, 4, &vb.pp("m")).unwrap();
    assert_eq!(flat(&sum.forward(&x, &mut Forward::eval()).unwrap()), flat(&(&x + &f).unwrap()));
    let cat = Fused::new(inner(), Fusion::Concat, 4, 4, &vb.pp("m")).unwrap();
    assert_eq!(cat.out_channels(), 8);
    assert_eq!(
        flat(&cat.forward(&x, &mut Forward::eval()).unwrap()),
        flat(&Tensor::cat(&[&x, &f], 1).unwrap())
    );
    assert!(!vm.data().lock().unwrap().contains_key("m.proj.weight"), "no projection when channels agree");
    // Sum with differing channels: X goes through a bias-free 1x1 convolution.
    let cfg6 = LayerRnnConfig { in_channels: 4, hidden: 6, ..cfg };
    let sum6 =
        Fused::new(Box::new(LayerRnn::new(cfg6, &vb.pp("n")).unwrap()), Fusion::Sum, 4, 6, &vb.pp("n"))
            .unwrap();
    assert_eq!(sum6.forward(&x, &mut Forward::eval()).unwrap().dims(), [2, 6, 3, 3]);
    assert_eq!(vm.data().lock().unwrap()["n.proj.weight"].dims(), [6, 4, 1, 1]);
}

#[test]
fn global_pooling_by_hand() {
    // One image, two channels of 2x2.
    let x = Tensor::new(&[[[[1f32, -2.0], [3.0, 0.0]], [[-1.0, -5.0], [-3.0, -2.0]]]], &Device::Cpu).unwrap();
    assert_eq!(flat(&GlobalPool::Max.apply(&x).unwrap()), [3.0, -1.0]);
    assert_eq!(flat(&GlobalPool::Avg.apply(&x).unwrap()), [0.5, -2.75]);
}

#[test]
fn dropout_only_in_training() {
    let x = Tensor::ones((4, 1000), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(flat(&dropout(&x, 0.5, &mut Forward::eval()).unwrap()), flat(&x));
    let y = flat(&dropout(&x, 0.5, &mut Forward::train()).unwrap());
    let seeded =
        |seed| flat(&dropout(&x, 0.5, &mut Forward::train().with_rng(lrnn_core::rng::Rng(seed))).unwrap());
    assert_eq!(seeded(3), seeded(3), "a seeded mask is reproducible");
    assert_ne!(seeded(3), seeded(4));
    let y2 = seeded(5);
    assert!((1600..2400).contains(&y2.iter().filter(|v| **v == 0.0).count()));
    let zeros = y.iter().filter(|v| **v == 0.0).count();
    assert!((1600..2400).contains(&zeros), "{zeros} of 4000 dropped");
    assert!(y.iter().all(|v| *v == 0.0 || (*v - 2.0).abs() < 1e-6), "kept units are scaled by 1/(1-p)");
}

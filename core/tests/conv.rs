//! The fused CPU convolution against candle's own (the reference): outputs and the gradients of
//! input, weight and bias, for several kernels, paddings (wider than the kernel too) and odd sizes,
//! through Winograd's algorithm (3x3 kernels) and im2col; and against a
//! hand-computed case.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{flat, rand_tensor};
use lrnn_core::nn::{conv2d, conv2d_with, ConvAlgo};

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn fused_convolution_should_match_candle_reference() {
    let cases = [
        (2, 3, 7, 9, 4, 3, 1),
        (1, 5, 6, 5, 3, 1, 0),
        (3, 2, 8, 8, 6, 7, 3),
        (2, 4, 5, 7, 2, 3, 0),
        (1, 2, 3, 4, 2, 1, 2),
        (2, 3, 4, 6, 3, 5, 2),
        (1, 2, 2, 3, 2, 3, 5),
        // 3x3 kernels with 16 channels or more run Winograd's algorithm: odd and even maps, every
        // padding it takes (0-2), small maps grouped several images to a product; the others, and
        // every case with ConvAlgo::Im2col, run im2col.
        (3, 16, 9, 6, 18, 3, 2),
        (2, 16, 1, 1, 16, 3, 1),
        (2, 4, 1, 1, 3, 3, 1),
        (9, 16, 8, 8, 17, 3, 1),
        (2, 16, 7, 5, 16, 3, 0),
        (3, 20, 5, 6, 16, 3, 2),
        (1, 3, 3, 3, 2, 3, 0),
        // One image (fewer than the threads): Winograd in parallel bands of tile rows (maps of
        // 512+ tiles, odd and even, every padding), im2col in parallel parts of the output
        // channels (7x7 as fc6, 1x1 as fc7, a padded RGB stem).
        (1, 16, 80, 64, 24, 3, 1),
        (1, 16, 101, 41, 17, 3, 2),
        (1, 17, 48, 48, 16, 3, 0),
        (1, 8, 12, 11, 40, 7, 0),
        (1, 24, 9, 10, 37, 1, 0),
        (1, 3, 13, 9, 20, 3, 5),
    ];
    for (i, &(b, c, h, w, o, k, pad)) in cases.iter().enumerate() {
        for algo in [ConvAlgo::Auto, ConvAlgo::Im2col] {
            let seed = 10 * i as u64;
            let x = Var::from_tensor(&rand_tensor(&[b, c, h, w], 1.0, seed, DType::F32)).unwrap();
            let wt = Var::from_tensor(&rand_tensor(&[o, c, k, k], 0.5, seed + 1, DType::F32)).unwrap();
            let bias = Var::from_tensor(&rand_tensor(&[o], 0.5, seed + 2, DType::F32)).unwrap();
            let r = rand_tensor(&[b, o, h + 2 * pad + 1 - k, w + 2 * pad + 1 - k], 1.0, seed + 3, DType::F32);
            let ours = conv2d_with(x.as_tensor(), wt.as_tensor(), Some(bias.as_tensor()), pad, algo).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(wt.as_tensor(), pad, 1, 1, 1)
                .unwrap()
                .broadcast_add(&bias.as_tensor().reshape((1, o, 1, 1)).unwrap())
                .unwrap();
            let tag = format!("case {i} ({algo:?})");
            let e = max_rel(&flat(&ours), &flat(&theirs));
            assert!(e < 1e-5, "{tag}: output: relative error {e:e}");
            let g1 = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (theirs * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("input", &x), ("weight", &wt), ("bias", &bias)] {
                let e = max_rel(&flat(g1.get(v).unwrap()), &flat(g2.get(v).unwrap()));
                assert!(e < 1e-5, "{tag}: grad {name}: relative error {e:e}");
            }
        }
    }
}

#[test]
fn convolution_by_hand() {
    // One 3x3 image, a 2x2 kernel [[1, 2], [3, 4]], no padding, bias 0.5:
    // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]] -> [[37.5, 47.5], [67.5, 77.5]].
    let dev = Device::Cpu;
    let x =
        Tensor::new(&[1f32, 2., 3., 4., 5., 6., 7., 8., 9.], &dev).unwrap().reshape((1, 1, 3, 3)).unwrap();
    let w = Tensor::new(&[1f32, 2., 3., 4.], &dev).unwrap().reshape((1, 1, 2, 2)).unwrap();
    let b = Tensor::new(&[0.5f32], &dev).unwrap();
    assert_eq!(flat(&conv2d(&x, &w, Some(&b), 0).unwrap()), [37.5, 47.5, 67.5, 77.5]);
    // Padding 1 adds a border: the corner sees only x[0][0] under the kernel's 4.
    let y = flat(&conv2d(&x, &w, None, 1).unwrap());
    assert_eq!(y.len(), 16);
    assert_eq!(y[0], 4.0);
}

#[test]
fn weight_gradient_without_input_gradient_should_match() {
    // An input that is not tracked (the images at a network's stem) gets no gradient; the
    // weight's is the same as with a tracked input, through both algorithms.
    for (c, algo) in [(3, ConvAlgo::Auto), (16, ConvAlgo::Auto), (16, ConvAlgo::Im2col)] {
        let x = rand_tensor(&[2, c, 6, 5], 1.0, 7, DType::F32);
        let tracked = Var::from_tensor(&x).unwrap();
        let wt = Var::from_tensor(&rand_tensor(&[16, c, 3, 3], 0.5, 8, DType::F32)).unwrap();
        let r = rand_tensor(&[2, 16, 6, 5], 1.0, 9, DType::F32);
        let loss = |x: &Tensor| {
            (conv2d_with(x, wt.as_tensor(), None, 1, algo).unwrap() * &r).unwrap().sum_all().unwrap()
        };
        let without = loss(&x).backward().unwrap();
        let with = loss(tracked.as_tensor()).backward().unwrap();
        assert!(without.get(&x).is_none(), "{c} channels, {algo:?}: an untracked input got a gradient");
        let e = max_rel(&flat(without.get(&wt).unwrap()), &flat(with.get(&wt).unwrap()));
        assert!(e < 1e-6, "{c} channels, {algo:?}: weight gradient differs by {e:e}");
    }
}

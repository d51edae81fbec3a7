//! Hand-computed cases of each cell in each direction, and the flip round trip, for both scan
//! backends (the fused CPU op and the composed reference).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::{assert_all_close, builder, flat, rand_tensor, set};
use lrnn_core::nn::{Axis, Cell, Forward, Merge, RnnPair, ScanBackend};

const BACKENDS: [ScanBackend; 2] = [ScanBackend::Fused, ScanBackend::Reference];

/// Runs a pair (prefix `p`) whose two directions get the same weights, on one sequence laid out
/// along `axis`; returns the two directions' sequences.
fn run_pair(
    axis: Axis,
    cell: Cell,
    hidden: usize,
    weights: &[(&str, &[f64])],
    seq: &[f64],
    backend: ScanBackend,
) -> (Vec<f64>, Vec<f64>) {
    let (vm, vb) = builder(DType::F32);
    let pair = RnnPair::new(axis, cell, 1, hidden, &vb.pp("p")).unwrap();
    for dir in axis.directions() {
        for (name, values) in weights {
            set(&vm, &format!("p.{}.{name}", dir.name()), values);
        }
    }
    let t = seq.len();
    let shape = match axis {
        Axis::Horizontal => (1, 1, 1, t),
        Axis::Vertical => (1, 1, t, 1),
    };
    let x = Tensor::new(seq, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap().reshape(shape).unwrap();
    let mut fwd = Forward::eval().capturing().with_backend(backend);
    pair.forward(&x, Merge::Sum, &mut fwd).unwrap();
    let maps = fwd.take_captured();
    let [a, b] = axis.directions().map(|d| {
        // [1, D, H, W] -> the sequence of each unit in order of position.
        let m = &maps[&format!("p.{}", d.name())];
        flat(&m.reshape((hidden, t)).unwrap().t().unwrap())
    });
    (a, b)
}

#[test]
fn vanilla_cell_hand_computed_in_every_direction() {
    // U = 1, b = 0, V = 0.5, x = [1, -3, 2]:
    // forward:  h1 = relu(1) = 1; h2 = relu(-3 + 0.5) = 0; h3 = relu(2 + 0) = 2
    // backward: h3 = relu(2) = 2; h2 = relu(-3 + 1) = 0;   h1 = relu(1 + 0) = 1
    // and x = [1, 2, 3]: forward 1, 2.5, 4.25; backward 2.75, 3.5, 3.
    let w: [(&str, &[f64]); 3] = [("u.weight", &[1.0]), ("u.bias", &[0.0]), ("v.weight", &[0.5])];
    for backend in BACKENDS {
        for axis in [Axis::Horizontal, Axis::Vertical] {
            let (f, b) = run_pair(axis, Cell::Vanilla, 1, &w, &[1.0, -3.0, 2.0], backend);
            assert_all_close("vanilla fwd", &f, &[1.0, 0.0, 2.0], 0.0);
            assert_all_close("vanilla bwd", &b, &[1.0, 0.0, 2.0], 0.0);
            let (f, b) = run_pair(axis, Cell::Vanilla, 1, &w, &[1.0, 2.0, 3.0], backend);
            assert_all_close("vanilla fwd", &f, &[1.0, 2.5, 4.25], 0.0);
            assert_all_close("vanilla bwd", &b, &[2.75, 3.5, 3.0], 0.0);
        }
    }
}

#[test]
fn layer_norm_cell_hand_computed_in_every_direction() {
    // D = 2, U = [1, -1], b = 0, V = [[0, 0], [1, 0]] (unit 1 reads unit 0 of the previous state),
    // gain [2, 1], bias [0.5, 0.5]. LayerNorm of two values [p, q] is ±1 (up to eps): the larger
    // one becomes +1. x = [1, 1, 1]:
    // t1: a = [1, -1] -> n = [1, -1] -> h = relu([2.5, -0.5]) = [2.5, 0]
    // t2: a = [1, -1 + 2.5] = [1, 1.5] -> n = [-1, 1] -> h = relu([-1.5, 1.5]) = [0, 1.5]
    // t3: a = [1, -1 + 0] = [1, -1] -> h = [2.5, 0]
    // The same in both directions of the symmetric input. eps = 1e-5 moves n by < 2e-5.
    let w: [(&str, &[f64]); 5] = [
        ("u.weight", &[1.0, -1.0]),
        ("u.bias", &[0.0, 0.0]),
        ("v.weight", &[0.0, 0.0, 1.0, 0.0]),
        ("ln.weight", &[2.0, 1.0]),
        ("ln.bias", &[0.5, 0.5]),
    ];
    let want = [2.5, 0.0, 0.0, 1.5, 2.5, 0.0];
    for backend in BACKENDS {
        for axis in [Axis::Horizontal, Axis::Vertical] {
            let (f, b) = run_pair(axis, Cell::VanillaLn, 2, &w, &[1.0, 1.0, 1.0], backend);
            assert_all_close("ln fwd", &f, &want, 1e-4);
            // Backward direction: t3 first, same values mirrored.
            assert_all_close("ln bwd", &b, &[2.5, 0.0, 0.0, 1.5, 2.5, 0.0], 1e-4);
        }
    }
}

#[test]
fn gru_cell_hand_computed_in_every_direction() {
    // D = 1, U = [0, 0, 1] (z, r, h), b = 0, W = [0, 0, 1]: z = r = σ(0) = 0.5,
    // ĥ = relu(x + 0.5 s), s_t = 0.5 ĥ + 0.5 s_{t-1}. x = [1, 2, 3]:
    // forward:  s1 = 0.5; ĥ2 = 2.25, s2 = 1.375; ĥ3 = 3.6875, s3 = 2.53125
    // backward: s3 = 1.5; ĥ2 = 2.75, s2 = 2.125; ĥ1 = 2.0625, s1 = 2.09375
    let w: [(&str, &[f64]); 3] =
        [("u.weight", &[0.0, 0.0, 1.0]), ("u.bias", &[0.0; 3]), ("v.weight", &[0.0, 0.0, 1.0])];
    for backend in BACKENDS {
        for axis in [Axis::Horizontal, Axis::Vertical] {
            let (f, b) = run_pair(axis, Cell::Gru, 1, &w, &[1.0, 2.0, 3.0], backend);
            assert_all_close("gru fwd", &f, &[0.5, 1.375, 2.53125], 1e-6);
            assert_all_close("gru bwd", &b, &[2.09375, 2.125, 1.5], 1e-6);
        }
    }
}

/// Reverses dimension `dim` of `x`.
fn flip(x: &Tensor, dim: usize) -> Tensor {
    let n = x.dim(dim).unwrap();
    let idx = Tensor::new((0..n as u32).rev().collect::<Vec<_>>(), x.device()).unwrap();
    x.contiguous().unwrap().index_select(&idx, dim).unwrap()
}

#[test]
fn reversed_direction_equals_flip_scan_flip_back() {
    // With both directions of a pair holding the same weights, right-to-left on x equals
    // flip, left-to-right, flip back (and bottom-to-top likewise along H).
    for cell in [Cell::Vanilla, Cell::VanillaLn, Cell::Gru] {
        for backend in BACKENDS {
            for (axis, dim) in [(Axis::Horizontal, 3), (Axis::Vertical, 2)] {
                let (vm, vb) = builder(DType::F32);
                let pair = RnnPair::new(axis, cell, 3, 4, &vb.pp("p")).unwrap();
                let [d0, d1] = axis.directions().map(lrnn_core::nn::Direction::name);
                for part in ["u.weight", "u.bias", "v.weight"] {
                    let src = flat(vm.data().lock().unwrap()[&format!("p.{d0}.{part}")].as_tensor());
                    set(&vm, &format!("p.{d1}.{part}"), &src);
                }
                let x = rand_tensor(&[2, 3, 5, 6], 1.0, 7, DType::F32);
                let run = |x: &Tensor| {
                    let mut fwd = Forward::eval().capturing().with_backend(backend);
                    pair.forward(x, Merge::Sum, &mut fwd).unwrap();
                    fwd.take_captured()
                };
                let direct = run(&x);
                let flipped = run(&flip(&x, dim));
                let via_flip = flip(&flipped[&format!("p.{d0}")], dim);
                let tag = format!("{cell:?} {backend:?} {axis:?}");
                assert_all_close(&tag, &flat(&via_flip), &flat(&direct[&format!("p.{d1}")]), 1e-6);
                // And the forward direction is not symmetric by accident.
                let d = (direct[&format!("p.{d0}")].i(0).unwrap() - direct[&format!("p.{d1}")].i(0).unwrap())
                    .unwrap();
                assert!(flat(&d.abs().unwrap()).iter().any(|v| *v > 1e-3), "{tag}: directions identical");
            }
        }
    }
}

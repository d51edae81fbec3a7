//! 2x2 max pooling: values and gradients by hand (the gradient goes whole to the first maximum of
//! each window, as in PyTorch; candle 0.11's own `max_pool2d` backward scales it by 1/4), odd
//! sizes, and the fused CPU op against the composed fallback of other devices and dtypes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{flat, rand_tensor};
use lrnn_core::nn::max_pool2x2;

#[test]
fn max_pool_by_hand() {
    // One 4x5 plane (the odd last column is dropped); the top-left window has a tie (7, 7).
    let x = Tensor::new(
        &[
            [7f32, 7., 1., 2., 100.],
            [3., 4., 9., 0., 100.],
            [5., 6., -1., -2., 100.],
            [8., 0., -3., -4., 100.],
        ],
        &Device::Cpu,
    )
    .unwrap()
    .reshape((1, 1, 4, 5))
    .unwrap();
    let v = Var::from_tensor(&x).unwrap();
    let y = max_pool2x2(v.as_tensor()).unwrap();
    assert_eq!(y.dims(), [1, 1, 2, 2]);
    assert_eq!(flat(&y), [7., 9., 8., -1.]);
    let seed = Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap().reshape((1, 1, 2, 2)).unwrap();
    let g = (y * seed).unwrap().sum_all().unwrap().backward().unwrap();
    let expected = [
        1., 0., 0., 0., 0., // the first 7 of the tie, then 9 below
        0., 0., 2., 0., 0., //
        0., 0., 4., 0., 0., // -1 is the maximum of its window
        3., 0., 0., 0., 0., // 8
    ];
    assert_eq!(flat(g.get(&v).unwrap()), expected);
}

#[test]
fn fused_max_pool_should_match_the_composed_fallback() {
    for (i, &(b, c, h, w)) in [(2, 3, 6, 8), (1, 4, 7, 5), (3, 2, 1, 4)].iter().enumerate() {
        let x32 = rand_tensor(&[b, c, h, w], 1.0, 40 + i as u64, DType::F32);
        let r32 = rand_tensor(&[b, c, h / 2, w / 2], 1.0, 50 + i as u64, DType::F32);
        let (v32, v64) =
            (Var::from_tensor(&x32).unwrap(), Var::from_tensor(&x32.to_dtype(DType::F64).unwrap()).unwrap());
        let y32 = max_pool2x2(v32.as_tensor()).unwrap();
        let y64 = max_pool2x2(v64.as_tensor()).unwrap();
        assert_eq!(flat(&y32), flat(&y64), "case {i}: values");
        let g32 = (y32 * &r32).unwrap().sum_all().unwrap().backward().unwrap();
        let r64 = r32.to_dtype(DType::F64).unwrap();
        let g64 = (y64 * r64).unwrap().sum_all().unwrap().backward().unwrap();
        // An empty output (a map one row high) leaves no gradient, or zeros.
        let grad = |g: Option<&Tensor>| g.map_or_else(|| vec![0.0; b * c * h * w], flat);
        assert_eq!(grad(g32.get(&v32)), grad(g64.get(&v64)), "case {i}: gradient");
    }
}

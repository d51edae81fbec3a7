//! The fused scan op (`scan_fused`) against the composed reference scan: outputs and the
//! gradients of `xi`, `V` and LayerNorm, for every cell, a shared or per-direction input and
//! both scan orders. On the CPU always; on an NVIDIA GPU when the crate is built with `cuda`
//! (then these tests need a CUDA device and fail without one), against the CPU reference in f32
//! at a relative error below 1e-4, on small odd shapes, widths past one block of threads and the
//! issue's scan shape.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{flat, rand_tensor};
use lrnn_core::nn::{scan_fused, scan_reference, Cell};

const CELLS: [Cell; 3] = [Cell::Vanilla, Cell::VanillaLn, Cell::Gru];

/// One scan problem: `xi` `[K_in, N, T, G·D]`, `v`, `ln`, the loss weights, the directions.
struct Case {
    cell: Cell,
    xi: Tensor,
    v: Tensor,
    ln: Tensor,
    seed: Tensor,
    reverse: Vec<bool>,
}

impl Case {
    fn new(cell: Cell, k_in: usize, (n, t, d): (usize, usize, usize), reverse: &[bool], salt: u64) -> Self {
        let k = reverse.len();
        let gd = cell.gates() * d;
        // Recurrences scaled by 1/sqrt(D) so that long scans neither die out nor blow up.
        let vscale = 1.2 / (d as f64).sqrt();
        let ln = Tensor::cat(
            &[
                (rand_tensor(&[k, 1, d], 0.5, salt + 3, DType::F32) + 1.0).unwrap(),
                rand_tensor(&[k, 1, d], 0.5, salt + 4, DType::F32),
            ],
            1,
        )
        .unwrap();
        Self {
            cell,
            xi: rand_tensor(&[k_in, n, t, gd], 1.0, salt, DType::F32),
            v: rand_tensor(&[k, gd, d], vscale, salt + 1, DType::F32),
            ln,
            seed: rand_tensor(&[k, n, t, d], 1.0, salt + 2, DType::F32),
            reverse: reverse.to_vec(),
        }
    }

    /// A case whose ReLUs stay on everywhere (positive inputs and recurrences, or for vanilla +
    /// LN gain 0.5 and bias 3), for large shapes: with millions of pre-activations some land
    /// within rounding of a kink, and two correct implementations then route a gradient
    /// differently (seen at the issue's shape with signed LayerNorm parameters: 10% of the
    /// largest input gradient).
    fn kink_free(cell: Cell, (n, t, d): (usize, usize, usize), salt: u64) -> Self {
        let mut c = Self::new(cell, 2, (n, t, d), &[false, true], salt);
        if cell == Cell::VanillaLn {
            let k = c.reverse.len();
            let gain = (Tensor::ones((k, 1, d), DType::F32, &Device::Cpu).unwrap() * 0.5).unwrap();
            let bias = (Tensor::ones((k, 1, d), DType::F32, &Device::Cpu).unwrap() * 3.0).unwrap();
            c.ln = Tensor::cat(&[gain, bias], 1).unwrap();
        } else {
            c.xi = (c.xi.abs().unwrap() + 0.05).unwrap();
            // Row sums of V about 0.5: positive states stay bounded.
            c.v = (c.v.abs().unwrap() * ((d as f64).sqrt() / (1.2 * d as f64))).unwrap();
        }
        c
    }

    /// States and the gradients of `sum(h * seed)` for `xi`, `V`, LayerNorm, all as f64.
    fn run(&self, device: &Device, fused: bool) -> [Vec<f64>; 4] {
        let var = |t: &Tensor| Var::from_tensor(&t.to_device(device).unwrap()).unwrap();
        let (xi, v, ln) = (var(&self.xi), var(&self.v), var(&self.ln));
        let ln_arg = (self.cell == Cell::VanillaLn).then_some(ln.as_tensor());
        let h = if fused {
            scan_fused(self.cell, xi.as_tensor(), v.as_tensor(), ln_arg, &self.reverse).unwrap()
        } else {
            scan_reference(self.cell, xi.as_tensor(), v.as_tensor(), ln_arg, &self.reverse).unwrap()
        };
        let loss = (&h * self.seed.to_device(device).unwrap()).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let grad = |x: &Var| g.get(x.as_tensor()).map(flat).unwrap_or_else(|| vec![0.0; x.elem_count()]);
        let dln = if self.cell == Cell::VanillaLn { grad(&ln) } else { vec![0.0; ln.elem_count()] };
        [flat(&h), grad(&xi), grad(&v), dln]
    }
}

/// Asserts `max |got - want| / max |want| < tol` for the states and every gradient.
fn assert_close(tag: &str, got: &[Vec<f64>; 4], want: &[Vec<f64>; 4], tol: f64) {
    for (what, (g, w)) in ["h", "dxi", "dV", "dln"].iter().zip(got.iter().zip(want)) {
        assert_eq!(g.len(), w.len(), "{tag}: {what} lengths");
        let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
        let err = g.iter().zip(w).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err / scale < tol, "{tag}: {what}: relative error {:e} (scale {scale:e})", err / scale);
    }
}

/// Every cell, shared and per-direction input, both orders, on `device` against the CPU
/// reference.
fn check_all(device: &Device, sizes: &[(usize, usize, usize)], tol: f64) {
    for &nts in sizes {
        for (ci, cell) in CELLS.into_iter().enumerate() {
            for (k_in, reverse) in
                [(2, vec![false, true]), (1, vec![false, true]), (2, vec![true, true]), (1, vec![true])]
            {
                let case = Case::new(cell, k_in, nts, &reverse, 17 * ci as u64 + nts.0 as u64);
                let want = case.run(&Device::Cpu, false);
                let got = case.run(device, true);
                let tag = format!("{cell:?} {nts:?} k_in {k_in} reverse {reverse:?} on {device:?}");
                assert_close(&tag, &got, &want, tol);
            }
        }
    }
}

#[test]
fn fused_scan_op_should_match_reference_on_the_cpu() {
    // Odd sizes (nothing a multiple of a block), and one sequence of length 1.
    check_all(&Device::Cpu, &[(5, 7, 6), (3, 1, 4)], 1e-5);
}

#[test]
fn fused_scan_op_should_match_reference_on_a_larger_kink_free_case() {
    for (ci, cell) in CELLS.into_iter().enumerate() {
        let case = Case::kink_free(cell, (64, 12, 40), 60 + ci as u64);
        assert_close(
            &format!("{cell:?} kink-free"),
            &case.run(&Device::Cpu, true),
            &case.run(&Device::Cpu, false),
            1e-5,
        );
    }
}

#[test]
fn fused_scan_op_should_reject_mismatched_shapes() {
    let v = Tensor::zeros((2, 6, 6), DType::F32, &Device::Cpu).unwrap();
    let xi = Tensor::zeros((2, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
    let err = scan_fused(Cell::Vanilla, &xi, &v, None, &[false, true]).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
    let xi = Tensor::zeros((2, 3, 4, 6), DType::F32, &Device::Cpu).unwrap();
    let err = scan_fused(Cell::VanillaLn, &xi, &v, None, &[false, true]).unwrap_err().to_string();
    assert!(err.contains("LayerNorm"), "{err}");
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    fn gpu() -> Device {
        Device::new_cuda(0).expect("built with `cuda`: these tests need an NVIDIA GPU")
    }

    #[test]
    fn fused_scan_op_on_cuda_should_match_the_cpu_reference() {
        // Small odd shapes, a width over one block of 256 threads (LayerNorm's per-row
        // reductions loop), and one sequence of length 1.
        check_all(&gpu(), &[(5, 7, 6), (3, 1, 4), (4, 5, 300)], 1e-4);
    }

    #[test]
    fn fused_scan_op_on_cuda_should_match_at_the_issue_shape() {
        // The issue's scan: B = 64 rows of 16 (N = 1024), T = 16, D = 128, two directions.
        let dev = gpu();
        for (ci, cell) in CELLS.into_iter().enumerate() {
            let case = Case::kink_free(cell, (1024, 16, 128), 100 + ci as u64);
            let want = case.run(&Device::Cpu, true);
            let got = case.run(&dev, true);
            assert_close(&format!("{cell:?} issue shape"), &got, &want, 1e-4);
        }
    }

    /// The L-RNN module (every cell, both merges) on CUDA against the same module on the CPU
    /// (where the fused pair op runs): output and the gradients of the input and every weight.
    #[test]
    fn layer_rnn_on_cuda_should_match_the_cpu() {
        use candle_nn::{VarBuilder, VarMap};
        use lrnn_core::nn::{Forward, Layer, LayerRnn, LayerRnnConfig, Merge};
        let dev = gpu();
        for (ci, cell) in CELLS.into_iter().enumerate() {
            for merge in [Merge::Sum, Merge::Concat] {
                let cfg = LayerRnnConfig { in_channels: 5, hidden: 6, cell, merge };
                let build = |d: &Device| {
                    let vm = VarMap::new();
                    let net = LayerRnn::new(cfg, &VarBuilder::from_varmap(&vm, DType::F32, d)).unwrap();
                    (vm, net)
                };
                let ((vm_c, net_c), (vm_g, net_g)) = (build(&Device::Cpu), build(&dev));
                let mut names: Vec<String> = vm_c.data().lock().unwrap().keys().cloned().collect();
                names.sort();
                for (i, name) in names.iter().enumerate() {
                    let t = rand_tensor(
                        vm_c.data().lock().unwrap()[name].dims(),
                        0.5,
                        300 + i as u64,
                        DType::F32,
                    );
                    vm_c.data().lock().unwrap()[name].set(&t).unwrap();
                    vm_g.data().lock().unwrap()[name].set(&t.to_device(&dev).unwrap()).unwrap();
                }
                let x = rand_tensor(&[2, 5, 7, 9], 1.0, 400 + ci as u64, DType::F32);
                let run = |net: &LayerRnn, vm: &VarMap, d: &Device| {
                    let x = Var::from_tensor(&x.to_device(d).unwrap()).unwrap();
                    let out = net.forward(x.as_tensor(), &mut Forward::eval()).unwrap();
                    let seed = rand_tensor(out.dims(), 1.0, 500, DType::F32).to_device(d).unwrap();
                    let g = (&out * seed).unwrap().sum_all().unwrap().backward().unwrap();
                    let mut all = vec![flat(&out), flat(g.get(x.as_tensor()).unwrap())];
                    for name in &names {
                        all.push(flat(g.get(vm.data().lock().unwrap()[name].as_tensor()).unwrap()));
                    }
                    all
                };
                let (want, got) = (run(&net_c, &vm_c, &Device::Cpu), run(&net_g, &vm_g, &dev));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let scale = w.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-6);
                    let err = g.iter().zip(w).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        err / scale < 1e-4,
                        "{cell:?} {merge:?}: tensor {i}: relative error {:e}",
                        err / scale
                    );
                }
            }
        }
    }
}

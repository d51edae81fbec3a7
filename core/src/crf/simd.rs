//! The CRF's inner loops in SIMD: `acc += w · x` (splat), `out += Σ w_r · row_r` (slice), the
//! lattice blur, `exp` and the softmax. The compiler did not vectorise these loops by itself.
//!
//! Three implementations of [`Simd`] compute **the same values in the same order**, bit for
//! bit: [`Avx2`] (eight lanes, chosen at run time where the CPU has AVX2), [`Sse`] (two blocks
//! of four lanes; every x86-64 CPU has SSE2) and [`Scalar`] (plain loops, elsewhere). Every
//! operation is element-wise (a multiply, then an add: never a fused multiply-add), and the one
//! reduction, the softmax's sum, has one fixed order. Rows are whole blocks of [`LANES`] values
//! (the callers pad them).
//!
//! A loop runs in AVX2 only if it is compiled inside a function with that target feature: the
//! work is handed to [`dispatch`] as a [`WithSimd`] value whose `run` (and everything it calls,
//! `#[inline(always)]`) is instantiated for the chosen implementation there.

/// The width of the blocks every row is padded to.
pub const LANES: usize = 8;

/// Work written once for any [`Simd`] implementation.
pub trait WithSimd {
    /// What it gives.
    type Output;
    /// Does the work with `s`'s loops. Implementations mark it `#[inline(always)]`.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// Runs `work` with the best implementation this CPU has (the same results with any).
#[inline]
pub fn dispatch<W: WithSimd>(work: W) -> W::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[cfg(test)]
        if tests::FORCE_SSE.load(std::sync::atomic::Ordering::Relaxed) {
            return work.run(Sse);
        }
        if avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { run_avx2(work) };
        }
        work.run(Sse)
    }
    #[cfg(not(target_arch = "x86_64"))]
    work.run(Scalar)
}

/// Whether to use AVX2: the CPU has it, and `LRNN_SIMD=sse2` does not ask for the baseline
/// (to compare the two, or to rule the wider loops out).
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    static USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USE.get_or_init(|| {
        std::is_x86_feature_detected!("avx2") && std::env::var("LRNN_SIMD").map_or(true, |v| v != "sse2")
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2<W: WithSimd>(work: W) -> W::Output {
    work.run(x86::AVX2)
}

/// The CRF's loops. Slices are whole blocks of [`LANES`] values.
pub trait Simd: Copy {
    /// `acc += w · x`.
    fn axpy(self, acc: &mut [f32], x: &[f32], w: f32);
    /// `out += Σ_r w[r] · values[at[r]..at[r] + out.len()]`, the rows added in order
    /// `r = 0, 1, …`.
    fn gather_add(self, out: &mut [f32], values: &[f32], at: &[usize], w: &[f32]);
    /// `new = own + (a + b) / 2`.
    fn blur(self, new: &mut [f32], own: &[f32], a: &[f32], b: &[f32]);
    /// `out[i] = e^(e[i] − max)` (Cephes' `expf`).
    fn exp_shifted(self, out: &mut [f32], e: &[f32], max: f32);
    /// The sum of `x`: eight running sums (one per lane) over the blocks in order, then lanes
    /// `j` and `j + 4` added, then `(0 + 1) + (2 + 3)`.
    fn sum(self, x: &[f32]) -> f32;
    /// `x /= d`.
    fn divide(self, x: &mut [f32], d: f32);

    /// `out = softmax(e)` over the first `c` values of a padded row (the padding of `out` is
    /// zero): the maximum, `e^(x − max)`, their [`Simd::sum`], each divided by it.
    #[inline(always)]
    fn softmax(self, out: &mut [f32], e: &[f32], c: usize) {
        assert!(out.len() == e.len() && c > 0 && c <= out.len());
        let max = e[..c].iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        self.exp_shifted(out, e, max);
        out[c..].fill(0.0);
        let sum = self.sum(out);
        self.divide(out, sum);
    }
}

fn check_blocks(n: usize) {
    assert!(n % LANES == 0, "a row of {n} values is not whole blocks of {LANES}");
}

/// Plain loops (the reference for the others, and the path off x86-64).
#[derive(Debug, Clone, Copy)]
pub struct Scalar;

impl Simd for Scalar {
    #[inline(always)]
    fn axpy(self, acc: &mut [f32], x: &[f32], w: f32) {
        assert!(acc.len() == x.len());
        for (a, x) in acc.iter_mut().zip(x) {
            *a += w * x;
        }
    }
    #[inline(always)]
    fn gather_add(self, out: &mut [f32], values: &[f32], at: &[usize], w: &[f32]) {
        let n = out.len();
        for (&a, &w) in at.iter().zip(w) {
            for (o, v) in out.iter_mut().zip(&values[a..a + n]) {
                *o += w * v;
            }
        }
    }
    #[inline(always)]
    fn blur(self, new: &mut [f32], own: &[f32], a: &[f32], b: &[f32]) {
        for (i, n) in new.iter_mut().enumerate() {
            *n = own[i] + 0.5 * (a[i] + b[i]);
        }
    }
    #[inline(always)]
    fn exp_shifted(self, out: &mut [f32], e: &[f32], max: f32) {
        for (o, e) in out.iter_mut().zip(e) {
            *o = exp(e - max);
        }
    }
    #[inline(always)]
    fn sum(self, x: &[f32]) -> f32 {
        check_blocks(x.len());
        let mut lanes = [0f32; LANES];
        for block in x.chunks(LANES) {
            for (a, v) in lanes.iter_mut().zip(block) {
                *a += v;
            }
        }
        let l = [lanes[0] + lanes[4], lanes[1] + lanes[5], lanes[2] + lanes[6], lanes[3] + lanes[7]];
        (l[0] + l[1]) + (l[2] + l[3])
    }
    #[inline(always)]
    fn divide(self, x: &mut [f32], d: f32) {
        for v in x {
            *v /= d;
        }
    }
}

// Cephes' `expf`: `x = k ln 2 + r`, `e^r` by a degree-6 polynomial, times `2^k`. The same
// algorithm as Eigen's vectorised `exp`, which the reference uses.
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// `e^x` for one value (the scalar path, and the reference for the vector ones).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = if x < EXP_LO { EXP_LO } else { x };
    let x = if x > EXP_HI { EXP_HI } else { x };
    let t = x * std::f32::consts::LOG2_E + 0.5;
    // Truncation toward zero, corrected to the floor below zero (|t| < 128: in range).
    let mut k = t as i32;
    if (k as f32) > t {
        k -= 1;
    }
    let kf = k as f32;
    let r = x - kf * LN2_HI - kf * LN2_LO;
    let z = r * r;
    let p = ((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5];
    let y = p * z + r + 1.0;
    y * f32::from_bits(((k + 127) as u32) << 23)
}

#[cfg(all(test, target_arch = "x86_64"))]
use x86::Avx2;
#[cfg(target_arch = "x86_64")]
pub use x86::Sse;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{check_blocks, Simd, EXP_HI, EXP_LO, LANES, LN2_HI, LN2_LO, P};
    use std::arch::x86_64::*;

    /// SSE2: each block of eight as two registers of four.
    #[derive(Debug, Clone, Copy)]
    pub struct Sse;

    /// AVX2: a block of eight in one register. Only made by [`super::dispatch`], after the
    /// CPU was found to have AVX2.
    #[derive(Debug, Clone, Copy)]
    pub struct Avx2(());

    #[cfg(test)]
    impl Avx2 {
        /// The AVX2 loops, where this CPU has them.
        pub fn detect() -> Option<Self> {
            std::is_x86_feature_detected!("avx2").then_some(Self(()))
        }
    }

    pub(super) const AVX2: Avx2 = Avx2(());

    #[inline(always)]
    unsafe fn exp4(x: __m128) -> __m128 {
        unsafe {
            let x = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(EXP_LO)), _mm_set1_ps(EXP_HI));
            let t = _mm_add_ps(_mm_mul_ps(x, _mm_set1_ps(std::f32::consts::LOG2_E)), _mm_set1_ps(0.5));
            let ki = _mm_cvttps_epi32(t);
            // Where the truncation went up (t < 0 and not whole), one less.
            let over = _mm_cmpgt_ps(_mm_cvtepi32_ps(ki), t);
            let ki = _mm_add_epi32(ki, _mm_castps_si128(over)); // (all ones: −1)
            let kf = _mm_cvtepi32_ps(ki);
            let r = _mm_sub_ps(
                _mm_sub_ps(x, _mm_mul_ps(kf, _mm_set1_ps(LN2_HI))),
                _mm_mul_ps(kf, _mm_set1_ps(LN2_LO)),
            );
            let z = _mm_mul_ps(r, r);
            let mut p = _mm_set1_ps(P[0]);
            for c in &P[1..] {
                p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(*c));
            }
            let y = _mm_add_ps(_mm_add_ps(_mm_mul_ps(p, z), r), _mm_set1_ps(1.0));
            let two_k = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(ki, _mm_set1_epi32(127)), 23));
            _mm_mul_ps(y, two_k)
        }
    }

    // SAFETY (every SSE2 block below): SSE2 is part of x86-64; the lengths are checked before
    // any access, and every access lies within its slice.
    impl Simd for Sse {
        #[inline(always)]
        fn axpy(self, acc: &mut [f32], x: &[f32], w: f32) {
            assert!(acc.len() == x.len());
            check_blocks(acc.len());
            unsafe {
                let wv = _mm_set1_ps(w);
                let (pa, px) = (acc.as_mut_ptr(), x.as_ptr());
                for i in (0..acc.len()).step_by(4) {
                    let a = _mm_loadu_ps(pa.add(i));
                    _mm_storeu_ps(pa.add(i), _mm_add_ps(a, _mm_mul_ps(wv, _mm_loadu_ps(px.add(i)))));
                }
            }
        }
        #[inline(always)]
        fn gather_add(self, out: &mut [f32], values: &[f32], at: &[usize], w: &[f32]) {
            let n = out.len();
            check_blocks(n);
            assert!(at.len() == w.len() && at.len() <= 8 && at.iter().all(|&a| a + n <= values.len()));
            unsafe {
                let mut wv = [_mm_setzero_ps(); 8];
                for (v, &w) in wv.iter_mut().zip(w) {
                    *v = _mm_set1_ps(w);
                }
                for i in (0..n).step_by(4) {
                    let mut acc = _mm_loadu_ps(out.as_ptr().add(i));
                    for (r, &a) in at.iter().enumerate() {
                        acc = _mm_add_ps(acc, _mm_mul_ps(wv[r], _mm_loadu_ps(values.as_ptr().add(a + i))));
                    }
                    _mm_storeu_ps(out.as_mut_ptr().add(i), acc);
                }
            }
        }
        #[inline(always)]
        fn blur(self, new: &mut [f32], own: &[f32], a: &[f32], b: &[f32]) {
            let n = new.len();
            assert!(own.len() == n && a.len() == n && b.len() == n);
            check_blocks(n);
            unsafe {
                let half = _mm_set1_ps(0.5);
                for i in (0..n).step_by(4) {
                    let s = _mm_add_ps(_mm_loadu_ps(a.as_ptr().add(i)), _mm_loadu_ps(b.as_ptr().add(i)));
                    let v = _mm_add_ps(_mm_loadu_ps(own.as_ptr().add(i)), _mm_mul_ps(half, s));
                    _mm_storeu_ps(new.as_mut_ptr().add(i), v);
                }
            }
        }
        #[inline(always)]
        fn exp_shifted(self, out: &mut [f32], e: &[f32], max: f32) {
            assert!(out.len() == e.len());
            check_blocks(out.len());
            unsafe {
                let m = _mm_set1_ps(max);
                for i in (0..out.len()).step_by(4) {
                    let x = _mm_sub_ps(_mm_loadu_ps(e.as_ptr().add(i)), m);
                    _mm_storeu_ps(out.as_mut_ptr().add(i), exp4(x));
                }
            }
        }
        #[inline(always)]
        fn sum(self, x: &[f32]) -> f32 {
            check_blocks(x.len());
            unsafe {
                let (mut lo, mut hi) = (_mm_setzero_ps(), _mm_setzero_ps());
                for i in (0..x.len()).step_by(LANES) {
                    lo = _mm_add_ps(lo, _mm_loadu_ps(x.as_ptr().add(i)));
                    hi = _mm_add_ps(hi, _mm_loadu_ps(x.as_ptr().add(i + 4)));
                }
                let mut l = [0f32; 4];
                _mm_storeu_ps(l.as_mut_ptr(), _mm_add_ps(lo, hi));
                (l[0] + l[1]) + (l[2] + l[3])
            }
        }
        #[inline(always)]
        fn divide(self, x: &mut [f32], d: f32) {
            check_blocks(x.len());
            unsafe {
                let dv = _mm_set1_ps(d);
                for i in (0..x.len()).step_by(4) {
                    _mm_storeu_ps(x.as_mut_ptr().add(i), _mm_div_ps(_mm_loadu_ps(x.as_ptr().add(i)), dv));
                }
            }
        }
    }

    // SAFETY (every AVX2 block below): an `Avx2` exists only once the CPU was found to have
    // AVX2; the lengths are checked before any access, and every access lies within its slice.
    impl Simd for Avx2 {
        #[inline(always)]
        fn axpy(self, acc: &mut [f32], x: &[f32], w: f32) {
            assert!(acc.len() == x.len());
            check_blocks(acc.len());
            unsafe {
                let wv = _mm256_set1_ps(w);
                let (pa, px) = (acc.as_mut_ptr(), x.as_ptr());
                for i in (0..acc.len()).step_by(8) {
                    let a = _mm256_loadu_ps(pa.add(i));
                    _mm256_storeu_ps(
                        pa.add(i),
                        _mm256_add_ps(a, _mm256_mul_ps(wv, _mm256_loadu_ps(px.add(i)))),
                    );
                }
            }
        }
        #[inline(always)]
        fn gather_add(self, out: &mut [f32], values: &[f32], at: &[usize], w: &[f32]) {
            let n = out.len();
            check_blocks(n);
            assert!(at.len() == w.len() && at.len() <= 8 && at.iter().all(|&a| a + n <= values.len()));
            unsafe {
                let mut wv = [_mm256_setzero_ps(); 8];
                for (v, &w) in wv.iter_mut().zip(w) {
                    *v = _mm256_set1_ps(w);
                }
                for i in (0..n).step_by(8) {
                    let mut acc = _mm256_loadu_ps(out.as_ptr().add(i));
                    for (r, &a) in at.iter().enumerate() {
                        acc = _mm256_add_ps(
                            acc,
                            _mm256_mul_ps(wv[r], _mm256_loadu_ps(values.as_ptr().add(a + i))),
                        );
                    }
                    _mm256_storeu_ps(out.as_mut_ptr().add(i), acc);
                }
            }
        }
        #[inline(always)]
        fn blur(self, new: &mut [f32], own: &[f32], a: &[f32], b: &[f32]) {
            let n = new.len();
            assert!(own.len() == n && a.len() == n && b.len() == n);
            check_blocks(n);
            unsafe {
                let half = _mm256_set1_ps(0.5);
                for i in (0..n).step_by(8) {
                    let s =
                        _mm256_add_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)));
                    let v = _mm256_add_ps(_mm256_loadu_ps(own.as_ptr().add(i)), _mm256_mul_ps(half, s));
                    _mm256_storeu_ps(new.as_mut_ptr().add(i), v);
                }
            }
        }
        #[inline(always)]
        fn exp_shifted(self, out: &mut [f32], e: &[f32], max: f32) {
            assert!(out.len() == e.len());
            check_blocks(out.len());
            unsafe {
                let m = _mm256_set1_ps(max);
                for i in (0..out.len()).step_by(8) {
                    let x = _mm256_sub_ps(_mm256_loadu_ps(e.as_ptr().add(i)), m);
                    let x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
                    let t = _mm256_add_ps(
                        _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
                        _mm256_set1_ps(0.5),
                    );
                    let ki = _mm256_cvttps_epi32(t);
                    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_cvtepi32_ps(ki), t);
                    let ki = _mm256_add_epi32(ki, _mm256_castps_si256(over));
                    let kf = _mm256_cvtepi32_ps(ki);
                    let r = _mm256_sub_ps(
                        _mm256_sub_ps(x, _mm256_mul_ps(kf, _mm256_set1_ps(LN2_HI))),
                        _mm256_mul_ps(kf, _mm256_set1_ps(LN2_LO)),
                    );
                    let z = _mm256_mul_ps(r, r);
                    let mut p = _mm256_set1_ps(P[0]);
                    for c in &P[1..] {
                        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(*c));
                    }
                    let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), _mm256_set1_ps(1.0));
                    let two_k = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                        ki,
                        _mm256_set1_epi32(127),
                    )));
                    _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(y, two_k));
                }
            }
        }
        #[inline(always)]
        fn sum(self, x: &[f32]) -> f32 {
            check_blocks(x.len());
            unsafe {
                let mut acc = _mm256_setzero_ps();
                for i in (0..x.len()).step_by(8) {
                    acc = _mm256_add_ps(acc, _mm256_loadu_ps(x.as_ptr().add(i)));
                }
                let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
                let mut l = [0f32; 4];
                _mm_storeu_ps(l.as_mut_ptr(), half);
                (l[0] + l[1]) + (l[2] + l[3])
            }
        }
        #[inline(always)]
        fn divide(self, x: &mut [f32], d: f32) {
            check_blocks(x.len());
            unsafe {
                let dv = _mm256_set1_ps(d);
                for i in (0..x.len()).step_by(8) {
                    _mm256_storeu_ps(
                        x.as_mut_ptr().add(i),
                        _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(i)), dv),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Makes [`dispatch`] pick SSE2 (tests compare whole runs; the results are the same, so
    /// other tests running meanwhile are not affected).
    pub(crate) static FORCE_SSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Every operation of `s` gives the bits of the plain loops.
    fn same_bits_as_scalar<S: Simd>(s: S) {
        let mut rng = crate::rng::Rng(3);
        let mut row = |n: usize, r: f32| -> Vec<f32> { (0..n).map(|_| rng.symmetric(r)).collect() };
        for n in [8, 24, 64] {
            let (x, y, z) = (row(n, 2.0), row(n, 2.0), row(n, 2.0));
            let (mut a, mut b) = (y.clone(), y.clone());
            s.axpy(&mut a, &x, 0.37);
            Scalar.axpy(&mut b, &x, 0.37);
            assert_eq!(a, b);
            let values: Vec<f32> = x.iter().chain(&z).chain(&y).copied().collect();
            let (mut a, mut b) = (y.clone(), y.clone());
            s.gather_add(&mut a, &values, &[n, 0, 2 * n], &[0.25, -1.5, 0.75]);
            Scalar.gather_add(&mut b, &values, &[n, 0, 2 * n], &[0.25, -1.5, 0.75]);
            assert_eq!(a, b);
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            s.blur(&mut a, &x, &y, &z);
            Scalar.blur(&mut b, &x, &y, &z);
            assert_eq!(a, b);
            let e = row(n, 40.0);
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            s.exp_shifted(&mut a, &e, 3.0);
            Scalar.exp_shifted(&mut b, &e, 3.0);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(s.sum(&e).to_bits(), Scalar.sum(&e).to_bits());
            for c in [1, n - 3, n] {
                let (mut a, mut b) = (vec![9f32; n], vec![9f32; n]);
                s.softmax(&mut a, &e, c);
                Scalar.softmax(&mut b, &e, c);
                assert_eq!(a, b);
                assert!(a[c..].iter().all(|&v| v == 0.0));
                assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn every_implementation_computes_the_plain_loops_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        {
            same_bits_as_scalar(Sse);
            match Avx2::detect() {
                Some(avx2) => same_bits_as_scalar(avx2),
                None => eprintln!("this CPU has no AVX2: only SSE2 compared"),
            }
        }
        same_bits_as_scalar(Scalar);
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..127_700 {
            let x = -87.0 + i as f32 * 0.001_37;
            if x > 88.0 {
                break;
            }
            let exact = f64::from(x).exp();
            worst = worst.max(((f64::from(exp(x)) - exact) / exact).abs());
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37);
        let mut out = [0f32; 8];
        Scalar.exp_shifted(&mut out, &[0.0, -1.0, f32::NEG_INFINITY, -200.0, 0.0, 0.0, 0.0, 0.0], 0.0);
        assert!(out[0] == 1.0 && out[2] < 1e-37 && out[3] < 1e-37);
    }
}

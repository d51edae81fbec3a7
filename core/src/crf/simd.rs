//! The CRF's inner loops in SSE2 on x86-64 (every x86-64 CPU has it; the compiler did not
//! vectorise these loops by itself), with plain loops elsewhere that compute the same values
//! in the same order: `acc += w · x`, the lattice blur and `exp`. Slices are whole blocks of
//! four values (the callers pad to [`super::lattice::LANES`]).

/// `acc += w · x`.
#[inline(always)]
pub fn axpy(acc: &mut [f32], x: &[f32], w: f32) {
    assert!(acc.len() == x.len() && acc.len() % 4 == 0);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every access is within the two slices (checked
        // lengths, a multiple of 4).
        unsafe {
            let wv = _mm_set1_ps(w);
            let (pa, px) = (acc.as_mut_ptr(), x.as_ptr());
            for i in (0..acc.len()).step_by(4) {
                let a = _mm_loadu_ps(pa.add(i));
                let b = _mm_loadu_ps(px.add(i));
                _mm_storeu_ps(pa.add(i), _mm_add_ps(a, _mm_mul_ps(wv, b)));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (a, x) in acc.iter_mut().zip(x) {
        *a += w * x;
    }
}

/// `out += Σ_r w[r] · values[at[r]..at[r] + out.len()]`, one block of `out` at a time (each
/// block loaded and stored once, the rows added in order `r = 0, 1, …`).
#[inline(always)]
pub fn gather_add(out: &mut [f32], values: &[f32], at: &[usize], w: &[f32]) {
    let n = out.len();
    assert!(n % 4 == 0 && at.len() == w.len() && at.len() <= 8);
    assert!(at.iter().all(|&a| a + n <= values.len()));
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every row lies within `values` (checked above) and
        // every block within `out`.
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
    #[cfg(not(target_arch = "x86_64"))]
    for (&a, &w) in at.iter().zip(w) {
        for (o, v) in out.iter_mut().zip(&values[a..a + n]) {
            *o += w * v;
        }
    }
}

/// `new = own + (a + b) / 2`.
#[inline(always)]
pub fn blur(new: &mut [f32], own: &[f32], a: &[f32], b: &[f32]) {
    let n = new.len();
    assert!(own.len() == n && a.len() == n && b.len() == n && n % 4 == 0);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every access is within the four slices.
        unsafe {
            let half = _mm_set1_ps(0.5);
            for i in (0..n).step_by(4) {
                let s = _mm_add_ps(_mm_loadu_ps(a.as_ptr().add(i)), _mm_loadu_ps(b.as_ptr().add(i)));
                let v = _mm_add_ps(_mm_loadu_ps(own.as_ptr().add(i)), _mm_mul_ps(half, s));
                _mm_storeu_ps(new.as_mut_ptr().add(i), v);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for i in 0..n {
        new[i] = own[i] + 0.5 * (a[i] + b[i]);
    }
}

// Cephes' `expf`: `x = k ln 2 + r`, `e^r` by a degree-6 polynomial, times `2^k`. The same
// algorithm as Eigen's vectorised `exp`, which the reference uses.
const EXP_LO: f32 = -87.0;
const EXP_HI: f32 = 88.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// `e^x` for one value (the scalar path, and the reference for the vector one).
#[cfg(any(test, not(target_arch = "x86_64")))]
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

/// `out[i] = e^(e[i] − max)` for a block-padded row.
#[inline(always)]
pub fn exp_shifted(out: &mut [f32], e: &[f32], max: f32) {
    assert!(out.len() == e.len() && out.len() % 4 == 0);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86-64; every access is within the two slices.
        unsafe {
            let m = _mm_set1_ps(max);
            for i in (0..out.len()).step_by(4) {
                let x = _mm_sub_ps(_mm_loadu_ps(e.as_ptr().add(i)), m);
                let x = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(EXP_LO)), _mm_set1_ps(EXP_HI));
                let t = _mm_add_ps(_mm_mul_ps(x, _mm_set1_ps(std::f32::consts::LOG2_E)), _mm_set1_ps(0.5));
                let ki = _mm_cvttps_epi32(t);
                let kt = _mm_cvtepi32_ps(ki);
                // Where the truncation went up (t < 0 and not whole), one less.
                let over = _mm_cmpgt_ps(kt, t);
                let ki = _mm_add_epi32(ki, _mm_castps_si128(over)); // (over is all ones: −1)
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
                _mm_storeu_ps(out.as_mut_ptr().add(i), _mm_mul_ps(y, two_k));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (o, e) in out.iter_mut().zip(e) {
        *o = exp(e - max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_and_the_vector_path_equals_the_scalar_one() {
        let mut worst = 0f64;
        let xs: Vec<f32> = (0..127_700).map(|i| -87.0 + i as f32 * 0.001_37).filter(|x| *x <= 88.0).collect();
        let mut xs4 = xs.clone();
        xs4.truncate(xs.len() / 4 * 4);
        let mut vec = vec![0f32; xs4.len()];
        exp_shifted(&mut vec, &xs4, 0.0);
        for (x, v) in xs4.iter().zip(&vec) {
            let exact = f64::from(*x).exp();
            worst = worst.max(((f64::from(exp(*x)) - exact) / exact).abs());
            assert_eq!(v.to_bits(), exp(*x).to_bits(), "e^{x}");
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37);
        let mut out = [0f32; 4];
        exp_shifted(&mut out, &[0.0, -1.0, f32::NEG_INFINITY, -200.0], 0.0);
        assert!(out[0] == 1.0 && out[2] < 1e-37 && out[3] < 1e-37);
    }

    #[test]
    fn axpy_and_blur_compute_the_plain_loops() {
        let mut rng = crate::rng::Rng(3);
        let x: Vec<f32> = (0..24).map(|_| rng.symmetric(2.0)).collect();
        let y: Vec<f32> = (0..24).map(|_| rng.symmetric(2.0)).collect();
        let z: Vec<f32> = (0..24).map(|_| rng.symmetric(2.0)).collect();
        let mut acc = y.clone();
        axpy(&mut acc, &x, 0.37);
        for i in 0..24 {
            assert_eq!(acc[i], y[i] + 0.37 * x[i]);
        }
        // Two rows gathered: the same as two axpys in order.
        let values: Vec<f32> = x.iter().chain(&z).copied().collect();
        let mut gathered = y.clone();
        gather_add(&mut gathered, &values, &[24, 0], &[0.25, -1.5]);
        let mut twice = y.clone();
        axpy(&mut twice, &z, 0.25);
        axpy(&mut twice, &x, -1.5);
        assert_eq!(gathered, twice);
        let mut new = vec![0f32; 24];
        blur(&mut new, &x, &y, &z);
        for i in 0..24 {
            assert_eq!(new[i], x[i] + 0.5 * (y[i] + z[i]));
        }
    }
}

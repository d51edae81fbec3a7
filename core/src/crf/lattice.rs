//! The permutohedral lattice (Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the
//! Permutohedral Lattice", 2010): Gaussian filtering of values attached to points in a
//! d-dimensional feature space in time linear in the number of points. Each point is splatted
//! onto the d + 1 vertices of the lattice simplex that holds it (barycentric weights), the
//! vertex values are blurred with [1 2 1]/2 along each of the d + 1 lattice directions, and
//! every point reads its value back (slice).
//!
//! It follows Krähenbühl's implementation (the one behind pydensecrf: the same elevation,
//! rounding, ranking, barycentric weights and normalising constant), so the dense CRF built on
//! it agrees with the reference. Unlike it, every pass runs on all cores, and the inner loops
//! in SIMD ([`super::simd`]: AVX2 where the CPU has it, else SSE2, the same bits either way).
//! The points are split into [`GROUPS`] fixed groups of consecutive points; each group splats
//! into its own buffer, which covers only the vertices its points touch (vertices are numbered
//! in first-seen order, so nearby pixels meet a narrow range of them), and the buffers are
//! added in group order. The blur and the slice are independent per vertex and per point. The
//! results do not depend on the number of threads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

use super::simd::{self, Simd, WithSimd};

/// The largest feature dimension (a key of d coordinates is packed into 128 bits).
pub const MAX_DIM: usize = 7;

/// A vertex key: d coordinates of 16 bits packed into 128 bits.
type Key = u128;

/// A hasher for keys: one multiply of the folded key (keys are already spread).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, k: u128) {
        let folded = (k as u64) ^ ((k >> 64) as u64).rotate_left(29);
        self.0 = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (folded >> 32);
    }
}

fn pack(coords: &[i16]) -> Key {
    coords.iter().enumerate().fold(0, |k, (i, &c)| k | (u128::from(c as u16) << (16 * i)))
}

fn unpack(key: Key, d: usize, out: &mut [i16]) {
    for (i, o) in out.iter_mut().enumerate().take(d) {
        *o = (key >> (16 * i)) as u16 as i16;
    }
}

/// A lattice built over `n` points of dimension `d`, ready to filter values attached to them.
#[derive(Debug, Clone)]
pub struct Lattice {
    d: usize,
    n: usize,
    /// Vertices.
    m: usize,
    /// For each point, its d + 1 vertices (`n * (d + 1)`).
    offset: Vec<u32>,
    /// For each point, the barycentric weights of its vertices.
    barycentric: Vec<f32>,
    /// For each direction `j` and vertex `v`, its two neighbours at `j * m + v` (`m`: none).
    neighbours: Vec<[u32; 2]>,
    /// For each of the [`GROUPS`] groups of points, the range of vertices its points touch.
    spans: Vec<(u32, u32)>,
    /// The slice's constant `1 / (1 + 2^-d)`.
    slice_scale: f32,
}

/// A point's d + 1 vertex keys and barycentric weights (the reference's `init`, per point),
/// for a dimension known when compiling (the loops unrolled, the keys packed with fixed
/// shifts).
#[inline(always)]
fn locate<const D: usize>(f: &[f32], scale: &[f32], keys: &mut [Key], weights: &mut [f32]) {
    let mut elevated = [0f32; MAX_DIM + 1];
    let mut rem0 = [0f32; MAX_DIM + 1];
    let mut rank = [0i32; MAX_DIM + 1];
    let mut bary = [0f32; MAX_DIM + 2];
    let (f, scale, keys, weights) = (&f[..D], &scale[..D], &mut keys[..=D], &mut weights[..=D]);
    // Elevate the feature onto the hyperplane (y = E p).
    let mut sm = 0f32;
    for j in (1..=D).rev() {
        let cf = f[j - 1] * scale[j - 1];
        elevated[j] = sm - j as f32 * cf;
        sm += cf;
    }
    elevated[0] = sm;
    // The closest 0-coloured lattice point, by rounding.
    let down_factor = 1.0 / (D + 1) as f32;
    let up_factor = (D + 1) as f32;
    let mut sum = 0i32;
    for i in 0..=D {
        let v = down_factor * elevated[i];
        let up = v.ceil() * up_factor;
        let down = v.floor() * up_factor;
        let rd = if up - elevated[i] < elevated[i] - down { up } else { down };
        rem0[i] = rd;
        // (int += float, as in the reference: the sum is made in f32, then truncated)
        sum = (sum as f32 + rd * down_factor) as i32;
    }
    // The rank of each coordinate's remainder: which simplex holds the point.
    for i in 0..D {
        let di = elevated[i] - rem0[i];
        for j in i + 1..=D {
            if di < elevated[j] - rem0[j] {
                rank[i] += 1;
            } else {
                rank[j] += 1;
            }
        }
    }
    // Back onto the plane when the rounded point is off it.
    let dp1 = (D + 1) as i32;
    for i in 0..=D {
        rank[i] = rank[i].wrapping_add(sum);
        if rank[i] < 0 {
            rank[i] += dp1;
            rem0[i] += dp1 as f32;
        } else if rank[i] > D as i32 {
            rank[i] -= dp1;
            rem0[i] -= dp1 as f32;
        }
    }
    // Barycentric coordinates (a rank out of range only from features the caller refuses,
    // e.g. not finite: kept in range so that nothing is indexed outside).
    for i in 0..=D {
        let v = (elevated[i] - rem0[i]) * down_factor;
        let r = rank[i].clamp(0, D as i32) as usize;
        bary[D - r] += v;
        bary[D - r + 1] -= v;
    }
    bary[0] = (f64::from(bary[0]) + (1.0 + f64::from(bary[D + 1]))) as f32;
    // The simplex's vertices: vertex `r` is the rounded point plus the canonical simplex's
    // vertex `r`, whose coordinate of rank `k` is `r` for `k <= d - r`, else `r - (d + 1)`.
    for r in 0..=D {
        let mut key: Key = 0;
        for i in 0..D {
            let c = if rank[i] <= (D - r) as i32 { r as i32 } else { r as i32 - dp1 };
            key |= Key::from((rem0[i] as i32).wrapping_add(c) as i16 as u16) << (16 * i);
        }
        keys[r] = key;
        weights[r] = bary[r];
    }
}

/// [`locate`] over a block of points (in the SIMD context [`simd::dispatch`] picks, where the
/// rounding is one instruction).
struct LocateBlock<'a, const D: usize> {
    features: &'a [f32],
    scale: &'a [f32],
    keys: &'a mut [Key],
    weights: &'a mut [f32],
}

impl<const D: usize> WithSimd for LocateBlock<'_, D> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        for ((k, w), f) in
            self.keys.chunks_mut(D + 1).zip(self.weights.chunks_mut(D + 1)).zip(self.features.chunks(D))
        {
            locate::<D>(f, self.scale, k, w);
        }
    }
}

/// [`LocateBlock`] for dimension `d`.
fn locate_block(d: usize, features: &[f32], scale: &[f32], keys: &mut [Key], weights: &mut [f32]) {
    match d {
        1 => simd::dispatch(LocateBlock::<1> { features, scale, keys, weights }),
        2 => simd::dispatch(LocateBlock::<2> { features, scale, keys, weights }),
        3 => simd::dispatch(LocateBlock::<3> { features, scale, keys, weights }),
        4 => simd::dispatch(LocateBlock::<4> { features, scale, keys, weights }),
        5 => simd::dispatch(LocateBlock::<5> { features, scale, keys, weights }),
        6 => simd::dispatch(LocateBlock::<6> { features, scale, keys, weights }),
        7 => simd::dispatch(LocateBlock::<7> { features, scale, keys, weights }),
        _ => unreachable!("lattice of dimension {d}"),
    }
}

/// A direct-mapped cache of recently met keys in front of the hash table: neighbouring points
/// share most of their vertices, so most keys are found here without hashing.
struct Recent {
    keys: [Key; 64],
    values: [u32; 64],
}

impl Recent {
    fn new() -> Self {
        // (no key has its top bit set: at most 7 coordinates of 16 bits)
        Self { keys: [Key::MAX; 64], values: [0; 64] }
    }

    #[inline(always)]
    fn slot(k: Key) -> usize {
        let folded = (k as u64) ^ ((k >> 64) as u64);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
    }

    #[inline(always)]
    fn get(&self, k: Key) -> Option<u32> {
        let s = Self::slot(k);
        (self.keys[s] == k).then_some(self.values[s])
    }

    #[inline(always)]
    fn put(&mut self, k: Key, v: u32) {
        let s = Self::slot(k);
        self.keys[s] = k;
        self.values[s] = v;
    }
}

impl Lattice {
    /// Builds the lattice over `features`: `n` points of `d` coordinates each, point-major
    /// (features already divided by their standard deviations).
    ///
    /// # Panics
    /// Never for `1 <= d <= MAX_DIM` and `features.len() == n * d` (the caller checks both).
    pub fn new(features: &[f32], d: usize) -> Self {
        assert!((1..=MAX_DIM).contains(&d) && features.len() % d == 0, "lattice of dimension {d}");
        let n = features.len() / d;
        let dp1 = d + 1;
        // The scale of the elevation (p. 5-6 of Adams et al.).
        // (in f64 where the reference computes in double)
        let inv_std_dev = ((2.0f64 / 3.0).sqrt() * dp1 as f64) as f32;
        let scale: Vec<f32> = (0..d)
            .map(|i| (1.0 / (((i + 2) * (i + 1)) as f64).sqrt() * f64::from(inv_std_dev)) as f32)
            .collect();
        // Each point's simplex, on every core.
        let mut keys = vec![0 as Key; n * dp1];
        let mut barycentric = vec![0f32; n * dp1];
        keys.par_chunks_mut(dp1 * 1024)
            .zip(barycentric.par_chunks_mut(dp1 * 1024))
            .zip(features.par_chunks(d * 1024))
            .for_each(|((k, w), f)| locate_block(d, f, &scale, k, w));
        // Number the vertices in the order the points meet them (as the reference's hash table),
        // in three passes so that most of the hashing runs on every core: each block of points
        // lists the vertices it meets in its own first-seen order (in parallel); the blocks'
        // lists, merged in block order, give every vertex its number in the global first-seen
        // order (one insert per vertex and block, not per point); then every point looks its
        // vertices up (in parallel, the table read-only).
        type Table = HashMap<Key, u32, BuildHasherDefault<KeyHasher>>;
        let block = (dp1 * 4096).max(keys.len().div_ceil(4 * rayon::current_num_threads().max(1)));
        let firsts: Vec<Vec<Key>> = keys
            .par_chunks(block.max(1))
            .map(|chunk| {
                let mut seen: Table =
                    HashMap::with_capacity_and_hasher(chunk.len() / 4, BuildHasherDefault::default());
                let mut order = Vec::new();
                let mut recent = Recent::new();
                for &k in chunk {
                    if recent.get(k).is_none() {
                        recent.put(k, 0);
                        seen.entry(k).or_insert_with(|| {
                            order.push(k);
                            0
                        });
                    }
                }
                order
            })
            .collect();
        let mut table: Table = HashMap::with_capacity_and_hasher(
            firsts.iter().map(Vec::len).max().unwrap_or(0) * 2,
            BuildHasherDefault::default(),
        );
        let mut vertices: Vec<Key> = Vec::new();
        for k in firsts.into_iter().flatten() {
            table.entry(k).or_insert_with(|| {
                vertices.push(k);
                (vertices.len() - 1) as u32
            });
        }
        let mut offset = vec![0u32; keys.len()];
        offset.par_chunks_mut(4096).zip(keys.par_chunks(4096)).for_each(|(o, k)| {
            let mut recent = Recent::new();
            for (o, &k) in o.iter_mut().zip(k) {
                *o = recent.get(k).unwrap_or_else(|| {
                    let v = table[&k];
                    recent.put(k, v);
                    v
                });
            }
        });
        let m = vertices.len();
        drop(keys);
        // The two neighbours of every vertex along every direction.
        let mut neighbours = vec![[0u32; 2]; dp1 * m];
        neighbours.par_chunks_mut(m.max(1)).enumerate().for_each(|(j, row)| {
            let mut key = [0i16; MAX_DIM];
            let (mut n1, mut n2) = ([0i16; MAX_DIM], [0i16; MAX_DIM]);
            for (v, slot) in row.iter_mut().enumerate() {
                unpack(vertices[v], d, &mut key);
                for k in 0..d {
                    n1[k] = key[k].wrapping_sub(1);
                    n2[k] = key[k].wrapping_add(1);
                }
                if j < d {
                    n1[j] = key[j].wrapping_add(d as i16);
                    n2[j] = key[j].wrapping_sub(d as i16);
                }
                let find = |k: &[i16]| table.get(&pack(&k[..d])).copied().unwrap_or(m as u32);
                *slot = [find(&n1), find(&n2)];
            }
        });
        // The vertices each group of points touches: numbered in first-seen order, a group of
        // nearby pixels meets a narrow range of them, so its splat buffer is small.
        let spans = (0..GROUPS)
            .into_par_iter()
            .map(|g| {
                let points = group_points(n, g);
                let points = &offset[points.start * dp1..points.end * dp1];
                match (points.iter().min(), points.iter().max()) {
                    (Some(&lo), Some(&hi)) => (lo, hi + 1),
                    _ => (0, 0),
                }
            })
            .collect();
        let slice_scale = 1.0 / (1.0 + 2f32.powi(-(d as i32)));
        Self { d, n, m, offset, barycentric, neighbours, spans, slice_scale }
    }

    /// Points.
    pub fn points(&self) -> usize {
        self.n
    }

    /// Vertices of the lattice.
    pub fn vertices(&self) -> usize {
        self.m
    }

    /// Bytes held by the lattice for `n` points of dimension `d` at most (for limits checked
    /// before building one): the vertices are at most `n * (d + 1)`.
    pub fn bytes_at_most(n: u64, d: u64) -> u64 {
        let entries = n * (d + 1);
        // offset, barycentric, keys (while building), neighbours, the table.
        entries * (4 + 4 + 16) + entries * (d + 1) * 8 + entries * 32
    }

    /// Bytes of the buffers a filter of `c` values per point uses at most: the groups' splat
    /// buffers and the merged values twice (the blur's two sides).
    pub fn filter_bytes(&self, c: usize) -> u64 {
        let spans: u64 = self.spans.iter().map(|&(lo, hi)| u64::from(hi - lo)).sum();
        (spans + 2 * (self.m as u64 + 1)) * padded(c) as u64 * 4
    }

    /// The points of splat group `g` (of [`GROUPS`]): consecutive points, the same groups at
    /// any thread count.
    pub fn group_points(&self, g: usize) -> std::ops::Range<usize> {
        group_points(self.n, g)
    }

    /// A zeroed splat buffer for group `g` and `cp` values per vertex (its vertices only).
    pub fn group_buffer(&self, g: usize, cp: usize) -> Vec<f32> {
        let (lo, hi) = self.spans[g];
        vec![0f32; (hi - lo) as usize * cp]
    }

    /// Splats point `p` of group `g`: `buffer[vertex] += s · w_r · x` for its d + 1 vertices.
    #[inline(always)]
    pub fn splat_point<S: Simd>(&self, simd: S, g: usize, p: usize, x: &[f32], s: f32, buffer: &mut [f32]) {
        let (dp1, cp) = (self.d + 1, x.len());
        let lo = self.spans[g].0 as usize;
        for r in 0..dp1 {
            let e = p * dp1 + r;
            let at = (self.offset[e] as usize - lo) * cp;
            simd.axpy(&mut buffer[at..at + cp], x, self.barycentric[e] * s);
        }
    }

    /// The vertex values of a filter: the groups' splat buffers added in group order into
    /// `values` (`(m + 1) · cp`, the last row zero), then blurred along each of the d + 1
    /// directions (`next` is scratch of the same size). [`Self::slice_point`] reads them.
    pub fn blur(&self, buffers: &[&[f32]], cp: usize, values: &mut Vec<f32>, next: &mut Vec<f32>) {
        let (d, m) = (self.d, self.m);
        assert!(buffers.len() == GROUPS && cp > 0);
        values.clear();
        values.resize((m + 1) * cp, 0.0);
        next.clear();
        next.resize((m + 1) * cp, 0.0);
        // Blocks of vertices big enough that a task is worth its hand-over (a small lattice is
        // merged and blurred on one core; the caller runs several lattices side by side).
        let block = (TASK_FLOATS / cp).max(64);
        // Merge: each block of vertices adds the buffers that cover it, in group order (a
        // buffer that does not cover a vertex adds zero to it).
        values[..m * cp].par_chunks_mut(block * cp).enumerate().for_each(|(b, v)| {
            let (first, last) = (b * block, b * block + v.len() / cp);
            for (buffer, &(lo, hi)) in buffers.iter().zip(&self.spans) {
                let (from, to) = (first.max(lo as usize), last.min(hi as usize));
                if from < to {
                    let src = &buffer[(from - lo as usize) * cp..(to - lo as usize) * cp];
                    for (a, x) in v[(from - first) * cp..(to - first) * cp].iter_mut().zip(src) {
                        *a += x;
                    }
                }
            }
        });
        // Blur along each direction; the row after the last vertex stays zero and stands for a
        // missing neighbour.
        for j in 0..=d {
            let neighbours = &self.neighbours[j * m..(j + 1) * m];
            let old = &values[..];
            next[..m * cp].par_chunks_mut(block * cp).enumerate().for_each(|(b, new)| {
                let work = BlurBlock { neighbours: &neighbours[b * block..], first: b * block, old, new, cp };
                if cp % simd::LANES == 0 {
                    simd::dispatch(work);
                } else {
                    work.run(simd::Scalar);
                }
            });
            std::mem::swap(values, next);
        }
    }

    /// The last step of the filter for point `i`: `out += scale · Σ_r w_r · values[vertex r]`,
    /// with the reference's constant `1 / (1 + 2^-d)`.
    #[inline(always)]
    pub fn slice_point<S: Simd>(&self, simd: S, i: usize, values: &[f32], out: &mut [f32], scale: f32) {
        let cp = out.len();
        let dp1 = self.d + 1;
        // (the point's scale folded into each vertex's weight)
        let s = scale * self.slice_scale;
        let (mut at, mut w) = ([0usize; MAX_DIM + 1], [0f32; MAX_DIM + 1]);
        for r in 0..dp1 {
            at[r] = self.offset[i * dp1 + r] as usize * cp;
            w[r] = self.barycentric[i * dp1 + r] * s;
        }
        simd.gather_add(out, values, &at[..dp1], &w[..dp1]);
    }

    /// Filters `input` (`n` points of `c` values each, point-major) into `out`: splat, blur
    /// along each direction, slice, scaled as the reference does (`1 / (1 + 2^-d)`).
    pub fn filter(&self, input: &[f32], c: usize, out: &mut [f32]) {
        assert!(input.len() == self.n * c && out.len() == self.n * c);
        if c == 0 || self.m == 0 {
            out.fill(0.0);
            return;
        }
        // One value a point (the CRF's normalisation) in plain loops, unpadded; more in whole
        // SIMD blocks. The same values either way.
        let cp = if c == 1 { 1 } else { padded(c) };
        let run = |work: FilterWork<'_>| if c == 1 { work.run(simd::Scalar) } else { simd::dispatch(work) };
        let buffers: Vec<Vec<f32>> = (0..GROUPS)
            .into_par_iter()
            .map(|g| {
                let mut buffer = self.group_buffer(g, cp);
                run(FilterWork::Splat { lattice: self, g, input, c, cp, buffer: &mut buffer });
                buffer
            })
            .collect();
        let (mut values, mut next) = (Vec::new(), Vec::new());
        let refs: Vec<&[f32]> = buffers.iter().map(Vec::as_slice).collect();
        self.blur(&refs, cp, &mut values, &mut next);
        drop(next);
        out.par_chunks_mut(c * 1024).enumerate().for_each(|(b, out)| {
            run(FilterWork::Slice { lattice: self, first: b * 1024, values: &values, c, cp, out });
        });
    }
}

/// The two per-point steps of [`Lattice::filter`] (`c` values a point, padded to `cp`): the
/// splat of group `g`, or the slice of a block of points from `first` on.
enum FilterWork<'a> {
    Splat { lattice: &'a Lattice, g: usize, input: &'a [f32], c: usize, cp: usize, buffer: &'a mut [f32] },
    Slice { lattice: &'a Lattice, first: usize, values: &'a [f32], c: usize, cp: usize, out: &'a mut [f32] },
}

impl WithSimd for FilterWork<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        match self {
            FilterWork::Splat { lattice, g, input, c, cp, buffer } => {
                let mut x = vec![0f32; cp];
                for p in lattice.group_points(g) {
                    x[..c].copy_from_slice(&input[p * c..(p + 1) * c]);
                    lattice.splat_point(simd, g, p, &x, 1.0, buffer);
                }
            }
            FilterWork::Slice { lattice, first, values, c, cp, out } => {
                let mut y = vec![0f32; cp];
                for (k, o) in out.chunks_mut(c).enumerate() {
                    y.fill(0.0);
                    lattice.slice_point(simd, first + k, values, &mut y, 1.0);
                    o.copy_from_slice(&y[..c]);
                }
            }
        }
    }
}

/// One block of vertices of one blur direction.
struct BlurBlock<'a> {
    neighbours: &'a [[u32; 2]],
    first: usize,
    old: &'a [f32],
    new: &'a mut [f32],
    cp: usize,
}

impl WithSimd for BlurBlock<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let (cp, old) = (self.cp, self.old);
        for (k, (new, &[n1, n2])) in self.new.chunks_mut(cp).zip(self.neighbours).enumerate() {
            let v = self.first + k;
            let own = &old[v * cp..(v + 1) * cp];
            let a = &old[n1 as usize * cp..(n1 as usize + 1) * cp];
            let b = &old[n2 as usize * cp..(n2 as usize + 1) * cp];
            simd.blur(new, own, a, b);
        }
    }
}

/// The points of group `g` of `n` points: consecutive, `ceil(n / GROUPS)` a group.
pub fn group_points(n: usize, g: usize) -> std::ops::Range<usize> {
    let per = n.div_ceil(GROUPS);
    (g * per).min(n)..((g + 1) * per).min(n)
}

/// The values a task of the merge and the blur handles at least.
const TASK_FLOATS: usize = 1 << 17;

/// The splat's groups of points: a fixed number, never the thread count, so the sums come out
/// the same on every machine.
pub const GROUPS: usize = 8;

/// `c` rounded up to whole blocks of the SIMD loops ([`simd::LANES`]).
pub fn padded(c: usize) -> usize {
    c.div_ceil(simd::LANES) * simd::LANES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact Gaussian filtering: sum over all points of exp(-|f_i - f_j|^2 / 2) x_j.
    fn brute(features: &[f32], d: usize, x: &[f32]) -> Vec<f32> {
        let n = features.len() / d;
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        let dist: f32 =
                            (0..d).map(|k| (features[i * d + k] - features[j * d + k]).powi(2)).sum();
                        (-dist / 2.0).exp() * x[j]
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn the_lattice_approximates_a_gaussian_filter() {
        // Points on a 2-D grid with spacing 0.5 (sigma units): the lattice's filter should be
        // close to the exact Gaussian blur up to a global scale (the reference's normalisation
        // divides it out), and smooth.
        let (w, h) = (24, 20);
        let mut f = Vec::new();
        for y in 0..h {
            for x in 0..w {
                f.push(x as f32 * 0.5);
                f.push(y as f32 * 0.5);
            }
        }
        let lattice = Lattice::new(&f, 2);
        assert_eq!(lattice.points(), w * h);
        let mut rng = crate::rng::Rng(5);
        let x: Vec<f32> = (0..w * h).map(|_| rng.uniform()).collect();
        let mut out = vec![0f32; w * h];
        lattice.filter(&x, 1, &mut out);
        let exact = brute(&f, 2, &x);
        // Normalised by each filter's response to ones (as the CRF does), away from the borders.
        let ones = vec![1f32; w * h];
        let mut norm = vec![0f32; w * h];
        lattice.filter(&ones, 1, &mut norm);
        let exact_norm = brute(&f, 2, &ones);
        let mut worst = 0f32;
        for y in 4..h - 4 {
            for x in 4..w - 4 {
                let i = y * w + x;
                let a = out[i] / norm[i];
                let b = exact[i] / exact_norm[i];
                worst = worst.max((a - b).abs());
            }
        }
        // The lattice's blur is a coarser Gaussian; local averages of uniform noise agree well.
        assert!(worst < 0.05, "normalised lattice filter vs exact Gaussian: {worst}");
    }

    #[test]
    fn filtering_is_linear_and_the_same_at_any_thread_count() {
        let mut rng = crate::rng::Rng(9);
        let f: Vec<f32> = (0..300 * 5).map(|_| rng.uniform() * 4.0).collect();
        let lattice = Lattice::new(&f, 5);
        let x: Vec<f32> = (0..300 * 3).map(|_| rng.uniform()).collect();
        let mut one = vec![0f32; 900];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| lattice.filter(&x, 3, &mut one));
        let mut many = vec![0f32; 900];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| lattice.filter(&x, 3, &mut many));
        assert_eq!(one, many);
        // Linear: filter(2x) = 2 filter(x), and channels are filtered independently.
        let x2: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
        let mut two = vec![0f32; 900];
        lattice.filter(&x2, 3, &mut two);
        for (a, b) in one.iter().zip(&two) {
            assert!((2.0 * a - b).abs() <= 1e-5 * b.abs().max(1.0));
        }
        let first: Vec<f32> = x.chunks(3).map(|c| c[0]).collect();
        let mut alone = vec![0f32; 300];
        lattice.filter(&first, 1, &mut alone);
        for (i, a) in alone.iter().enumerate() {
            assert_eq!(*a, one[i * 3]);
        }
    }
}

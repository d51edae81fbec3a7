//! The permutohedral lattice (Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the
//! Permutohedral Lattice", 2010): Gaussian filtering of values attached to points in a
//! d-dimensional feature space in time linear in the number of points. Each point is splatted
//! onto the d + 1 vertices of the lattice simplex that holds it (barycentric weights), the
//! vertex values are blurred with [1 2 1]/2 along each of the d + 1 lattice directions, and
//! every point reads its value back (slice).
//!
//! It follows Krähenbühl's implementation (the one behind pydensecrf: the same elevation,
//! rounding, ranking, barycentric weights and normalising constant), so the dense CRF built on
//! it agrees with the reference. Unlike it, every pass runs on all cores: the splat is written
//! as a gather (each vertex sums its points, in point order, as the reference's scatter does),
//! the blur and the slice are independent per vertex and per point. The results do not depend
//! on the number of threads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rayon::prelude::*;

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
}

/// A point's d + 1 vertex keys and barycentric weights (the reference's `init`, per point).
fn locate(f: &[f32], scale: &[f32], canonical: &[i16], keys: &mut [Key], weights: &mut [f32]) {
    let d = f.len();
    let mut elevated = [0f32; MAX_DIM + 1];
    let mut rem0 = [0f32; MAX_DIM + 1];
    let mut rank = [0i32; MAX_DIM + 1];
    let mut bary = [0f32; MAX_DIM + 2];
    // Elevate the feature onto the hyperplane (y = E p).
    let mut sm = 0f32;
    for j in (1..=d).rev() {
        let cf = f[j - 1] * scale[j - 1];
        elevated[j] = sm - j as f32 * cf;
        sm += cf;
    }
    elevated[0] = sm;
    // The closest 0-coloured lattice point, by rounding.
    let down_factor = 1.0 / (d + 1) as f32;
    let up_factor = (d + 1) as f32;
    let mut sum = 0i32;
    for i in 0..=d {
        let v = down_factor * elevated[i];
        let up = v.ceil() * up_factor;
        let down = v.floor() * up_factor;
        let rd = if up - elevated[i] < elevated[i] - down { up } else { down };
        rem0[i] = rd;
        // (int += float, as in the reference: the sum is made in f32, then truncated)
        sum = (sum as f32 + rd * down_factor) as i32;
    }
    // The rank of each coordinate's remainder: which simplex holds the point.
    for i in 0..d {
        let di = f64::from(elevated[i] - rem0[i]);
        for j in i + 1..=d {
            if di < f64::from(elevated[j] - rem0[j]) {
                rank[i] += 1;
            } else {
                rank[j] += 1;
            }
        }
    }
    // Back onto the plane when the rounded point is off it.
    let dp1 = (d + 1) as i32;
    for i in 0..=d {
        rank[i] += sum;
        if rank[i] < 0 {
            rank[i] += dp1;
            rem0[i] += dp1 as f32;
        } else if rank[i] > d as i32 {
            rank[i] -= dp1;
            rem0[i] -= dp1 as f32;
        }
    }
    // Barycentric coordinates.
    for i in 0..=d {
        let v = (elevated[i] - rem0[i]) * down_factor;
        let r = rank[i] as usize;
        bary[d - r] += v;
        bary[d - r + 1] -= v;
    }
    bary[0] = (f64::from(bary[0]) + (1.0 + f64::from(bary[d + 1]))) as f32;
    // The simplex's vertices.
    let mut key = [0i16; MAX_DIM];
    for remainder in 0..=d {
        for i in 0..d {
            key[i] = (rem0[i] as i32 + i32::from(canonical[remainder * (d + 1) + rank[i] as usize])) as i16;
        }
        keys[remainder] = pack(&key[..d]);
        weights[remainder] = bary[remainder];
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
        // The canonical simplex and the scale of the elevation (p. 5-6 of Adams et al.).
        let mut canonical = vec![0i16; dp1 * dp1];
        for i in 0..=d {
            for j in 0..=d - i {
                canonical[i * dp1 + j] = i as i16;
            }
            for j in d - i + 1..=d {
                canonical[i * dp1 + j] = i as i16 - dp1 as i16;
            }
        }
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
            .for_each(|((k, w), f)| {
                for ((k, w), f) in k.chunks_mut(dp1).zip(w.chunks_mut(dp1)).zip(f.chunks(d)) {
                    locate(f, &scale, &canonical, k, w);
                }
            });
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
                for &k in chunk {
                    seen.entry(k).or_insert_with(|| {
                        order.push(k);
                        0
                    });
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
        let offset: Vec<u32> = keys.par_iter().with_min_len(4096).map(|k| table[k]).collect();
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
        Self { d, n, m, offset, barycentric, neighbours }
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

    /// Bytes of the vertex buffers [`Self::filter`] uses for `c` values per point.
    pub fn filter_bytes(&self, c: usize) -> u64 {
        let row = (self.m + 1) * padded(c);
        (splat_groups(row) as u64 + 1) * row as u64 * 4
    }

    /// Filters `input` (`n` points of `c` values each, point-major) into `out`: splat, blur
    /// along each direction, slice, scaled as the reference does (`1 / (1 + 2^-d)`).
    pub fn filter(&self, input: &[f32], c: usize, out: &mut [f32]) {
        if c == 0 {
            return;
        }
        let cp = padded(c);
        let mut x = vec![0f32; self.n * cp];
        for (x, i) in x.chunks_mut(cp).zip(input.chunks(c)) {
            x[..c].copy_from_slice(i);
        }
        let values = self.splat_blur(&x, None, cp);
        out.par_chunks_mut(c).with_min_len(64).enumerate().for_each_init(
            || vec![0f32; cp],
            |y, (i, o)| {
                y.fill(0.0);
                if let Some(v) = &values {
                    self.slice_point(i, v, cp, y, 1.0);
                }
                o.copy_from_slice(&y[..c]);
            },
        );
    }

    /// The first two steps of the filter: `pre ⊙ input` splatted onto the vertices and blurred
    /// along every direction; the vertex values (`(m + 1) · cp`, the last row zero), or `None`
    /// for an empty lattice. [`Self::slice_point`] reads them back.
    pub fn splat_blur(&self, input: &[f32], pre: Option<&[f32]>, cp: usize) -> Option<Vec<f32>> {
        let (d, dp1, m, n) = (self.d, self.d + 1, self.m, self.n);
        assert!(cp % LANES == 0 && input.len() == n * cp);
        if m == 0 || cp == 0 {
            return None;
        }
        // Splat in point order, as the reference: the points in a fixed number of groups (so
        // the result does not depend on the thread count), each group into its own buffer,
        // then the buffers added in group order. Reading the points in order and writing to
        // the vertices (far fewer) keeps both in cache.
        let row = (m + 1) * cp;
        let groups = splat_groups(row);
        let per = n.div_ceil(groups);
        let mut buffers: Vec<Vec<f32>> = (0..groups)
            .into_par_iter()
            .map(|g| {
                let mut val = vec![0f32; row];
                for p in g * per..((g + 1) * per).min(n) {
                    let x = &input[p * cp..(p + 1) * cp];
                    let s = pre.map_or(1.0, |s| s[p]);
                    for r in 0..dp1 {
                        let e = p * dp1 + r;
                        let at = self.offset[e] as usize * cp;
                        super::simd::axpy(&mut val[at..at + cp], x, self.barycentric[e] * s);
                    }
                }
                val
            })
            .collect();
        let mut values = buffers.remove(0);
        if !buffers.is_empty() {
            values.par_chunks_mut(cp * 64).enumerate().for_each(|(b, v)| {
                for other in &buffers {
                    for (a, x) in v.iter_mut().zip(&other[b * cp * 64..]) {
                        *a += x;
                    }
                }
            });
        }
        drop(buffers);
        // Blur along each of the d + 1 directions; the row after the last vertex stays zero and
        // stands for a missing neighbour.
        let mut next = vec![0f32; (m + 1) * cp];
        for j in 0..=d {
            let row = &self.neighbours[j * m..(j + 1) * m];
            let old = &values;
            next[..m * cp].par_chunks_mut(cp).with_min_len(64).enumerate().for_each(|(v, new)| {
                let [n1, n2] = row[v];
                let own = &old[v * cp..(v + 1) * cp];
                let a = &old[n1 as usize * cp..(n1 as usize + 1) * cp];
                let b = &old[n2 as usize * cp..(n2 as usize + 1) * cp];
                super::simd::blur(new, own, a, b);
            });
            std::mem::swap(&mut values, &mut next);
        }
        Some(values)
    }

    /// The last step of the filter for point `i`: `out += scale · Σ_r w_r · values[vertex r]`,
    /// with the reference's constant `1 / (1 + 2^-d)`.
    #[inline]
    pub fn slice_point(&self, i: usize, values: &[f32], cp: usize, out: &mut [f32], scale: f32) {
        let dp1 = self.d + 1;
        // (the point's scale folded into each vertex's weight)
        let s = scale / (1.0 + 2f32.powi(-(self.d as i32)));
        let (mut at, mut w) = ([0usize; MAX_DIM + 1], [0f32; MAX_DIM + 1]);
        for r in 0..dp1 {
            at[r] = self.offset[i * dp1 + r] as usize * cp;
            w[r] = self.barycentric[i * dp1 + r] * s;
        }
        super::simd::gather_add(out, values, &at[..dp1], &w[..dp1]);
    }
}

/// The splat's groups of points for vertex buffers of `row` floats: as many as fit in
/// [`SPLAT_BYTES`] (a cache's worth), 2 to 8. It depends only on the lattice and the number of
/// values, never on the machine, so the sums come out the same everywhere.
fn splat_groups(row: usize) -> usize {
    (SPLAT_BYTES / (row as u64 * 4)).clamp(2, 8) as usize
}

const SPLAT_BYTES: u64 = 8 << 20;

/// The width of the blocks the filter's loops work on (one SSE register).
pub const LANES: usize = 4;

/// `c` rounded up to a multiple of [`LANES`].
pub fn padded(c: usize) -> usize {
    c.div_ceil(LANES) * LANES
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

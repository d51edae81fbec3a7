//! Colours shared by the probes' pictures, the GPU's colouring kernels and the app: the colour
//! maps of a map's values, and the PASCAL VOC palette of label pictures.

/// A perceptually ordered colour map (viridis, 5 anchors, linear in between) for values in [0, 1].
pub fn viridis(t: f32) -> [u8; 3] {
    anchored(
        &[
            [68.0, 1.0, 84.0],
            [59.0, 82.0, 139.0],
            [33.0, 145.0, 140.0],
            [94.0, 201.0, 98.0],
            [253.0, 231.0, 37.0],
        ],
        t,
    )
}

/// Cividis (Nuñez, Anderton & Renslow 2018; 5 anchors, linear in between) for values in
/// [0, 1]: blue to yellow, made to read the same with and without colour-vision deficiency.
pub fn cividis(t: f32) -> [u8; 3] {
    anchored(
        &[
            [0.0, 32.0, 77.0],
            [65.0, 77.0, 107.0],
            [124.0, 123.0, 120.0],
            [188.0, 175.0, 111.0],
            [255.0, 234.0, 70.0],
        ],
        t,
    )
}

/// A colour map through five evenly spaced anchors, linear in between, at `t` in [0, 1].
fn anchored(a: &[[f32; 3]; 5], t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let mix = |c: usize| (a[i][c] * (1.0 - f) + a[i + 1][c] * f) as u8;
    [mix(0), mix(1), mix(2)]
}

/// Blue (−1) — white (0) — red (+1), for signed maps.
pub fn diverging(t: f32) -> [u8; 3] {
    let t = t.clamp(-1.0, 1.0);
    if t >= 0.0 {
        let v = (255.0 * (1.0 - t)) as u8;
        [255, v, v]
    } else {
        let v = (255.0 * (1.0 + t)) as u8;
        [v, v, 255]
    }
}

/// A colour map for a map's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColourMap {
    /// Viridis over `[min, max]` (perceptually ordered; the default).
    #[default]
    Viridis,
    /// Cividis over `[min, max]`: made for readers with colour-vision deficiency.
    Cividis,
    /// Black to white over `[min, max]`.
    Grey,
    /// Blue — white — red over `±max|v|`, zero always white: for signed maps.
    Diverging,
}

impl ColourMap {
    /// Every colour map, for menus.
    pub const ALL: [ColourMap; 4] =
        [ColourMap::Viridis, ColourMap::Cividis, ColourMap::Grey, ColourMap::Diverging];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ColourMap::Viridis => "viridis",
            ColourMap::Cividis => "cividis (colour-blind safe)",
            ColourMap::Grey => "grey",
            ColourMap::Diverging => "diverging (0 = white)",
        }
    }

    /// The value range a map of `values` is coloured over (NaN ignored): `[min, max]`, or
    /// `[-peak, peak]` for the diverging map.
    pub fn range(self, values: &[f32]) -> (f32, f32) {
        let (lo, hi) = values
            .iter()
            .filter(|v| !v.is_nan())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        if lo > hi {
            return (0.0, 0.0);
        }
        match self {
            ColourMap::Diverging => {
                let peak = lo.abs().max(hi.abs());
                (-peak, peak)
            }
            _ => (lo, hi),
        }
    }

    /// The colour of `v` in the range `(lo, hi)`; NaN (gaps between tiles) is white.
    pub fn colour(self, v: f32, (lo, hi): (f32, f32)) -> [u8; 3] {
        if v.is_nan() {
            return [255, 255, 255];
        }
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        match self {
            ColourMap::Viridis => viridis(t),
            ColourMap::Cividis => cividis(t),
            ColourMap::Grey => {
                let g = (255.0 * t.clamp(0.0, 1.0)) as u8;
                [g, g, g]
            }
            ColourMap::Diverging => diverging(2.0 * t - 1.0),
        }
    }

    /// `values` (`[h, w]`) coloured over `range` as RGB bytes, one pixel per value.
    pub fn paint(self, values: &[f32], range: (f32, f32)) -> Vec<u8> {
        values.iter().flat_map(|&v| self.colour(v, range)).collect()
    }
}

/// The VOC colour map: colour of label `i` (the bits of `i` spread over R, G, B; 255 is
/// (224, 224, 192)).
pub fn palette() -> [[u8; 3]; 256] {
    let mut map = [[0u8; 3]; 256];
    for (i, c) in map.iter_mut().enumerate() {
        let mut id = i;
        for j in 0..8 {
            for (k, channel) in c.iter_mut().enumerate() {
                *channel |= u8::from((id >> k) & 1 == 1) << (7 - j);
            }
            id >>= 3;
        }
    }
    map
}

//! The textures the views draw, made once per analysis (not every frame): a cache by key, and
//! pictures and coloured maps as egui images.

use std::collections::HashMap;

use eframe::egui::{self, ColorImage, TextureHandle, TextureOptions};
use image::RgbImage;
use lrnn_core::colour::ColourMap;

/// Textures made from the current analysis, by key, with the value range of those that colour a
/// map; cleared when the analysis changes.
#[derive(Default)]
pub struct TextureCache {
    textures: HashMap<String, TextureHandle>,
    ranges: HashMap<String, (f32, f32)>,
}

impl TextureCache {
    /// Forgets every texture.
    pub fn clear(&mut self) {
        self.textures.clear();
        self.ranges.clear();
    }

    /// Forgets the textures whose key starts with `prefix` (those of a picture just replaced: a
    /// new ERF under the same unit's key may come from another model).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.textures.retain(|k, _| !k.starts_with(prefix));
        self.ranges.retain(|k, _| !k.starts_with(prefix));
    }

    /// Whether a texture is cached under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.textures.contains_key(key)
    }

    /// The texture under `key`, made by `make` the first time.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        make: impl FnOnce() -> ColorImage,
    ) -> TextureHandle {
        self.textures
            .entry(key.to_string())
            .or_insert_with(|| ctx.load_texture(key, make(), TextureOptions::NEAREST))
            .clone()
    }

    /// A map coloured with `cmap` over its own range: the texture and that range. `values`
    /// (`[h, w]` values with `h` and `w`) runs only the first time, not every frame.
    pub fn map(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        cmap: ColourMap,
        values: impl FnOnce() -> (Vec<f32>, usize, usize),
    ) -> (TextureHandle, (f32, f32)) {
        if let (Some(t), Some(r)) = (self.textures.get(key), self.ranges.get(key)) {
            return (t.clone(), *r);
        }
        let (v, h, w) = values();
        let range = cmap.range(&v);
        let t = ctx.load_texture(key, painted(&v, h, w, cmap, range), TextureOptions::NEAREST);
        self.textures.insert(key.to_string(), t.clone());
        self.ranges.insert(key.to_string(), range);
        (t, range)
    }
}

/// An RGB picture as an egui image.
pub fn color_image(img: &RgbImage) -> ColorImage {
    ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
}

/// `[h, w]` values coloured with `cmap` over `range` as an egui image.
pub fn painted(values: &[f32], h: usize, w: usize, cmap: ColourMap, range: (f32, f32)) -> ColorImage {
    ColorImage::from_rgb([w, h], &cmap.paint(values, range))
}

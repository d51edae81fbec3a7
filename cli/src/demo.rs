//! `lrnn demo`: what each scan direction of an L-RNN module carries across a photo.
//!
//! A lone module (vanilla cell, sum merge, hidden size 3) gets hand-set weights: every `U` is the
//! identity on the three colour channels and every `V` is `decay` times the identity, so each
//! direction's hidden state is a running, decaying sum of the colours behind it in its scan
//! direction, `h_t = ReLU(x_t + decay · h_{t-1})`. The left→right map streaks colour to the right,
//! right→left to the left; the vertical pair then spreads the horizontal result up and down,
//! so every output pixel has seen the whole image: one layer, global receptive field.

use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Tensor};
use image::{imageops::FilterType, Rgb, RgbImage};
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Cell, Forward, LayerRnnConfig, Merge};

use crate::save_png;

/// The bundled default photo (CC0, see assets/photos/LICENSES.md).
const DEFAULT_PHOTO: &[u8] = include_bytes!("../../assets/photos/chelsea.png");

/// Decodes a photo into `[1, 3, H, W]` in [0, 1], resized to `width` pixels wide.
fn load_photo(image: Option<&Path>, width: u32) -> anyhow::Result<(Tensor, String)> {
    let (img, name) = match image {
        Some(p) => {
            let img = image::ImageReader::open(p)
                .with_context(|| format!("{}: cannot open", p.display()))?
                .with_guessed_format()
                .with_context(|| format!("{}: cannot read", p.display()))?
                .decode()
                .with_context(|| format!("{}: not a readable image", p.display()))?;
            (img, p.display().to_string())
        }
        None => (image::load_from_memory(DEFAULT_PHOTO)?, "bundled chelsea.png".to_string()),
    };
    if width == 0 {
        anyhow::bail!("--width must be at least 1");
    }
    let height = ((u64::from(img.height()) * u64::from(width)) / u64::from(img.width().max(1))).max(1) as u32;
    let rgb = img.resize_exact(width, height, FilterType::Triangle).to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut planes = vec![0f32; 3 * w * h];
    for (x, y, px) in rgb.enumerate_pixels() {
        for c in 0..3 {
            planes[(c * h + y as usize) * w + x as usize] = f32::from(px[c]) / 255.0;
        }
    }
    Ok((Tensor::from_vec(planes, (1, 3, h, w), &Device::Cpu)?, name))
}

/// A `[1, 3, H, W]` map as an RGB image, scaled so that its maximum is white.
fn to_image(t: &Tensor) -> anyhow::Result<RgbImage> {
    let (_, _, h, w) = t.dims4()?;
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let max = v.iter().fold(0f32, |m, x| m.max(*x)).max(1e-6);
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = |c: usize| (v[(c * h + y as usize) * w + x as usize] / max * 255.0).clamp(0.0, 255.0) as u8;
        Rgb([at(0), at(1), at(2)])
    }))
}

/// Runs the demo and writes `input.png`, `lr.png`, `rl.png`, `tb.png`, `bt.png`, `output.png`
/// and `sheet.png` (all six) into `out`.
pub fn demo(image: Option<&Path>, out: &Path, width: u32, decay: f32) -> anyhow::Result<()> {
    let (x, name) = load_photo(image, width)?;
    let dev = Device::Cpu;
    let cfg = LayerRnnConfig { in_channels: 3, hidden: 3, cell: Cell::Vanilla, merge: Merge::Sum };
    let model = Model::new(ModelDesc::Lrnn(cfg), &dev)?;
    let eye = Tensor::eye(3, candle_core::DType::F32, &dev)?;
    for (wname, var) in model.varmap().data().lock().map_err(|_| anyhow::anyhow!("poisoned weights"))?.iter()
    {
        let value = if wname.ends_with("u.weight") {
            eye.clone()
        } else if wname.ends_with("v.weight") {
            (&eye * f64::from(decay))?
        } else {
            var.as_tensor().zeros_like()?
        };
        var.set(&value)?;
    }
    let mut fwd = Forward::eval().capturing();
    let y = model.forward(&x, &mut fwd)?;
    let maps = fwd.take_captured();
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the folder", out.display()))?;
    let mut tiles = vec![("input", to_image(&x)?)];
    for dir in ["lr", "rl", "tb", "bt"] {
        tiles.push((dir, to_image(&maps[dir])?));
    }
    tiles.push(("output", to_image(&y)?));
    for (tile_name, img) in &tiles {
        save_png(img, &out.join(format!("{tile_name}.png")))?;
    }
    let (tw, th, gap) = (tiles[0].1.width(), tiles[0].1.height(), 6);
    let mut sheet = RgbImage::from_pixel(3 * tw + 4 * gap, 2 * th + 3 * gap, Rgb([255, 255, 255]));
    for (i, (_, img)) in tiles.iter().enumerate() {
        let (col, row) = ((i % 3) as u32, (i / 3) as u32);
        image::imageops::replace(
            &mut sheet,
            img,
            i64::from(gap + col * (tw + gap)),
            i64::from(gap + row * (th + gap)),
        );
    }
    save_png(&sheet, &out.join("sheet.png"))?;
    println!("L-RNN demo on {name} ({}x{}), V = {decay} I in every direction", x.dim(3)?, x.dim(2)?);
    println!("wrote {}/sheet.png:", out.display());
    println!("  top:    input | left->right (lr) | right->left (rl)");
    println!("  bottom: top->bottom (tb) | bottom->top (bt) | module output (sum of tb and bt)");
    println!("each hidden map is a decaying running sum of the colours behind it in its scan direction;");
    println!("after both pairs every output pixel depends on every input pixel.");
    Ok(())
}

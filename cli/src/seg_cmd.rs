//! `lrnn score`: segmentation scores of a folder of predicted label PNGs against a VOC split.

use std::path::Path;

use lrnn_core::data::voc::{read_label_png, write_label_png, LabelMap, VocSplit, VOC_CLASSES};
use lrnn_core::train::confusion::Confusion;

/// Runs `lrnn score`.
pub fn score(pred: &Path, voc: &Path, split: &str) -> anyhow::Result<()> {
    let split_list = VocSplit::open(voc, split)?;
    let mut confusion = Confusion::new(VOC_CLASSES.len());
    for id in &split_list.ids {
        let truth = split_list.label(id, None)?;
        let path = pred.join(format!("{id}.png"));
        let p = read_label_png(&path)?;
        if (p.width, p.height) != (truth.width, truth.height) {
            anyhow::bail!(
                "{}: the prediction is {}x{}, the ground truth ({}) is {}x{}",
                path.display(),
                p.width,
                p.height,
                split_list.label_path(id).display(),
                truth.width,
                truth.height
            );
        }
        confusion.add(&p.labels, &truth.labels);
    }
    println!("images: {}", split_list.ids.len());
    print_scores(&confusion, &VOC_CLASSES.map(String::from));
    Ok(())
}

/// Prints `pixel accuracy`, `mean IoU` and one line per class.
pub fn print_scores(confusion: &Confusion, classes: &[String]) {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    println!("pixel accuracy: {}", pct(confusion.pixel_accuracy()));
    println!("mean IoU: {}", pct(confusion.mean_iou()));
    for (name, iou) in classes.iter().zip(confusion.iou()) {
        println!("class {name}: IoU {}", pct(iou));
    }
}

/// Runs `lrnn predict`: a palette PNG `<id>.png` per image, at the image's own size; on the GPU
/// when one is given (reading back only the labels), falling back to the CPU with a message.
pub fn predict(
    model: &lrnn_core::models::Model,
    mut gpu: Option<(lrnn_core::gpu::GpuContext, lrnn_core::gpu::GpuModel)>,
    images: &[(String, std::path::PathBuf)],
    size: usize,
    out: &Path,
    crf: Option<&lrnn_core::crf::CrfParams>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use lrnn_core::data::photo::{photo_input, read_photo};
    use lrnn_core::nn::Forward;
    if !model.desc().is_segmentation() {
        anyhow::bail!("{} is not a segmentation network (FCN-32s, FCN-8s, …)", model.desc().display_name());
    }
    if size % 32 != 0 && !model.desc().own_size() {
        anyhow::bail!("--size {size}: an FCN needs a multiple of 32");
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let bar = indicatif::ProgressBar::new(images.len() as u64);
    for (id, path) in images {
        let photo = read_photo(path)?;
        let x = photo_input(&photo, model.desc(), size, None)?.tensor;
        let (w, h) = (photo.width() as usize, photo.height() as usize);
        let on_gpu = match gpu.as_mut() {
            Some((ctx, g)) => match g.segment(ctx, &x, None, 0.0) {
                Ok(seg) => {
                    let (sw, sh) = seg.size;
                    Some(LabelMap { width: sw, height: sh, labels: seg.labels }.resize_nearest(w, h))
                }
                Err(e) => {
                    bar.suspend(|| println!("device: CPU from {id} on (the GPU failed: {e})"));
                    gpu = None;
                    None
                }
            },
            None => None,
        };
        let map = match (on_gpu, crf) {
            (Some(map), _) => map,
            (None, None) => {
                let scores = model.forward(&x, &mut Forward::eval())?;
                lrnn_core::train::seg::predicted_labels(&scores, w, h)?
            }
            (None, Some(params)) => {
                let scores = model.forward(&x, &mut Forward::eval())?;
                let refined = lrnn_core::train::seg::crf_on_scores(
                    &scores,
                    photo.as_raw(),
                    w,
                    h,
                    params,
                    &mut |_, _| true,
                )?
                .ok_or_else(|| anyhow::anyhow!("stopped"))?;
                LabelMap { width: w, height: h, labels: refined.labels }
            }
        };
        write_label_png(&out.join(format!("{id}.png")), &map)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("wrote {} label PNGs to {}", images.len(), out.display());
    Ok(())
}

/// `lrnn dataset --format voc`: images per split, images holding each class (train and val
/// together), and optionally a sheet of the first labelled images beside their label maps.
pub fn describe_voc(root: &Path, sheet: Option<&Path>) -> anyhow::Result<()> {
    use lrnn_core::colour::palette;
    let mut per_class = [0usize; 21];
    let mut total = 0;
    let mut sizes = std::collections::BTreeSet::new();
    let mut shown: Vec<image::RgbImage> = Vec::new();
    for split in ["train", "val"] {
        // A split without its list is absent; any other problem (no label folder, a bad list)
        // is an error, not "none".
        if !root.join("ImageSets/Segmentation").join(format!("{split}.txt")).exists() {
            println!("split {split}: none (no ImageSets/Segmentation/{split}.txt)");
            continue;
        }
        let s = VocSplit::open(root, split)?;
        println!("split {split}: {} images", s.ids.len());
        for id in &s.ids {
            let label = s.label(id, None)?;
            total += 1;
            sizes.insert((label.width, label.height));
            let mut present = [false; 21];
            for &l in &label.labels {
                if let Some(p) = present.get_mut(usize::from(l)) {
                    *p = true;
                }
            }
            for (count, seen) in per_class.iter_mut().zip(present) {
                *count += usize::from(seen);
            }
            if sheet.is_some() && shown.len() < 8 {
                let colours = palette();
                let img = image::RgbImage::from_fn(label.width as u32, label.height as u32, |x, y| {
                    image::Rgb(colours[usize::from(label.labels[y as usize * label.width + x as usize])])
                });
                let photo = image::open(s.image_path(id))
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.image_path(id).display()))?
                    .to_rgb8();
                let thumb = |i: &image::RgbImage| {
                    image::imageops::resize(i, 160, 120, image::imageops::FilterType::Nearest)
                };
                shown.push(thumb(&photo));
                shown.push(thumb(&img));
            }
        }
    }
    if total == 0 {
        anyhow::bail!(
            "{}: no split list (ImageSets/Segmentation/train.txt or val.txt): not a VOC tree",
            root.display()
        );
    }
    println!("images: {total}");
    let shape = match (sizes.len(), sizes.iter().next()) {
        (1, Some((w, h))) => format!("3x{h}x{w}"),
        _ => format!("3xHxW, {} different sizes", sizes.len()),
    };
    println!("shape: {shape}");
    for (name, count) in VOC_CLASSES.iter().zip(per_class) {
        println!("label {name}: {count}");
    }
    if let Some(p) = sheet {
        let rows: Vec<image::RgbImage> =
            shown.chunks(2).map(|pair| lrnn_core::probe::render::side_by_side(pair, 4)).collect();
        let mut out =
            image::RgbImage::from_pixel(324, (124 * rows.len()).max(1) as u32, image::Rgb([255, 255, 255]));
        for (i, r) in rows.iter().enumerate() {
            image::imageops::replace(&mut out, r, 0, (i * 124) as i64);
        }
        crate::save_png(&out, p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// Options of `lrnn train-seg`.
#[derive(Debug, clap::Args)]
pub struct TrainSegArgs {
    /// `FCN-32s`, `FCN-8s`, `FCN-32s-LRNN`, `FCN-8s-LRNN` or a JSON description; with
    /// --init-from, defaults to that checkpoint's model.
    #[arg(long)]
    model: Option<String>,
    /// Channels n of fc1 and fc2 (the paper: 512 … 4096; the names' default is 1024).
    #[arg(long, value_parser = crate::args::channels)]
    heads: Option<usize>,
    /// `-LRNN` networks: every V starts at this times the identity (default 0, the paper's:
    /// exactly the FCN at the start; 0.9 carries features along whole rows from the first step).
    #[arg(long, value_parser = crate::args::finite_f32)]
    v_init: Option<f32>,
    /// A PASCAL VOC 2012 tree (its `train` and `val` lists); without it, the generated scenes.
    #[arg(long)]
    voc: Option<std::path::PathBuf>,
    /// Network input side, a multiple of 32 (default: 384 for VOC, 96 for the scenes).
    #[arg(long, value_parser = crate::args::side)]
    size: Option<usize>,
    /// VGG-16 trunk weights (`lrnn fetch vgg16`, torchvision's `.pth` or safetensors); default:
    /// the file `lrnn fetch vgg16` writes, when it is there. `none`: a random trunk.
    #[arg(long)]
    vgg: Option<String>,
    /// Start from this checkpoint's weights instead (a checkpoint or run folder).
    #[arg(long)]
    init_from: Option<std::path::PathBuf>,
    /// The run's folder (checkpoints).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Stop after this many steps in all (default: every epoch).
    #[arg(long, value_parser = crate::args::count)]
    steps: Option<usize>,
    /// Epochs in all.
    #[arg(long, default_value_t = 1, value_parser = crate::args::count)]
    epochs: usize,
    /// Images per step.
    #[arg(long, default_value_t = 4, value_parser = crate::args::count)]
    batch: usize,
    /// Learning rate (RMSprop, the paper's), until --drop-at.
    #[arg(long, default_value_t = 1e-4, value_parser = crate::args::positive)]
    lr: f64,
    /// Epoch (fractional) from which the rate is 1e-5, a tenth of the default (the paper: 30).
    #[arg(long, value_parser = crate::args::positive)]
    drop_at: Option<f64>,
    /// No horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// Generated scenes: their width when it differs from --size (wide scenes put the mark
    /// beyond the CNN's reach).
    #[arg(long, value_parser = crate::args::side)]
    width: Option<usize>,
    /// Generated scenes: the least horizontal distance from the object's centre to the mark
    /// (default: half the width).
    #[arg(long, value_parser = crate::args::side)]
    min_distance: Option<usize>,
    /// Generated scenes: training images.
    #[arg(long, default_value_t = 2000, value_parser = crate::args::count)]
    scenes_train: usize,
    /// Generated scenes: validation images.
    #[arg(long, default_value_t = 200, value_parser = crate::args::count)]
    scenes_val: usize,
    /// Use only the first N training images (VOC).
    #[arg(long, value_parser = crate::args::count)]
    max_train: Option<usize>,
    /// Use only the first N validation images (VOC).
    #[arg(long, value_parser = crate::args::count)]
    max_val: Option<usize>,
    /// Also write a checkpoint every N steps and keep them all.
    #[arg(long, value_name = "N", value_parser = crate::args::count)]
    checkpoint_every: Option<usize>,
    /// Seed of the heads' weights, data order, flips and the scenes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue the run in `--out` from its last checkpoint (on any device).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start afresh in a `--out` that already holds a run: its checkpoints are removed first
    /// (without it, such a folder is refused).
    #[arg(long)]
    overwrite: bool,
    /// Where the steps run (as `lrnn train --device`): auto, cpu, wgpu or cuda.
    #[arg(long, value_enum, default_value_t = crate::train_cmd::DeviceArg::Auto)]
    device: crate::train_cmd::DeviceArg,
}

/// Runs `lrnn train-seg`.
pub fn train_seg(a: &TrainSegArgs) -> anyhow::Result<()> {
    use anyhow::bail;
    use lrnn_core::data::{scenes::SceneTask, Format};
    use lrnn_core::models::ModelDesc;
    use lrnn_core::train::{Checkpoint, DataSource, OptimizerConfig, Schedule, TrainConfig};

    let mut model = match (&a.model, &a.init_from) {
        (Some(m), _) => ModelDesc::from_name_or_file(m)?,
        (None, Some(from)) => Checkpoint::desc(from)?,
        (None, None) => ModelDesc::from_name_or_file("FCN-8s-LRNN")?,
    };
    if !model.is_segmentation() {
        bail!("{} is not a segmentation network (FCN-32s, FCN-8s, …)", model.display_name());
    }
    if let ModelDesc::Fcn(cfg) = &mut model {
        if let Some(n) = a.heads {
            if a.init_from.is_some() {
                bail!("--heads cannot change a checkpoint's network");
            }
            cfg.heads = n;
        }
        if let Some(v) = a.v_init {
            if a.init_from.is_some() || !cfg.lrnn {
                bail!("--v-init sets the recurrences of a fresh -LRNN network");
            }
            cfg.v_init = v;
        }
    } else if a.heads.is_some() || a.v_init.is_some() {
        bail!("--heads and --v-init are for the paper's FCNs (FCN-8s-LRNN, …), not {}", model.display_name());
    }
    let mut data = match &a.voc {
        Some(_) if a.width.is_some() || a.min_distance.is_some() => {
            bail!("--width and --min-distance are for the generated scenes, not VOC")
        }
        Some(root) => DataSource::new(Format::Voc, root.clone()),
        None => {
            let mut d = DataSource::new(Format::Scenes, std::path::PathBuf::new());
            let side = a.size.unwrap_or(SceneTask::default().size);
            let width = a.width.unwrap_or(side);
            d.scenes = Some(SceneTask {
                size: side,
                width: a.width,
                min_distance: a.min_distance.unwrap_or(width / 2),
                train: a.scenes_train,
                val: a.scenes_val,
                seed: a.seed,
            });
            let classes = lrnn_core::data::scenes::CLASSES.len();
            match &mut model {
                ModelDesc::Fcn(cfg) => cfg.classes = classes,
                ModelDesc::FcnCaffe(cfg) => cfg.classes = classes,
                _ => {}
            }
            d
        }
    };
    data.size = a.size;
    // Checked with the data (`data::load_segmentation`): a multiple of 32.
    let size = data.segmentation_size();
    let init_trunk = match (a.vgg.as_deref(), &a.init_from) {
        (_, Some(_)) | (Some("none"), _) => None,
        (Some(path), None) => Some(std::path::PathBuf::from(path)),
        (None, None) => {
            let default = lrnn_core::io::vgg16::default_weights();
            if default.exists() {
                Some(default)
            } else {
                eprintln!(
                    "lrnn: no VGG-16 weights at {}: the trunk starts from random weights \
                     (run `lrnn fetch vgg16` for the ImageNet ones, or pass --vgg)",
                    default.display()
                );
                None
            }
        }
    };
    if let ModelDesc::Fcn(cfg) = &mut model {
        cfg.input_size = Some(size);
    }
    if let Some(t) = &init_trunk {
        println!("trunk: {}", t.display());
    }
    let drops = a.drop_at.map(|e| vec![(e, a.lr / 10.0)]).unwrap_or_default();
    let config = TrainConfig {
        model,
        data: data.clone(),
        epochs: a.epochs,
        batch_size: a.batch,
        optimizer: OptimizerConfig::PAPER_RMSPROP,
        schedule: Schedule::Steps { lr: a.lr, drops },
        augment: if a.no_flip { None } else { data.format.label_preserving_augment() },
        subtract_mean: false,
        seed: a.seed,
        max_train_images: a.max_train,
        max_val_images: a.max_val,
        max_steps: a.steps,
        out: a.out.clone(),
        init_from: a.init_from.clone(),
        time_budget_s: None,
        checkpoint_every: a.checkpoint_every,
        init_trunk,
        device: a.device.into(),
    };
    let width = config.data.scenes.and_then(|t| t.width).unwrap_or(size);
    println!("{} on {}x{} inputs", config.model.display_name(), width, size);
    crate::train_cmd::follow(config, a.resume, a.overwrite)
}

/// `lrnn dataset --format scenes --voc-out DIR`: `count` scenes of a generator seed as a VOC tree
/// (JPEG photos at quality 95, palette PNG labels, `val.txt`). They are the first scenes that seed
/// draws, i.e. the first *training* scenes of `train-seg --seed S`: pick another seed for scenes
/// a model has not seen.
pub fn export_scenes(out: &Path, count: usize, size: usize, seed: u64) -> anyhow::Result<()> {
    use lrnn_core::data::scenes::{generate, SceneTask};
    if size < 32 || size % 32 != 0 {
        anyhow::bail!("--size {size}: scenes for the FCNs need a multiple of 32");
    }
    let task = SceneTask { size, width: None, min_distance: size / 2, train: 0, val: count, seed };
    let set = generate(&task).val;
    // The tree appears whole or not at all.
    lrnn_core::io::write_folder(out, |tmp| {
        for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
            std::fs::create_dir_all(tmp.join(d)).map_err(|e| lrnn_core::Error::io(tmp.join(d), e))?;
        }
        for i in 0..set.len() {
            let id = &set.ids[i];
            let path = tmp.join("JPEGImages").join(format!("{id}.jpg"));
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
                .encode_image(&set.rgb_image(i))
                .map_err(|e| lrnn_core::Error::file(&path, format!("cannot encode: {e}")))?;
            lrnn_core::io::write_atomic(&path, &bytes)?;
            write_label_png(&tmp.join("SegmentationClass").join(format!("{id}.png")), &set.label(i))?;
        }
        let list: String = set.ids.iter().map(|id| format!("{id}\n")).collect();
        lrnn_core::io::write_atomic(&tmp.join("ImageSets/Segmentation/val.txt"), list.as_bytes())
    })?;
    println!("wrote {} scenes ({size}x{size}, seed {seed}) to {}", set.len(), out.display());
    Ok(())
}

/// `lrnn pack`: a checkpoint without its optimiser state, weights optionally in f16.
pub fn pack(run: &Path, out: &Path, half: bool) -> anyhow::Result<()> {
    let ckpt = lrnn_core::train::Checkpoint::open(run, &candle_core::Device::Cpu)?;
    let (dir, model) = (ckpt.dir, ckpt.model);
    let dtype = if half { candle_core::DType::F16 } else { candle_core::DType::F32 };
    // The packed folder appears whole or not at all.
    lrnn_core::io::write_folder(out, |tmp| {
        for f in ["model.json", "state.json", "mean.safetensors"] {
            let from = dir.join(f);
            if from.exists() {
                let bytes = lrnn_core::io::read_file(&from)?;
                lrnn_core::io::write_atomic(&tmp.join(f), &bytes)?;
            }
        }
        lrnn_core::io::write_tensors_as(&model.weights()?, &tmp.join("weights.safetensors"), dtype)
    })?;
    let weights = out.join("weights.safetensors");
    let mib = std::fs::metadata(&weights).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
    println!(
        "packed {} into {} ({mib:.1} MiB of weights{})",
        dir.display(),
        out.display(),
        if half { ", f16" } else { "" }
    );
    Ok(())
}

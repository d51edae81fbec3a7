//! The app's background worker: model runs and ERFs never happen on the UI thread. The UI sends a
//! [`Job`]; the worker answers with a [`Reply`] and asks for a repaint.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};

use candle_core::{Device, Tensor};
use image::RgbImage;
use lrnn_core::models::Model;
use lrnn_core::nn::{Forward, ScanBackend};
use lrnn_core::probe::activations::{activations, channel_grid, MapKind};
use lrnn_core::probe::erf::{erf, Mode, Unit};
use lrnn_core::probe::render::{erf_overlay, heatmap, outline};
use lrnn_core::probe::rf::receptive_field;
use lrnn_core::train::trainer::{checkpoint_mean, load_checkpoint, resolve_checkpoint};

/// What the UI asks for.
#[derive(Debug, Clone)]
pub enum Job {
    /// Load a model (a run or checkpoint folder) and a photo, and compute every map.
    Load {
        /// The run or checkpoint folder.
        run: PathBuf,
        /// The photo.
        photo: PathBuf,
    },
    /// The effective receptive field of the unit at `(y, x)` of `map` (summed over channels).
    Erf {
        /// The map's capture name.
        map: String,
        /// Row in the map.
        y: usize,
        /// Column in the map.
        x: usize,
    },
}

/// One map ready to show.
#[derive(Debug, Clone)]
pub struct MapView {
    /// Capture name.
    pub name: String,
    /// Layer, direction or output.
    pub kind: MapKind,
    /// `(channels, height, width)`.
    pub shape: (usize, usize, usize),
    /// Value range over the shown channels.
    pub range: (f32, f32),
    /// Channels shown in the grid and the grid's columns.
    pub shown: (usize, usize),
    /// The channel grid, colour-mapped, with its colour bar.
    pub picture: RgbImage,
}

/// What the worker sends back.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A model and photo are loaded and every map computed.
    Loaded {
        /// The model, in words.
        model: String,
        /// The photo as the model sees it (grey or colour, model input size).
        input: RgbImage,
        /// Every map in forward order.
        maps: Vec<MapView>,
    },
    /// An ERF.
    Erf {
        /// Which unit, in words.
        unit: String,
        /// The ERF over the photo, theoretical field outlined.
        picture: RgbImage,
        /// Sides of the centred squares holding 20%, 50%, 99% of the mass.
        mass: [Option<usize>; 3],
        /// The theoretical field, in words.
        theoretical: String,
    },
    /// Something failed; the message says what and names the file.
    Failed(String),
}

/// The worker thread's handle.
pub struct Worker {
    jobs: Sender<Job>,
    /// Replies, drained by the UI every frame.
    pub replies: Receiver<Reply>,
}

/// The most channels a grid shows.
pub const GRID_CHANNELS: usize = 16;

struct Loaded {
    model: Model,
    x: Tensor,
    grey: Vec<f32>,
    size: usize,
}

impl Worker {
    /// Starts the worker; `repaint` is called after every reply.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> Self {
        let (jobs, job_rx) = channel::<Job>();
        let (reply_tx, replies) = channel();
        let spawned = std::thread::Builder::new().name("lrnn-studio-worker".into()).spawn(move || {
            let mut loaded: Option<Loaded> = None;
            for job in job_rx {
                let reply = match run_job(&job, &mut loaded) {
                    Ok(r) => r,
                    Err(e) => Reply::Failed(format!("{e:#}")),
                };
                if reply_tx.send(reply).is_err() {
                    break;
                }
                repaint();
            }
        });
        if let Err(e) = spawned {
            let (tx, rx) = channel();
            let _ = tx.send(Reply::Failed(format!("cannot start the worker thread: {e}")));
            return Self { jobs, replies: rx };
        }
        Self { jobs, replies }
    }

    /// Queues a job.
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

fn run_job(job: &Job, loaded: &mut Option<Loaded>) -> anyhow::Result<Reply> {
    match job {
        Job::Load { run, photo } => {
            let dir = resolve_checkpoint(run)?;
            let (model, state) = load_checkpoint(&dir, &Device::Cpu)?;
            let mean = checkpoint_mean(&dir, &state)?;
            let size = model.desc().input_size();
            let channels = model.desc().in_channels();
            let img = image::open(photo)
                .map_err(|e| anyhow::anyhow!("{}: not a readable image: {e}", photo.display()))?;
            let img = img.resize_exact(size as u32, size as u32, image::imageops::FilterType::Triangle);
            let (mut data, input): (Vec<f32>, RgbImage) = if channels == 1 {
                let g = img.to_luma8();
                let rgb = image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
                (g.pixels().map(|p| f32::from(p[0]) / 255.0).collect(), rgb)
            } else {
                let rgb = img.to_rgb8();
                let mut planes = vec![0f32; 3 * size * size];
                for (i, p) in rgb.pixels().enumerate() {
                    for c in 0..3 {
                        planes[c * size * size + i] = f32::from(p[c]) / 255.0;
                    }
                }
                (planes, rgb)
            };
            let grey: Vec<f32> = image::DynamicImage::ImageRgb8(input.clone())
                .to_luma8()
                .pixels()
                .map(|p| f32::from(p[0]) / 255.0)
                .collect();
            match mean.as_deref() {
                Some(m) if m.len() == data.len() => data.iter_mut().zip(m).for_each(|(v, m)| *v -= m),
                _ => data.iter_mut().for_each(|v| *v -= 0.5),
            }
            let x = Tensor::from_vec(data, (1, channels, size, size), &Device::Cpu)?;
            let mut maps = Vec::new();
            for a in activations(&model, &x, ScanBackend::Auto)? {
                let t = a.tensor.get(0)?;
                let (c, h, w) = match t.dims() {
                    [c, h, w] => (*c, *h, *w),
                    [c] => (*c, 1, 1),
                    _ => continue,
                };
                let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
                let shown = c.min(GRID_CHANNELS);
                let cols = (shown as f64).sqrt().ceil() as usize;
                let (grid, gh, gw) = channel_grid(&values[..shown * h * w], (shown, h, w), cols);
                let range = grid
                    .iter()
                    .filter(|v| !v.is_nan())
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| (l.min(v), u.max(v)));
                let scale = (384 / gw.max(gh).max(1)).clamp(1, 16) as u32;
                maps.push(MapView {
                    name: a.name,
                    kind: a.kind,
                    shape: (c, h, w),
                    range,
                    shown: (shown, cols),
                    picture: heatmap(&grid, gh, gw, false, scale),
                });
            }
            let name = format!("{} ({})", model.desc().display_name(), dir.display());
            *loaded = Some(Loaded { model, x, grey, size });
            Ok(Reply::Loaded { model: name, input, maps })
        }
        Job::Erf { map, y, x } => {
            let l = loaded.as_ref().ok_or_else(|| anyhow::anyhow!("no model is loaded"))?;
            let pick = |t: &Tensor, f: &mut Forward| -> candle_core::Result<Tensor> {
                let m = l.model.forward_map(t, map, f.backend).map_err(candle_core::Error::wrap)?;
                if m.rank() == 4 {
                    m.sum_keepdim(1)
                } else {
                    Ok(m)
                }
            };
            let e = erf(pick, std::slice::from_ref(&l.x), Unit { channel: 0, y: *y, x: *x }, Mode::Abs)?;
            let scale = (384 / l.size.max(1)).max(1) as u32;
            let mut picture = erf_overlay(&l.grey, &e.map, l.size, l.size, scale);
            let rf = l.model.desc().geometry(map).map(|g| receptive_field(&g));
            let n = l.size;
            let theoretical = match rf {
                Some(rf) => {
                    let (rows, cols) = rf.span(e.centre, (n, n));
                    outline(&mut picture, rows, cols, scale, [255, 255, 255]);
                    format!("rows {}-{}, columns {}-{} (outlined)", rows.0, rows.1, cols.0, cols.1)
                }
                None => "not known for this model".into(),
            };
            Ok(Reply::Erf {
                unit: format!("{map} at ({y}, {x}), summed over channels"),
                picture,
                mass: e.mass_sides(),
                theoretical,
            })
        }
    }
}

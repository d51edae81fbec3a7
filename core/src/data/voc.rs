//! PASCAL VOC 2012 segmentation data (SPEC §6) in its real layout: `JPEGImages/<id>.jpg`,
//! `SegmentationClass/<id>.png` (palette PNGs whose indices are the labels), the list of ids in
//! `ImageSets/Segmentation/<split>.txt`, and the common augmented labels `SegmentationClassAug/`
//! (grey PNGs) used instead when present. Label 255 (object boundaries) means "ignore".

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The 21 classes, by label.
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The label that is ignored in training and scoring.
pub const IGNORE: u8 = 255;

use crate::colour::palette;

/// A label map: one class index per pixel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Labels (0..21, or 255 for "ignore").
    pub labels: Vec<u8>,
}

impl LabelMap {
    /// Resized by nearest neighbour (labels are never blended).
    pub fn resize_nearest(&self, width: usize, height: usize) -> LabelMap {
        let mut labels = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy = (y * self.height / height.max(1)).min(self.height - 1);
            for x in 0..width {
                let sx = (x * self.width / width.max(1)).min(self.width - 1);
                labels.push(self.labels[sy * self.width + sx]);
            }
        }
        LabelMap { width, height, labels }
    }
}

/// Reads a label PNG: an 8-bit palette PNG (its indices) or an 8-bit grey PNG (its values).
///
/// # Errors
/// [`Error::File`] naming `path` when it is not such a PNG.
pub fn read_label_png(path: &Path) -> Result<LabelMap> {
    let bytes = super::read(path)?;
    let bad = |e: String| Error::file(path, format!("not a readable label PNG: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let size = reader.output_buffer_size().ok_or_else(|| bad("too large".into()))?;
    let (iw, ih) = (reader.info().width, reader.info().height);
    if u64::from(iw) * u64::from(ih) > crate::limits::MAX_PHOTO_PIXELS {
        return Err(Error::file(
            path,
            format!("{iw}x{ih} labels: over the limit of {} pixels", crate::limits::MAX_PHOTO_PIXELS),
        ));
    }
    crate::limits::check_memory(size as u64, "decoding this PNG").map_err(|p| Error::file(path, p))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(e.to_string()))?;
    if info.bit_depth != png::BitDepth::Eight
        || !matches!(info.color_type, png::ColorType::Indexed | png::ColorType::Grayscale)
    {
        return Err(Error::file(
            path,
            format!(
                "a label PNG must be 8-bit palette or grey, this one is {:?} {:?}",
                info.color_type, info.bit_depth
            ),
        ));
    }
    let (w, h) = (info.width as usize, info.height as usize);
    let labels = buf.chunks(info.line_size).take(h).flat_map(|row| row[..w].iter().copied()).collect();
    Ok(LabelMap { width: w, height: h, labels })
}

/// Writes a label map as a palette PNG with the VOC colours, atomically.
///
/// # Errors
/// I/O errors naming `path`.
pub fn write_label_png(path: &Path, map: &LabelMap) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, map.width as u32, map.height as u32);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette().concat());
        let mut writer = enc.write_header().map_err(|e| Error::file(path, e.to_string()))?;
        writer.write_image_data(&map.labels).map_err(|e| Error::file(path, e.to_string()))?;
    }
    crate::io::write_atomic(path, &bytes)
}

/// One split of a VOC tree.
#[derive(Debug, Clone)]
pub struct VocSplit {
    /// The tree's root (the folder holding `JPEGImages`).
    pub root: PathBuf,
    /// The image ids, in the list's order.
    pub ids: Vec<String>,
    /// The folder the labels come from (`SegmentationClassAug` when present, else
    /// `SegmentationClass`).
    pub labels: PathBuf,
}

impl VocSplit {
    /// Opens `ImageSets/Segmentation/<split>.txt` under `root`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::File`] naming the missing list or folder.
    pub fn open(root: &Path, split: &str) -> Result<Self> {
        if !root.join("JPEGImages").is_dir() {
            return Err(Error::file(root, "not a VOC tree: it has no JPEGImages folder"));
        }
        let aug = root.join("SegmentationClassAug");
        let labels = if aug.is_dir() { aug } else { root.join("SegmentationClass") };
        if !labels.is_dir() {
            return Err(Error::file(&labels, "missing: a VOC tree needs its label folder"));
        }
        let list = root.join("ImageSets/Segmentation").join(format!("{split}.txt"));
        let bytes = crate::io::read_file(&list)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::file(&list, "is not UTF-8 text"))?;
        let ids: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        if ids.is_empty() {
            return Err(Error::file(&list, "lists no image"));
        }
        if let Some((n, id)) =
            ids.iter().enumerate().find(|(_, id)| id.contains(['/', '\\']) || id.starts_with('.'))
        {
            let shown: String = id.chars().take(80).collect();
            return Err(Error::file(&list, format!("entry {}: `{shown}` is not an image id", n + 1)));
        }
        Ok(Self { root: root.to_path_buf(), ids, labels })
    }

    /// The photo of `id`.
    pub fn image_path(&self, id: &str) -> PathBuf {
        self.root.join("JPEGImages").join(format!("{id}.jpg"))
    }

    /// The label PNG of `id`.
    pub fn label_path(&self, id: &str) -> PathBuf {
        self.labels.join(format!("{id}.png"))
    }

    /// Reads the label map of `id`, checking it has the photo's size when `size` is given.
    ///
    /// # Errors
    /// As [`read_label_png`]; [`Error::File`] naming the label when its size differs.
    pub fn label(&self, id: &str, size: Option<(usize, usize)>) -> Result<LabelMap> {
        let path = self.label_path(id);
        let map = read_label_png(&path)?;
        if let Some(i) = map.labels.iter().position(|&l| usize::from(l) >= VOC_CLASSES.len() && l != IGNORE) {
            return Err(Error::file(
                &path,
                format!(
                    "label {} at row {}, column {} is neither a VOC class (0-20) nor 255 (ignored)",
                    map.labels[i],
                    i / map.width.max(1),
                    i % map.width.max(1)
                ),
            ));
        }
        if let Some((w, h)) = size {
            if (map.width, map.height) != (w, h) {
                return Err(Error::file(
                    &path,
                    format!("the label is {}x{}, its image {w}x{h}", map.width, map.height),
                ));
            }
        }
        Ok(map)
    }
}

/// How much larger than the training crops VOC photos are stored (their shorter side).
pub const TRAIN_MARGIN: f64 = 1.25;

impl VocSplit {
    /// The split's photos and labels at `size x size`, for training and validation: each photo
    /// resized (bilinear) so that its shorter side is `size`, then centre-cropped; its label map
    /// resized the same way by nearest neighbour. Only the first `max` images when given.
    ///
    /// # Errors
    /// A photo that is not readable, a missing label, or a label of another size than its photo,
    /// each naming the file.
    pub fn load_resized(&self, size: usize, max: Option<usize>) -> Result<super::seg_set::SegSet> {
        self.load_stored(size, max)
    }

    /// The split for training with random crops: each photo resized so that its shorter side
    /// is [`TRAIN_MARGIN`] times `size` and centre-cropped square at that side; batches then
    /// cut `size x size` at random places ([`super::seg_set::SegSet::crop`]), so the network
    /// sees every part of the photo's centre over the epochs and at 80% of its scale.
    ///
    /// # Errors
    /// As [`VocSplit::load_resized`].
    pub fn load_for_training(&self, size: usize, max: Option<usize>) -> Result<super::seg_set::SegSet> {
        let stored = (size as f64 * TRAIN_MARGIN).round() as usize;
        let mut set = self.load_stored(stored, max)?;
        set.crop = Some(size);
        Ok(set)
    }

    fn load_stored(&self, size: usize, max: Option<usize>) -> Result<super::seg_set::SegSet> {
        let classes = VOC_CLASSES.map(String::from).to_vec();
        let mut set = super::seg_set::SegSet::new((size, size), classes);
        let plane = size * size;
        for id in self.ids.iter().take(max.unwrap_or(usize::MAX)) {
            let path = self.image_path(id);
            // By content, not by name (a `.jpg` that is really a PNG still reads).
            let photo = image::ImageReader::open(&path)
                .map_err(|e| Error::io(&path, e))?
                .with_guessed_format()
                .map_err(|e| Error::io(&path, e))?
                .decode()
                .map_err(|e| Error::file(&path, format!("not a readable image: {e}")))?
                .to_rgb8();
            let (w, h) = (photo.width() as usize, photo.height() as usize);
            let label = self.label(id, Some((w, h)))?;
            // Shorter side to `size`, then the centre `size x size`.
            let scale = size as f64 / w.min(h) as f64;
            let (rw, rh) = (
                ((w as f64 * scale).round() as usize).max(size),
                ((h as f64 * scale).round() as usize).max(size),
            );
            let resized =
                image::imageops::resize(&photo, rw as u32, rh as u32, image::imageops::FilterType::Triangle);
            let labels = label.resize_nearest(rw, rh);
            let (x0, y0) = ((rw - size) / 2, (rh - size) / 2);
            let mut rgb = vec![0u8; 3 * plane];
            let mut lab = vec![0u8; plane];
            for y in 0..size {
                for x in 0..size {
                    let p = resized.get_pixel((x0 + x) as u32, (y0 + y) as u32);
                    for c in 0..3 {
                        rgb[c * plane + y * size + x] = p[c];
                    }
                    lab[y * size + x] = labels.labels[(y0 + y) * rw + x0 + x];
                }
            }
            set.push(id.clone(), &rgb, &lab);
        }
        Ok(set)
    }
}

//! Dataset readers on small files written here in the real formats, and on truncated or
//! malformed ones; the generated context task; augmentation.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/scratch.rs"]
mod scratch;

use std::io::Write;
use std::path::{Path, PathBuf};

use lrnn_core::data::context::{generate, ContextTask};
use lrnn_core::data::{cifar10, fashion_mnist, Augment};
use lrnn_core::rng::Rng;

fn dir(name: &str) -> PathBuf {
    scratch::scratch_dir(name)
}

/// A CIFAR-10 batch of `n` records: label i % 10, pixels all equal to i.
fn cifar_batch(path: &Path, n: usize, first: usize) {
    let mut bytes = Vec::new();
    for i in first..first + n {
        bytes.push((i % 10) as u8);
        bytes.extend(std::iter::repeat_n((i % 256) as u8, 3072));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn cifar10_binary_is_read_and_split_40_10_10() {
    let d = dir("cifar");
    for b in 1..=5 {
        cifar_batch(&d.join(format!("data_batch_{b}.bin")), 10, (b - 1) * 10);
    }
    cifar_batch(&d.join("test_batch.bin"), 7, 100);
    let s = cifar10::load(&d).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (40, 10, 7));
    assert_eq!(s.train.shape, (3, 32, 32));
    assert_eq!(s.val.labels[0], 0, "validation = the last fifth (image 40, label 0)");
    assert!(s.val.image(0).iter().all(|&p| p == 40));
    assert_eq!(s.train.class_counts(), vec![4; 10]);
    assert_eq!(s.test.classes[3], "cat");
}

#[test]
fn cifar10_truncated_or_missing_files_are_named() {
    let d = dir("cifar-bad");
    for b in 1..=5 {
        cifar_batch(&d.join(format!("data_batch_{b}.bin")), 2, 0);
    }
    let err = cifar10::load(&d).unwrap_err().to_string();
    assert!(err.contains("test_batch.bin"), "{err}");
    let mut bytes = std::fs::read(d.join("data_batch_3.bin")).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(d.join("data_batch_3.bin"), &bytes).unwrap();
    cifar_batch(&d.join("test_batch.bin"), 2, 0);
    let err = cifar10::load(&d).unwrap_err().to_string();
    assert!(err.contains("data_batch_3.bin") && err.contains("truncated"), "{err}");
    let mut bad = std::fs::read(d.join("data_batch_1.bin")).unwrap();
    bad[0] = 12;
    std::fs::write(d.join("data_batch_3.bin"), &bad).unwrap();
    let err = cifar10::load(&d).unwrap_err().to_string();
    assert!(err.contains("label 12"), "{err}");
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn fashion_mnist_idx_plain_and_gzipped_padded_to_32() {
    let d = dir("fm");
    let n = 12u32;
    let pixels: Vec<u8> = (0..n as usize * 28 * 28).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gz(&idx(&[n, 28, 28], &pixels))).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[n], &labels)).unwrap();
    std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(&[2, 28, 28], &pixels[..2 * 784])).unwrap();
    std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), gz(&idx(&[2], &labels[..2]))).unwrap();
    let s = fashion_mnist::load(&d).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (10, 2, 2));
    assert_eq!(s.train.shape, (1, 32, 32));
    // Padding of 2 on each side: the first source pixel lands at (2, 2).
    assert_eq!(s.train.image(0)[2 * 32 + 2], pixels[0]);
    assert_eq!(s.train.image(0)[0], 0);
    assert_eq!(s.train.classes[9], "ankle boot");
}

#[test]
fn fashion_mnist_bad_files_are_named() {
    let d = dir("fm-bad");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx(&[3, 28, 28], &[0; 100])).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[3], &[0, 1, 2])).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("truncated"), "{err}");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx(&[3, 28, 28], &[0; 3 * 784])).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[2], &[0, 1])).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("2 labels for 3 images"), "{err}");
    std::fs::write(d.join("train-labels-idx1-ubyte"), b"garbage").unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("not an IDX file"), "{err}");
    std::fs::write(d.join("train-labels-idx1-ubyte.gz"), b"not gzip").unwrap();
    std::fs::remove_file(d.join("train-labels-idx1-ubyte")).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("gzip"), "{err}");
    let err = fashion_mnist::read_pair(&d, "t10k").unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte") && err.contains("missing"), "{err}");
    // Dimensions whose product wraps past 2^64, a zero dimension, and images larger than the
    // 32x32 they are padded to: refused, not wrapped, divided by zero or cropped.
    std::fs::remove_file(d.join("train-labels-idx1-ubyte.gz")).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[3], &[0, 1, 2])).unwrap();
    let huge = idx(&[u32::MAX, u32::MAX, 65_537], &[0; 16]);
    std::fs::write(d.join("train-images-idx3-ubyte"), huge).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("more than 2^64"), "{err}");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx(&[3, 0, 28], &[])).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("a dimension is 0"), "{err}");
    std::fs::write(d.join("train-images-idx3-ubyte"), idx(&[3, 40, 40], &[0; 3 * 1600])).unwrap();
    let err = fashion_mnist::read_pair(&d, "train").unwrap_err().to_string();
    assert!(err.contains("40x40") && err.contains("cropped"), "{err}");
}

#[test]
fn context_task_labels_say_which_far_mark_is_brighter() {
    let task = ContextTask { size: 32, min_distance: 16, margin: 4, train: 200, val: 10, test: 10, seed: 3 };
    let s = generate(&task);
    assert_eq!(generate(&task).train, s.train, "the same seed gives the same images");
    let counts = s.train.class_counts();
    assert!(counts[0] > 60 && counts[1] > 60, "{counts:?}");
    for i in 0..s.train.len() {
        let img = s.train.image(i);
        // The brightest pixel left of the other mark: find the two marks by column of max.
        let col_max: Vec<u8> = (0..32).map(|x| (0..32).map(|y| img[y * 32 + x]).max().unwrap()).collect();
        let marks: Vec<usize> =
            (0..32).filter(|&x| col_max[x] > 60 && (x == 0 || col_max[x - 1] <= 60)).collect();
        assert_eq!(marks.len(), 2, "image {i}: two marks");
        assert!(marks[1] - marks[0] >= 16, "image {i}: marks {marks:?} too close");
        assert!(marks[0] >= 4 && marks[1] + 3 <= 32 - 4, "image {i}: marks {marks:?} within the margin");
        let rows = |x: usize| -> Vec<usize> { (0..32).filter(|&y| img[y * 32 + x] > 60).collect() };
        assert_eq!(rows(marks[0]), rows(marks[1]), "image {i}: both marks on one row");
        let right_brighter = col_max[marks[1]] > col_max[marks[0]];
        assert_eq!(s.train.labels[i], u8::from(right_brighter), "image {i}");
    }
}

#[test]
fn the_context_task_is_never_flipped_photographs_are() {
    use lrnn_core::data::Format;
    assert_eq!(Format::Context.label_preserving_augment(), None, "a flip would swap the label");
    assert_eq!(Format::FashionMnist.label_preserving_augment(), Some(Augment::default()));
    assert_eq!(Format::Cifar10.label_preserving_augment(), Some(Augment::default()));
}

#[test]
fn augmentation_flips_and_keeps_identity_when_off() {
    let img: Vec<f32> = (0..2 * 4 * 5).map(|v| v as f32).collect();
    let mut rng = Rng(1);
    assert_eq!(Augment::NONE.apply(&img, (2, 4, 5), &mut rng), img);
    let flip_only = Augment { flip: true, max_rotation_deg: 0.0, max_scale: 0.0 };
    let flipped: Vec<Vec<f32>> = (0..20).map(|_| flip_only.apply(&img, (2, 4, 5), &mut rng)).collect();
    let mirrored: Vec<f32> = (0..40).map(|i| img[i - i % 5 + (4 - i % 5)]).collect();
    assert!(flipped.contains(&mirrored), "some draws flip");
    assert!(flipped.contains(&img), "some draws do not");
}

#[test]
fn photos_truncated_or_too_large_are_refused_and_so_is_a_mean_image_with_nan() {
    use lrnn_core::data::photo::{photo_input, read_photo};
    let d = dir("photos");
    let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8 * 15, y as u8 * 20, 128]));
    let mut jpg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(d.join("ok.jpg"), &jpg).unwrap();
    let photo = read_photo(&d.join("ok.jpg")).unwrap();
    assert_eq!(photo.dimensions(), (16, 12));
    // Cut short (a download that stopped): refused, not decoded with a grey bottom.
    std::fs::write(d.join("cut.jpg"), &jpg[..jpg.len() * 2 / 3]).unwrap();
    let err = read_photo(&d.join("cut.jpg")).unwrap_err().to_string();
    assert!(err.contains("cut.jpg") && err.contains("truncated"), "{err}");
    // A PNG header claiming 100000 x 100000 pixels: refused before decoding.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in [&ihdr[..], b"IDAT", b"IEND"] {
        let mut crc = flate2::Crc::new();
        crc.update(chunk);
        png.extend((chunk.len() as u32 - 4).to_be_bytes());
        png.extend(chunk);
        png.extend(crc.sum().to_be_bytes());
    }
    std::fs::write(d.join("huge.png"), &png).unwrap();
    let err = read_photo(&d.join("huge.png")).unwrap_err().to_string();
    assert!(err.contains("huge.png") && err.contains("100000x100000"), "{err}");
    // A mean image holding NaN is refused, not spread into every map.
    let desc = lrnn_core::models::ModelDesc::from_name_or_file("Context-CNN").unwrap();
    let mut mean = vec![0.5f32; 96 * 96];
    mean[7] = f32::NAN;
    let err = photo_input(&photo, &desc, 96, Some(&mean)).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    let err = photo_input(&photo, &desc, 100_000, None).unwrap_err().to_string();
    assert!(err.contains("16384"), "{err}");
}

//! The time of one effective receptive field (one forward and one backward pass of a single
//! image, as `lrnn probe erf` and the app compute it) for the architectures of the bundled models,
//! next to the forward pass alone; and for VGG-16 FCN-8s-LRNN at 384x384 (the class-0 score of the
//! centre pixel). `cargo bench -p lrnn-core --bench erf`.

mod common;

use candle_core::{Device, Tensor};
use common::time_ms;
use lrnn_core::models::cifar::CifarConfig;
use lrnn_core::models::Model;
use lrnn_core::models::ModelDesc;
use lrnn_core::nn::{Forward, ScanBackend};
use lrnn_core::probe::erf::{erf, Mode, Unit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    lrnn_core::keep_freed_memory();
    let grey = |name: &str| ModelDesc::Cifar(CifarConfig { in_channels: 1, ..CifarConfig::named(name) });
    let cases = [
        ("E-RNN-Max (bundled, Fashion-MNIST)", grey("E-RNN-Max"), "stage3.1"),
        ("Baseline-CNN-Max (bundled, Fashion-MNIST)", grey("Baseline-CNN-Max"), "stage3.0"),
        ("Context-CNN (bundled, context task)", ModelDesc::from_name_or_file("Context-CNN")?, "conv6"),
        ("Context-LRNN (bundled, context task)", ModelDesc::from_name_or_file("Context-LRNN")?, "conv6"),
        (
            "VGG-16 FCN-8s-LRNN, n = 1024 (random weights)",
            ModelDesc::from_name_or_file("FCN-8s-LRNN")?,
            "output",
        ),
    ];
    let threads = rayon::current_num_threads();
    println!("One ERF (1 image, forward + backward to the input), {threads} threads, median of 9");
    println!("| model | input | map | forward (ms) | ERF (ms) |");
    println!("|---|---|---|---:|---:|");
    for (label, desc, map) in cases {
        let n = desc.input_size();
        let model = Model::new_seeded(desc.clone(), &Device::Cpu, 1)?;
        let x = Tensor::randn(0f32, 0.5, (1, desc.in_channels(), n, n), &Device::Cpu)?;
        let pick = |x: &Tensor, f: &mut Forward| -> candle_core::Result<Tensor> {
            model.forward_map(x, map, f.backend).map_err(candle_core::Error::wrap)
        };
        let dims = pick(&x, &mut Forward::eval())?.dims().to_vec();
        let unit = match dims.as_slice() {
            [_, _, h, w] => Unit { channel: 0, y: h / 2, x: w / 2 },
            _ => Unit { channel: 0, y: 0, x: 0 },
        };
        let forward = time_ms(9, || {
            model.forward_map(&x, map, ScanBackend::Auto).expect("forward");
        });
        let one = time_ms(9, || {
            erf(pick, std::slice::from_ref(&x), unit, Mode::Abs).expect("erf");
        });
        println!("| {label} | {n}x{n} | {map} | {forward:.1} | {one:.1} |");
    }
    Ok(())
}

//! `lrnn-studio`: opens the app on a bundled model and photo (or those given), or renders one
//! view to a PNG without a window (`--screenshot`).

use clap::Parser;
use lrnn_studio::{StudioApp, StudioOptions, View};

/// L-RNN Studio: layers, receptive fields, recurrences and fine-tuning of L-RNN networks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A trained run or checkpoint folder (default: the bundled Context-CNN with inserted and
    /// fine-tuned L-RNNs).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// A photo (default: the bundled astronaut).
    #[arg(long)]
    image: Option<std::path::PathBuf>,
    /// Render one view to this PNG file without a window, then exit.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<std::path::PathBuf>,
    /// The view to render or open: layers, field, recurrence, finetune, segmentation.
    #[arg(long, default_value = "layers", value_parser = View::parse)]
    view: View,
}

fn main() -> anyhow::Result<()> {
    lrnn_core::keep_freed_memory();
    let args = Args::parse();
    let mut options = StudioOptions::bundled();
    if let Some(m) = args.model {
        options.model = m;
    }
    if let Some(i) = args.image {
        options.image = i;
    }
    if let Some(out) = args.screenshot {
        // The screenshot must never replace the photo or a file of the model it shows.
        let model_files = [options.model.join("model.json"), options.model.join("weights.safetensors")];
        let inputs = std::iter::once(options.image.as_path())
            .chain(model_files.iter().map(std::path::PathBuf::as_path));
        lrnn_core::io::refuse_overwriting_inputs(&out, inputs)?;
        lrnn_studio::screenshot::screenshot(options, args.view, &out).map_err(|e| anyhow::anyhow!(e))?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 860.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let view = args.view;
    eframe::run_native(
        "L-RNN Studio",
        native,
        Box::new(move |cc| {
            let mut app = StudioApp::new(cc, options);
            app.show_view(view);
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

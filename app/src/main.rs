//! `lrnn-studio`: opens the app on a bundled model and photo (or those given).

use clap::Parser;
use lrnn_studio::{StudioApp, StudioOptions};

/// L-RNN Studio.
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut options = StudioOptions::bundled();
    if let Some(m) = args.model {
        options.model = m;
    }
    if let Some(i) = args.image {
        options.image = i;
    }
    let native = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default().with_inner_size([1200.0, 760.0]),
        ..Default::default()
    };
    eframe::run_native("L-RNN Studio", native, Box::new(move |cc| Ok(Box::new(StudioApp::new(cc, options)))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

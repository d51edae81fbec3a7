//! The Segmentation view. Not built yet: it needs a trained FCN-8s and FCN-8s-LRNN, and training
//! FCNs on VOC is issue #4's remaining part. The view says so plainly rather than showing an
//! untrained network's noise as if it were a prediction.

use eframe::egui;

use crate::StudioApp;

impl StudioApp {
    pub(crate) fn segmentation_view(&mut self, ui: &mut egui::Ui) {
        ui.heading("Segmentation checks");
        ui.colored_label(egui::Color32::from_rgb(180, 90, 0), "Not built yet.");
        ui.label(
            "This view will show an FCN-8s prediction in the VOC palette over the photo (with an opacity \
             slider), the ground truth beside it, per-image and running per-class IoU, and where the \
             L-RNN model differs from its CNN. It needs trained FCN-8s and FCN-8s-LRNN checkpoints: the \
             networks, the VGG-16 weights (`lrnn fetch vgg16`), VOC reading and scoring (`lrnn predict`, \
             `lrnn score`) exist, but training them on VOC (`lrnn train-seg`) is still open (issue #4), \
             and an untrained score layer would only show noise.",
        );
        ui.label(
            "Meanwhile an FCN made with `lrnn init --model FCN-8s-LRNN --trunk …` opens in the other \
             views: its layers, scan directions, receptive fields and recurrences.",
        );
    }
}

//! The guided lesson (Help → Lesson): eight steps on the bundled models, each setting the app's
//! state (model, photo, view, layer, unit, V scale) and saying in a few sentences what to look
//! at — from a unit's patch to a layer that sees the whole image. Offline: only bundled files.
//! `TEACHING.md` is the same lesson as a page, with the app's screenshots of each step.

use crate::views::View;

/// One step of the lesson.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Its title.
    pub title: &'static str,
    /// What to look at, in two or three sentences.
    pub text: &'static str,
    /// The bundled model (a folder of `assets/models/`).
    pub model: &'static str,
    /// The bundled photo (a file of `assets/photos/`).
    pub photo: &'static str,
    /// The view shown.
    pub view: View,
    /// The map selected in the Layers list.
    pub map: Option<&'static str>,
    /// The unit whose ERF is shown: `(map, channel, row, column)`.
    pub unit: Option<(&'static str, usize, usize, usize)>,
    /// The V scale.
    pub scale: f64,
    /// Whether the step computes the receptive field against depth.
    pub rf_depth: bool,
}

/// The lesson.
pub const STEPS: [Step; 8] = [
    Step {
        title: "A unit sees a patch",
        text: "Each unit of a convolution looks at a small window of the layer below. This unit of conv1, a \
               3×3 convolution on the photo, depends on a 3×3 patch of pixels only: the small white box \
               under the red circle. Its effective receptive field — how much each pixel changes the unit \
               (the gradient) — is inside that box and nowhere else: 99% of it within 3 pixels.",
        model: "context-cnn",
        photo: "astronaut.png",
        view: View::Field,
        map: Some("conv1"),
        unit: Some(("conv1", 0, 48, 48)),
        scale: 1.0,
        rf_depth: false,
    },
    Step {
        title: "Stacking layers grows the field linearly",
        text: "Every 3×3 convolution adds two steps of the layer below; a 2×2 pooling doubles the step \
               (the jump). conv1 to conv4: 3, 5, 6, 10, 14 pixels. Open 'Receptive-field arithmetic, every \
               layer' under the list: the theoretical field grows by a fixed amount per layer, so a CNN \
               needs many layers to see far.",
        model: "context-cnn",
        photo: "astronaut.png",
        view: View::Layers,
        map: Some("conv4"),
        unit: Some(("conv4", 0, 24, 24)),
        scale: 1.0,
        rf_depth: false,
    },
    Step {
        title: "The effective field is smaller, and Gaussian-like",
        text: "Not every pixel in the theoretical field counts equally (Luo et al. 2016): the gradient \
               gathers at the centre and fades towards the edge, roughly like a Gaussian, and grows more \
               slowly than the theoretical field. The plot shows it layer by layer: the solid ERF curves \
               stay under the dashed theoretical line; half of the gradient lies in a square half as wide.",
        model: "context-cnn",
        photo: "astronaut.png",
        view: View::Field,
        map: Some("conv6"),
        unit: Some(("conv6", 0, 12, 12)),
        scale: 1.0,
        rf_depth: true,
    },
    Step {
        title: "A 1D spatial RNN sees a whole row",
        text: "An L-RNN module scans a layer's map with 1D RNNs: the left→right one computes \
               h_t = f(U x_t + V h_(t−1) + b) along each row, so the unit in column t has seen every column \
               up to t. This map is its hidden state (conv5.lr); the strip below shows both directions and \
               their merge. With the right→left scan beside it the pair sees the whole row: press ↓ twice \
               to select conv5, and the line under the list says 'the whole row'.",
        model: "context-lrnn-finetuned",
        photo: "astronaut.png",
        view: View::Layers,
        map: Some("conv5.lr"),
        unit: Some(("conv5", 0, 12, 12)),
        scale: 1.0,
        rf_depth: false,
    },
    Step {
        title: "Four of them see the whole image",
        text: "conv6 adds a top→bottom and bottom→top pair on top of the row pair: a unit of one layer now \
               depends on every pixel. Compare its ERF (left) with the same network with every V at zero \
               (right), whose field ends at 16 pixels. In the plot the L-RNN layers jump to the whole image \
               while the CNN's curves stay flat.",
        model: "context-lrnn-finetuned",
        photo: "astronaut.png",
        view: View::Field,
        map: Some("conv6"),
        unit: Some(("conv6", 0, 12, 12)),
        scale: 1.0,
        rf_depth: true,
    },
    Step {
        title: "Inserted with V = 0, an L-RNN changes nothing",
        text: "This model was made by inserting L-RNN pairs into the trained CNN with V = 0, the paper's \
               initialisation: then h_t = f(U x_t + b) is a 1×1 convolution and the network computes exactly \
               what the CNN did. With the V slider at 0 both ERFs below are the CNN's. Move the slider \
               towards 1 and watch the trained recurrence spread the field.",
        model: "context-lrnn-finetuned",
        photo: "astronaut.png",
        view: View::Field,
        map: Some("conv6"),
        unit: Some(("conv6", 0, 12, 12)),
        scale: 0.0,
        rf_depth: false,
    },
    Step {
        title: "Fine-tuning spreads the field and solves a long-range task",
        text: "The context task asks whether two marks far apart in an image have the same colour. The CNN, \
               whose field is 16 pixels, stays at chance; with the inserted L-RNNs fine-tuned it is nearly \
               always right (RESULTS.md). Press Start to fine-tune further live: the loss falls and the ERF \
               timeline shows the field snapshot by snapshot. To begin from the CNN itself: Model → \
               Context-CNN, insert pairs into conv5 and conv6 (Layers), then fine-tune.",
        model: "context-lrnn-finetuned",
        photo: "astronaut.png",
        view: View::FineTune,
        map: Some("conv6"),
        unit: Some(("conv6", 0, 12, 12)),
        scale: 1.0,
        rf_depth: false,
    },
    Step {
        title: "The spectral radius sets how far it remembers",
        text: "A component along an eigenvector of V shrinks like |λ|^t at every step of the scan. conv5's \
               left→right V has spectral radius ρ ≈ 0.97, so the scan remembers about 32 columns \
               (−1/ln ρ). Move the V slider to 0.5: ρ halves, the memory drops to about 1.4 steps, and \
               the ERF in the Receptive field tab shrinks with it.",
        model: "context-lrnn-finetuned",
        photo: "astronaut.png",
        view: View::Recurrence,
        map: Some("conv6"),
        unit: Some(("conv6", 0, 12, 12)),
        scale: 1.0,
        rf_depth: false,
    },
];

/// The lesson's state: the step on show, and a step waiting for its model and photo to load.
#[derive(Debug, Default)]
pub struct Lesson {
    /// The step on show (`None`: the lesson is closed).
    pub step: Option<usize>,
    /// A step whose model or photo is loading; its layer, unit and scale follow on arrival.
    pending: Option<usize>,
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

impl Lesson {
    /// Shows step `i` (clamped): opens its model and photo where another is shown, then sets the
    /// layer, the unit, the V scale and (for some steps) the receptive field against depth.
    pub fn go(&mut self, i: usize, shared: &mut crate::shared::Shared, view: &mut View) {
        let i = i.min(STEPS.len() - 1);
        let step = &STEPS[i];
        self.step = Some(i);
        *view = step.view;
        let assets = crate::options::assets_dir();
        let model = assets.join("models").join(step.model);
        let photo = assets.join("photos").join(step.photo);
        let (need_model, need_photo) = match shared.analysis.as_deref() {
            Some(a) => (!same_file(&a.model_dir, &model), !same_file(&a.photo, &photo)),
            None => (true, true),
        };
        if need_model || need_photo {
            self.pending = Some(i);
            let job = crate::protocol::Job::Load {
                model: need_model.then_some(model),
                photo: need_photo.then_some(photo),
            };
            shared.send(job, &format!("lesson: opening {} and {}", step.model, step.photo));
        } else {
            self.pending = None;
            Self::settle_step(step, shared);
        }
    }

    /// A new analysis arrived: a step waiting for it sets its layer, unit and scale now.
    pub fn loaded(&mut self, shared: &mut crate::shared::Shared) {
        if let Some(i) = self.pending.take() {
            Self::settle_step(&STEPS[i], shared);
        }
    }

    /// A job failed: a step waiting for its model stops waiting (the error is shown).
    pub fn failed(&mut self) {
        self.pending = None;
    }

    fn settle_step(step: &Step, shared: &mut crate::shared::Shared) {
        if let Some(m) = step.map {
            shared.select_map(m);
        }
        let has_v = shared.analysis.as_deref().is_some_and(|a| !a.recurrences.is_empty());
        if has_v && (shared.scale - step.scale).abs() > 1e-9 {
            shared.set_scale(step.scale);
        }
        let scale = if has_v { step.scale } else { shared.scale };
        if let Some((map, channel, y, x)) = step.unit {
            let unit = crate::view_model::UnitRef { map: map.to_string(), channel, y, x };
            let shown = shared.erf.as_ref().is_some_and(|e| e.unit == unit && (e.scale - scale).abs() < 1e-9);
            if !shown {
                shared.request_erf(unit);
            }
        }
        if step.rf_depth {
            let current = match (shared.rf_depth.as_ref(), shared.analysis.as_deref()) {
                (Some(r), Some(a)) => {
                    r.channel.is_none()
                        && r.model_dir == a.model_dir
                        && r.photo == a.photo
                        && r.scale == scale
                }
                _ => false,
            };
            if !current {
                shared.send(crate::protocol::Job::RfDepth(None), "lesson: receptive field against depth");
            }
        }
    }

    /// The lesson's side panel: the step's title and text, Back / Next / Close.
    pub fn panel(&mut self, ui: &mut eframe::egui::Ui, shared: &mut crate::shared::Shared, view: &mut View) {
        use eframe::egui;
        let Some(i) = self.step else { return };
        let step = &STEPS[i];
        ui.horizontal(|ui| {
            ui.heading("Lesson");
            ui.label(format!("step {} of {}", i + 1, STEPS.len()));
        });
        ui.separator();
        ui.strong(step.title);
        ui.add_space(4.0);
        ui.add(egui::Label::new(step.text).wrap());
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.add_enabled(i > 0, egui::Button::new("◀ Back")).clicked() {
                self.go(i - 1, shared, view);
            }
            if ui.add_enabled(i + 1 < STEPS.len(), egui::Button::new("Next ▶")).clicked() {
                self.go(i + 1, shared, view);
            }
            if ui.button("Close").clicked() {
                self.step = None;
            }
        });
        ui.add_space(6.0);
        ui.weak(
            "Page Up / Page Down: previous / next step; F1 closes. Everything runs on the bundled models.",
        );
        ui.separator();
        for (k, s) in STEPS.iter().enumerate() {
            let text = format!("{}. {}", k + 1, s.title);
            if ui.selectable_label(k == i, text).clicked() && k != i {
                self.go(k, shared, view);
            }
        }
    }
}

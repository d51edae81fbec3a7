//! Recurrences over training, a section of the Recurrence view: for a run with snapshots (the
//! newest Fine-tune run, or any run folder), each matrix's spectral radius, memory length, change
//! from the start and pair difference against the step; stepping through the snapshots, the
//! eigenvalue cloud (the start's in grey), `V − V₀`, the pair's two directions side by side and
//! the top eigenvectors as per-channel bars.

use eframe::egui::{self, Color32};
use egui_plot::{Bar, BarChart, Legend, Line, MarkerShape, Plot, PlotPoints, Points};
use lrnn_core::colour::ColourMap;

use super::{colour_bar, export_as, Export};
use crate::protocol::Job;
use crate::shared::Shared;

/// What the plot over the steps shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Quantity {
    #[default]
    Radius,
    Memory,
    Change,
    Pairs,
}

/// The section's own state.
#[derive(Default)]
pub struct HistoryPanel {
    /// The matrix looked at (an index into the history's tracks).
    track: usize,
    /// The snapshot on show (an index into its steps).
    snapshot: usize,
    quantity: Quantity,
    /// The history last shown (`(run, snapshots)`): a new one opens at its last snapshot.
    seen: Option<(std::path::PathBuf, usize)>,
}

const COLOURS: [Color32; 7] = [
    Color32::from_rgb(0, 114, 178),
    Color32::from_rgb(213, 94, 0),
    Color32::from_rgb(0, 158, 115),
    Color32::from_rgb(204, 121, 167),
    Color32::from_rgb(230, 159, 0),
    Color32::from_rgb(86, 180, 233),
    Color32::from_rgb(240, 228, 66),
];

impl HistoryPanel {
    /// Draws the section.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        egui::CollapsingHeader::new("Over training")
            .id_salt("recurrence-history")
            .default_open(true)
            .show(ui, |ui| self.body(ui, shared));
    }

    fn body(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.label(
            "What training changed: every recurrence of a run's snapshots (a Fine-tune run, or `lrnn train \
             --checkpoint-every N`), from the model it started from to the last step.",
        );
        ui.horizontal(|ui| {
            let run = shared.finetune_run.clone();
            if super::long_job_progress(ui, shared, "matrices") {
                return;
            }
            if ui
                .add_enabled(run.is_some(), egui::Button::new("Read the Fine-tune run"))
                .on_disabled_hover_text("no fine-tuning run yet in this session (Fine-tune tab)")
                .clicked()
            {
                if let Some(dir) = run {
                    shared.send(Job::RecurrenceHistory(dir), "reading the run's recurrences");
                }
            }
            if ui.button("Open a run folder…").clicked() {
                if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                    shared.send(Job::RecurrenceHistory(dir), "reading the run's recurrences");
                }
            }
        });
        let Some(shown) = &shared.history else {
            ui.label("No run read yet.");
            return;
        };
        let h = &shown.history;
        if h.tracks.is_empty() || h.steps.is_empty() {
            return;
        }
        let now = Some((shown.run.clone(), h.steps.len()));
        if self.seen != now {
            // A new run opens at its end: what training changed.
            self.seen = now;
            self.snapshot = h.steps.len() - 1;
        }
        self.track = self.track.min(h.tracks.len() - 1);
        self.snapshot = self.snapshot.min(h.steps.len() - 1);
        let folder = shown
            .run
            .file_name()
            .map_or_else(|| shown.run.display().to_string(), |f| f.to_string_lossy().into_owned());
        ui.label(format!(
            "{folder}: {} snapshots, steps {}–{}",
            h.steps.len(),
            h.steps[0],
            h.steps[h.steps.len() - 1]
        ))
        .on_hover_text(shown.run.display().to_string());
        ui.horizontal(|ui| {
            ui.label("plot:");
            ui.radio_value(&mut self.quantity, Quantity::Radius, "spectral radius");
            ui.radio_value(&mut self.quantity, Quantity::Memory, "memory length");
            ui.radio_value(&mut self.quantity, Quantity::Change, "change from the start");
            ui.radio_value(&mut self.quantity, Quantity::Pairs, "difference between a pair's directions");
        });
        let at_step = h.steps[self.snapshot] as f64;
        Plot::new("history-over-steps")
            .height(200.0)
            .legend(Legend::default())
            .x_axis_label("training step")
            .include_y(0.0)
            .show(ui, |p| {
                let series: Vec<(String, Vec<[f64; 2]>)> = match self.quantity {
                    Quantity::Pairs => h
                        .pairs
                        .iter()
                        .map(|pair| {
                            let name = format!(
                                "{} / {}",
                                h.tracks[pair.first].label(),
                                h.tracks[pair.second].label()
                            );
                            (
                                name,
                                h.steps.iter().zip(&pair.difference).map(|(s, d)| [*s as f64, *d]).collect(),
                            )
                        })
                        .collect(),
                    q => h
                        .tracks
                        .iter()
                        .map(|t| {
                            let pts =
                                t.at.iter()
                                    .filter_map(|a| {
                                        let y = match q {
                                            Quantity::Radius => Some(a.spectrum.spectral_radius),
                                            Quantity::Memory => a.spectrum.memory_length,
                                            _ => Some(a.change),
                                        };
                                        y.filter(|v| v.is_finite()).map(|y| [a.step as f64, y])
                                    })
                                    .collect();
                            (t.label(), pts)
                        })
                        .collect(),
                };
                for (i, (name, pts)) in series.into_iter().enumerate() {
                    let c = COLOURS[i % COLOURS.len()];
                    p.line(Line::new(name.clone(), PlotPoints::from(pts.clone())).color(c));
                    p.points(
                        Points::new(name, PlotPoints::from(pts))
                            .id(format!("markers {i}"))
                            .color(c)
                            .radius(2.5),
                    );
                }
                p.vline(egui_plot::VLine::new("snapshot on show", at_step).color(Color32::GRAY));
            });
        if self.quantity == Quantity::Pairs && h.pairs.is_empty() {
            ui.label("No pair: the run's recurrences have no partner direction.");
        }
        let names: Vec<String> =
            h.tracks.iter().map(|t| format!("{} ({}×{})", t.label(), t.size, t.size)).collect();
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("matrix").selected_text(&names[self.track]).width(300.0).show_ui(
                ui,
                |ui| {
                    for (i, n) in names.iter().enumerate() {
                        ui.selectable_value(&mut self.track, i, n);
                    }
                },
            );
            let last = h.steps.len() - 1;
            ui.add(
                egui::Slider::new(&mut self.snapshot, 0..=last)
                    .text("snapshot")
                    .custom_formatter(|v, _| format!("step {}", h.steps[(v as usize).min(last)])),
            );
        });
        let t = &h.tracks[self.track];
        let (first, now) = (&t.at[0], &t.at[self.snapshot]);
        let mem = |m: Option<f64>| m.map_or("unbounded".to_string(), |m| format!("{m:.2} steps"));
        ui.label(format!(
            "step {}: ρ = {:.4} (start {:.4}), memory {} (start {}), ‖V − V₀‖ / ‖V₀‖ = {:.2}%",
            now.step,
            now.spectrum.spectral_radius,
            first.spectrum.spectral_radius,
            mem(now.spectrum.memory_length),
            mem(first.spectrum.memory_length),
            100.0 * now.change
        ));
        let run_key = shown.run.display().to_string();
        let side = 220.0;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label("eigenvalues (grey: at the start)");
                let circle = super::unit_circle(96);
                let cloud = |a: &lrnn_core::probe::recurrence_history::MatrixAt| -> Vec<[f64; 2]> {
                    a.spectrum.eigenvalues.iter().map(|&(re, im)| [re, im]).collect()
                };
                Plot::new("history-eigenvalues")
                    .data_aspect(1.0)
                    .width(side + 20.0)
                    .height(side)
                    .include_x(-1.1)
                    .include_x(1.1)
                    .include_y(-1.1)
                    .include_y(1.1)
                    .show(ui, |p| {
                        p.line(Line::new("unit circle", PlotPoints::from(circle)).color(Color32::GRAY));
                        p.points(
                            Points::new("start", PlotPoints::from(cloud(first)))
                                .radius(2.5)
                                .color(Color32::from_gray(150)),
                        );
                        p.points(
                            Points::new("now", PlotPoints::from(cloud(now)))
                                .radius(3.0)
                                .shape(MarkerShape::Circle)
                                .color(Color32::from_rgb(220, 60, 40)),
                        );
                    });
            });
            let delta = t.delta(self.snapshot);
            let cmap = ColourMap::Diverging;
            let key = format!("hist/{run_key}/{}/{}/delta", self.track, self.snapshot);
            let (tex, range) = shared.textures.map(ui.ctx(), &key, cmap, || (delta.clone(), t.size, t.size));
            ui.vertical(|ui| {
                ui.label("V − V₀ (what training added)");
                ui.add(egui::Image::new(&tex).fit_to_exact_size(egui::vec2(side, side)));
            });
            colour_bar(ui, cmap, range, side);
            let partner =
                t.partner_name().and_then(|n| h.tracks.iter().position(|u| u.name == n && u.gate == t.gate));
            if let Some(j) = partner {
                let u = &h.tracks[j];
                let diff = h
                    .pairs
                    .iter()
                    .find(|p| {
                        (p.first, p.second) == (self.track, j) || (p.first, p.second) == (j, self.track)
                    })
                    .and_then(|p| p.difference.get(self.snapshot).copied());
                for (k, (which, track)) in [(t.label(), t), (u.label(), u)].into_iter().enumerate() {
                    let values = track.at[self.snapshot].values.clone();
                    let key = format!("hist/{run_key}/{}/{}/pair{k}", self.track, self.snapshot);
                    let (tex, _) =
                        shared.textures.map(ui.ctx(), &key, cmap, || (values, track.size, track.size));
                    ui.vertical(|ui| {
                        ui.label(which);
                        ui.add(egui::Image::new(&tex).fit_to_exact_size(egui::vec2(side * 0.8, side * 0.8)));
                        if k == 1 {
                            if let Some(d) = diff {
                                ui.label(format!("the two directions differ by {:.1}%", 100.0 * d));
                            }
                        }
                    });
                }
            }
        });
        let vectors = shown.eigenvectors.get(self.track).and_then(|v| v.get(self.snapshot));
        match vectors {
            Some(v) if !v.is_empty() => {
                ui.label("top eigenvectors, per channel (turned so the largest entry is real and positive; real part)");
                ui.horizontal(|ui| {
                    for (k, e) in v.iter().enumerate() {
                        let bars: Vec<Bar> = e
                            .bars
                            .iter()
                            .enumerate()
                            .map(|(c, &b)| Bar::new(c as f64, b).width(0.8))
                            .collect();
                        ui.vertical(|ui| {
                            let (re, im) = e.eigenvalue;
                            ui.label(format!("λ{} = {re:.3}{:+.3}i (|λ| = {:.3})", k + 1, im, re.hypot(im)));
                            Plot::new(format!("eigvec-{k}"))
                                .width(300.0)
                                .height(120.0)
                                .include_y(-1.0)
                                .include_y(1.0)
                                .show(ui, |p| {
                                    p.bar_chart(
                                        BarChart::new("channels", bars).color(COLOURS[k % COLOURS.len()]),
                                    );
                                });
                        });
                    }
                });
            }
            _ => {
                ui.label(format!(
                    "Eigenvectors of matrices larger than {0}×{0} are computed at the last snapshot only.",
                    crate::view_model::EAGER_SPECTRUM
                ));
            }
        }
        export_as(ui, shared, "Export over training PNG + CSV…", "lrnn-recurrence-history.png", |s| {
            let h = &s.history.as_ref()?.history;
            Some(Export {
                picture: h.radius_chart("Spectral radius over training").render(900, 480),
                csv: h.csv(),
            })
        });
    }
}

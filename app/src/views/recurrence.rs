//! The Recurrence view: each recurrence matrix `V` (each gate's block for a GRU) as a heatmap,
//! its eigenvalues on the complex plane with the unit circle, its spectral radius and the memory
//! length it implies (SPEC §7), at the V slider's scale.

use eframe::egui;
use egui_plot::{Line, MarkerShape, Plot, PlotPoints, Points};
use lrnn_core::colour::ColourMap;

use super::{colour_bar, export_button, painted_rgb, Export, Panel, View};
use crate::shared::Shared;

/// The Recurrence view's own state: the matrix on show, and whether the spectra the analysis
/// lacks were asked for.
#[derive(Default)]
pub struct RecurrenceView {
    /// The matrix on show (an index into the analysis' recurrences).
    recurrence: usize,
    /// Whether the spectra missing from the current analysis were asked for.
    spectra_asked: bool,
    /// Recurrences over training.
    history: super::recurrence_history::HistoryPanel,
}

impl Panel for RecurrenceView {
    fn loaded(&mut self, shared: &Shared, _model_changed: bool) {
        self.spectra_asked = false;
        let n = shared.analysis.as_ref().map_or(0, |a| a.recurrences.len());
        self.recurrence = self.recurrence.min(n.saturating_sub(1));
    }

    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some((recurrences, scale)) = shared.analysis.as_deref().map(|a| (a.recurrences.clone(), a.scale))
        else {
            ui.label("Loading…");
            return;
        };
        ui.heading("Recurrence matrices");
        if recurrences.is_empty() {
            ui.label("This model has no recurrence (a plain CNN). Insert an L-RNN pair in the Layers tab.");
            ui.separator();
            self.history.ui(ui, shared);
            return;
        }
        ui.label(format!(
            "h_t = f(U x_t + V h_(t-1) + b): a mode along an eigenvector of V decays like |λ|^t, so the \
             spectral radius ρ sets how far along a row or column the scan remembers (memory length \
             -1/ln ρ steps). Shown at the V slider's scale ({:.2}).",
            scale
        ));
        let missing = recurrences.iter().filter(|r| r.spectrum.is_none()).count();
        if missing > 0 {
            if !self.spectra_asked {
                self.spectra_asked = true;
                shared.send(crate::protocol::Job::Spectra, "computing the recurrence spectra");
            }
            ui.label(format!(
                "Computing the spectra of {missing} matrices larger than {0}×{0} (seconds each)…",
                crate::view_model::EAGER_SPECTRUM
            ));
        }
        let rho = |r: &crate::view_model::RecurrenceInfo| {
            r.spectrum.as_ref().map_or("…".to_string(), |s| {
                if s.spectral_radius.is_nan() {
                    "? (the eigen-decomposition did not converge)".to_string()
                } else {
                    format!("{:.4}", s.spectral_radius)
                }
            })
        };
        let names: Vec<String> = recurrences
            .iter()
            .map(|r| format!("{} [{}] {}×{}, ρ = {}", r.name, r.gate, r.size, r.size, rho(r)))
            .collect();
        let mut sel = self.recurrence.min(names.len() - 1);
        egui::ComboBox::from_label("matrix").selected_text(&names[sel]).width(420.0).show_ui(ui, |ui| {
            for (i, n) in names.iter().enumerate() {
                ui.selectable_value(&mut sel, i, n);
            }
        });
        self.recurrence = sel;
        let r = recurrences[sel].clone();
        let empty = lrnn_core::probe::recurrence::Spectrum {
            eigenvalues: vec![],
            singular_values: vec![],
            spectral_radius: f64::NAN,
            memory_length: None,
        };
        let sp = r.spectrum.as_ref().unwrap_or(&empty);
        ui.horizontal(|ui| {
            ui.label(format!("spectral radius ρ = {}", rho(&r)));
            ui.separator();
            ui.label(match (&r.spectrum, sp.memory_length) {
                (None, _) => "memory length …".to_string(),
                (Some(s), _) if s.spectral_radius.is_nan() => "memory length ?".to_string(),
                (_, Some(m)) => format!("memory length {m:.2} steps"),
                (_, None) => "memory length: unbounded (ρ ≥ 1)".to_string(),
            });
            ui.separator();
            ui.label(format!(
                "largest singular value {:.4}",
                sp.singular_values.first().copied().unwrap_or(0.0)
            ));
            ui.separator();
            export_button(ui, shared, View::Recurrence, |s| self.export(s));
        });
        ui.horizontal_top(|ui| {
            let cmap = ColourMap::Diverging;
            let key = format!("rec/{}/{}/{}", r.name, r.gate, scale);
            let (tex, range) =
                shared.textures.map(ui.ctx(), &key, cmap, || (r.values.clone(), r.size, r.size));
            ui.vertical(|ui| {
                ui.label("V (row: to, column: from)");
                let side = 320.0;
                let resp = ui.add(
                    egui::Image::new(&tex)
                        .fit_to_exact_size(egui::vec2(side, side))
                        .sense(egui::Sense::hover()),
                );
                if let Some(p) = resp.hover_pos() {
                    let k = side / r.size as f32;
                    let (col, row) =
                        (((p.x - resp.rect.left()) / k) as usize, ((p.y - resp.rect.top()) / k) as usize);
                    if row < r.size && col < r.size {
                        resp.on_hover_text(format!("V[{row}, {col}] = {:.4}", r.values[row * r.size + col]));
                    }
                }
            });
            colour_bar(ui, cmap, range, 320.0);
            ui.vertical(|ui| {
                ui.label("eigenvalues λ on the complex plane, with the unit circle");
                let circle = super::unit_circle(128);
                let eig: Vec<[f64; 2]> = sp.eigenvalues.iter().map(|&(re, im)| [re, im]).collect();
                Plot::new("eigenvalues")
                    .data_aspect(1.0)
                    .width(360.0)
                    .height(340.0)
                    .include_x(-1.1)
                    .include_x(1.1)
                    .include_y(-1.1)
                    .include_y(1.1)
                    .show(ui, |p| {
                        p.line(Line::new("unit circle", PlotPoints::from(circle)).color(egui::Color32::GRAY));
                        p.points(
                            Points::new("eigenvalues", PlotPoints::from(eig))
                                .radius(3.5)
                                .shape(MarkerShape::Circle)
                                .color(egui::Color32::from_rgb(220, 60, 40)),
                        );
                    });
            });
        });
        ui.separator();
        ui.strong("Every matrix");
        egui::Grid::new("recurrence-table").striped(true).show(ui, |ui| {
            ui.label("matrix");
            ui.label("gate");
            ui.label("size");
            ui.label("ρ");
            ui.label("memory (steps)");
            ui.end_row();
            for r in &recurrences {
                ui.label(&r.name);
                ui.label(r.gate);
                ui.label(format!("{}", r.size));
                ui.label(rho(r));
                ui.label(match &r.spectrum {
                    Some(s) => s.memory_length.map_or("unbounded".to_string(), |m| format!("{m:.2}")),
                    None => "…".to_string(),
                });
                ui.end_row();
            }
        });
        ui.separator();
        self.history.ui(ui, shared);
    }

    fn export(&self, shared: &Shared) -> Option<Export> {
        let a = shared.analysis.as_deref()?;
        let r = a.recurrences.get(self.recurrence)?;
        let range = ColourMap::Diverging.range(&r.values);
        let picture = painted_rgb(&r.values, r.size, r.size, ColourMap::Diverging, range);
        let zoom = (320 / r.size.max(1)).max(1) as u32;
        let picture = image::imageops::resize(
            &picture,
            r.size as u32 * zoom,
            r.size as u32 * zoom,
            image::imageops::FilterType::Nearest,
        );
        let mut csv = String::from("matrix,gate,kind,i,re,im\n");
        for (i, (re, im)) in r.spectrum.iter().flat_map(|s| s.eigenvalues.iter()).enumerate() {
            csv.push_str(&format!("{},{},eigenvalue,{i},{re},{im}\n", r.name, r.gate));
        }
        for (i, v) in r.values.iter().enumerate() {
            csv.push_str(&format!("{},{},value,{i},{v},0\n", r.name, r.gate));
        }
        Some(Export { picture, csv })
    }
}

//! The Receptive field view: a unit's effective receptive field over the photo with its
//! theoretical field outlined, beside the same unit's ERF with every `V` at zero (the CNN the
//! L-RNNs were inserted into), with the mass numbers; a click on the map below picks the unit.

use eframe::egui::{self, Color32, Stroke};

use super::{color_image, export_as, export_button, overlay_on_original, Export, Panel, View};
use crate::shared::Shared;
use crate::view_model::{ErfPicture, UnitRef};

fn side(s: Option<usize>) -> String {
    s.map_or("-".to_string(), |v| format!("{v} px"))
}

/// The Receptive field view (the ERF on show is shared; receptive field against depth has its
/// channel choice here).
#[derive(Default)]
pub struct FieldView {
    /// One channel's centre unit in the depth plot (`None`: the mean over channels).
    pub depth_channel: Option<usize>,
}

impl Panel for FieldView {
    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if shared.analysis.is_none() {
            ui.label("Loading…");
            return;
        }
        ui.heading("Effective receptive field");
        ui.label(
            "The gradient magnitude of one unit with respect to the input pixels (Luo et al. 2016), on \
             this photo; the white box is the theoretical receptive field. Move the V slider to go from the \
             plain CNN (0) to the trained L-RNN (1).",
        );
        let (Some(a), Some(e)) = (shared.analysis.as_deref(), &shared.erf) else {
            ui.label("No unit chosen yet: click one in the map below.");
            unit_picker(ui, shared);
            ui.separator();
            rf_depth_section(ui, shared, &mut self.depth_channel);
            return;
        };
        let (unit, size, theo) = (e.unit.clone(), e.size, e.theoretical);
        let scale = e.scale;
        let mut panels: Vec<(String, ErfPicture, _)> =
            vec![(format!("this model (V × {scale:.2})"), e.model.clone(), e.theoretical)];
        if let Some(c) = &e.cnn {
            panels.push(("its CNN (every V = 0)".to_string(), c.clone(), e.theoretical_cnn));
        }
        ui.strong(unit.to_string());
        ui.horizontal(|ui| {
            for (i, (title, p, theo)) in panels.iter().enumerate() {
                let key = format!("erf/{i}/{unit}/{scale}");
                let tex = shared.textures.get(ui.ctx(), &key, || {
                    color_image(&overlay_on_original(&a.original, &p.values, size, 360))
                });
                ui.vertical(|ui| {
                    ui.label(title);
                    let shown = tex.size_vec2();
                    let r = ui.add(egui::Image::new(&tex).fit_to_exact_size(shown));
                    let (kx, ky) = (r.rect.width() / size as f32, r.rect.height() / size as f32);
                    if let Some(((r0, r1), (c0, c1))) = *theo {
                        let rect = egui::Rect::from_min_max(
                            r.rect.min + egui::vec2(c0 as f32 * kx, r0 as f32 * ky),
                            r.rect.min + egui::vec2((c1 + 1) as f32 * kx, (r1 + 1) as f32 * ky),
                        );
                        ui.painter().rect_stroke(
                            rect,
                            0.0,
                            Stroke::new(2.0, Color32::WHITE),
                            egui::StrokeKind::Inside,
                        );
                    }
                    let (cy, cx) = p.centre;
                    let centre = r.rect.min + egui::vec2((cx + 0.5) * kx, (cy + 0.5) * ky);
                    ui.painter().circle_stroke(centre, 4.0, Stroke::new(2.0, Color32::from_rgb(255, 60, 60)));
                    ui.label(format!(
                        "centred squares holding 20% / 50% / 99% of the gradient: {} / {} / {}{}",
                        side(p.mass[0]),
                        side(p.mass[1]),
                        side(p.mass[2]),
                        if p.on_gpu { " (gradient computed on the GPU)" } else { "" }
                    ));
                });
            }
        });
        let words = |t: Option<((usize, usize), (usize, usize))>| {
            t.map_or("not known for this map".to_string(), |((r0, r1), (c0, c1))| {
                format!("rows {r0}–{r1}, columns {c0}–{c1} of the {size}×{size} input")
            })
        };
        ui.label(format!("theoretical receptive field (white box): {}", words(theo)));
        if e.cnn.is_some() {
            ui.label(format!("the CNN's theoretical receptive field: {}", words(e.theoretical_cnn)));
        }
        if e.cnn.is_none() {
            ui.label("This model has no recurrence: it is its own CNN.");
        }
        export_button(ui, shared, View::Field, |s| self.export(s));
        ui.separator();
        rf_depth_section(ui, shared, &mut self.depth_channel);
        ui.separator();
        unit_picker(ui, shared);
    }

    fn export(&self, shared: &Shared) -> Option<Export> {
        let a = shared.analysis.as_deref()?;
        let e = shared.erf.as_ref()?;
        let mut pictures = vec![overlay_on_original(&a.original, &e.model.values, e.size, 360)];
        let mut csv = String::from("which,y,x,erf\n");
        let mut rows = vec![("model", &e.model)];
        if let Some(c) = &e.cnn {
            pictures.push(overlay_on_original(&a.original, &c.values, e.size, 360));
            rows.push(("cnn", c));
        }
        for (which, p) in rows {
            for (i, v) in p.values.iter().enumerate() {
                csv.push_str(&format!("{which},{},{},{v}\n", i / e.size, i % e.size));
            }
        }
        Some(Export { picture: lrnn_core::probe::render::side_by_side(&pictures, 8), csv })
    }
}

/// The selected map's first channel (or the ERF's map), to click a unit on.
fn unit_picker(ui: &mut egui::Ui, shared: &mut Shared) {
    let Some(a) = shared.analysis.as_deref() else { return };
    let name = shared.erf.as_ref().map(|e| e.unit.map.clone());
    let m = name
        .and_then(|n| a.maps.iter().find(|m| m.name == n))
        .or_else(|| a.maps.get(shared.selected))
        .filter(|m| m.shape.1 > 1)
        .or_else(|| a.maps.iter().rev().find(|m| m.shape.1 > 1));
    let Some(m) = m.cloned() else { return };
    let ch = shared.erf.as_ref().filter(|e| e.unit.map == m.name).map_or(0, |e| e.unit.channel);
    let (_, h, w) = m.shape;
    ui.label(format!("Pick a unit: {} channel {ch} (other maps: Layers tab)", m.name));
    let cmap = shared.colour_map;
    let key = format!("pick/{}/{ch}/{cmap:?}", m.name);
    let (tex, _) = shared.textures.map(ui.ctx(), &key, cmap, || (m.channel(ch).to_vec(), h, w));
    let zoom = (240.0 / w.max(h) as f32).clamp(1.0, 24.0);
    let r = ui.add(
        egui::Image::new(&tex)
            .fit_to_exact_size(egui::vec2(w as f32 * zoom, h as f32 * zoom))
            .sense(egui::Sense::click()),
    );
    if let Some(p) = r.interact_pointer_pos().filter(|_| r.clicked()) {
        let x = (((p.x - r.rect.left()) / zoom) as usize).min(w - 1);
        let y = (((p.y - r.rect.top()) / zoom) as usize).min(h - 1);
        shared.request_erf(UnitRef { map: m.name.clone(), channel: ch, y, x });
    }
}

/// Receptive field against depth: the button that computes it on the worker (with progress and
/// Stop), and the plot of the theoretical field and the 50% / 99% ERF squares over the layers,
/// for the model and its CNN.
fn rf_depth_section(ui: &mut egui::Ui, shared: &mut Shared, channel: &mut Option<usize>) {
    use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints, Points};
    egui::CollapsingHeader::new("Receptive field against depth").id_salt("rf-depth").default_open(true).show(
        ui,
        |ui| {
            ui.label(
                "For each layer in forward order: the theoretical receptive field (dashed) and the sides of the \
                 centred squares holding 50% and 99% of the centre unit's effective field on this photo, for \
                 this model and for its CNN (every V at zero). A CNN's effective field grows more slowly than \
                 its theoretical one; an L-RNN layer reaches the whole image.",
            );
            ui.horizontal(|ui| {
                let mut one = channel.is_some();
                ui.radio_value(&mut one, false, "mean over channels");
                ui.radio_value(&mut one, true, "one channel:");
                let mut c = channel.unwrap_or(0);
                ui.add_enabled(one, egui::DragValue::new(&mut c).range(0..=4095));
                *channel = one.then_some(c);
                if !super::long_job_progress(ui, shared, "backward passes")
                    && ui.button("Compute on this photo").clicked()
                {
                    let what = "computing the receptive field against depth";
                    shared.send(crate::protocol::Job::RfDepth(*channel), what);
                }
            });
            let Some(shown) = &shared.rf_depth else {
                ui.label("Not computed yet for this model.");
                return;
            };
            if let Some(a) = shared.analysis.as_deref() {
                if a.model_dir != shown.model_dir || a.photo != shown.photo || a.scale != shown.scale {
                    ui.colored_label(
                        Color32::from_rgb(200, 120, 0),
                        format!(
                            "computed for another model, photo or V scale ({}, V × {:.2}): compute again",
                            shown.photo.file_name().map_or(String::new(), |f| f.to_string_lossy().into_owned()),
                            shown.scale
                        ),
                    );
                }
            }
            ui.label(format!("backward passes on {}", shown.device));
            let d = &shown.data;
            let names: Vec<String> = d.model.iter().map(|r| r.name.clone()).collect();
            let (h, w) = d.input;
            let colours = [Color32::from_rgb(0, 114, 178), Color32::from_rgb(213, 94, 0)];
            let xs = names.clone();
            Plot::new("rf-depth")
                .height(220.0)
                .legend(Legend::default().position(egui_plot::Corner::LeftTop))
                .include_y(0.0)
                .x_axis_formatter(move |mark, _| {
                    let i = mark.value.round();
                    if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                        xs.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_axis_label("layer")
                .y_axis_label("side (input pixels)")
                .show(ui, |p| {
                    let curves = [("model", Some(&d.model)), ("CNN (V = 0)", d.cnn.as_ref())];
                    for ((who, rows), colour) in curves.into_iter().zip(colours) {
                        let Some(rows) = rows else { continue };
                        let pts = |f: &dyn Fn(&lrnn_core::probe::rf_depth::DepthRow) -> Option<f64>| {
                            rows.iter()
                                .enumerate()
                                .filter_map(|(i, r)| f(r).map(|v| [i as f64, v]))
                                .collect::<Vec<_>>()
                        };
                        let theo = pts(&|r| Some(r.theoretical_in_image));
                        let e99 = pts(&|r| r.erf99.map(|v| v as f64));
                        let e50 = pts(&|r| r.erf50.map(|v| v as f64));
                        let faint = colour.gamma_multiply(0.55);
                        let name = format!("{who}: theoretical");
                        p.line(Line::new(name, PlotPoints::from(theo)).color(colour).style(LineStyle::dashed_loose()));
                        let name99 = format!("{who}: ERF 99%");
                        p.line(Line::new(name99.clone(), PlotPoints::from(e99.clone())).color(colour).width(2.0));
                        p.points(Points::new(name99, PlotPoints::from(e99)).id(format!("{who} 99 markers")).color(colour).radius(3.0));
                        let name50 = format!("{who}: ERF 50%");
                        p.line(Line::new(name50, PlotPoints::from(e50)).color(faint).width(2.0));
                    }
                    p.hline(egui_plot::HLine::new(format!("the image ({h}×{w})"), h.max(w) as f64).color(Color32::GRAY));
                });
            if d.cnn.is_none() {
                ui.label("This model has no recurrence: it is its own CNN (one curve).");
            }
            let title = shared.analysis.as_deref().map_or(String::new(), |a| a.model.clone());
            export_as(ui, shared, "Export the plot PNG + CSV…", "lrnn-rf-depth.png", |s| {
                let d = &s.rf_depth.as_ref()?.data;
                Some(Export {
                    picture: d.chart(&format!("Receptive field against depth: {title}")).render(960, 560),
                    csv: d.csv(),
                })
            });
        },
    );
}

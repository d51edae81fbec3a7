//! The Receptive field view: a unit's effective receptive field over the photo with its
//! theoretical field outlined, beside the same unit's ERF with every `V` at zero (the CNN the
//! L-RNNs were inserted into), with the mass numbers; a click on the map below picks the unit.

use eframe::egui::{self, Color32, Stroke};

use super::{color_image, export_button, overlay_on_original, Export, Panel, View};
use crate::shared::Shared;
use crate::view_model::{ErfPicture, UnitRef};

fn side(s: Option<usize>) -> String {
    s.map_or("-".to_string(), |v| format!("{v} px"))
}

/// The Receptive field view (its state is the shared ERF on show).
#[derive(Default)]
pub struct FieldView;

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
                        "centred squares holding 20% / 50% / 99% of the gradient: {} / {} / {}",
                        side(p.mass[0]),
                        side(p.mass[1]),
                        side(p.mass[2])
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

//! The Layers view: the layer list, the selected map's channels as a grid with a colour map and
//! a colour bar (hover reads values, a click asks for the unit's ERF), an L-RNN module's four
//! direction maps beside its merged output, and class probabilities.

use std::sync::Arc;

use eframe::egui;
use lrnn_core::colour::ColourMap;
use lrnn_core::models::capture::MapKind;
use lrnn_core::probe::activations::channel_grid;

use super::{colour_bar, export_button, overlay_on_original, painted_rgb, Export, Panel, View};
use crate::shared::Shared;
use crate::view_model::{InsertTarget, MapData, UnitRef};

/// Channels shown in one grid.
pub const GRID: usize = 16;

/// The grid of channels `first..first + GRID` of a map: values with NaN gaps, its size, columns.
pub fn grid_of(m: &MapData, first: usize) -> (Vec<f32>, usize, usize, usize, usize) {
    let (_, h, w) = m.shape;
    let (first, n, cols) = grid_layout(m, first);
    let (grid, gh, gw) = channel_grid(&m.values[first * h * w..(first + n) * h * w], (n, h, w), cols);
    (grid, gh, gw, cols, n)
}

/// Which channels a grid starting at `first` shows, `(first, count, columns)`.
fn grid_layout(m: &MapData, first: usize) -> (usize, usize, usize) {
    let held = m.held_channels();
    let first = first.min(held.saturating_sub(1));
    let n = (held - first).min(GRID);
    (first, n, (n as f64).sqrt().ceil() as usize)
}

/// The maps of the L-RNN module a map belongs to: its directions and the merged map (`None`
/// when the map is not part of one).
pub fn module_of(maps: &[Arc<MapData>], name: &str) -> Option<(Vec<Arc<MapData>>, Arc<MapData>)> {
    let prefix = match maps.iter().find(|m| m.name == name)?.kind {
        MapKind::Direction => name.rsplit_once('.')?.0,
        _ => name,
    };
    let merged = Arc::clone(maps.iter().find(|m| m.name == prefix)?);
    let dirs: Vec<Arc<MapData>> = maps
        .iter()
        .filter(|m| m.kind == MapKind::Direction && m.name.rsplit_once('.').is_some_and(|(p, _)| p == prefix))
        .cloned()
        .collect();
    (!dirs.is_empty()).then_some((dirs, merged))
}

/// The Layers view's own state: the channel page of the selected map and the insertion form.
pub struct LayersView {
    /// The first channel of the grid.
    first_channel: usize,
    /// The map (index) `first_channel` belongs to: another selection starts at channel 0.
    channels_of: usize,
    /// The convolution chosen for an insertion.
    insert_layer: usize,
    /// The axis of the pair to insert.
    insert_axis: lrnn_core::nn::Axis,
}

impl Default for LayersView {
    fn default() -> Self {
        Self {
            first_channel: 0,
            channels_of: 0,
            insert_layer: 0,
            insert_axis: lrnn_core::nn::Axis::Horizontal,
        }
    }
}

impl LayersView {
    /// The first channel shown of the selected map (0 after another map was selected).
    fn first_channel(&self, shared: &Shared) -> usize {
        if self.channels_of == shared.selected {
            self.first_channel
        } else {
            0
        }
    }

    /// The side panel: the list of maps (a click selects one) and the insertion form.
    pub fn layer_list(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Layers");
        ui.label("Up/Down step through them; Left/Right step through a folder's photos");
        let Some(a) = &shared.analysis else {
            ui.label("Nothing loaded yet.");
            return;
        };
        let mut clicked = None;
        egui::ScrollArea::vertical().show(ui, |ui| {
            for (i, m) in a.maps.iter().enumerate() {
                let (c, h, w) = m.shape;
                let indent = if m.kind == MapKind::Direction { "    " } else { "" };
                let text = if m.kind == MapKind::Output {
                    format!("{} ({c} scores)", m.name)
                } else {
                    format!("{indent}{}  {c}×{h}×{w}", m.name)
                };
                let r = ui.selectable_label(i == shared.selected, text);
                if i == shared.selected {
                    r.scroll_to_me(None);
                }
                if r.clicked() {
                    clicked = Some(i);
                }
            }
        });
        if let Some(i) = clicked {
            shared.selected = i;
        }
        rf_panel(ui, shared);
        self.insert_panel(ui, shared);
    }

    fn insert_panel(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = &shared.analysis else { return };
        ui.separator();
        ui.strong("Insert an L-RNN pair (V = 0)");
        if a.insertable.is_empty() {
            ui.label("This model takes no insertions here (plain convnets, and FCNs without L-RNNs).");
            return;
        }
        if a.insertable == [InsertTarget::FcnHeads] {
            if a.model.contains("-Caffe") {
                ui.label("Pairs go after fc6 (horizontal) and fc7 (vertical), the paper's placement in Long et al.'s FCN.");
            } else {
                ui.label("Pairs go into the FCN's heads as in the paper: a horizontal pair on fc1, fc4, fc7 and a vertical one on fc2, fc5, fc8.");
            }
            if ui.button("Insert into the heads").clicked() {
                shared.insert(InsertTarget::FcnHeads, lrnn_core::nn::Axis::Horizontal);
            }
            ui.label(
                "The new model segments exactly as this one until fine-tuned (`lrnn train-seg --init-from`).",
            );
            return;
        }
        let layers = a.insertable.clone();
        self.insert_layer = self.insert_layer.min(layers.len() - 1);
        egui::ComboBox::from_label("into").selected_text(layers[self.insert_layer].to_string()).show_ui(
            ui,
            |ui| {
                for (i, l) in layers.iter().enumerate() {
                    ui.selectable_value(&mut self.insert_layer, i, l.to_string());
                }
            },
        );
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.insert_axis, lrnn_core::nn::Axis::Horizontal, "left-right");
            ui.radio_value(&mut self.insert_axis, lrnn_core::nn::Axis::Vertical, "top-bottom");
        });
        if ui.button("Insert").clicked() {
            let target = layers[self.insert_layer].clone();
            shared.insert(target, self.insert_axis);
        }
        ui.label("The new model scores exactly as this one until fine-tuned (Fine-tune tab).");
    }

    /// For a map inside an L-RNN module: each direction's hidden state and the merged output,
    /// side by side, for the first shown channel.
    fn module_strip(&self, ui: &mut egui::Ui, shared: &mut Shared, m: &MapData) {
        let Some(a) = shared.analysis.as_deref() else { return };
        let Some((dirs, merged)) = module_of(&a.maps, &m.name) else { return };
        let ch = self.first_channel(shared);
        ui.separator();
        ui.strong(format!("The L-RNN module: each scan direction and the merged output (channel {ch})"));
        let mut all = dirs;
        all.push(merged);
        let cmap = shared.colour_map;
        ui.horizontal(|ui| {
            for d in &all {
                let (_, h, w) = d.shape;
                let key = format!("strip/{}/{ch}/{cmap:?}", d.name);
                let (tex, range) =
                    shared.textures.map(ui.ctx(), &key, cmap, || (d.channel(ch).to_vec(), h, w));
                let zoom = (150.0 / w.max(h) as f32).clamp(1.0, 16.0);
                ui.vertical(|ui| {
                    ui.label(&d.name);
                    ui.add(
                        egui::Image::new(&tex)
                            .fit_to_exact_size(egui::vec2(w as f32 * zoom, h as f32 * zoom)),
                    );
                    ui.label(format!("[{:.2}, {:.2}]", range.0, range.1));
                });
            }
        });
    }

    fn erf_thumbnail(ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else { return };
        let Some(e) = &shared.erf else { return };
        ui.strong("Effective receptive field");
        ui.label(e.unit.to_string());
        let key = format!("erf-thumb/{}/{}", e.unit, e.scale);
        let tex = shared.textures.get(ui.ctx(), &key, || {
            super::color_image(&overlay_on_original(&a.original, &e.model.values, e.size, 300))
        });
        ui.add(egui::Image::new(&tex));
        ui.label("More in the Receptive field tab (with the CNN beside it).");
    }

    fn class_scores(&self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else { return };
        let best = a.classes.iter().enumerate().max_by(|x, y| x.1 .1.total_cmp(&y.1 .1)).map(|(i, _)| i);
        for (i, (name, p)) in a.classes.iter().enumerate() {
            ui.horizontal(|ui| {
                let text = format!("{name}: {:.1}%", 100.0 * p);
                let label = if Some(i) == best { egui::RichText::new(text).strong() } else { text.into() };
                ui.add_sized([180.0, 18.0], egui::Label::new(label));
                ui.add(egui::ProgressBar::new(*p).desired_width(260.0));
            });
        }
        export_button(ui, shared, View::Layers, |s| self.export(s));
    }
}

impl Panel for LayersView {
    fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(a) = shared.analysis.as_deref() else {
            ui.label("Loading…");
            return;
        };
        let Some(m) = a.maps.get(shared.selected).cloned() else { return };
        if self.channels_of != shared.selected {
            self.channels_of = shared.selected;
            self.first_channel = 0;
        }
        let (c, h, w) = m.shape;
        let kind = match m.kind {
            MapKind::Layer => "layer output",
            MapKind::Direction => "one scan direction's hidden states",
            MapKind::Output => "class scores",
        };
        ui.heading(&m.name);
        ui.label(format!("{kind}: {c} channels of {h}×{w}"));
        if m.kind == MapKind::Output && h == 1 {
            self.class_scores(ui, shared);
            return;
        }
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("colour map").selected_text(shared.colour_map.name()).show_ui(
                ui,
                |ui| {
                    for cm in ColourMap::ALL {
                        ui.selectable_value(&mut shared.colour_map, cm, cm.name());
                    }
                },
            );
            let held = m.held_channels();
            if held > GRID {
                ui.add(egui::Slider::new(&mut self.first_channel, 0..=held - 1).text("first channel"));
            }
            export_button(ui, shared, View::Layers, |s| self.export(s));
        });
        let (first, n, cols) = grid_layout(&m, self.first_channel);
        let cmap = shared.colour_map;
        let key = format!("grid/{}/{first}/{cmap:?}", m.name);
        // The grid is built and coloured once per map, channel page and colour map, not per frame.
        let (tex, range) = shared.textures.map(ui.ctx(), &key, cmap, || {
            let (grid, gh, gw, _, _) = grid_of(&m, first);
            (grid, gh, gw)
        });
        let [gw, gh] = tex.size();
        let zoom = (430.0 / gw.max(gh) as f32).clamp(1.0, 24.0);
        ui.label(format!(
            "channels {first}–{} of {c}, {cols} per row; hover reads a value, a click shows that unit's receptive field",
            first + n - 1
        ));
        let mut clicked_unit = None;
        ui.horizontal_top(|ui| {
            let size = egui::vec2(gw as f32 * zoom, gh as f32 * zoom);
            let r = ui.add(egui::Image::new(&tex).fit_to_exact_size(size).sense(egui::Sense::click()));
            colour_bar(ui, cmap, range, size.y.min(300.0));
            let at = r.hover_pos().or(r.interact_pointer_pos()).and_then(|p| {
                let (gx, gy) =
                    (((p.x - r.rect.left()) / zoom) as usize, ((p.y - r.rect.top()) / zoom) as usize);
                let (tile_x, x, tile_y, y) = (gx / (w + 1), gx % (w + 1), gy / (h + 1), gy % (h + 1));
                let ch = first + tile_y * cols + tile_x;
                (x < w && y < h && tile_x < cols && ch < first + n).then_some((ch, y, x))
            });
            if let Some((ch, y, x)) = at {
                if let Some(v) = m.value(ch, y, x) {
                    r.clone().on_hover_text(format!("channel {ch}, row {y}, column {x}: {v:.4}"));
                }
                if r.clicked() {
                    clicked_unit = Some(UnitRef { map: m.name.clone(), channel: ch, y, x });
                }
            }
            ui.add_space(16.0);
            ui.vertical(|ui| Self::erf_thumbnail(ui, shared));
        });
        if let Some(u) = clicked_unit {
            shared.request_erf(u);
        }
        self.module_strip(ui, shared, &m);
    }

    fn export(&self, shared: &Shared) -> Option<Export> {
        let a = shared.analysis.as_deref()?;
        let m = a.maps.get(shared.selected)?;
        let (c, h, w) = m.shape;
        let mut csv = String::from("map,channel,y,x,value\n");
        for ch in 0..m.held_channels() {
            for y in 0..h {
                for x in 0..w {
                    csv.push_str(&format!("{},{ch},{y},{x},{}\n", m.name, m.values[(ch * h + y) * w + x]));
                }
            }
        }
        if m.kind == MapKind::Output && h == 1 {
            csv = String::from("class,score,probability\n");
            for (i, (name, p)) in a.classes.iter().enumerate() {
                csv.push_str(&format!("{name},{},{p}\n", m.values.get(i).copied().unwrap_or(f32::NAN)));
            }
            let bars: Vec<f32> = a.classes.iter().map(|(_, p)| *p).collect();
            let picture = painted_rgb(&bars, 1, c.max(1), ColourMap::Viridis, (0.0, 1.0));
            return Some(Export {
                picture: image::imageops::resize(
                    &picture,
                    40 * c as u32,
                    40,
                    image::imageops::FilterType::Nearest,
                ),
                csv,
            });
        }
        let (grid, gh, gw, _, _) = grid_of(m, self.first_channel(shared));
        let range = shared.colour_map.range(&grid);
        let picture = painted_rgb(&grid, gh, gw, shared.colour_map, range);
        let zoom = (512 / gw.max(gh).max(1)).clamp(1, 16) as u32;
        let picture = image::imageops::resize(
            &picture,
            gw as u32 * zoom,
            gh as u32 * zoom,
            image::imageops::FilterType::Nearest,
        );
        Some(Export { picture, csv })
    }
}

/// The receptive-field arithmetic of the selected layer in one line, and of every layer in a
/// table that opens below it (Araujo et al.'s quantities: kernel, stride, padding, jump, field,
/// the centre of the first unit's field).
fn rf_panel(ui: &mut egui::Ui, shared: &Shared) {
    let Some(a) = &shared.analysis else { return };
    if a.rf_table.is_empty() {
        return;
    }
    ui.separator();
    let num = |v: f64| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    let selected = a.maps.get(shared.selected).map(|m| m.name.as_str());
    match selected.and_then(|n| a.rf_table.iter().rev().find(|r| r.name == n)) {
        Some(r) => ui.label(format!(
            "Receptive field of {}: {} · jump {} px · first unit centred at {} px",
            r.name,
            r.size_words(),
            num(r.width.jump),
            num(r.width.start)
        )),
        None => ui.label("Receptive field: pick a layer (direction maps: see their pair's row)"),
    };
    egui::CollapsingHeader::new("Receptive-field arithmetic, every layer").id_salt("rf-table").show(
        ui,
        |ui| {
            egui::ScrollArea::vertical().id_salt("rf-table-scroll").max_height(260.0).show(ui, |ui| {
                egui::Grid::new("rf-table-grid").striped(true).show(ui, |ui| {
                    for h in ["layer", "kernel", "stride", "pad", "jump", "field", "first centre"] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for r in &a.rf_table {
                        let text = |s: String| egui::RichText::new(s);
                        let strong = Some(r.name.as_str()) == selected;
                        let cell = |ui: &mut egui::Ui, s: String| {
                            if strong {
                                ui.label(text(s).strong());
                            } else {
                                ui.label(text(s));
                            }
                        };
                        cell(ui, r.name.clone());
                        cell(ui, r.kernel.to_string());
                        cell(ui, r.stride.to_string());
                        cell(ui, r.pad.to_string());
                        cell(ui, num(r.width.jump));
                        cell(ui, r.size_words());
                        cell(ui, num(r.width.start));
                        ui.end_row();
                    }
                });
            });
        },
    );
}

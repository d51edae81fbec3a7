//! What the app keeps between runs: the UI scale (1x–2x, for a projector) and the colour-blind-
//! safe colours. One small JSON file (`$XDG_CONFIG_HOME/lrnn/studio.json`, else
//! `~/.config/lrnn/studio.json`), written atomically whenever a setting changes; a missing file
//! means the defaults, a damaged one the defaults and a notice naming it (it is replaced only
//! when a setting is changed).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The smallest and largest UI scale.
pub const UI_SCALE: (f32, f32) = (1.0, 2.0);

/// The settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The UI's zoom factor, in [`UI_SCALE`].
    pub ui_scale: f32,
    /// Maps in cividis (made for colour-vision deficiency) instead of viridis.
    pub colour_blind: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { ui_scale: 1.0, colour_blind: false }
    }
}

impl Settings {
    /// The settings in `path`: the defaults when there is no file; the defaults and a message
    /// naming the file when it cannot be read or parsed.
    pub fn load(path: &Path) -> (Self, Option<String>) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Self::default(), None),
            Err(e) => {
                return (Self::default(), Some(format!("{}: {e}; default settings used", path.display())))
            }
        };
        if bytes.len() > 64 * 1024 {
            return (
                Self::default(),
                Some(format!("{}: too large for a settings file; defaults used", path.display())),
            );
        }
        match serde_json::from_slice::<Settings>(&bytes) {
            Ok(s) => (s.checked(), None),
            Err(e) => (
                Self::default(),
                Some(format!("{}: not valid settings ({e}); defaults used", path.display())),
            ),
        }
    }

    /// The same with every value in its range (a hand-edited file may hold anything).
    pub fn checked(self) -> Self {
        let scale = if self.ui_scale.is_finite() { self.ui_scale.clamp(UI_SCALE.0, UI_SCALE.1) } else { 1.0 };
        Self { ui_scale: scale, ..self }
    }

    /// Writes the settings to `path` (its folder created).
    ///
    /// # Errors
    /// The file cannot be written, in words naming it.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        lrnn_core::io::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_damaged_and_out_of_range_files() {
        let dir = std::env::temp_dir().join(format!("lrnn-settings-{}", std::process::id()));
        let path = dir.join("studio.json");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Settings::load(&path), (Settings::default(), None));
        let s = Settings { ui_scale: 1.5, colour_blind: true };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), (s, None));
        std::fs::write(&path, b"{\"ui_scale\": 9e9}").unwrap();
        assert_eq!(Settings::load(&path).0.ui_scale, 2.0);
        std::fs::write(&path, b"\xff not json").unwrap();
        let (d, msg) = Settings::load(&path);
        assert_eq!(d, Settings::default());
        assert!(msg.unwrap().contains("studio.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Fonts for every script a file name may hold. egui's bundled fonts cover Latin, Greek,
//! Cyrillic and emoji; behind them the app adds the first fonts it finds of a short list of
//! system fonts (Noto CJK, Droid Sans Fallback, WenQuanYi, DejaVu for Arabic and Hebrew, Symbola
//! for emoji and symbols, and the CJK fonts of Windows and macOS), and any font named by `LRNN_STUDIO_FONT`. A character that
//! no font has is drawn as a box: a photo named in any script opens and its name shows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use eframe::egui::{self, FontData, FontDefinitions, FontFamily};

/// The environment variable naming one more font file (TTF, OTF or TTC) to fall back on.
pub const FONT_ENV: &str = "LRNN_STUDIO_FONT";

/// System fonts tried, in order; every one found is added (CJK first, then other scripts).
pub const SYSTEM_FONTS: &[&str] = &[
    // Debian / Ubuntu (fonts-noto-cjk, fonts-droid-fallback, fonts-wqy-microhei, fonts-dejavu)
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
    // Fedora / Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    // macOS
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    // Windows
    "C:\\Windows\\Fonts\\msyh.ttc",
    "C:\\Windows\\Fonts\\seguisym.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The font files that will be added: `LRNN_STUDIO_FONT` first, then the system fonts found
/// (at most `max` of them: each is read whole, and CJK fonts are large).
pub fn fallback_files(max: usize) -> Vec<PathBuf> {
    let user = std::env::var_os(FONT_ENV).map(PathBuf::from).filter(|p| p.is_file());
    user.into_iter().chain(SYSTEM_FONTS.iter().map(PathBuf::from).filter(|p| p.is_file())).take(max).collect()
}

/// Adds the fallback fonts behind egui's own, for both families; returns the files added.
/// A file that cannot be read is skipped.
pub fn install(ctx: &egui::Context) -> Vec<PathBuf> {
    let mut defs = FontDefinitions::default();
    let mut added = Vec::new();
    for path in fallback_files(5) {
        if let Some(data) = read_font(&path) {
            let name = format!("fallback:{}", path.display());
            defs.font_data.insert(name.clone(), Arc::new(data));
            for family in [FontFamily::Proportional, FontFamily::Monospace] {
                defs.families.entry(family).or_default().push(name.clone());
            }
            added.push(path);
        }
    }
    if !added.is_empty() {
        ctx.set_fonts(defs);
    }
    added
}

/// A font file's data, or `None` when it cannot be read or is not a font (checked by its
/// first bytes: TrueType, OpenType or a collection), or is over 64 MiB.
fn read_font(path: &Path) -> Option<FontData> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > 64 << 20 {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let magic = bytes.get(..4)?;
    let known = [&[0, 1, 0, 0][..], b"OTTO", b"ttcf", b"true"];
    known.contains(&magic).then(|| FontData::from_owned(bytes))
}

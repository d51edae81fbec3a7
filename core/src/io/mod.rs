//! Files: safetensors weights and tensors, JSON model descriptions, atomic writes.

pub mod atomic;
pub mod model_files;
pub mod onnx;
pub mod tensors;
pub mod vgg16;

pub use atomic::{refuse_overwriting_inputs, write_atomic, write_folder};
pub use tensors::{
    load_into_varmap, non_finite, read_tensors, require_tensor, write_tensors, write_tensors_as,
};

/// Reads a whole file, refusing a folder, or a file larger than the memory budget
/// ([`crate::limits`]) before reading it.
///
/// # Errors
/// [`crate::Error::Io`] or [`crate::Error::File`] naming the file.
pub fn read_file(path: &std::path::Path) -> crate::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| crate::Error::io(path, e))?;
    if meta.is_dir() {
        return Err(crate::Error::file(path, "is a folder, not a file"));
    }
    crate::limits::check_memory(meta.len(), "reading this file")
        .map_err(|problem| crate::Error::file(path, problem))?;
    std::fs::read(path).map_err(|e| crate::Error::io(path, e))
}

thread_local! {
    /// Set while a [`guarded`] reader runs on this thread: its panic is an error, not news.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a third-party reader that may panic on a malformed file (candle's pickle reader does,
/// on some broken `.pth` files): a panic becomes [`crate::Error::File`] naming `path`, and its
/// message is not printed (other threads' panics still are).
pub(crate) fn guarded<T>(
    path: &std::path::Path,
    read: impl FnOnce() -> crate::Result<T>,
) -> crate::Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    GUARDED.with(|g| g.set(false));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        Err(crate::Error::file(path, format!("malformed: its reader gave up on it ({why})")))
    })
}

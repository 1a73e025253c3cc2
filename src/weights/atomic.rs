//! Crash-safe file replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Removes the temporary file unless the write was committed (also on panic).
struct TemporaryFile {
    path: PathBuf,
    committed: bool,
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which
/// is flushed, synced to disk and then renamed over `path`. Readers therefore see
/// either the old file or the complete new one, never a partial file, even if the
/// process dies midway. On any error the temporary file is removed and `path` is
/// left untouched.
pub fn atomic_write<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::invalid_argument(format!("{} is not a file path", path.display())))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary_path = folder.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary_path)
        .map_err(|e| Error::io(&temporary_path, e))?;
    let mut guard = TemporaryFile {
        path: temporary_path,
        committed: false,
    };
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    write(&mut writer)?;
    writer.flush().map_err(|e| Error::io(&guard.path, e))?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io(&guard.path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&guard.path, e))?;
    drop(file);
    fs::rename(&guard.path, path).map_err(|e| Error::io(path, e))?;
    guard.committed = true;
    // Persist the rename itself; not every platform can open a folder, so best effort.
    if let Ok(folder) = File::open(&folder) {
        let _ = folder.sync_all();
    }
    Ok(())
}

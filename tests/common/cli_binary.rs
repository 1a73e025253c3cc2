//! Where the `brainsam` binary is for tests and benchmarks of the root package.
//!
//! The CLI is its own package (cli/, `brainsam-cli`), so `CARGO_BIN_EXE_brainsam` does not
//! exist here: the binary is found next to the running test, in `target/<profile>/`, where
//! `cargo build` (and `cargo test` at the workspace root, which builds the CLI package's
//! binary for its own tests) puts it. A missing or stale binary is an error that says
//! which command builds it, never a skip.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `brainsam` binary of the current profile; panics with the command to run when it
/// is missing or older than a source file of the library or the CLI.
pub fn brainsam_cli() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <profile>/deps");
    let profile_name = profile
        .file_name()
        .map_or("debug".into(), |n| n.to_string_lossy());
    let release = if profile_name == "release" {
        " --release"
    } else {
        ""
    };
    let binary = profile.join("brainsam");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "the brainsam CLI is not built at {}: run `cargo build{release}` (or \
                 `cargo build{release} -p brainsam-cli`) at the repository root first",
                binary.display()
            )
        });
    // Carried test binaries (scripts/gpu-run) have no sources beside them to compare with.
    if std::env::var_os("BRAINSAM_ROOT").is_none() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Some(newer) = newest_source(&[root.join("src"), root.join("cli/src")])
            .filter(|(_, modified)| *modified > built)
        {
            panic!(
                "the brainsam CLI at {} is older than {}: run `cargo build{release}` at the \
                 repository root first",
                binary.display(),
                newer.0.display()
            );
        }
    }
    binary
}

/// The most recently modified file under the folders, with its time.
fn newest_source(folders: &[PathBuf]) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut pending = folders.to_vec();
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if let Ok(modified) = meta.modified() {
                if newest.as_ref().is_none_or(|(_, time)| modified > *time) {
                    newest = Some((path, modified));
                }
            }
        }
    }
    newest
}

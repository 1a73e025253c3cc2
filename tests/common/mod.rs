//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo output folder of the current profile (where libbrainsam.so and the
/// `brainsam` binary are), found from the running test binary (`<dir>/deps/test-xxx`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <profile>/deps")
        .to_path_buf()
}

/// The built C library.
pub fn cdylib() -> PathBuf {
    let path = profile_dir().join("libbrainsam.so");
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// The repository's Python (with torch, numpy, nibabel, segment-anything).
pub fn python() -> PathBuf {
    let path = repo_root().join(".venv/bin/python");
    assert!(
        path.exists(),
        "{} missing: run scripts/setup first",
        path.display()
    );
    path
}

/// A fresh scratch folder for one test, under cargo's per-target temporary folder.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs a command, panicking with its full output when it fails; returns stdout.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{command:?} failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// The real-data folder named by BRAINSAM_DATA, or None (and a "skipped" line) when unset.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os("BRAINSAM_DATA") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            println!("skipped: BRAINSAM_DATA not set ({test})");
            None
        }
    }
}

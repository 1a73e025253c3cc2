//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brainsam::volume::grid::Grid;
use brainsam::volume::Volume;
use std::process::Command;

mod cli_binary;
#[allow(unused_imports)]
pub use cli_binary::brainsam_cli;

/// The repository root: `$BRAINSAM_ROOT` when set (test binaries carried to another
/// machine, see scripts/gpu-run), else the source folder they were built from.
pub fn repo_root() -> PathBuf {
    std::env::var_os("BRAINSAM_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
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

/// A fresh scratch folder for one test, under cargo's per-target temporary folder (or
/// `$BRAINSAM_TEST_TMPDIR` for test binaries carried to another machine).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("BRAINSAM_TEST_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = base.join(name);
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

/// A 2 mm RAS grid of a head-sized ellipsoid with a few brighter blobs where deep grey
/// matter would be (enough for the region-of-interest finder and the pipeline).
pub fn synthetic_head() -> Volume {
    synthetic_head_with_x_sign(1.0)
}

/// [`synthetic_head`] with voxel axis i pointing towards patient right (`x_sign` -1:
/// an LAS-like storage order) or left (+1: RAS).
pub fn synthetic_head_with_x_sign(x_sign: f64) -> Volume {
    let dims = [80, 96, 88];
    let spacing = 2.0;
    let centre = [40.0, 48.0, 40.0];
    let mut affine = [[0.0; 4]; 4];
    for axis in 0..3 {
        let sign = if axis == 0 { x_sign } else { 1.0 };
        affine[axis][axis] = sign * spacing;
        affine[axis][3] = -sign * centre[axis] * spacing;
    }
    affine[3][3] = 1.0;
    let grid = Grid::from_ras_affine(dims, affine).unwrap();
    let mut data = vec![0f32; dims.iter().product()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let p = [
                    (i as f64 - centre[0]) * spacing,
                    (j as f64 - centre[1]) * spacing,
                    (k as f64 - centre[2]) * spacing,
                ];
                let head = (p[0] / 70.0).powi(2) + (p[1] / 90.0).powi(2) + (p[2] / 75.0).powi(2);
                let mut value = if head < 1.0 { 100.0 } else { 0.0 };
                for blob in [[-20.0, 0.0, -5.0], [20.0, 0.0, -5.0], [0.0, -10.0, -15.0]] {
                    let d: f64 = (0..3).map(|a| (p[a] - blob[a]).powi(2)).sum();
                    if d < 100.0 {
                        value = 160.0;
                    }
                }
                // A little texture so the image is not piecewise constant.
                value += ((i * 7 + j * 13 + k * 17) % 11) as f32 as f64;
                data[grid.linear_index(i, j, k)] = value as f32;
            }
        }
    }
    Volume::new(grid, data).unwrap()
}

/// A small random model (tiny configuration, 13 classes) shared by the tests of one test
/// binary, created once.
pub fn test_checkpoint() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch_dir(&format!("{}_model", env!("CARGO_CRATE_NAME")));
        let path = dir.join("tiny.safetensors");
        let config = brainsam::model::SamConfig::tiny().with_num_classes(12);
        brainsam::session::init_model(&path, &config, 7).unwrap();
        path
    })
}

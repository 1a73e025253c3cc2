//! The ITK application (examples/itk): built with CMake against ITK and the BrainSAM
//! package, run on a synthetic NIfTI; its label map must have the input's geometry and
//! the labels the Rust API (and the `brainsam segment` CLI, when the binary has it)
//! produces for the same file.
//!
//! Skips with a message only when ITK's CMake package is absent (Debian:
//! libinsighttoolkit5-dev).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use brainsam::model::SamConfig;
use brainsam::session::{init_model, Model, ModelOptions, Session, SessionOptions};
use brainsam::volume::grid::Grid;
use brainsam::volume::Volume;
use common::{cdylib, repo_root, run, scratch_dir, synthetic_head_with_x_sign};

/// ITK's CMake package folder, if ITK is installed.
fn itk_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ITK_DIR") {
        return Some(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/cmake");
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("ITK-"))
                && path.join("ITKConfig.cmake").is_file()
        })
}

fn labels_of(path: &Path) -> (Grid, Vec<u8>) {
    let volume = Volume::read(path).unwrap();
    let labels = volume.data().iter().map(|&v| v.round() as u8).collect();
    (volume.grid().clone(), labels)
}

fn assert_same_geometry(a: &Grid, b: &Grid, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: dims");
    for (row_a, row_b) in a.voxel_to_ras().iter().zip(b.voxel_to_ras()) {
        for (x, y) in row_a.iter().zip(row_b) {
            assert!(
                (x - y).abs() < 1e-4,
                "{what}: affine {:?} vs {:?}",
                a.voxel_to_ras(),
                b.voxel_to_ras()
            );
        }
    }
}

/// Whether the `brainsam` binary has the `segment` subcommand.
fn cli_has_segment(cli: &Path) -> bool {
    Command::new(cli)
        .args(["segment", "--help"])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn itk_application_matches_the_rust_api_and_keeps_the_geometry() {
    let Some(itk) = itk_dir() else {
        println!(
            "skipped: ITK not found (no /usr/lib/cmake/ITK-*/ITKConfig.cmake, ITK_DIR unset): \
             install libinsighttoolkit5-dev"
        );
        return;
    };
    let dir = scratch_dir("itk_app");
    let checkpoint = dir.join("tiny.safetensors");
    init_model(&checkpoint, &SamConfig::tiny().with_num_classes(12), 7).unwrap();
    let input = dir.join("head.nii.gz");
    synthetic_head_with_x_sign(-1.0).write(&input).unwrap();

    // Reference: the same file through the Rust API.
    let model = Model::load(&ModelOptions {
        checkpoint: Some(checkpoint.clone()),
        ..ModelOptions::default()
    })
    .unwrap();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    let volume = Volume::read(&input).unwrap();
    session.set_volume(volume.clone()).unwrap();
    let reference = session.segment_all(&mut |_, _| true).unwrap().clone();
    assert!(
        reference.data().iter().any(|&l| l != 0),
        "the reference segmentation is empty: the comparison would prove little"
    );

    let build = dir.join("build");
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo_root().join("examples/itk"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DITK_DIR={}", itk.display()))
        .arg(format!(
            "-DBrainSAM_DIR={}",
            repo_root().join("cmake").display()
        ))
        .arg(format!("-DBrainSAM_LIBRARY={}", cdylib().display()))
        .arg("-DCMAKE_BUILD_TYPE=Release"));
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .arg("--parallel")
        .arg("2"));
    let output = dir.join("labels_itk.nii.gz");
    let stats = run(Command::new(build.join("brainsam_itk"))
        .arg(&input)
        .arg(&output)
        .arg(&checkpoint)
        .arg("cpu")
        .env_remove("LD_LIBRARY_PATH"));
    assert_eq!(stats.lines().count(), 12, "{stats}");

    let (itk_grid, itk_labels) = labels_of(&output);
    assert_same_geometry(&itk_grid, volume.grid(), "ITK output vs input");
    let differing = itk_labels
        .iter()
        .zip(reference.data())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "the ITK application's labels differ from the Rust API's in {differing} voxels"
    );

    let cli = common::brainsam_cli();
    if cli_has_segment(&cli) {
        let cli_output = dir.join("labels_cli.nii.gz");
        run(Command::new(&cli)
            .arg("segment")
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&cli_output)
            .arg("--model")
            .arg(&checkpoint)
            .args(["--device", "cpu"]));
        let (cli_grid, cli_labels) = labels_of(&cli_output);
        assert_same_geometry(&cli_grid, &itk_grid, "CLI output vs ITK output");
        assert!(cli_labels == itk_labels, "ITK and CLI labels differ");
    } else {
        println!(
            "note: this brainsam binary has no `segment` command; compared with the Rust API only"
        );
    }
}

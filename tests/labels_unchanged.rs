//! Refactors change no result (issue 14, item 6): `brainsam segment` with the bundled
//! default model writes byte-identical label files on shared real volumes (BRAINSAM_DATA).
//!
//! First recorded with the `brainsam` binary of main 44a0bf9 (before issue 14's
//! redesign) and the 0.2 default model, checked to be the same with one and with two
//! libtorch threads; the redesigned code reproduced them. The values below belong to the
//! stage-11 default model (the stage-7 coronal model with an axial and a sagittal model
//! averaged in, the axial one trained further): recorded with the binary of the commit
//! that changed the model (whose code, with the stage-10 file, still wrote the stage-10
//! values), the same with one and
//! with two libtorch threads (checked on the MNE volume). They belong to one model file: when
//! models/brainsam-default.safetensors changes, the test fails saying so, and the
//! expected labels must be recorded again with the new model (run the commands below with
//! the binary of the commit that changed the model, before any other change).

mod common;

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// SHA-256 of models/brainsam-default.safetensors the label hashes were recorded with.
const DEFAULT_MODEL_SHA256: &str =
    "5bf67735291590ac0acd16f00073a033f90fcb9bda465b65c23bee233f2f0e32";

/// (volume under BRAINSAM_DATA, extra `segment` options, SHA-256 of the .nii written).
const EXPECTED: [(&str, &[&str], &str); 3] = [
    (
        "mne_testing_sample/T1_3mm.nii.gz",
        &[],
        "4e55c6c176827349e4dc438ce9576292377948d89bcae3dabe99d108944b42f3",
    ),
    (
        "freesurfer_training_data/sub-01/T1.nii.gz",
        &[],
        "d63148672b10990e7d5ea39802154601f8040a078293d53a806d37f87e0d5418",
    ),
    (
        "mricron_colin27_aal/ch2.nii.gz",
        &["--no-mirror", "--no-shift"],
        "de8f0e2cf897802e0bf3b250e28b6365ef10cf9bb2aa3ac947ed33b467c5d100",
    ),
];

fn sha256_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn segment_writes_the_labels_recorded_before_the_redesign() {
    let Some(data) = common::data_dir("labels_unchanged") else {
        return;
    };
    let model = common::repo_root().join("models/brainsam-default.safetensors");
    let model_hash = sha256_of(&model);
    assert_eq!(
        model_hash,
        DEFAULT_MODEL_SHA256,
        "{} is not the model the expected labels were recorded with: record the expected \
         label hashes in tests/labels_unchanged.rs again for the new model",
        model.display()
    );
    let dir = common::scratch_dir("labels_unchanged");
    let mut mismatches = Vec::new();
    for (index, (volume, options, expected)) in EXPECTED.iter().enumerate() {
        let output = dir.join(format!("labels_{index}.nii"));
        common::run(
            Command::new(common::brainsam_cli())
                .arg("segment")
                .arg("--input")
                .arg(data.join(volume))
                .arg("--output")
                .arg(&output)
                .arg("--model")
                .arg(&model)
                .arg("--device")
                .arg("cpu")
                .args(*options)
                // One libtorch thread: the labels are the same with two (checked when
                // recording), and tests running in parallel do not oversubscribe the CPU.
                .env("OMP_NUM_THREADS", "1"),
        );
        let actual = sha256_of(&output);
        if actual != *expected {
            mismatches.push(format!(
                "{volume} {options:?}: labels {actual}, expected {expected}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "label files differ from those recorded before the redesign:\n{}",
        mismatches.join("\n")
    );
}

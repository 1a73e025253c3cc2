//! The `brainsam` command-line tool end to end: segment, evaluate, info, init-model, and
//! its error messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use brainsam::volume::{LabelVolume, Volume};
use common::{scratch_dir, synthetic_head};

fn brainsam(args: &[&str]) -> Output {
    Command::new(common::brainsam_cli())
        .args(args)
        .output()
        .expect("run brainsam")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let output = brainsam(args);
    assert!(
        output.status.success(),
        "brainsam {args:?} failed:\n{}",
        text(&output)
    );
    text(&output)
}

fn fails_with(args: &[&str], expected: &str) {
    let output = brainsam(args);
    assert!(!output.status.success(), "brainsam {args:?} should fail");
    let message = text(&output);
    assert!(
        message.contains(expected),
        "expected {expected:?} in:\n{message}"
    );
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn segment_writes_labels_on_the_input_grid_with_volumes_and_overlay() {
    let dir = scratch_dir("cli_segment");
    let (input, model) = (dir.join("head.nii.gz"), dir.join("tiny.safetensors"));
    synthetic_head().write(&input).unwrap();
    ok(&["init-model", "--config", "tiny", "--out", s(&model)]);
    let (output, csv, png) = (dir.join("seg.nii.gz"), dir.join("v.csv"), dir.join("o.png"));
    let printed = ok(&[
        "segment",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--model",
        s(&model),
        "--device",
        "cpu",
        "--volumes",
        s(&csv),
        "--overlay",
        s(&png),
    ]);
    assert!(
        printed.contains("labels:") && printed.contains("Left thalamus"),
        "{printed}"
    );
    let image = Volume::read(&input).unwrap();
    let labels = Volume::read(&output).unwrap();
    assert_eq!(labels.grid(), image.grid());
    assert!(labels
        .data()
        .iter()
        .all(|&v| (0.0..=12.0).contains(&v) && v.fract() == 0.0));
    let table = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(table.lines().count(), 13, "{table}");
    assert!(table.starts_with("class,structure,voxels,volume_mm3,confidence,qc"));
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn dotted_output_names_are_written_as_requested() {
    // Reported as `--output a.b.nii` written as `a.nii` while `a.b.nii` was printed.
    let dir = scratch_dir("cli_dotted_output");
    let input = dir.join("head.nii.gz");
    synthetic_head().write(&input).unwrap();
    for name in ["a.b.nii", "sub-01.run.2.nii.gz"] {
        let output = dir.join(name);
        let printed = ok(&[
            "segment",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--model",
            s(common::test_checkpoint()),
            "--device",
            "cpu",
            "--no-mirror",
            "--no-shift",
        ]);
        assert!(
            printed.contains(&format!("labels:  {}", output.display())),
            "{printed}"
        );
        let labels = Volume::read(&output)
            .unwrap_or_else(|e| panic!("{name} not written as requested: {e}"));
        assert_eq!(labels.grid().dims(), synthetic_head().grid().dims());
    }
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["a.b.nii", "head.nii.gz", "sub-01.run.2.nii.gz"]);
}

#[test]
fn evaluate_prints_metrics_and_writes_json() {
    let dir = scratch_dir("cli_evaluate");
    let head = synthetic_head();
    // A reference in FreeSurfer codes and a prediction in class ids, one voxel apart.
    let mut reference = LabelVolume::zeros(head.grid().clone());
    let mut predicted = LabelVolume::zeros(head.grid().clone());
    for k in 30..40 {
        for j in 40..50 {
            for i in 20..30 {
                let index = head.grid().linear_index(i, j, k);
                reference.data_mut()[index] = 10; // FreeSurfer left thalamus
                predicted.data_mut()[head.grid().linear_index(i + 1, j, k)] = 1;
            }
        }
    }
    let (pred, refp, json) = (dir.join("p.nii.gz"), dir.join("r.nii"), dir.join("m.json"));
    predicted.write(&pred).unwrap();
    reference.write(&refp).unwrap();
    let printed = ok(&[
        "evaluate",
        "--pred",
        s(&pred),
        "--ref",
        s(&refp),
        "--ref-labels",
        "freesurfer",
        "--json",
        s(&json),
    ]);
    assert!(printed.contains("Left thalamus"), "{printed}");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let dice = metrics["structures"][0]["dice"].as_f64().unwrap();
    assert!((dice - 0.9).abs() < 1e-9, "dice {dice}");
    assert!(
        metrics["structures"][1]["dice"].is_null(),
        "absent in both: undefined"
    );
    // A custom mapping file works like the named scheme.
    let mapping = dir.join("map.csv");
    std::fs::write(&mapping, "# code,class\n10,1\n").unwrap();
    let printed = ok(&[
        "evaluate",
        "--pred",
        s(&pred),
        "--ref",
        s(&refp),
        "--ref-labels",
        s(&mapping),
    ]);
    assert!(printed.contains("0.9000"), "{printed}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = scratch_dir("cli_errors");
    let missing = dir.join("missing.nii.gz");
    fails_with(
        &[
            "segment",
            "--input",
            s(&missing),
            "--output",
            s(&dir.join("o.nii.gz")),
        ],
        "missing.nii.gz",
    );
    let input = dir.join("head.nii.gz");
    synthetic_head().write(&input).unwrap();
    fails_with(
        &[
            "segment",
            "--input",
            s(&input),
            "--output",
            "/nonexistent/folder/o.nii.gz",
        ],
        "does not exist",
    );
    fails_with(
        &[
            "segment",
            "--input",
            s(&input),
            "--output",
            s(&dir.join("o.nii")),
            "--device",
            "tpu",
        ],
        "unknown device",
    );
    let not_nifti = dir.join("notes.nii");
    std::fs::write(&not_nifti, "hello").unwrap();
    fails_with(
        &[
            "segment",
            "--input",
            s(&not_nifti),
            "--output",
            s(&dir.join("o.nii")),
        ],
        "notes.nii",
    );
    fails_with(
        &[
            "evaluate",
            "--pred",
            s(&input),
            "--ref",
            s(&input),
            "--ref-labels",
            "nope",
        ],
        "unknown label scheme",
    );
    // A reference on another grid.
    let head = synthetic_head();
    let small = LabelVolume::zeros(
        brainsam::volume::grid::Grid::from_ras_affine([10, 10, 10], *head.grid().voxel_to_ras())
            .unwrap(),
    );
    let (a, b) = (dir.join("a.nii"), dir.join("b.nii"));
    LabelVolume::zeros(head.grid().clone()).write(&a).unwrap();
    small.write(&b).unwrap();
    fails_with(&["evaluate", "--pred", s(&a), "--ref", s(&b)], "dimensions");
}

#[test]
fn info_reports_runtime_and_paper_parameter_counts() {
    let printed = ok(&[
        "info",
        "--config",
        "vit_b",
        "--input-size",
        "512",
        "--lora-rank",
        "16",
    ]);
    assert!(printed.contains("libtorch 2.11.0"), "{printed}");
    assert!(printed.contains("5917273 trainable"), "{printed}");
}

#[test]
fn combine_views_adds_and_replaces_orientations_that_info_lists() {
    use brainsam::session::{init_model, Model, ModelOptions};
    use brainsam::volume::frame::SliceOrientation;
    let dir = scratch_dir("cli_views");
    let coronal = common::test_checkpoint();
    let config = Model::load(&ModelOptions {
        checkpoint: Some(coronal.to_path_buf()),
        ..ModelOptions::default()
    })
    .unwrap()
    .config()
    .clone();
    let (axial, sagittal) = (
        dir.join("axial.safetensors"),
        dir.join("sagittal.safetensors"),
    );
    init_model(
        &axial,
        &config
            .clone()
            .with_slice_orientation(SliceOrientation::Axial),
        3,
    )
    .unwrap();
    init_model(
        &sagittal,
        &config
            .clone()
            .with_slice_orientation(SliceOrientation::Sagittal),
        4,
    )
    .unwrap();
    // Another axial model (other random weights), for --replace.
    let axial_again = dir.join("axial-again.safetensors");
    init_model(
        &axial_again,
        &config.with_slice_orientation(SliceOrientation::Axial),
        5,
    )
    .unwrap();
    let (two, three) = (dir.join("two.safetensors"), dir.join("three.safetensors"));
    ok(&[
        "combine-views",
        "--model",
        s(coronal),
        "--view",
        s(&axial),
        "--out",
        s(&two),
    ]);
    // A file with views takes more; the same orientation twice is refused.
    ok(&[
        "combine-views",
        "--model",
        s(&two),
        "--view",
        s(&sagittal),
        "--out",
        s(&three),
    ]);
    fails_with(
        &[
            "combine-views",
            "--model",
            s(&three),
            "--view",
            s(&axial),
            "--out",
            s(&dir.join("x.safetensors")),
        ],
        "orientation (axial) is already in the combined model",
    );
    // --replace swaps a view model for one trained further, and only one that is there.
    let replaced = dir.join("replaced.safetensors");
    let printed = ok(&[
        "combine-views",
        "--model",
        s(&three),
        "--view",
        s(&axial_again),
        "--replace",
        "--out",
        s(&replaced),
    ]);
    assert!(printed.contains("1 view model(s) replaced"), "{printed}");
    let axial_weight = |path: &Path| {
        let tensors = brainsam::weights::read_safetensors(path).unwrap().0;
        tensors
            .into_iter()
            .find(|(name, _)| name == "views.axial.image_encoder.patch_embed.proj.weight")
            .map(|(_, tensor)| tensor)
            .unwrap()
    };
    let moved =
        f64::try_from((axial_weight(&replaced) - axial_weight(&three)).abs().max()).unwrap();
    assert!(moved > 1e-3, "the axial view model was replaced");
    assert!(ok(&["info", "--model", s(&replaced)])
        .contains("reads coronal slices, with axial and sagittal models averaged"));
    fails_with(
        &[
            "combine-views",
            "--model",
            s(&two),
            "--view",
            s(&sagittal),
            "--replace",
            "--out",
            s(&dir.join("y.safetensors")),
        ],
        "holds no sagittal view model to replace",
    );
    let printed = ok(&["info", "--model", s(&three)]);
    assert!(
        printed.contains("reads coronal slices, with axial and sagittal models averaged"),
        "{printed}"
    );
    assert!(!ok(&["info", "--model", s(coronal)]).contains("averaged"));
}

#[test]
fn segment_outputs_are_checked_first_and_written_atomically() {
    let dir = scratch_dir("cli_outputs");
    let (input, model) = (dir.join("head.nii"), dir.join("tiny.safetensors"));
    synthetic_head().write(&input).unwrap();
    let input_bytes = std::fs::read(&input).unwrap();
    // Refused before any work (no model is even given, so segmenting would fail later).
    let started = std::time::Instant::now();
    fails_with(
        &[
            "segment",
            "--input",
            s(&input),
            "--output",
            s(&dir.join("seg.nrrd")),
        ],
        "must end in .nii or .nii.gz",
    );
    fails_with(
        &[
            "segment",
            "--input",
            s(&input),
            "--output",
            s(&dir.join("./head.nii")),
        ],
        "is the input file",
    );
    fails_with(
        &[
            "segment",
            "--input",
            s(&input),
            "--output",
            s(&dir.join("seg.nii")),
            "--volumes",
            s(&input),
        ],
        "is the input file",
    );
    assert!(started.elapsed().as_secs_f64() < 20.0);
    assert_eq!(
        std::fs::read(&input).unwrap(),
        input_bytes,
        "the input was touched"
    );

    // A full disk (simulated with a file-size limit: writes past 64 KiB fail with EFBIG)
    // leaves the previous output whole and no partial file behind.
    ok(&["init-model", "--config", "tiny", "--out", s(&model)]);
    let output = dir.join("seg.nii");
    std::fs::write(&output, b"previous result").unwrap();
    let limited = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128; exec \"$@\"")
        .arg("brainsam")
        .arg(common::brainsam_cli())
        .args(["segment", "--input", s(&input), "--output", s(&output)])
        .args([
            "--model",
            s(&model),
            "--device",
            "cpu",
            "--no-mirror",
            "--no-shift",
        ])
        .output()
        .unwrap();
    let message = text(&limited);
    assert!(!limited.status.success(), "{message}");
    assert!(message.contains("seg.nii"), "{message}");
    assert_eq!(std::fs::read(&output).unwrap(), b"previous result");
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn implausible_results_are_flagged_and_strict_refuses_them() {
    // A random tiny model on a phantom: nothing like a brain segmentation.
    let dir = scratch_dir("cli_qc");
    let (input, model) = (dir.join("head.nii.gz"), dir.join("tiny.safetensors"));
    synthetic_head().write(&input).unwrap();
    ok(&["init-model", "--config", "tiny", "--out", s(&model)]);
    let (output, csv) = (dir.join("seg.nii.gz"), dir.join("v.csv"));
    let common = [
        "segment",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--model",
        s(&model),
        "--device",
        "cpu",
        "--no-mirror",
        "--no-shift",
        "--volumes",
        s(&csv),
    ];
    let lenient = brainsam(&common);
    assert!(lenient.status.success(), "{}", text(&lenient));
    let stderr = String::from_utf8_lossy(&lenient.stderr);
    assert!(
        stderr.contains("warning: input QC:") && stderr.contains("implausible for a T1 brain"),
        "{stderr}"
    );
    let table = std::fs::read_to_string(&csv).unwrap();
    let flagged = table
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with(",ok"))
        .count();
    assert!(flagged > 0, "{table}");
    std::fs::remove_file(&output).unwrap();
    let mut strict = common.to_vec();
    strict.push("--strict");
    fails_with(&strict, "--strict: no output written");
    assert!(!output.exists(), "--strict wrote the label map");
}

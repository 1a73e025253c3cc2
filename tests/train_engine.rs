//! Fine-tuning engine on synthetic phantom heads with a tiny model: it learns, it is
//! deterministic, resume is exact, prompts help, outputs load for inference, and bad
//! input is reported before training.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brainsam::labels::LabelScheme;
use brainsam::metrics::evaluate;
use brainsam::session::{DeviceChoice, Model, ModelOptions, Session, SessionOptions};
use brainsam::train::{
    prompted_dice, Dataset, DatasetOptions, EvalPrompt, HeldOutSlices, LrDecay, Subject,
    TrainConfig, TrainOptions, Trainer,
};
use brainsam::volume::{Affine, Grid, Volume};
use brainsam::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SPACING: f64 = 4.0;
const DIM: usize = 44;

/// libtorch's random generator is process-wide and the trainer re-seeds it every
/// iteration, so two trainings in one process at the same time would draw from each
/// other's sequence: the tests that train take turns.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn training_turn() -> std::sync::MutexGuard<'static, ()> {
    TRAINING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn grid() -> Grid {
    let mut affine: Affine = [[0.0; 4]; 4];
    for (axis, row) in affine.iter_mut().take(3).enumerate() {
        row[axis] = SPACING;
        row[3] = -SPACING * (DIM as f64 - 1.0) / 2.0;
    }
    affine[3][3] = 1.0;
    Grid::from_ras_affine([DIM; 3], affine).unwrap()
}

/// A phantom head: scalp, brain and four blobs (FreeSurfer codes of L/R thalamus and
/// L/R putamen) whose positions and sizes vary with `seed`; `contrast` scales how
/// much the blobs differ from the brain.
/// A phantom head with four labelled blobs whose positions vary by up to `jitter` mm
/// per axis and whose intensity differs from the tissue around them by `40 × contrast`.
fn phantom(seed: u64, contrast: f32, jitter: f64) -> (Volume, Volume) {
    phantom_with_blobs(seed, contrast, jitter, 4)
}

/// [`phantom`] with only the first `count` of its blobs.
fn phantom_with_blobs(seed: u64, contrast: f32, jitter: f64, count: usize) -> (Volume, Volume) {
    let grid = grid();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // (code, centre R, A, S, radius, intensity offset)
    let blobs: Vec<(f32, [f64; 3], f64, f32)> = [
        (10.0, [-14.0, -4.0, -8.0], 1.0f32),
        (49.0, [14.0, -4.0, -8.0], 1.0),
        (12.0, [-28.0, 16.0, -14.0], -1.0),
        (51.0, [28.0, 16.0, -14.0], -1.0),
    ]
    .into_iter()
    .take(count)
    .map(|(code, centre, sign)| {
        let jitter = [
            rng.gen_range(-jitter..jitter),
            rng.gen_range(-jitter..jitter),
            rng.gen_range(-jitter..jitter),
        ];
        let c = [
            centre[0] + jitter[0],
            centre[1] + jitter[1],
            centre[2] + jitter[2],
        ];
        (code, c, rng.gen_range(13.0..17.0), sign * 40.0 * contrast)
    })
    .collect();
    let mut image = vec![0.0f32; grid.len()];
    let mut labels = vec![0.0f32; grid.len()];
    for k in 0..DIM {
        for j in 0..DIM {
            for i in 0..DIM {
                let p = grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                let n = grid.linear_index(i, j, k);
                let head = (p[0] / 70.0).powi(2) + (p[1] / 82.0).powi(2) + (p[2] / 75.0).powi(2);
                let brain = (p[0] / 60.0).powi(2) + (p[1] / 72.0).powi(2) + (p[2] / 62.0).powi(2);
                if head > 1.0 {
                    continue;
                }
                let noise: f32 = rng.gen_range(-8.0..8.0);
                image[n] = 60.0 + noise;
                if brain <= 1.0 {
                    image[n] = 100.0 + noise;
                    labels[n] = 2.0; // cerebral white matter: not a target
                }
                for &(code, c, r, offset) in &blobs {
                    let d2: f64 = (0..3).map(|a| (p[a] - c[a]).powi(2)).sum();
                    if d2 <= r * r {
                        image[n] = 100.0 + offset + noise;
                        labels[n] = code;
                    }
                }
            }
        }
    }
    (
        Volume::new(grid.clone(), image).unwrap(),
        Volume::new(grid, labels).unwrap(),
    )
}

fn subject(name: &str, seed: u64, contrast: f32) -> Subject {
    subject_with_jitter(name, seed, contrast, 5.0)
}

fn subject_with_jitter(name: &str, seed: u64, contrast: f32, jitter: f64) -> Subject {
    subject_from(name, seed, phantom(seed, contrast, jitter))
}

fn subject_from(name: &str, seed: u64, (image, labels): (Volume, Volume)) -> Subject {
    Subject {
        name: name.to_string(),
        source: format!("phantom {seed}"),
        image: Some(image),
        label_codes: labels,
        scheme: LabelScheme::FreeSurfer,
        held_out: None,
    }
}

fn tiny_config(output: &Path, iterations: u64) -> TrainConfig {
    let mut config = TrainConfig::default();
    config.model.config = "tiny".into();
    config.model.mode = "full".into();
    // 128 input: low-res logits of 32 px (4 mm) resolve the phantom blobs.
    config.model.input_size = Some(128);
    config.run.output_dir = output.to_path_buf();
    config.run.iterations = iterations;
    config.run.batch_size = 8;
    config.run.device = "cpu".into();
    config.run.seed = 7;
    config.run.validate_every = 0;
    config.run.checkpoint_every = 0;
    config.run.log_every = 5;
    config.optim.lr = 0.003;
    config.optim.warmup = 20;
    config.optim.weight_decay = 0.01;
    config
}

/// Three training phantoms and the validation phantom "val" (seed 4).
fn three_phantoms_and_validation() -> Vec<Subject> {
    vec![
        subject("a", 1, 1.0),
        subject("b", 2, 1.0),
        subject("c", 3, 1.0),
        subject("val", 4, 1.0),
    ]
}

fn read_weights(path: &Path) -> Vec<(String, tch::Tensor)> {
    brainsam::weights::read_safetensors(path).unwrap().0
}

#[test]
fn tiny_model_learns_phantoms_and_its_output_loads_for_inference() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_learns");
    let mut config = tiny_config(&dir, 400);
    config.validation = vec!["val".into()];
    config.run.validate_every = 200;
    config.prompts.probability = 0.3;
    let subjects = three_phantoms_and_validation();
    let started = std::time::Instant::now();
    let mut trainer = Trainer::with_subjects(config, subjects, TrainOptions::default()).unwrap();
    let mut calls = 0;
    let report = trainer
        .run(&mut |p| {
            calls += 1;
            assert!(p.loss.is_finite() && p.lr > 0.0);
            true
        })
        .unwrap();
    println!(
        "400 iterations in {:.1} s ({:.1} slices/s)",
        started.elapsed().as_secs_f64(),
        report.slices_per_second
    );
    assert_eq!(calls, 400);
    let validation = report.last_validation.clone().expect("validated");
    println!("validation: {validation:?}");
    let losses = &trainer.state().losses;
    assert!(
        losses.last().unwrap().loss < losses.first().unwrap().loss * 0.6,
        "loss did not fall: {:?} -> {:?}",
        losses.first(),
        losses.last()
    );
    assert!(
        validation.mean_dice > 0.5,
        "validation mean Dice {:.3} after 400 iterations",
        validation.mean_dice
    );
    // Outputs: curves, best model, final model loadable by Model::load.
    let outputs = &report.outputs;
    let png = std::fs::read(&outputs.plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let csv = std::fs::read_to_string(&outputs.validation_csv).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(outputs.best_model.as_ref().unwrap().is_file());
    check_loaded_model_matches_validation(&outputs.model, validation.mean_dice);
}

/// Loads a trained model like an application would and checks that a session on the
/// validation phantom (seed 4) scores what the trainer's validation reported; returns
/// the model.
fn check_loaded_model_matches_validation(path: &Path, validation_dice: f64) -> Arc<Model> {
    let model = Model::load(&ModelOptions {
        checkpoint: Some(path.to_path_buf()),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    let (image, labels) = phantom(4, 1.0, 5.0);
    let mut session = Session::new(Arc::clone(&model), SessionOptions::default()).unwrap();
    session.set_volume(image).unwrap();
    let predicted = session.segment_all(&mut |_, _| true).unwrap();
    let reference = LabelScheme::FreeSurfer.to_classes(&labels).unwrap();
    let dice = evaluate(predicted, &reference).unwrap().mean_dice.unwrap();
    assert!(
        (dice - validation_dice).abs() < 0.02,
        "loaded model Dice {dice} vs validation {validation_dice}"
    );
    model
}

#[test]
fn context_model_with_flips_learns_and_its_sessions_feed_the_same_context() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_context");
    let mut config = tiny_config(&dir, 300);
    // Two slices (8 mm) behind and in front, jittered to 1..3 slices; half the samples
    // mirrored.
    config.model.slice_context_mm = Some(2.0 * SPACING);
    config.augment.context_jitter = 0.5;
    config.augment.flip_probability = 0.5;
    config.validation = vec!["val".into()];
    config.run.validate_every = 300;
    let subjects = three_phantoms_and_validation();
    let mut trainer = Trainer::with_subjects(config, subjects, TrainOptions::default()).unwrap();
    assert_eq!(trainer.sam().config().slice_context_mm, 2.0 * SPACING);
    let report = trainer.run(&mut |_| true).unwrap();
    let validation = report.last_validation.clone().expect("validated");
    println!("context model validation: {validation:?}");
    assert!(
        validation.mean_dice > 0.5,
        "validation mean Dice {:.3} after 300 iterations with context and flips",
        validation.mean_dice
    );
    // The saved model keeps its context; a session built from it reads the same slices
    // as the validation did and gets the same result.
    let model = check_loaded_model_matches_validation(&report.outputs.model, validation.mean_dice);
    assert_eq!(model.config().slice_context_mm, 2.0 * SPACING);
}

fn run_to_end(config: TrainConfig, subjects: Vec<Subject>, options: TrainOptions) -> PathBuf {
    let mut trainer = Trainer::with_subjects(config, subjects, options).unwrap();
    let report = trainer.run(&mut |_| true).unwrap();
    assert!(!report.stopped_early);
    report.outputs.model
}

fn resume_subjects() -> Vec<Subject> {
    let (_, labels) = phantom(9, 1.0, 5.0);
    vec![
        subject("a", 1, 1.0),
        subject("b", 2, 1.0),
        Subject {
            name: "synthetic".into(),
            source: "label-only phantom".into(),
            image: None,
            label_codes: labels,
            scheme: LabelScheme::FreeSurfer,
            held_out: None,
        },
    ]
}

#[test]
fn runs_are_deterministic_and_resume_is_exact() {
    let _turn = training_turn();
    let root = common::scratch_dir("train_resume");
    let configure = |name: &str| {
        let mut config = tiny_config(&root.join(name), 12);
        config.optim.warmup = 4;
        config.optim.decay = LrDecay::Exponential { gamma: 0.95 };
        config.run.checkpoint_every = 4;
        config.run.batch_size = 4;
        config.prompts.probability = 0.6;
        config.synth.image_subject_probability = 0.3;
        config
    };
    let first = run_to_end(
        configure("first"),
        resume_subjects(),
        TrainOptions::default(),
    );
    let second = run_to_end(
        configure("second"),
        resume_subjects(),
        TrainOptions::default(),
    );
    // Interrupted after 6 iterations (2 past the last periodic checkpoint), resumed.
    let mut interrupted = Trainer::with_subjects(
        configure("resumed"),
        resume_subjects(),
        TrainOptions {
            stop_after: Some(6),
            ..TrainOptions::default()
        },
    )
    .unwrap();
    let report = interrupted.run(&mut |_| true).unwrap();
    assert!(report.stopped_early && report.iterations == 6);
    drop(interrupted);
    let resumed = run_to_end(
        configure("resumed"),
        resume_subjects(),
        TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    );
    let reference = read_weights(&first);
    for (other, what) in [(&second, "a second run"), (&resumed, "the resumed run")] {
        let weights = read_weights(other);
        assert_eq!(weights.len(), reference.len());
        for ((name, a), (other_name, b)) in reference.iter().zip(&weights) {
            assert_eq!(name, other_name);
            assert!(a.equal(b), "{name} differs in {what}");
        }
    }
    // Training changed the weights at all (the comparison above is not vacuous).
    let loss_csv = std::fs::read_to_string(root.join("resumed/loss.csv")).unwrap();
    let first_csv = std::fs::read_to_string(root.join("first/loss.csv")).unwrap();
    assert_eq!(loss_csv, first_csv);
    assert_eq!(loss_csv.lines().count(), 1 + 12 / 5 + 1);
}

#[test]
fn cancelling_writes_a_checkpoint_and_returns_cancelled() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_cancel");
    let config = tiny_config(&dir, 50);
    let mut trainer =
        Trainer::with_subjects(config, vec![subject("a", 1, 1.0)], TrainOptions::default())
            .unwrap();
    let error = trainer.run(&mut |p| p.iteration < 3).unwrap_err();
    assert!(matches!(error, Error::Cancelled), "{error}");
    let (_, metadata) =
        brainsam::weights::read_safetensors(&dir.join("checkpoint.safetensors")).unwrap();
    assert!(metadata["brainsam_training_state"].contains("\"iteration\":3"));
}

/// The one structure (left thalamus) is invisible in these images (no contrast) and
/// wanders by up to ±25 mm, so without a prompt the model can only guess where it is; a
/// model trained with prompts must learn to take the location from them.
#[test]
fn prompt_aware_training_makes_prompts_improve_the_result() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_prompts");
    let mut config = tiny_config(&dir, 500);
    config.prompts.probability = 0.8;
    config.prompts.box_probability = 0.8;
    config.prompts.box_jitter = 0.05;
    let invisible =
        |name: &str, seed: u64| subject_from(name, seed, phantom_with_blobs(seed, 0.0, 25.0, 1));
    let subjects: Vec<Subject> = (0..4)
        .map(|i| invisible(&format!("s{i}"), 20 + i))
        .collect();
    let mut trainer = Trainer::with_subjects(config, subjects, TrainOptions::default()).unwrap();
    trainer.run(&mut |_| true).unwrap();
    let held_out = Dataset::prepare(
        vec![invisible("t", 30), invisible("h1", 31), invisible("h2", 32)],
        &DatasetOptions {
            input_size: trainer.sam().config().input_size,
            orientation: Default::default(),
            validation: vec!["h1".into(), "h2".into()],
            validation_count: 0,
            empty_slice_weight: 0.1,
            small_structure_weight: 1.0,
            normalize: Default::default(),
        },
    )
    .unwrap();
    let stacks: Vec<_> = held_out.validation.iter().map(|v| &v.slices).collect();
    let synth = Default::default();
    let without = prompted_dice(trainer.sam(), &stacks, EvalPrompt::None, &synth).unwrap();
    let with_box = prompted_dice(trainer.sam(), &stacks, EvalPrompt::Box, &synth).unwrap();
    let with_point =
        prompted_dice(trainer.sam(), &stacks, EvalPrompt::CentrePoint, &synth).unwrap();
    println!(
        "held-out Dice: no prompt {without:.3}, box {with_box:.3}, centre point {with_point:.3}"
    );
    assert!(
        with_box > without + 0.1,
        "box prompts do not help: {with_box:.3} vs {without:.3}"
    );
    assert!(
        with_point > without,
        "point prompts do not help: {with_point:.3} vs {without:.3}"
    );
}

fn write_pair(dir: &Path, name: &str, image: &Volume, labels: &Volume) -> (PathBuf, PathBuf) {
    let image_path = dir.join(format!("{name}_T1.nii.gz"));
    let label_path = dir.join(format!("{name}_aseg.nii.gz"));
    image.write(&image_path).unwrap();
    labels.write(&label_path).unwrap();
    (image_path, label_path)
}

fn config_with(dir: &Path, pairs: &[(PathBuf, PathBuf)]) -> TrainConfig {
    let mut text = String::from(
        "[model]\nconfig = \"tiny\"\nmode = \"full\"\n[run]\ndevice = \"cpu\"\niterations = 1\n",
    );
    text.push_str(&format!("output_dir = {:?}\n", dir.join("out")));
    for (image, label) in pairs {
        text.push_str(&format!(
            "[[subjects]]\nimage = {image:?}\nlabel = {label:?}\nscheme = \"freesurfer\"\n"
        ));
    }
    TrainConfig::from_toml(&text).unwrap()
}

fn expect_invalid(config: TrainConfig, needle: &str) {
    match Trainer::new(config, TrainOptions::default()) {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected an invalid-argument error about {needle}, got {other:?}"),
    }
}

#[test]
fn bad_input_is_reported_before_training() {
    let dir = common::scratch_dir("train_bad_input");
    let (image, labels) = phantom(1, 1.0, 5.0);
    let good = write_pair(&dir, "good", &image, &labels);
    // Label grid differs from the image grid.
    let mut affine = *grid().voxel_to_ras();
    affine[0][3] += 10.0;
    let shifted = Volume::new(
        Grid::from_ras_affine([DIM; 3], affine).unwrap(),
        labels.data().to_vec(),
    )
    .unwrap();
    let mismatched = write_pair(&dir, "mismatched", &image, &shifted);
    expect_invalid(config_with(&dir, &[good.clone(), mismatched]), "mismatched");
    // A label map with none of the 12 structures.
    let nothing = Volume::new(
        grid(),
        labels
            .data()
            .iter()
            .map(|&v| if v == 2.0 { 2.0 } else { 0.0 })
            .collect(),
    )
    .unwrap();
    let empty_labels = write_pair(&dir, "nolabels", &image, &nothing);
    expect_invalid(
        config_with(&dir, &[empty_labels]),
        "none of the 12 structures",
    );
    // No subject at all.
    expect_invalid(config_with(&dir, &[]), "empty");
    // Output folder below a regular file.
    let mut unwritable = config_with(&dir, std::slice::from_ref(&good));
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    unwritable.run.output_dir = dir.join("a-file/out");
    expect_invalid(unwritable, "output folder");
    // Unknown validation subject and bad values.
    let mut unknown = config_with(&dir, std::slice::from_ref(&good));
    unknown.validation = vec!["nobody".into()];
    expect_invalid(unknown, "nobody");
    let mut zero_batch = config_with(&dir, std::slice::from_ref(&good));
    zero_batch.run.batch_size = 0;
    expect_invalid(zero_batch, "batch_size");
    let mut no_small = config_with(&dir, std::slice::from_ref(&good));
    no_small.run.small_structure_weight = f64::NAN;
    expect_invalid(no_small, "small_structure_weight");
    // Mirroring sagittal slices would flip anterior and posterior.
    let mut sagittal_flips = config_with(&dir, std::slice::from_ref(&good));
    sagittal_flips.model.slice_orientation =
        Some(brainsam::volume::frame::SliceOrientation::Sagittal);
    sagittal_flips.augment.flip_probability = 0.5;
    expect_invalid(
        sagittal_flips,
        "flip_probability must be 0 for a sagittal model",
    );
    let mut no_time = config_with(&dir, &[good]);
    no_time.run.minutes = Some(0.0);
    expect_invalid(no_time, "run.minutes");
    assert!(TrainConfig::from_toml("[run]\nbogus = 1\n").is_err());
}

#[test]
fn a_finished_run_is_never_overwritten_silently_and_one_folder_takes_one_run() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_folder_guard");
    let config = tiny_config(&dir, 2);
    let model = run_to_end(
        config.clone(),
        vec![subject("a", 1, 1.0)],
        TrainOptions::default(),
    );
    let finished = std::fs::read(&model).unwrap();
    // A fresh run into the finished run's folder is refused and changes nothing.
    let refused = Trainer::with_subjects(
        config.clone(),
        vec![subject("a", 1, 1.0)],
        TrainOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("already holds an earlier run") && refused.contains("model.safetensors"),
        "{refused}"
    );
    assert_eq!(std::fs::read(&model).unwrap(), finished);
    // Two runs at once into one folder: the second is refused while the first lives.
    let first = Trainer::with_subjects(
        config.clone(),
        vec![subject("a", 1, 1.0)],
        TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    let second = Trainer::with_subjects(
        config.clone(),
        vec![subject("a", 1, 1.0)],
        TrainOptions {
            resume: true,
            ..TrainOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&second, Error::InvalidState(m) if m.contains("another fine-tuning run")),
        "{second}"
    );
    drop(first);
    // Overwriting on request starts afresh: the earlier results are gone first.
    let mut config_longer = config.clone();
    config_longer.run.iterations = 1;
    let mut trainer = Trainer::with_subjects(
        config_longer,
        vec![subject("a", 1, 1.0)],
        TrainOptions {
            overwrite: true,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert!(!model.exists(), "overwrite keeps the old model");
    assert_eq!(trainer.state().iteration, 0);
    let report = trainer.run(&mut |_| true).unwrap();
    assert_eq!(report.iterations, 1);
    // Bounds checked before anything is read.
    let mut huge = config;
    huge.run.batch_size = 1_000_000_000;
    let message = Trainer::with_subjects(huge, vec![], TrainOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("run.batch_size 1000000000"), "{message}");
}

#[test]
fn held_out_slices_leave_training_and_are_the_only_ones_validated() {
    let held_out = HeldOutSlices {
        block: 2,
        every: 3,
        phase: 1,
    };
    let mut training = subject("a", 1, 1.0);
    training.held_out = Some(held_out);
    let validation = Subject {
        name: "a-held-out".into(),
        ..training.clone()
    };
    let plain = Dataset::prepare(
        vec![subject("a", 1, 1.0), subject("b", 2, 1.0)],
        &DatasetOptions {
            validation: vec!["b".into()],
            ..DatasetOptions::from_config(&TrainConfig::default(), 128)
        },
    )
    .unwrap();
    let dataset = Dataset::prepare(
        vec![training, validation],
        &DatasetOptions {
            validation: vec!["a-held-out".into()],
            ..DatasetOptions::from_config(&TrainConfig::default(), 128)
        },
    )
    .unwrap();
    let slices = &dataset.training[0];
    let structure_slices: Vec<usize> = (0..slices.len())
        .filter(|&i| slices.has_structure[i])
        .collect();
    // Blocks of 2 among the slices holding structures, the second of every 3 blocks.
    let expected: Vec<usize> = structure_slices
        .iter()
        .enumerate()
        .filter(|(rank, _)| (rank / 2) % 3 == 1)
        .map(|(_, &i)| i)
        .collect();
    let held: Vec<usize> = (0..slices.len()).filter(|&i| slices.held_out[i]).collect();
    assert!(!held.is_empty());
    assert_eq!(held, expected);
    assert_eq!(
        dataset.training_slices(),
        plain.training[0].len() - held.len(),
        "held-out slices must not be sampled for training"
    );
    // The validation copy is scored on exactly those planes.
    let scored = dataset.validation[0].scored_planes.as_ref().unwrap();
    assert_eq!(scored.planes.len(), held.len());
    let reference = &dataset.validation[0].reference;
    let restricted = scored.restrict(reference).unwrap();
    let dims = reference.grid().dims();
    for (index, (&kept, &all)) in restricted.data().iter().zip(reference.data()).enumerate() {
        let coordinate = match scored.axis {
            0 => index % dims[0],
            1 => (index / dims[0]) % dims[1],
            _ => index / (dims[0] * dims[1]),
        };
        let expected = if scored.planes.contains(&coordinate) {
            all
        } else {
            0
        };
        assert_eq!(kept, expected, "voxel {index}");
    }
    assert!(restricted.data().iter().any(|&c| c != 0));
}

/// The interactive head's trainer (`train::interactive`): only `interactive.*` tensors
/// learn (the automatic model stays bit-identical), the output loads with its head, a
/// time budget (`run.minutes`) ends a long run early with a fitted total, and training
/// the automatic model afterwards leaves the head alone (its loss never reaches it, so
/// weight decay must not shrink it).
#[test]
fn interactive_head_training_changes_only_the_head_and_keeps_to_its_time_budget() {
    let _turn = training_turn();
    let dir = common::scratch_dir("train_interactive");
    let base = {
        let mut config = tiny_config(&dir.join("base"), 20);
        config.validation = vec!["val".into()];
        let mut trainer = Trainer::with_subjects(
            config,
            three_phantoms_and_validation(),
            TrainOptions::default(),
        )
        .unwrap();
        trainer.run(&mut |_| true).unwrap().outputs.model
    };
    let pairs: Vec<(PathBuf, PathBuf)> = [("a", 1), ("b", 2)]
        .into_iter()
        .map(|(name, seed)| {
            let (image, labels) = phantom(seed, 1.0, 5.0);
            write_pair(&dir, name, &image, &labels)
        })
        .collect();
    let mut config = config_with(&dir, &pairs);
    config.model.checkpoint = Some(base.clone());
    config.model.mode = "decoder".into();
    config.run.output_dir = dir.join("head");
    config.run.iterations = 6;
    config.run.batch_size = 4;
    config.run.log_every = 1;
    config.interactive = Some(brainsam::train::InteractiveSection::default());
    let mut reports = Vec::new();
    let head = brainsam::train::train_interactive(&config, &mut |p| {
        reports.push((p.iteration, p.total));
        true
    })
    .unwrap();
    assert_eq!(reports.last(), Some(&(6, 6)));
    let before = read_weights(&base);
    let after = read_weights(&head);
    let automatic_names: Vec<&String> = before.iter().map(|(n, _)| n).collect();
    for (name, tensor) in &after {
        match before.iter().find(|(n, _)| n == name) {
            Some((_, original)) => assert!(original.equal(tensor), "{name} changed"),
            None => assert!(name.starts_with("interactive."), "new tensor {name}"),
        }
    }
    // The head started as a copy of the automatic decoder and has learned since.
    let moved = after.iter().filter(|(name, tensor)| {
        name.starts_with("interactive.mask_decoder.")
            && before
                .iter()
                .find(|(n, _)| Some(n.as_str()) == name.strip_prefix("interactive."))
                .is_some_and(|(_, original)| !original.equal(tensor))
    });
    assert!(moved.count() > 0, "no interactive tensor learned");
    assert!(automatic_names
        .iter()
        .all(|n| !n.starts_with("interactive.")));
    let model = Model::load(&ModelOptions {
        checkpoint: Some(head.clone()),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    assert!(model.config().interactive);

    // A time budget of 1.2 s ends a run of 100000 iterations, at a fitted total.
    config.run.iterations = 100_000;
    config.run.minutes = Some(0.02);
    config.run.output_dir = dir.join("head-budget");
    let started = std::time::Instant::now();
    let mut last = (0, 0);
    brainsam::train::train_interactive(&config, &mut |p| {
        last = (p.iteration, p.total);
        true
    })
    .unwrap();
    assert!(last.0 == last.1 && last.1 < 100_000, "last report {last:?}");
    assert!(started.elapsed().as_secs_f64() < 60.0);

    // Full training of the automatic model keeps the head exactly as it was.
    let mut full = tiny_config(&dir.join("full"), 3);
    full.model.checkpoint = Some(head.clone());
    full.model.input_size = None;
    full.validation = vec!["val".into()];
    let mut trainer = Trainer::with_subjects(
        full,
        three_phantoms_and_validation(),
        TrainOptions::default(),
    )
    .unwrap();
    let retrained = read_weights(&trainer.run(&mut |_| true).unwrap().outputs.model);
    let mut heads = 0;
    for (name, tensor) in retrained
        .iter()
        .filter(|(n, _)| n.starts_with("interactive."))
    {
        let (_, trained) = after.iter().find(|(n, _)| n == name).expect("head tensor");
        assert!(trained.equal(tensor), "{name} changed in full training");
        heads += 1;
    }
    assert!(heads > 0, "the retrained model lost its head");
}

/// Structure-aware sampling (`run.small_structure_weight`): slices holding a small
/// structure (here the phantom's left putamen relabelled as left hippocampus) are drawn
/// about that many times as often as other slices with structures.
#[test]
fn small_structure_slices_are_sampled_by_their_weight() {
    let (image, mut labels) = phantom(1, 1.0, 5.0);
    for code in labels.data_mut() {
        if *code == 12.0 {
            *code = 17.0;
        }
    }
    let share = |weight: f64| {
        let dataset = Dataset::prepare(
            vec![subject_from("a", 1, (image.clone(), labels.clone()))],
            &DatasetOptions {
                empty_slice_weight: 0.0,
                small_structure_weight: weight,
                ..DatasetOptions::from_config(&TrainConfig::default(), 128)
            },
        )
        .unwrap();
        let slices = &dataset.training[0];
        let small = slices.has_small_structure.iter().filter(|&&s| s).count();
        let other = (0..slices.len())
            .filter(|&i| slices.has_structure[i] && !slices.has_small_structure[i])
            .count();
        assert!(
            small > 0 && other > 0,
            "{small} small, {other} other slices"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let draws = dataset.sample(&mut rng, 20_000);
        let drawn = draws
            .iter()
            .filter(|&&(_, i)| slices.has_small_structure[i])
            .count() as f64
            / draws.len() as f64;
        let expected = small as f64 * weight / (small as f64 * weight + other as f64);
        assert!(
            (drawn - expected).abs() < 0.02,
            "weight {weight}: drew {drawn:.3} small-structure slices, expected {expected:.3}"
        );
        drawn
    };
    assert!(share(4.0) > share(1.0) + 0.1);
}

#[test]
fn a_view_model_of_a_combined_file_trains_further_from_its_own_weights() {
    use brainsam::model::load::combine_view_models;
    use brainsam::model::SamConfig;
    use brainsam::volume::frame::SliceOrientation;
    let _turn = training_turn();
    let dir = common::scratch_dir("train_checkpoint_view");
    let coronal_config = SamConfig::tiny().with_num_classes(12).with_input_size(128);
    let coronal = dir.join("coronal.safetensors");
    brainsam::session::init_model(&coronal, &coronal_config, 1).unwrap();
    let axial = dir.join("axial.safetensors");
    brainsam::session::init_model(
        &axial,
        &coronal_config
            .clone()
            .with_slice_orientation(SliceOrientation::Axial),
        2,
    )
    .unwrap();
    let combined = dir.join("combined.safetensors");
    combine_view_models(&coronal, std::slice::from_ref(&axial), &combined).unwrap();

    let mut config = tiny_config(&dir.join("out"), 1);
    config.model.checkpoint = Some(combined.clone());
    config.model.checkpoint_view = Some(SliceOrientation::Axial);
    // A learning rate too small to move any weight visibly: the output shows the start.
    config.optim.lr = 1e-12;
    config.optim.warmup = 0;
    let trained = run_to_end(
        config.clone(),
        three_phantoms_and_validation(),
        TrainOptions::default(),
    );
    let (tensors, metadata) = brainsam::weights::read_safetensors(&trained).unwrap();
    let trained_config = SamConfig::from_json(&metadata["brainsam_config"]).unwrap();
    assert_eq!(trained_config.slice_orientation, SliceOrientation::Axial);
    let start = |path: &Path| -> std::collections::BTreeMap<String, tch::Tensor> {
        read_weights(path).into_iter().collect()
    };
    let (axial_start, coronal_start) = (start(&axial), start(&coronal));
    let name = "image_encoder.patch_embed.proj.weight";
    let trained_weight = &tensors.iter().find(|(n, _)| n == name).unwrap().1;
    let difference =
        |other: &tch::Tensor| f64::try_from((trained_weight - other).abs().max()).unwrap();
    assert!(
        difference(&axial_start[name]) < 1e-6,
        "starts from the axial view model"
    );
    assert!(
        difference(&coronal_start[name]) > 1e-3,
        "not from the main model"
    );

    // A view the file does not hold, and a view without a file, are named errors.
    let mut missing = config.clone();
    missing.model.checkpoint_view = Some(SliceOrientation::Sagittal);
    missing.run.output_dir = dir.join("out-missing");
    match Trainer::with_subjects(
        missing,
        three_phantoms_and_validation(),
        TrainOptions::default(),
    ) {
        Err(error) => assert!(
            error.to_string().contains("holds no sagittal view model"),
            "{error}"
        ),
        Ok(_) => panic!("a missing view model must be refused"),
    }
    let mut without_file = config;
    without_file.model.checkpoint = None;
    without_file.run.output_dir = dir.join("out-without-file");
    match Trainer::with_subjects(
        without_file,
        three_phantoms_and_validation(),
        TrainOptions::default(),
    ) {
        Err(error) => assert!(error.to_string().contains("give the checkpoint"), "{error}"),
        Ok(_) => panic!("checkpoint_view without a checkpoint must be refused"),
    }
}

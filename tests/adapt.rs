//! "Adapt to my site" (issue 18) with a tiny model on small synthetic phantom heads:
//! arrays and files give the same adapter, partial labels train only their structures,
//! the adapter is refused on another base, cancelling writes nothing, the time budget
//! keeps the best checkpoint, and bad input gets clear errors before any training.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use brainsam::labels::LabelScheme;
use brainsam::session::{DeviceChoice, Model, ModelOptions, Session, SessionOptions};
use brainsam::train::adapt::{adapt, AdaptOptions, AdaptPair, AdaptResult, ValidationKind};
use brainsam::volume::{Affine, Grid, Volume};
use brainsam::Error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SPACING: f64 = 4.0;
const DIM: usize = 40;

/// libtorch's generator is process-wide and the trainer re-seeds it: runs take turns.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|p| p.into_inner())
}

fn grid() -> Grid {
    grid_of([DIM; 3])
}

fn grid_of(dims: [usize; 3]) -> Grid {
    let mut affine: Affine = [[0.0; 4]; 4];
    for (axis, row) in affine.iter_mut().take(3).enumerate() {
        row[axis] = SPACING;
        row[3] = -SPACING * (DIM as f64 - 1.0) / 2.0;
    }
    affine[3][3] = 1.0;
    Grid::from_ras_affine(dims, affine).unwrap()
}

/// A phantom head with four blobs labelled with FreeSurfer codes (10/49 thalamus, 12/51
/// putamen); only the codes in `labelled` are written to the label map (the other
/// blobs stay in the image, unlabelled: partial labels).
fn phantom(seed: u64, labelled: &[f32]) -> (Volume, Volume) {
    let grid = grid();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blobs: Vec<(f32, [f64; 3], f64, f32)> = [
        (10.0, [-14.0, -4.0, -8.0], 40.0f32),
        (49.0, [14.0, -4.0, -8.0], 40.0),
        (12.0, [-28.0, 16.0, -14.0], -40.0),
        (51.0, [28.0, 16.0, -14.0], -40.0),
    ]
    .into_iter()
    .map(|(code, c, offset)| {
        let c = [
            c[0] + rng.gen_range(-4.0..4.0),
            c[1] + rng.gen_range(-4.0..4.0),
            c[2] + rng.gen_range(-4.0..4.0),
        ];
        (code, c, rng.gen_range(13.0..17.0), offset)
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
                if head > 1.0 {
                    continue;
                }
                let noise: f32 = rng.gen_range(-8.0..8.0);
                image[n] = 100.0 + noise;
                for &(code, c, r, offset) in &blobs {
                    let d2: f64 = (0..3).map(|a| (p[a] - c[a]).powi(2)).sum();
                    if d2 <= r * r {
                        image[n] = 100.0 + offset + noise;
                        labels[n] = if labelled.contains(&code) { code } else { 0.0 };
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

const ALL: [f32; 4] = [10.0, 49.0, 12.0, 51.0];

fn pair(name: &str, seed: u64, labelled: &[f32]) -> AdaptPair {
    let (image, labels) = phantom(seed, labelled);
    AdaptPair {
        name: name.into(),
        image,
        labels,
        scheme: LabelScheme::FreeSurfer,
    }
}

fn base_model() -> Arc<Model> {
    Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap()
}

fn options(iterations: u64) -> AdaptOptions {
    AdaptOptions {
        iterations: Some(iterations),
        batch_size: Some(2),
        learning_rate: Some(3e-3),
        seed: 5,
        device: Some("cpu".into()),
        // Validation of the base model and at the end only: the tests stay fast.
        validate_every: Some(1000),
        keep_last: true,
        ..AdaptOptions::default()
    }
}

fn run(pairs: Vec<AdaptPair>, options: &AdaptOptions) -> brainsam::Result<AdaptResult> {
    let _turn = turn();
    adapt(&base_model(), pairs, options, &mut |_| true)
}

fn tensors(path: &Path) -> Vec<(String, tch::Tensor)> {
    let (_, mut tensors) = brainsam::weights::load_adapter(path).unwrap();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn saved(result: &AdaptResult, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    result.save(&path).unwrap();
    path
}

/// Adapt runs seed libtorch's global generator and then draw the LoRA initialisation from
/// it; a test drawing random numbers on another thread in between would change them. The
/// tests of this file therefore run one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn adapting_from_arrays_equals_adapting_from_the_same_files() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_arrays_files");
    let in_memory = vec![pair("a", 1, &ALL), pair("b", 2, &ALL)];
    let mut from_disk = Vec::new();
    for (i, p) in in_memory.iter().enumerate() {
        let image = dir.join(format!("image{i}.nii.gz"));
        let labels = dir.join(format!("labels{i}.nii.gz"));
        p.image.write(&image).unwrap();
        p.labels.write(&labels).unwrap();
        from_disk.push(AdaptPair::read(&image, &labels, LabelScheme::FreeSurfer).unwrap());
    }
    let a = run(in_memory, &options(6)).unwrap();
    let b = run(from_disk, &options(6)).unwrap();
    assert_eq!(a.plan.validation, ValidationKind::HeldOutSlices);
    assert_eq!(a.iterations, 6);
    let (ta, tb) = (
        tensors(&saved(&a, &dir, "a.safetensors")),
        tensors(&saved(&b, &dir, "b.safetensors")),
    );
    assert_eq!(ta.len(), tb.len());
    assert!(
        ta.iter().any(|(n, _)| n.contains("lora_")),
        "no LoRA tensor"
    );
    for ((na, a), (nb, b)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert!(a.equal(b), "{na} differs between arrays and files");
    }
    // A different seed gives a different adapter (the comparison can fail).
    let other = run(
        vec![pair("a", 1, &ALL), pair("b", 2, &ALL)],
        &AdaptOptions {
            seed: 6,
            ..options(6)
        },
    )
    .unwrap();
    let tc = tensors(&saved(&other, &dir, "c.safetensors"));
    assert!(ta.iter().zip(&tc).any(|((_, a), (_, c))| !a.equal(c)));
}

/// The output head of class `class` in an adapter, and in the base checkpoint.
fn head(tensors: &[(String, tch::Tensor)], class: usize) -> Vec<tch::Tensor> {
    let prefix = format!("mask_decoder.output_hypernetworks_mlps.{class}.");
    let found: Vec<tch::Tensor> = tensors
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(_, t)| t.shallow_clone())
        .collect();
    assert!(!found.is_empty(), "no tensor {prefix}*");
    found
}

#[test]
fn partial_labels_train_only_their_structures() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_partial");
    let (base, _) = brainsam::weights::read_safetensors(common::test_checkpoint()).unwrap();
    let changed = |adapter: &[(String, tch::Tensor)], class: usize| {
        head(adapter, class)
            .iter()
            .zip(head(&base, class))
            .any(|(a, b)| !a.equal(&b))
    };
    // Only the thalami (classes 1, 2) are labelled; the putamen blobs are in the image.
    let partial = run(
        vec![pair("a", 1, &[10.0, 49.0]), pair("b", 2, &[10.0, 49.0])],
        &options(6),
    )
    .unwrap();
    assert_eq!(partial.trained_structures, vec![vec![1, 2], vec![1, 2]]);
    let adapter = tensors(&saved(&partial, &dir, "partial.safetensors"));
    assert!(changed(&adapter, 1) && changed(&adapter, 2));
    for class in [5, 6] {
        assert!(
            !changed(&adapter, class),
            "class {class} is not labelled but its output head changed"
        );
    }
    // With the putamina labelled too, their heads do train.
    let full = run(vec![pair("a", 1, &ALL), pair("b", 2, &ALL)], &options(6)).unwrap();
    assert_eq!(full.trained_structures[0], vec![1, 2, 5, 6]);
    let adapter = tensors(&saved(&full, &dir, "full.safetensors"));
    assert!(changed(&adapter, 5) && changed(&adapter, 6));
}

#[test]
fn an_adapter_loads_on_its_base_and_is_refused_on_another() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_other_base");
    let result = run(vec![pair("a", 1, &ALL)], &options(3)).unwrap();
    let adapter = saved(&result, &dir, "site.safetensors");
    let (meta, _) = brainsam::weights::load_adapter(&adapter).unwrap();
    assert_eq!(
        meta.base_checkpoint_sha256,
        brainsam::weights::sha256_file(common::test_checkpoint()).unwrap()
    );
    Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        adapter: Some(adapter.clone()),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    let other = dir.join("other.safetensors");
    let config = brainsam::model::SamConfig::tiny().with_num_classes(12);
    brainsam::session::init_model(&other, &config, 8).unwrap();
    let error = Model::load(&ModelOptions {
        checkpoint: Some(other),
        adapter: Some(adapter),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap_err();
    assert!(matches!(error, Error::WeightMismatch(_)), "{error}");
    assert!(error.to_string().contains("SHA-256"), "{error}");
    // Adapting a model that already has an adapter is refused (adapters do not stack).
    let adapted = Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        adapter: Some(dir.join("site.safetensors")),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    let error = adapt(&adapted, vec![pair("a", 1, &ALL)], &options(1), &mut |_| {
        true
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("already has an adapter"),
        "{error}"
    );
}

/// A copy of `adapter` whose metadata hands `structures` back to the base model.
fn with_base_structures(adapter: &Path, structures: &str, name: &str) -> PathBuf {
    let (mut meta, tensors) = brainsam::weights::load_adapter(adapter).unwrap();
    meta.extra.insert(
        brainsam::model::load::BASE_STRUCTURES_KEY.into(),
        structures.into(),
    );
    let path = adapter.with_file_name(name);
    brainsam::weights::save_adapter(&path, &meta, &tensors).unwrap();
    path
}

fn segment(adapter: Option<PathBuf>, image: &Volume) -> Vec<u8> {
    let model = Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        adapter,
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    session.set_volume(image.clone()).unwrap();
    session
        .segment_all(&mut |_, _| true)
        .unwrap()
        .data()
        .to_vec()
}

fn agreement(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn structures_handed_back_to_the_base_get_the_base_models_output() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_base_structures");
    let result = run(vec![pair("a", 1, &ALL)], &options(6)).unwrap();
    let adapter = saved(&result, &dir, "site.safetensors");
    let image = phantom(9, &ALL).0;
    let base = segment(None, &image);
    let adapted = segment(Some(adapter.clone()), &image);
    // The adaptation changed the output (so the comparisons below can fail)...
    assert!(
        agreement(&base, &adapted) < 0.999,
        "the adapter changed nothing"
    );
    // ...and handing every structure back to the base gives the base model's output.
    let all = with_base_structures(&adapter, "1,2,3,4,5,6,7,8,9,10,11,12", "all.safetensors");
    let handed_back = segment(Some(all.clone()), &image);
    assert!(
        agreement(&base, &handed_back) > 0.9999,
        "agreement with the base {}",
        agreement(&base, &handed_back)
    );
    let model = Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        adapter: Some(all),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    assert_eq!(model.base_fallback().unwrap().structures.len(), 12);
    // One structure handed back: its voxels follow the base, the others the adapter.
    let thalamus = with_base_structures(&adapter, "1", "thalamus.safetensors");
    let mixed = segment(Some(thalamus), &image);
    let voxels = |labels: &[u8], class: u8| -> Vec<usize> {
        (0..labels.len()).filter(|&i| labels[i] == class).collect()
    };
    let overlap = |a: &[usize], b: &[usize]| {
        let common = a.iter().filter(|i| b.binary_search(i).is_ok()).count();
        2.0 * common as f64 / (a.len() + b.len()).max(1) as f64
    };
    let (from_mix, from_base) = (voxels(&mixed, 1), voxels(&base, 1));
    assert!(
        !from_base.is_empty(),
        "the base model labels no left thalamus"
    );
    // Without handing back, the adapter's left thalamus is another one (the check below
    // can fail).
    assert!(overlap(&voxels(&adapted, 1), &from_base) < 0.9);
    // Equal up to the slices-to-voxels interpolation at the structure's border.
    assert!(
        overlap(&from_mix, &from_base) > 0.95,
        "left thalamus not the base's: Dice {}",
        overlap(&from_mix, &from_base)
    );
    let (mix_other, adapted_other) = (voxels(&mixed, 5), voxels(&adapted, 5));
    assert!(
        overlap(&mix_other, &adapted_other) > 0.95 || adapted_other.is_empty(),
        "left putamen not the adapter's: Dice {}",
        overlap(&mix_other, &adapted_other)
    );
    // An unreadable list is refused, naming the key.
    let bad = with_base_structures(&adapter, "1,13", "bad.safetensors");
    let error = Model::load(&ModelOptions {
        checkpoint: Some(common::test_checkpoint().to_path_buf()),
        adapter: Some(bad),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("base_structures"), "{error}");
    assert!(error.to_string().contains("13"), "{error}");
}

#[test]
fn interpolation_moves_the_adapter_between_the_base_and_the_trained_weights() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_interpolation");
    let trained = run(
        vec![pair("a", 1, &ALL)],
        &AdaptOptions {
            interpolation: Some(1.0),
            ..options(6)
        },
    )
    .unwrap();
    let trained_path = saved(&trained, &dir, "trained.safetensors");
    let checkpoint = common::test_checkpoint();
    let at = |t: f64, name: &str| {
        let path = dir.join(name);
        brainsam::train::adapt::interpolate_adapter(&trained_path, checkpoint, t, &path).unwrap();
        path
    };
    let full = tensors(&trained_path);
    let (base_tensors, _) = brainsam::weights::read_safetensors(checkpoint).unwrap();
    let base_of = |name: &str| base_tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t);
    // The decoder (every tensor the base holds) moves; the LoRA matrices stay as trained.
    let zero = tensors(&at(0.0, "zero.safetensors"));
    let half = tensors(&at(0.5, "half.safetensors"));
    let mut moved = 0;
    for (((name, z), (_, h)), (_, f)) in zero.iter().zip(&half).zip(&full) {
        match base_of(name) {
            Some(b) => {
                assert!(z.equal(b), "{name} at 0 is not the base's");
                let halfway = (b + f) * 0.5;
                assert!(h.allclose(&halfway, 1e-5, 1e-6, false), "{name}");
                moved += usize::from(!b.equal(f));
            }
            None => {
                assert!(brainsam::model::is_lora(name), "{name} is not in the base");
                assert!(
                    z.equal(f) && h.equal(f),
                    "{name} is LoRA and must stay as trained"
                );
            }
        }
    }
    assert!(moved > 0, "training changed no decoder tensor");
    assert!(zero.iter().any(|(n, _)| brainsam::model::is_lora(n)));
    assert_eq!(
        tensors(&at(1.0, "one.safetensors"))
            .iter()
            .zip(&full)
            .filter(|((_, a), (_, b))| !a.allclose(b, 1e-6, 1e-7, false))
            .count(),
        0
    );
    // The default run writes the interpolated adapter; out-of-range values are refused.
    let default = run(vec![pair("a", 1, &ALL)], &options(6)).unwrap();
    assert_eq!(
        default.plan.interpolation,
        brainsam::train::adapt::DEFAULT_INTERPOLATION
    );
    let written = tensors(&saved(&default, &dir, "default.safetensors"));
    let expected = tensors(&at(
        brainsam::train::adapt::DEFAULT_INTERPOLATION,
        "expected.safetensors",
    ));
    for ((name, a), (_, b)) in written.iter().zip(&expected) {
        assert!(a.equal(b), "{name}");
    }
    let error = run(
        vec![pair("a", 1, &ALL)],
        &AdaptOptions {
            interpolation: Some(1.5),
            ..options(1)
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("interpolation 1.5"), "{error}");
}

#[test]
fn structures_that_validate_worse_than_the_base_are_handed_back() {
    let record = |dice: &[Option<f64>]| brainsam::train::ValidationRecord {
        iteration: 0,
        mean_dice: 0.0,
        structure_dice: dice.to_vec(),
    };
    let base = record(&[Some(0.8), Some(0.7), None, Some(0.5)]);
    let kept = record(&[Some(0.9), Some(0.69), Some(0.4), Some(0.5)]);
    assert_eq!(
        brainsam::train::adapt::structures_worse_than_base(&base, &kept),
        vec![2]
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn cancelling_writes_no_adapter_and_removes_the_work_files() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_cancel");
    let work = dir.join("work");
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let _turn = turn();
    let mut seen = 0;
    let error = adapt(
        &base_model(),
        vec![pair("a", 1, &ALL)],
        &AdaptOptions {
            work_dir: Some(work.clone()),
            cancel: Some(cancel),
            ..options(50)
        },
        &mut |p| {
            seen = p.iteration;
            if p.iteration == 2 {
                flag.store(true, Ordering::Relaxed);
            }
            true
        },
    )
    .unwrap_err();
    assert!(matches!(error, Error::Cancelled), "{error}");
    assert!(seen < 50, "the run was not stopped");
    assert!(!work.exists(), "the work folder was left behind");
    assert!(files_under(&dir).is_empty(), "{:?}", files_under(&dir));
    // The progress callback cancels too.
    let error = adapt(
        &base_model(),
        vec![pair("a", 1, &ALL)],
        &options(50),
        &mut |p| p.iteration < 1,
    )
    .unwrap_err();
    assert!(matches!(error, Error::Cancelled), "{error}");
}

#[test]
fn the_time_budget_stops_the_run_and_keeps_the_best_checkpoint() {
    let _serial = one_at_a_time();
    let result = run(
        vec![pair("a", 1, &ALL), pair("b", 2, &ALL), pair("c", 3, &ALL)],
        &AdaptOptions {
            minutes: Some(1e-4),
            keep_last: false,
            ..options(500)
        },
    )
    .unwrap();
    assert!(result.timed_out);
    assert!(result.iterations < 500, "{}", result.iterations);
    assert_eq!(result.plan.validation, ValidationKind::HeldOutPair);
    // The base model was validated first, then once more after the stop.
    assert!(result.validations.len() >= 2);
    assert_eq!(result.validations[0].iteration, 0);
    let best = result
        .validations
        .iter()
        .map(|v| v.mean_dice)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(result.best.0, best);
    assert!(!result.adapter.is_empty());
}

fn expect_invalid(pairs: Vec<AdaptPair>, needles: &[&str]) {
    let error = run(pairs, &options(1)).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    let text = error.to_string();
    for needle in needles {
        assert!(
            text.contains(needle),
            "{text:?} does not mention {needle:?}"
        );
    }
}

#[test]
fn bad_input_gets_clear_errors_before_training() {
    let _serial = one_at_a_time();
    expect_invalid(Vec::new(), &["no pairs"]);
    // Mismatched shapes.
    let mut p = pair("shifted", 1, &ALL);
    let (_, data) = p.labels.clone().into_parts();
    let small = grid_of([DIM, DIM, DIM - 1]);
    let cut = data[..small.len()].to_vec();
    p.labels = Volume::new(small, cut).unwrap();
    expect_invalid(vec![pair("ok", 2, &ALL), p], &["pair 2 (shifted)", "grid"]);
    // No labelled voxel (only a code that is not one of the 12 structures).
    let mut p = pair("empty", 1, &[]);
    for v in p.labels.data_mut().iter_mut().take(500) {
        *v = 2.0;
    }
    expect_invalid(vec![p], &["pair 1 (empty)", "none of the 12 structures"]);
    // Values unknown to the scheme.
    let mut p = pair("codes", 1, &ALL);
    p.scheme = LabelScheme::Classes;
    expect_invalid(vec![p], &["label value", "unknown to the classes"]);
    let mut p = pair("negative", 1, &ALL);
    p.labels.data_mut()[7] = -3.0;
    expect_invalid(vec![p], &["value -3", "freesurfer"]);
    let mut p = pair("fraction", 1, &ALL);
    p.labels.data_mut()[7] = 10.5;
    expect_invalid(vec![p], &["value 10.5"]);
    // NaN in the image.
    let mut p = pair("nan", 1, &ALL);
    p.image.data_mut()[3] = f32::NAN;
    expect_invalid(vec![p], &["pair 1 (nan)", "NaN", "finite"]);
    // Bad options.
    let error = run(
        vec![pair("a", 1, &ALL)],
        &AdaptOptions {
            minutes: Some(-1.0),
            ..options(1)
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("minutes"), "{error}");
}

#[test]
fn the_cli_adapts_from_files_and_names_bad_arguments() {
    let _serial = one_at_a_time();
    let dir = common::scratch_dir("adapt_cli");
    let p = pair("a", 1, &ALL);
    let (image, labels) = (dir.join("a.nii.gz"), dir.join("a_seg.nii.gz"));
    p.image.write(&image).unwrap();
    p.labels.write(&labels).unwrap();
    let exe = common::brainsam_cli();
    let out = dir.join("site.safetensors");
    let base = common::test_checkpoint().to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut command = std::process::Command::new(&exe);
        command.args(["adapt", "--model", &base, "--device", "cpu", "--quiet"]);
        command.args(extra);
        command.output().unwrap()
    };
    let (image, labels, out_text) = (
        image.to_str().unwrap(),
        labels.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let refused = run(&[
        "--images", image, image, "--labels", labels, "--out", out_text,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("2 images but 1 label maps"));
    let refused = run(&[
        "--images",
        image,
        "--labels",
        labels,
        "--ref-labels",
        "classes",
        "--out",
        out_text,
    ]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown to the classes"));
    assert!(!out.exists(), "a refused run wrote an adapter");
    let done = run(&[
        "--images",
        image,
        "--labels",
        labels,
        "--ref-labels",
        "freesurfer",
        "--out",
        out_text,
        "--iterations",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(stdout.contains("2 of 2 iterations"), "{stdout}");
    assert!(stdout.contains("held-out blocks of slices"), "{stdout}");
    brainsam::weights::load_adapter(&out).unwrap();
}

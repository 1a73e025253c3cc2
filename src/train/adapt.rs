//! "Adapt to my site": fine-tunes a per-site adapter of a loaded model from the user's
//! own corrected segmentations, given in memory as (image, label map) pairs, with
//! settings the library chooses from the amount of data.
//!
//! This is a thin planner over the fine-tuning engine ([`super::Trainer`]): the pairs
//! become in-memory subjects, the defaults a [`TrainConfig`], and the run writes into a
//! private work folder that is deleted when the call returns. The adapter (LoRA
//! matrices, prompt encoder and mask decoder) is kept in memory and written to its
//! destination only by [`AdaptResult::save`], atomically, so a cancelled or failed run
//! leaves no adapter file anywhere.
//!
//! Defaults (see [`AdaptPlan::choose`]):
//! - mode `lora` (rank 4 for one pair, 8 for more) with the decoder trainable;
//! - iterations 160 for one pair, 240 for two, then 60 more per pair up to 600;
//!   batch 4, learning rate 2e-4 (warm-up 20, polynomial decay), no weight decay (the
//!   decoder starts from the base model's weights, and decay would pull them to zero
//!   rather than to the base);
//! - augmentation on (affine, elastic, intensity, blur), left-right flips when every pair
//!   labels all 12 structures;
//! - validation: with 3 or more pairs the last one is held out (3D Dice through the
//!   inference pipeline); with fewer, blocks of slices of every pair are held out of
//!   training and scored (3D Dice on those planes, [`HELD_OUT_SLICES`]): that measures
//!   generalisation to unseen parts of the same scans ([`ValidationKind`]);
//! - the adapter written is the kept checkpoint with its decoder moved a quarter of the
//!   way back towards the base model's ([`DEFAULT_INTERPOLATION`], WiSE-FT; validation
//!   figures are those of the trained weights);
//! - the base model is validated before the first iteration, so the best checkpoint
//!   kept is never worse on the validation data than the model the user started from;
//! - per structure, too: where the kept checkpoint validates below the base model, the
//!   adapter records the structure ([`AdaptResult::base_structures`]) and the adapted
//!   model gives the base model's output for it (automatic segmentation then runs both
//!   models: about twice the time).
//!
//! Partial labels: each pair trains only the structures its label map holds; the loss
//! treats the others as unknown (see [`super::partial`]).
//!
//! Time budget: with `minutes`, the run stops after the iteration that passes the
//! budget, validates once more and keeps the best checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::config::{LrDecay, TrainConfig};
use super::dataset::{HeldOutSlices, Subject};
use super::partial::{labelled_classes, LabelledClasses};
use super::trainer::{TrainOptions, Trainer, ADAPTER_FILE, BEST_ADAPTER_FILE};
use super::validate::ValidationRecord;
use crate::error::{Error, Result};
use crate::labels::{LabelScheme, NUM_CLASSES, STRUCTURES};
use crate::model::TrainingMode;
use crate::session::Model;
use crate::volume::Volume;
use crate::weights;

/// The slices held out of each pair when there are fewer than 3 pairs: one block of 3
/// consecutive slices in 4 (a quarter; 3 mm blocks for the default model's 1 mm
/// slices), the block's position shifted from pair to pair. Short blocks so that every
/// structure (the amygdala spans about 15 coronal slices) has held-out slices to be
/// judged on.
pub const HELD_OUT_SLICES: HeldOutSlices = HeldOutSlices {
    block: 3,
    every: 4,
    phase: 0,
};

/// Default base learning rate of an adaptation.
const DEFAULT_LEARNING_RATE: f64 = 2e-4;

/// One corrected example: an image and its label map on the same grid.
#[derive(Debug, Clone)]
pub struct AdaptPair {
    /// Name used in messages and reports (e.g. the scan's file or node name).
    pub name: String,
    /// The T1 image.
    pub image: Volume,
    /// The label map: codes of `scheme` on the image's grid.
    pub labels: Volume,
    /// How the label codes map to the 12 structures.
    pub scheme: LabelScheme,
}

impl AdaptPair {
    /// Reads a pair from NIfTI files (the label codes in `scheme`); named after the
    /// image file.
    pub fn read(image: &Path, labels: &Path, scheme: LabelScheme) -> Result<Self> {
        let name = image
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| image.display().to_string());
        Ok(AdaptPair {
            name,
            image: Volume::read(image)?,
            labels: Volume::read(labels)?,
            scheme,
        })
    }
}

/// What the caller may set; everything else is chosen by [`AdaptPlan::choose`].
#[derive(Debug, Clone, Default)]
pub struct AdaptOptions {
    /// Which parameters train (None: the default mode, see [`AdaptPlan::choose`]).
    pub mode: Option<TrainingMode>,
    /// Optimiser iterations (None: chosen from the number of pairs).
    pub iterations: Option<u64>,
    /// Base learning rate (None: 2e-4).
    pub learning_rate: Option<f64>,
    /// LoRA rank (None: 4 for one pair, 8 for more).
    pub lora_rank: Option<i64>,
    /// Slices per iteration (None: 4).
    pub batch_size: Option<usize>,
    /// Time budget in minutes (None: none): the run stops after the iteration that
    /// passes it and keeps the best checkpoint.
    pub minutes: Option<f64>,
    /// Seed of every random choice (same seed, data and base: same adapter on the CPU).
    pub seed: u64,
    /// Turn the augmentation off (it is on by default).
    pub no_augmentation: bool,
    /// `auto`, `cpu` or `cuda` (None: auto).
    pub device: Option<String>,
    /// Folder for the run's temporary files (None: a new folder in the system's
    /// temporary directory). Deleted when the run ends.
    pub work_dir: Option<PathBuf>,
    /// Set to stop the run (no adapter is produced).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Validate every N iterations (None: a quarter of the run, at least 20); the base
    /// model and the end are always validated.
    pub validate_every: Option<u64>,
    /// Keep the last checkpoint instead of the best by validation Dice.
    pub keep_last: bool,
    /// Weight-space interpolation of the prompt encoder and mask decoder between the base
    /// model's (0) and the trained ones (1) written to the adapter (None:
    /// [`DEFAULT_INTERPOLATION`]).
    pub interpolation: Option<f64>,
}

/// How far the adapter's prompt encoder and mask decoder move from the base model's
/// towards the trained ones (`base + t·(trained - base)`; the LoRA matrices stay as
/// trained): weight-space interpolation as in WiSE-FT (Wortsman et al., 2022), which
/// keeps most of a fine-tuning's gain and more of the base model's robustness. The
/// decoder holds the anatomy learned from many subjects; two corrected scans pull it
/// towards their own shapes. Chosen on the site benchmark (models/README.md): with two
/// pairs, 1.0 gave +0.122 mean Dice but one structure -0.015; 0.75 gave +0.119 with no
/// structure below -0.001; 0.5 gave +0.102.
pub const DEFAULT_INTERPOLATION: f64 = 0.75;

/// How the run measures validation Dice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationKind {
    /// The last pair is held out (3 or more pairs).
    HeldOutPair,
    /// Blocks of slices held out of every pair (fewer than 3 pairs): the pairs train
    /// on the other slices and validation scores only the held-out ones
    /// ([`HELD_OUT_SLICES`]).
    HeldOutSlices,
}

/// The settings a run uses (the defaults resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptPlan {
    /// Number of pairs given.
    pub pairs: usize,
    /// Training mode (`lora`).
    pub mode: String,
    /// LoRA rank.
    pub lora_rank: i64,
    /// Iterations.
    pub iterations: u64,
    /// Slices per iteration.
    pub batch_size: usize,
    /// Base learning rate.
    pub learning_rate: f64,
    /// Warm-up iterations.
    pub warmup: u64,
    /// Augmentation on.
    pub augmentation: bool,
    /// Left-right flips (only when every pair labels all 12 structures).
    pub flips: bool,
    /// Validation.
    pub validation: ValidationKind,
    /// Validate every N iterations (and at the end).
    pub validate_every: u64,
    /// Time budget, minutes.
    pub minutes: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Weight-space interpolation towards the trained weights (see
    /// [`DEFAULT_INTERPOLATION`]).
    pub interpolation: f64,
}

impl AdaptPlan {
    /// The settings for `pairs` pairs and the caller's `options`.
    pub fn choose(pairs: usize, options: &AdaptOptions) -> Self {
        let iterations = options.iterations.unwrap_or(match pairs {
            0 | 1 => 160,
            2 => 240,
            n => (240 + 60 * (n as u64 - 2)).min(600),
        });
        AdaptPlan {
            pairs,
            mode: options.mode.unwrap_or(TrainingMode::Lora).to_string(),
            lora_rank: options.lora_rank.unwrap_or(if pairs <= 1 { 4 } else { 8 }),
            iterations,
            batch_size: options.batch_size.unwrap_or(4),
            learning_rate: options.learning_rate.unwrap_or(DEFAULT_LEARNING_RATE),
            warmup: 20.min(iterations / 4),
            augmentation: !options.no_augmentation,
            flips: false,
            validation: if pairs >= 3 {
                ValidationKind::HeldOutPair
            } else {
                ValidationKind::HeldOutSlices
            },
            validate_every: options
                .validate_every
                .unwrap_or((iterations / 4).max(20))
                .max(1),
            minutes: options.minutes,
            seed: options.seed,
            interpolation: options.interpolation.unwrap_or(DEFAULT_INTERPOLATION),
        }
    }

    /// The engine configuration of this plan for `base` writing into `work_dir`.
    fn config(&self, base: &Path, work_dir: &Path, device: &str) -> TrainConfig {
        let mut config = TrainConfig::default();
        config.model.checkpoint = Some(base.to_path_buf());
        config.model.mode = self.mode.clone();
        config.model.lora_rank = self.lora_rank;
        config.run.output_dir = work_dir.to_path_buf();
        config.run.iterations = self.iterations;
        config.run.batch_size = self.batch_size;
        config.run.seed = self.seed;
        config.run.checkpoint_every = 0;
        config.run.validate_every = self.validate_every;
        config.run.log_every = 10;
        config.run.device = device.to_string();
        config.optim.lr = self.learning_rate;
        config.optim.warmup = self.warmup;
        config.optim.weight_decay = 0.0;
        config.optim.decay = LrDecay::Polynomial { power: 0.9 };
        config.augment.enabled = self.augmentation;
        // Left-right flips (left and right classes swapped) double the examples; they
        // would swap which structures a partial label map holds, so only complete maps.
        config.augment.flip_probability = if self.flips { 0.5 } else { 0.0 };
        config.prompts.probability = 0.5;
        config
    }
}

/// What the progress callback receives after each iteration.
#[derive(Debug, Clone)]
pub struct AdaptProgress {
    /// Iterations done.
    pub iteration: u64,
    /// Iterations planned.
    pub total: u64,
    /// Loss of this iteration.
    pub loss: f64,
    /// Mean Dice of a validation run after this iteration, if one ran.
    pub validation_dice: Option<f64>,
    /// Best validation mean Dice so far (the base model's before any improvement).
    pub best_dice: Option<f64>,
    /// Seconds since the run started (data preparation included).
    pub elapsed_seconds: f64,
    /// Estimated seconds left (the time budget's end when that comes first).
    pub eta_seconds: f64,
}

/// A finished run: the adapter (in memory) and what happened.
#[derive(Debug, Clone)]
pub struct AdaptResult {
    /// The adapter file's bytes (BrainSAM adapter format, base SHA-256 recorded).
    pub adapter: Vec<u8>,
    /// The settings used.
    pub plan: AdaptPlan,
    /// Iterations done.
    pub iterations: u64,
    /// Whether the time budget ended the run before its last iteration.
    pub timed_out: bool,
    /// Validation mean Dice of the base model (before training).
    pub base_dice: f64,
    /// Best validation mean Dice and its iteration (0: the base model was best; the
    /// kept adapter then reproduces it, unless `keep_last` was set).
    pub best: (f64, u64),
    /// Every validation, the base model's first.
    pub validations: Vec<ValidationRecord>,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Per pair: the structures it trained (class ids 1..=12).
    pub trained_structures: Vec<Vec<u8>>,
    /// Structures (class ids) on which the kept checkpoint validated worse than the base
    /// model: the adapter keeps the base model's output for them (see
    /// [`crate::model::load::BaseFallback`]).
    pub base_structures: Vec<u8>,
}

/// Writes to `out` the adapter at `adapter` with its prompt encoder and mask decoder
/// moved towards its base checkpoint `base`: every tensor the base also holds (same name
/// and shape) becomes `base + t·(adapted - base)`; the LoRA matrices, which the base
/// lacks, stay as trained. `t = 1` is the adapter, `t = 0` keeps the trained LoRA (how
/// the site's images look) with the base model's decoder (its anatomy).
pub fn interpolate_adapter(adapter: &Path, base: &Path, t: f64, out: &Path) -> Result<()> {
    let (meta, tensors) = weights::load_adapter(adapter)?;
    let base_tensors: BTreeMap<String, tch::Tensor> =
        weights::read_state_dict(base)?.into_iter().collect();
    let mixed: Vec<(String, tch::Tensor)> = tensors
        .into_iter()
        .map(|(name, trained)| {
            let value = match base_tensors.get(&name) {
                Some(b) if b.size() == trained.size() => {
                    let b = b.to_kind(trained.kind());
                    &b + (&trained - &b) * t
                }
                _ => trained,
            };
            (name, value)
        })
        .collect();
    weights::save_adapter(out, &meta, &mixed)
}

/// The structures whose validation Dice under `kept` is below the base model's (both
/// measured on the same validation data); structures absent from it are not judged.
pub fn structures_worse_than_base(base: &ValidationRecord, kept: &ValidationRecord) -> Vec<u8> {
    base.structure_dice
        .iter()
        .zip(&kept.structure_dice)
        .enumerate()
        .filter_map(|(k, pair)| match pair {
            (Some(before), Some(after)) if after < before => Some(k as u8 + 1),
            _ => None,
        })
        .collect()
}

impl AdaptResult {
    /// Writes the adapter to `path` atomically (a temporary file renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        weights::atomic_write(path, |w| {
            w.write_all(&self.adapter).map_err(|e| Error::io(path, e))
        })
    }
}

/// Progress callback: return `false` to cancel.
pub type AdaptProgressFn<'a> = dyn FnMut(&AdaptProgress) -> bool + 'a;

/// Largest label code each named scheme knows (codes above it, and negative ones, are
/// refused as "unknown to the scheme").
fn code_range(scheme: &LabelScheme) -> Option<i64> {
    match scheme {
        // FreeSurferColorLUT runs to 14175 (wm-rh-insula).
        LabelScheme::FreeSurfer => Some(14175),
        // AAL (116 regions) and AAL3 (170).
        LabelScheme::Aal => Some(170),
        LabelScheme::HarvardOxford => Some(21),
        LabelScheme::Neuromorphometrics => Some(207),
        LabelScheme::Classes => Some(NUM_CLASSES as i64 - 1),
        LabelScheme::Custom(_) => None,
    }
}

fn scheme_name(scheme: &LabelScheme) -> &'static str {
    match scheme {
        LabelScheme::FreeSurfer => "freesurfer",
        LabelScheme::Aal => "aal",
        LabelScheme::HarvardOxford => "harvard-oxford",
        LabelScheme::Neuromorphometrics => "neuromorphometrics",
        LabelScheme::Classes => "classes (BrainSAM class ids 0..=12)",
        LabelScheme::Custom(_) => "custom mapping",
    }
}

/// Checks one pair: same grid, finite voxels, integer codes known to the scheme, at
/// least one labelled structure. Returns the classes it labels.
pub fn check_pair(index: usize, pair: &AdaptPair) -> Result<LabelledClasses> {
    let what = |text: String| {
        Error::invalid_argument(format!("pair {} ({}): {text}", index + 1, pair.name))
    };
    pair.image
        .grid()
        .ensure_same_grid(pair.labels.grid(), "the image", "the label map")
        .map_err(|e| what(e.to_string()))?;
    for (name, volume) in [("image", &pair.image), ("label map", &pair.labels)] {
        if let Some(i) = volume.data().iter().position(|v| !v.is_finite()) {
            return Err(what(format!(
                "the {name} holds {} at voxel {i} (linear index): voxels must be finite",
                volume.data()[i]
            )));
        }
    }
    let range = code_range(&pair.scheme);
    for (i, &value) in pair.labels.data().iter().enumerate() {
        if value == 0.0 {
            continue;
        }
        let known = value.fract() == 0.0
            && match (&pair.scheme, range) {
                (_, Some(max)) => value >= 0.0 && (value as i64) <= max,
                (LabelScheme::Custom(map), None) => map.contains_key(&(value as i32)),
                _ => true,
            };
        if !known {
            return Err(what(format!(
                "label value {value} at voxel {i} (linear index) is unknown to the {} label \
                 scheme: choose the scheme the labels were made in",
                scheme_name(&pair.scheme)
            )));
        }
    }
    let classes = pair.scheme.to_classes(&pair.labels)?;
    let labelled = labelled_classes(classes.data());
    if !labelled[1..].iter().any(|&x| x) {
        return Err(what(format!(
            "the label map holds none of the 12 structures under the {} label scheme (no \
             labelled voxel)",
            scheme_name(&pair.scheme)
        )));
    }
    Ok(labelled)
}

/// Removes the work folder when the run ends in any way.
struct WorkDir {
    path: PathBuf,
    created: bool,
}

impl WorkDir {
    fn new(given: Option<&Path>) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = match given {
            Some(path) => path.to_path_buf(),
            None => std::env::temp_dir().join(format!(
                "brainsam-adapt-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            )),
        };
        let created = !path.exists();
        Ok(WorkDir { path, created })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let result = if self.created {
            std::fs::remove_dir_all(&self.path)
        } else {
            // A folder the caller gave: remove only what the run wrote.
            std::fs::read_dir(&self.path).map(|entries| {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_file() {
                        let _ = std::fs::remove_file(path);
                    }
                }
            })
        };
        if let Err(e) = result {
            log::warn!("could not remove {}: {e}", self.path.display());
        }
    }
}

/// Checks that `model` can be adapted (loaded from a checkpoint file, no adapter yet)
/// and returns its checkpoint path.
pub fn check_model(model: &Model) -> Result<&Path> {
    let base = model.checkpoint().ok_or_else(|| {
        Error::invalid_argument(
            "this model was not loaded from a checkpoint file: an adapter must name the file \
             of its base model",
        )
    })?;
    if let Some(adapter) = model.adapter() {
        return Err(Error::invalid_argument(format!(
            "this model already has an adapter ({}): adapt the base model (load it without \
             adapter); adapters do not stack",
            adapter.display()
        )));
    }
    Ok(base)
}

/// Fine-tunes an adapter of `model` (loaded from a checkpoint file, without adapter)
/// on `pairs`. Every pair is checked before training (errors name the pair and the
/// problem). Returns [`Error::Cancelled`] when `progress` returns false or
/// `options.cancel` is set (nothing is written).
pub fn adapt(
    model: &Model,
    pairs: Vec<AdaptPair>,
    options: &AdaptOptions,
    progress: &mut AdaptProgressFn<'_>,
) -> Result<AdaptResult> {
    let base = check_model(model)?;
    adapt_from_checkpoint(base, pairs, options, progress)
}

/// As [`adapt`], from the base checkpoint's path.
pub fn adapt_from_checkpoint(
    base: &Path,
    pairs: Vec<AdaptPair>,
    options: &AdaptOptions,
    progress: &mut AdaptProgressFn<'_>,
) -> Result<AdaptResult> {
    let started = Instant::now();
    if pairs.is_empty() {
        return Err(Error::invalid_argument(
            "no pairs given: adapting needs at least one image with its label map",
        ));
    }
    if let Some(minutes) = options.minutes {
        if !(minutes.is_finite() && minutes > 0.0) {
            return Err(Error::invalid_argument(format!(
                "time budget {minutes} minutes: give a positive number of minutes"
            )));
        }
    }
    if let Some(t) = options.interpolation {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(Error::invalid_argument(format!(
                "interpolation {t}: give a number from 0 (the base model's decoder) to 1 (the \
                 trained decoder)"
            )));
        }
    }
    if let Some(lr) = options.learning_rate {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid_argument(format!(
                "learning rate {lr}: give a positive number"
            )));
        }
    }
    let mut labelled = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        labelled.push(check_pair(i, pair)?);
    }
    let mut plan = AdaptPlan::choose(pairs.len(), options);
    plan.flips = labelled.iter().all(|l| l.iter().all(|&x| x));
    let work = WorkDir::new(options.work_dir.as_deref())?;
    let device = options.device.clone().unwrap_or_else(|| "auto".into());
    let mut config = plan.config(base, &work.path, &device);
    // Unique subject names (the engine splits by name).
    let names: Vec<String> = (0..pairs.len())
        .map(|i| format!("pair-{:03}", i + 1))
        .collect();
    let mut subjects: Vec<Subject> = pairs
        .iter()
        .zip(&names)
        .map(|(pair, name)| Subject {
            name: name.clone(),
            source: pair.name.clone(),
            image: Some(pair.image.clone()),
            label_codes: pair.labels.clone(),
            scheme: pair.scheme.clone(),
            held_out: None,
        })
        .collect();
    match plan.validation {
        ValidationKind::HeldOutPair => {
            config.validation = vec![names[names.len() - 1].clone()];
        }
        ValidationKind::HeldOutSlices => {
            // Each pair holds out its own blocks (phase = pair index) and is scored on
            // them by a copy under another name.
            config.validation.clear();
            for (i, subject) in subjects.iter_mut().enumerate() {
                subject.held_out = Some(HeldOutSlices {
                    phase: i % HELD_OUT_SLICES.every,
                    ..HELD_OUT_SLICES
                });
            }
            let copies: Vec<Subject> = subjects
                .iter()
                .map(|subject| Subject {
                    name: format!("{}-held-out", subject.name),
                    ..subject.clone()
                })
                .collect();
            for copy in copies {
                config.validation.push(copy.name.clone());
                subjects.push(copy);
            }
        }
    }
    let trained_structures: Vec<Vec<u8>> = labelled
        .iter()
        .map(|l| (1..NUM_CLASSES as u8).filter(|&c| l[c as usize]).collect())
        .collect();
    for (pair, structures) in pairs.iter().zip(&trained_structures) {
        if structures.len() < STRUCTURES.len() {
            log::info!(
                "{}: partial labels, trains only {}",
                pair.name,
                structures
                    .iter()
                    .filter_map(|&c| crate::labels::structure(c).map(|s| s.short_name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    drop(pairs);
    let train_options = TrainOptions {
        overwrite: true,
        cancel: options.cancel.clone(),
        ..TrainOptions::default()
    };
    let mut trainer = Trainer::with_subjects(config, subjects, train_options)?;
    let by_name: BTreeMap<String, LabelledClasses> = names
        .iter()
        .cloned()
        .zip(labelled.iter().copied())
        .collect();
    trainer.set_labelled_classes(&by_name)?;
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    if cancelled() {
        return Err(Error::Cancelled);
    }
    // The base model's score: the kept adapter is never worse than it on this data.
    let base_record = trainer.validate_now()?;
    let base_dice = base_record.mean_dice;
    let mut best = base_dice;
    let budget = plan.minutes.map(|m| m * 60.0);
    let mut timed_out = false;
    let mut user_stopped = false;
    let train_started = Instant::now();
    let total = plan.iterations;
    let result = trainer.run(&mut |p| {
        if let Some(record) = &p.validation {
            best = best.max(record.mean_dice);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let per_iteration = train_started.elapsed().as_secs_f64() / p.iteration.max(1) as f64;
        let mut eta = per_iteration * (p.total - p.iteration) as f64;
        if let Some(budget) = budget {
            eta = eta.min((budget - elapsed).max(0.0));
        }
        let keep_going = progress(&AdaptProgress {
            iteration: p.iteration,
            total: p.total,
            loss: p.loss,
            validation_dice: p.validation.as_ref().map(|r| r.mean_dice),
            best_dice: Some(best),
            elapsed_seconds: elapsed,
            eta_seconds: eta,
        });
        if !keep_going {
            user_stopped = true;
            return false;
        }
        if budget.is_some_and(|b| elapsed >= b) && p.iteration < total {
            timed_out = true;
            return false;
        }
        true
    });
    match result {
        Ok(_) => {}
        Err(Error::Cancelled) if timed_out && !user_stopped && !cancelled() => {
            log::info!(
                "time budget reached after {} of {} iterations: validating and keeping the best",
                trainer.state().iteration,
                total
            );
            trainer.validate_now()?;
            trainer.save_model(
                &work.path.join(super::trainer::MODEL_FILE),
                Some(&work.path.join(ADAPTER_FILE)),
            )?;
        }
        Err(e) => return Err(e),
    }
    let state = trainer.state();
    let best_record = (
        state.best_dice.unwrap_or(base_dice),
        state.best_iteration.unwrap_or(0),
    );
    let best_file = work.path.join(BEST_ADAPTER_FILE);
    let final_file = work.path.join(ADAPTER_FILE);
    let keeps_best = best_file.is_file() && !options.keep_last;
    let source = if keeps_best { best_file } else { final_file };
    // The validation of the kept weights (the last one ran on the final weights).
    let kept_record = if keeps_best {
        state
            .validations
            .iter()
            .rev()
            .find(|v| v.iteration == best_record.1)
    } else {
        state.validations.last()
    };
    let base_structures = match kept_record {
        Some(kept) => structures_worse_than_base(&base_record, kept),
        None => Vec::new(),
    };
    let source = if plan.interpolation < 1.0 {
        let interpolated = work.path.join("adapter-interpolated.safetensors");
        interpolate_adapter(&source, base, plan.interpolation, &interpolated)?;
        interpolated
    } else {
        source
    };
    let source = if base_structures.is_empty() {
        source
    } else {
        log::info!(
            "the adaptation validated worse than the base model on structures              {base_structures:?}: the adapter keeps the base model's output for them"
        );
        let (mut meta, tensors) = weights::load_adapter(&source)?;
        meta.extra.insert(
            crate::model::load::BASE_STRUCTURES_KEY.to_string(),
            base_structures
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        let marked = work.path.join("adapter-with-base-structures.safetensors");
        weights::save_adapter(&marked, &meta, &tensors)?;
        marked
    };
    let adapter = std::fs::read(&source).map_err(|e| Error::io(&source, e))?;
    Ok(AdaptResult {
        base_structures,
        adapter,
        plan,
        iterations: state.iteration,
        timed_out,
        base_dice,
        best: best_record,
        validations: state.validations.clone(),
        seconds: started.elapsed().as_secs_f64(),
        trained_structures,
    })
}

//! The training loop: model set-up, iterations, checkpoints, resume, validation,
//! best model and outputs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::augment;
use super::config::TrainConfig;
use super::dataset::{gather_slices, read_subjects, Dataset, DatasetOptions, Subject};
use super::loss::{downsample_labels, segmentation_loss};
use super::optim::{learning_rate, AdamW, IterationBudget};
use super::partial::{marginal_logits, LabelledClasses, ALL_LABELLED};
use super::plot::{plot_panels, Series};
use super::prompts::{decode_with_prompts, sample_prompt};
use super::validate::{validate, ValidationRecord};
use crate::error::{Error, Result};
use crate::labels::{HEMISPHERE_MERGED_CLASSES, STRUCTURES};
use crate::model::load::split_view_models;
use crate::model::{
    adapt_state_dict, apply_training_mode, trainable_parameters, Sam, SamConfig, TrainingMode,
};
use crate::session::{context_step, gather_with_context, model_input};
use crate::session::{DeviceChoice, SlicePrompts, CONFIG_METADATA_KEY};
use crate::weights::{self, AdapterMetadata, LoadOptions};

/// Metadata key of the training state in checkpoints (JSON of [`TrainState`]).
pub const STATE_METADATA_KEY: &str = "brainsam_training_state";
/// File names in the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// Final full weights (loadable with `Model::load`).
pub const MODEL_FILE: &str = "model.safetensors";
/// Final adapter (LoRA / decoder modes with a base checkpoint).
pub const ADAPTER_FILE: &str = "adapter.safetensors";
/// Best-by-validation full weights.
pub const BEST_MODEL_FILE: &str = "best.safetensors";
/// Best-by-validation adapter.
pub const BEST_ADAPTER_FILE: &str = "best-adapter.safetensors";

/// One point of the training-loss curve (averaged over `log_every` iterations).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Iterations done.
    pub iteration: u64,
    /// Mean total loss.
    pub loss: f64,
    /// Mean cross-entropy.
    pub ce: f64,
    /// Mean Dice loss.
    pub dice_loss: f64,
    /// Learning rate of the last iteration.
    pub lr: f64,
}

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Iterations done.
    pub iteration: u64,
    /// Best validation mean Dice so far.
    pub best_dice: Option<f64>,
    /// Iteration of the best validation.
    pub best_iteration: Option<u64>,
    /// Loss curve.
    pub losses: Vec<LossPoint>,
    /// Validation history.
    pub validations: Vec<ValidationRecord>,
    /// Running sums of the current (incomplete) curve point: loss, ce, dice, count.
    pub pending: [f64; 4],
}

/// What the progress callback receives after each iteration.
#[derive(Debug, Clone)]
pub struct TrainProgress {
    /// Iterations done.
    pub iteration: u64,
    /// Total iterations of the run.
    pub total: u64,
    /// Loss of this iteration.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// The validation run after this iteration, if any.
    pub validation: Option<ValidationRecord>,
}

/// Name of the lock file in a run's output folder.
pub const LOCK_FILE: &str = ".brainsam-run.lock";

/// Exclusive use of a run's output folder: an advisory lock on [`LOCK_FILE`], held while
/// this value lives. The operating system releases it when the process ends in any way
/// (even `kill -9`), so a killed run can be resumed at once.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    folder: PathBuf,
}

impl RunLock {
    /// Locks `folder` (which must exist) for one run; a second run into the same folder,
    /// from this process or another, gets an [`Error::InvalidState`] naming the folder.
    pub fn acquire(folder: &Path) -> Result<Self> {
        let path = folder.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match crate::file_lock::lock_exclusive(&file, false) {
            Ok(true) => Ok(RunLock {
                _file: file,
                folder: folder.to_path_buf(),
            }),
            Ok(false) => Err(Error::InvalidState(format!(
                "another fine-tuning run is writing into {}: wait for it to end or choose \
                 another output folder",
                folder.display()
            ))),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// The locked folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

/// Files a run writes into its output folder (besides the lock and `config.toml`).
const RUN_FILES: [&str; 9] = [
    CHECKPOINT_FILE,
    MODEL_FILE,
    ADAPTER_FILE,
    BEST_MODEL_FILE,
    BEST_ADAPTER_FILE,
    "loss.csv",
    "validation.csv",
    "curves.png",
    "curves.txt",
];

/// Prepares a run's output folder: creates it, checks it is writable, locks it, and
/// refuses to start a fresh run over an earlier run's results unless `resume` (continue
/// it) or `overwrite` (its files are deleted first) is set.
pub fn prepare_output_folder(folder: &Path, resume: bool, overwrite: bool) -> Result<RunLock> {
    check_output_dir(folder)?;
    let lock = RunLock::acquire(folder)?;
    let earlier: Vec<&str> = [CHECKPOINT_FILE, MODEL_FILE, ADAPTER_FILE]
        .into_iter()
        .filter(|name| folder.join(name).exists())
        .collect();
    if !earlier.is_empty() && !resume {
        if !overwrite {
            return Err(Error::invalid_argument(format!(
                "the output folder {} already holds an earlier run ({}): resume it, allow \
                 overwriting it (--overwrite), or choose another folder",
                folder.display(),
                earlier.join(", ")
            )));
        }
        for name in RUN_FILES {
            let path = folder.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => log::info!("overwrite: removed {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
    Ok(lock)
}

/// Options of a run besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `checkpoint.safetensors` in the output folder if present.
    pub resume: bool,
    /// Start afresh in an output folder that holds an earlier run, deleting its files
    /// (without it, or `resume`, such a folder is refused).
    pub overwrite: bool,
    /// The output folder's lock when the caller took it already (see
    /// [`prepare_output_folder`]); None: the trainer takes it.
    pub run_lock: Option<Arc<RunLock>>,
    /// Stop (after writing a checkpoint) when set; polled every iteration.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Stop after this many iterations of the run even if more remain (a checkpoint is
    /// written), e.g. to simulate a crash in tests. None: run to the end.
    pub stop_after: Option<u64>,
}

/// Files written by a run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutputs {
    /// Resumable checkpoint.
    pub checkpoint: PathBuf,
    /// Final full weights.
    pub model: PathBuf,
    /// Final adapter, when written.
    pub adapter: Option<PathBuf>,
    /// Best model by validation Dice, when validation ran.
    pub best_model: Option<PathBuf>,
    /// Loss curve CSV.
    pub loss_csv: PathBuf,
    /// Validation CSV.
    pub validation_csv: PathBuf,
    /// Curves PNG.
    pub plot: PathBuf,
}

/// Result of [`Trainer::run`].
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Iterations done in total (resumed runs included).
    pub iterations: u64,
    /// Whether the run stopped before the end (cancel or `stop_after`).
    pub stopped_early: bool,
    /// Last validation.
    pub last_validation: Option<ValidationRecord>,
    /// Best validation mean Dice and its iteration.
    pub best: Option<(f64, u64)>,
    /// Training slices per second in this process.
    pub slices_per_second: f64,
    /// Written files.
    pub outputs: TrainOutputs,
}

/// Progress callback: return `false` to stop (a checkpoint is written first).
pub type TrainProgressFn<'a> = dyn FnMut(&TrainProgress) -> bool + 'a;

/// The base model a run starts from.
struct Base {
    checkpoint: PathBuf,
    config: SamConfig,
}

/// A prepared training run.
pub struct Trainer {
    config: TrainConfig,
    mode: TrainingMode,
    sam: Sam,
    var_store: VarStore,
    optimiser: AdamW,
    dataset: Dataset,
    base: Option<Base>,
    state: TrainState,
    output_dir: PathBuf,
    options: TrainOptions,
    /// Held for the trainer's life: no other run writes into the output folder.
    _run_lock: Arc<RunLock>,
    /// Classes labelled by each training subject (partial labels); None: all.
    labelled: Option<Vec<LabelledClasses>>,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("mode", &self.mode)
            .field("iteration", &self.state.iteration)
            .field("output_dir", &self.output_dir)
            .finish()
    }
}

fn check_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::invalid_argument(format!(
            "cannot create the output folder {}: {e}",
            dir.display()
        ))
    })?;
    let probe = dir.join(".brainsam-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| {
        Error::invalid_argument(format!(
            "the output folder {} is not writable: {e}",
            dir.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The seed of torch's generator for an iteration (SplitMix64 of seed and iteration).
fn iteration_seed(seed: u64, iteration: u64) -> i64 {
    let mut z = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(
        iteration
            .wrapping_add(1)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64 & i64::MAX
}

fn iteration_rng(seed: u64, iteration: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(iteration);
    rng
}

impl Trainer {
    /// Prepares a run from a configuration: checks values and the output folder,
    /// reads and slices every subject, builds the model (and loads the base
    /// checkpoint), and resumes from the output folder's checkpoint when asked.
    pub fn new(config: TrainConfig, mut options: TrainOptions) -> Result<Self> {
        config.validate()?;
        config.check_sources()?;
        if options.run_lock.is_none() {
            options.run_lock = Some(Arc::new(prepare_output_folder(
                &config.run.output_dir,
                options.resume,
                options.overwrite,
            )?));
        }
        let subjects = read_subjects(&config)?;
        Self::with_subjects(config, subjects, options)
    }

    /// As [`Trainer::new`] with subjects already in memory (the configuration's
    /// subject lists are ignored).
    pub fn with_subjects(
        config: TrainConfig,
        subjects: Vec<Subject>,
        options: TrainOptions,
    ) -> Result<Self> {
        config.validate()?;
        let output_dir = config.run.output_dir.clone();
        let run_lock = match &options.run_lock {
            Some(lock) if lock.folder() == output_dir => Arc::clone(lock),
            _ => Arc::new(prepare_output_folder(
                &output_dir,
                options.resume,
                options.overwrite,
            )?),
        };
        let mode = TrainingMode::parse(&config.model.mode)?;
        let device = DeviceChoice::parse(&config.run.device)?.resolve()?;
        let (model_config, base, base_tensors) = Self::model_config(&config, mode)?;
        let orientation = model_config.slice_orientation;
        if !orientation.tells_left_from_right()
            && config.augment.enabled
            && config.augment.flip_probability > 0.0
        {
            return Err(Error::invalid_argument(format!(
                "augment.flip_probability must be 0 for a {} model: mirroring its slices \
                 would flip anterior and posterior, not left and right",
                orientation.name()
            )));
        }
        let dataset = Dataset::prepare(
            subjects,
            &DatasetOptions {
                orientation: model_config.slice_orientation,
                ..DatasetOptions::from_config(&config, model_config.input_size)
            },
        )?;
        tch::manual_seed(iteration_seed(config.run.seed, u64::MAX));
        let var_store = VarStore::new(device);
        let sam = Sam::new(&var_store.root(), &model_config)?;
        if let (Some(base), Some(tensors)) = (&base, base_tensors) {
            let adapted = adapt_state_dict(&model_config, tensors)?;
            let mut allowed = vec!["*.lora_*".to_string()];
            allowed.extend(adapted.missing.iter().cloned());
            if model_config.mask_decoder.fine_output && !base.config.mask_decoder.fine_output {
                // Added now: starts as bilinear upsampling (see `fine_output`).
                allowed.push("*mask_decoder.fine_upscaling.*".to_string());
            }
            weights::load_into_var_store(
                &var_store,
                &adapted.tensors,
                &LoadOptions::strict().allowing_missing(allowed),
            )
            .map_err(|e| Error::WeightMismatch(format!("{}: {e}", base.checkpoint.display())))?;
        }
        let counts = apply_training_mode(&var_store, mode);
        log::info!(
            "training {} ({} mode): {} trainable, {} frozen parameters; {} training slices",
            model_config.name,
            mode,
            counts.trainable,
            counts.frozen,
            dataset.training_slices()
        );
        if counts.trainable == 0 {
            return Err(Error::invalid_argument(format!(
                "mode {mode} leaves no trainable parameter in this model"
            )));
        }
        let optimiser = AdamW::new(trainable_parameters(&var_store), &config.optim);
        let mut trainer = Trainer {
            config,
            mode,
            sam,
            var_store,
            optimiser,
            dataset,
            base,
            state: TrainState::default(),
            output_dir,
            options,
            _run_lock: run_lock,
            labelled: None,
        };
        if trainer.options.resume && trainer.checkpoint_path().is_file() {
            trainer.load_checkpoint()?;
        }
        Ok(trainer)
    }

    /// The model configuration to train, the base model and its tensors.
    #[allow(clippy::type_complexity)]
    fn model_config(
        config: &TrainConfig,
        mode: TrainingMode,
    ) -> Result<(SamConfig, Option<Base>, Option<Vec<(String, Tensor)>>)> {
        let (base_config, base, tensors) = match &config.model.checkpoint {
            Some(path) => {
                let (tensors, metadata) = match weights::detect_format(path)? {
                    weights::WeightFormat::Safetensors => weights::read_safetensors(path)?,
                    weights::WeightFormat::TorchZip => {
                        (weights::read_state_dict(path)?, Default::default())
                    }
                };
                // A model trained from a file with view models is one model: the main
                // model, or the view model named by `checkpoint_view`; the others are
                // not carried over.
                let (tensors, views) = split_view_models(tensors, &metadata)
                    .map_err(|e| Error::invalid_file(path, e.to_string()))?;
                let (tensors, stored_config) = match config.model.checkpoint_view {
                    None => (
                        tensors,
                        metadata
                            .get(CONFIG_METADATA_KEY)
                            .map(|json| SamConfig::from_json(json))
                            .transpose()?,
                    ),
                    Some(orientation) => {
                        let name = orientation.name();
                        let (_, view_config, view_tensors) = views
                            .into_iter()
                            .find(|(_, c, _)| c.slice_orientation == orientation)
                            .ok_or_else(|| {
                                Error::invalid_file(
                                    path,
                                    format!(
                                        "model.checkpoint_view is {name} but the file holds no {name} view model"
                                    ),
                                )
                            })?;
                        (view_tensors, Some(view_config))
                    }
                };
                // Derived as Model::load derives it, so adapters check against it.
                let base_config = match stored_config {
                    Some(c) => c,
                    None => match SamConfig::infer_from_state_dict(&tensors) {
                        Some(c) => c,
                        None => SamConfig::by_name(&config.model.config)?,
                    },
                };
                let base = Base {
                    checkpoint: path.clone(),
                    config: base_config.clone(),
                };
                (base_config, Some(base), Some(tensors))
            }
            None => (SamConfig::by_name(&config.model.config)?, None, None),
        };
        let mut model_config = base_config.with_num_classes(STRUCTURES.len() as i64);
        if let Some(size) = config.model.input_size {
            model_config = model_config.with_input_size(size);
        }
        if let Some(mm) = config.model.slice_context_mm {
            model_config = model_config.with_slice_context_mm(mm);
        }
        if let Some(fine) = config.model.fine_output {
            model_config = model_config.with_fine_output(fine);
        }
        if let Some(orientation) = config.model.slice_orientation {
            model_config = model_config.with_slice_orientation(orientation);
        }
        if mode.uses_lora() {
            if config.model.lora_rank <= 0 {
                return Err(Error::invalid_argument(format!(
                    "mode {mode} needs model.lora_rank of at least 1"
                )));
            }
            model_config = model_config.with_lora_rank(config.model.lora_rank);
        }
        model_config.validate()?;
        Ok((model_config, base, tensors))
    }

    /// Declares partial labels: the classes each training subject (by name) labels; the
    /// loss ignores the others for its slices (see [`super::partial`]). Subjects not
    /// named label every class. Refused with left-right flips, which swap classes.
    pub fn set_labelled_classes(
        &mut self,
        by_subject: &BTreeMap<String, LabelledClasses>,
    ) -> Result<()> {
        let labelled: Vec<LabelledClasses> = self
            .dataset
            .training
            .iter()
            .map(|s| by_subject.get(&s.name).copied().unwrap_or(ALL_LABELLED))
            .collect();
        let partial = labelled.iter().any(|l| l.iter().any(|&x| !x));
        if partial && self.config.augment.enabled && self.config.augment.flip_probability > 0.0 {
            return Err(Error::invalid_argument(
                "partial labels cannot be combined with left-right flips (augment.flip_probability)",
            ));
        }
        let orientation = self.sam.config().slice_orientation;
        if partial && !orientation.tells_left_from_right() {
            return Err(Error::invalid_argument(format!(
                "partial labels cannot train a {} model, which merges left and right classes",
                orientation.name()
            )));
        }
        self.labelled = partial.then_some(labelled);
        Ok(())
    }

    /// The model being trained.
    pub fn sam(&self) -> &Sam {
        &self.sam
    }

    /// Its parameters.
    pub fn var_store(&self) -> &VarStore {
        &self.var_store
    }

    /// The prepared data.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The training state (iteration, curves, best validation).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Path of the resumable checkpoint.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.output_dir.join(CHECKPOINT_FILE)
    }

    fn device(&self) -> Device {
        self.var_store.device()
    }

    /// One optimiser iteration; returns (loss, lr).
    fn iterate(&mut self) -> Result<(f64, f64, f64, f64)> {
        let iteration = self.state.iteration;
        let seed = self.config.run.seed;
        let mut rng = iteration_rng(seed, iteration);
        tch::manual_seed(iteration_seed(seed, iteration));
        let device = self.device();
        let picks = self.dataset.sample(&mut rng, self.config.run.batch_size);
        let context_mm = self.sam.config().slice_context_mm;
        let mut images = Vec::with_capacity(picks.len());
        let mut labels = Vec::with_capacity(picks.len());
        for &(s, i) in &picks {
            let subject = &self.dataset.training[s];
            let jitter = self.config.augment.context_jitter;
            let step = if context_mm > 0.0 && jitter > 0.0 {
                let factor = rng.gen_range(1.0 - jitter..=1.0 + jitter);
                context_step(context_mm * factor, subject.slice_spacing_mm)
            } else {
                context_step(context_mm, subject.slice_spacing_mm)
            };
            let classes = gather_slices(&subject.classes, &[i]);
            // Synthesis runs on the training device (on a GPU the CPU would be the
            // bottleneck); the slice stacks stay in CPU memory.
            let image = match &subject.images {
                Some(stack) if !rng.gen_bool(self.config.synth.image_subject_probability) => {
                    gather_with_context(stack, &[i], step).to_device(device)
                }
                _ => augment::synthesize(
                    &gather_with_context(&subject.codes, &[i], step).to_device(device),
                    &mut rng,
                    &self.config.synth,
                )?,
            };
            images.push(image);
            labels.push(classes.to_kind(Kind::Int64));
        }
        let mut images = Tensor::cat(&images, 0).to_device(device);
        let mut labels = Tensor::cat(&labels, 0).to_device(device);
        if self.config.augment.enabled {
            let (warped, warped_labels) =
                augment::spatial(&images, &labels, &mut rng, &self.config.augment)?;
            images = augment::intensity(&warped, &mut rng, &self.config.augment)?;
            labels = warped_labels;
            // No draw at probability 0, so runs without flips keep their random stream.
            let flip = self.config.augment.flip_probability;
            if flip > 0.0 {
                let flips: Vec<bool> = (0..picks.len()).map(|_| rng.gen_bool(flip)).collect();
                (images, labels) = augment::flip_left_right(&images, &labels, &flips)?;
            }
        }
        if !self.sam.config().slice_orientation.tells_left_from_right() {
            let merge = Tensor::from_slice(&HEMISPHERE_MERGED_CLASSES).to_device(device);
            labels = merge
                .f_index_select(0, &labels.flatten(0, -1))?
                .view_as(&labels);
        }
        let side = labels.size()[1] as usize;
        let cpu_labels = labels.to_device(Device::Cpu).to_kind(Kind::Uint8);
        let prompts: Vec<SlicePrompts> = (0..picks.len())
            .map(|b| -> Result<SlicePrompts> {
                let classes: Vec<u8> = Vec::try_from(&cpu_labels.get(b as i64).flatten(0, -1))?;
                // No prompt (None) decodes as empty prompts.
                let prompt = sample_prompt(&classes, side, &self.config.prompts, &mut rng);
                Ok(prompt.unwrap_or_default())
            })
            .collect::<Result<_>>()?;
        let lr = learning_rate(&self.config.optim, iteration, self.config.run.iterations);
        let mixed = self.config.run.mixed_precision && device.is_cuda();
        let input = model_input(&self.sam, &images)?;
        let encoder_trains = self.mode != TrainingMode::Decoder;
        let logits = tch::autocast(mixed, || -> Result<Tensor> {
            let embeddings = if encoder_trains {
                self.sam.encode_images(&input)?
            } else {
                tch::no_grad(|| self.sam.encode_images(&input))?
            };
            decode_with_prompts(&self.sam, &embeddings, &prompts)
        })?;
        let logits = match &self.labelled {
            Some(labelled) => {
                let per_sample: Vec<LabelledClasses> =
                    picks.iter().map(|&(s, _)| labelled[s]).collect();
                marginal_logits(&logits, &per_sample)?
            }
            None => logits,
        };
        let target = downsample_labels(&labels, logits.size()[2])?;
        let loss = segmentation_loss(&logits, &target, &self.config.loss)?;
        self.optimiser.zero_grad();
        loss.total.f_backward()?;
        if let Some(max_norm) = self.config.optim.clip_grad_norm {
            self.optimiser.clip_grad_norm(max_norm);
        }
        self.optimiser.step(lr);
        self.state.iteration += 1;
        Ok((loss.total.double_value(&[]), loss.ce, loss.dice, lr))
    }

    /// Runs the remaining iterations with validation, checkpoints and outputs.
    pub fn run(&mut self, progress: &mut TrainProgressFn<'_>) -> Result<TrainReport> {
        let mut total = self.config.run.iterations;
        let started = Instant::now();
        let start_iteration = self.state.iteration;
        let mut budget = IterationBudget::new(self.config.run.minutes, start_iteration);
        let mut stopped_early = false;
        let mut last_validation = self.state.validations.last().cloned();
        while self.state.iteration < total {
            let (loss, ce, dice, lr) = self.iterate()?;
            let iteration = self.state.iteration;
            if let Some(budget) = &mut budget {
                // The schedule in `iterate` reads the fitted total from the config.
                total = budget.total(iteration, total);
                self.config.run.iterations = total;
            }
            let pending = &mut self.state.pending;
            pending[0] += loss;
            pending[1] += ce;
            pending[2] += dice;
            pending[3] += 1.0;
            if iteration.is_multiple_of(self.config.run.log_every.max(1)) || iteration == total {
                let n = pending[3];
                self.state.losses.push(LossPoint {
                    iteration,
                    loss: pending[0] / n,
                    ce: pending[1] / n,
                    dice_loss: pending[2] / n,
                    lr,
                });
                self.state.pending = [0.0; 4];
            }
            let validate_now = !self.dataset.validation.is_empty()
                && ((self.config.run.validate_every > 0
                    && iteration.is_multiple_of(self.config.run.validate_every))
                    || iteration == total);
            let mut validation = None;
            if validate_now {
                let record = self.validate_now()?;
                last_validation = Some(record.clone());
                validation = Some(record);
            }
            let cancelled = self
                .options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed));
            let keep_going = progress(&TrainProgress {
                iteration,
                total,
                loss,
                lr,
                validation,
            });
            let stop_here = self
                .options
                .stop_after
                .is_some_and(|n| iteration - start_iteration >= n);
            let every = self.config.run.checkpoint_every;
            if (every > 0 && iteration.is_multiple_of(every))
                || iteration == total
                || stop_here
                || cancelled
                || !keep_going
            {
                self.save_checkpoint()?;
                self.write_curves()?;
            }
            if cancelled || !keep_going {
                return Err(Error::Cancelled);
            }
            if stop_here && iteration < total {
                stopped_early = true;
                break;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let slices =
            (self.state.iteration - start_iteration) as f64 * self.config.run.batch_size as f64;
        let outputs = self.outputs();
        if !stopped_early {
            self.save_model(&outputs.model, outputs.adapter.as_deref())?;
            self.write_curves()?;
        }
        Ok(TrainReport {
            iterations: self.state.iteration,
            stopped_early,
            last_validation,
            best: self.state.best_dice.zip(self.state.best_iteration),
            slices_per_second: if elapsed > 0.0 { slices / elapsed } else { 0.0 },
            outputs,
        })
    }

    fn outputs(&self) -> TrainOutputs {
        let adapter = self
            .adapter_allowed()
            .then(|| self.output_dir.join(ADAPTER_FILE));
        TrainOutputs {
            checkpoint: self.checkpoint_path(),
            model: self.output_dir.join(MODEL_FILE),
            adapter,
            best_model: self
                .state
                .best_dice
                .map(|_| self.output_dir.join(BEST_MODEL_FILE)),
            loss_csv: self.output_dir.join("loss.csv"),
            validation_csv: self.output_dir.join("validation.csv"),
            plot: self.output_dir.join("curves.png"),
        }
    }

    /// Validates now, records the result and keeps the best model.
    pub fn validate_now(&mut self) -> Result<ValidationRecord> {
        let record = validate(
            &self.sam,
            &self.var_store,
            &self.dataset.validation,
            self.config.run.validate_3d,
            &self.config.synth,
            self.state.iteration,
        )?;
        self.state.validations.push(record.clone());
        if self
            .state
            .best_dice
            .is_none_or(|best| record.mean_dice > best)
        {
            self.state.best_dice = Some(record.mean_dice);
            self.state.best_iteration = Some(record.iteration);
            let best = self.output_dir.join(BEST_MODEL_FILE);
            let adapter = self
                .adapter_allowed()
                .then(|| self.output_dir.join(BEST_ADAPTER_FILE));
            self.save_model(&best, adapter.as_deref())?;
        }
        Ok(record)
    }

    /// An adapter makes sense with a base checkpoint, a non-full mode and LoRA tensors.
    fn adapter_allowed(&self) -> bool {
        self.base.is_some() && self.mode != TrainingMode::Full && self.sam.config().lora.is_some()
    }

    fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = self.var_store.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// Writes full weights (with the configuration under [`CONFIG_METADATA_KEY`]) and,
    /// when `adapter` is given, an adapter of the trainable tensors for the base model.
    pub fn save_model(&self, model: &Path, adapter: Option<&Path>) -> Result<()> {
        let mut metadata = BTreeMap::new();
        metadata.insert(CONFIG_METADATA_KEY.to_string(), self.sam.config().to_json());
        metadata.insert("brainsam_training_mode".to_string(), self.mode.to_string());
        metadata.insert(
            "brainsam_iteration".to_string(),
            self.state.iteration.to_string(),
        );
        weights::save_safetensors(model, &self.named_variables(), &metadata)?;
        if let (Some(path), Some(base)) = (adapter, &self.base) {
            let config = self.sam.config();
            let class_names: Vec<String> = std::iter::once("background".to_string())
                .chain(STRUCTURES.iter().map(|s| s.long_name.to_string()))
                .collect();
            let mut meta = AdapterMetadata::new(
                base.config.to_json(),
                weights::sha256_file(&base.checkpoint)?,
                config.lora.as_ref().map_or(0, |l| l.rank as u32),
                config.input_size as u32,
                class_names,
            );
            meta.extra
                .insert("training_mode".to_string(), self.mode.to_string());
            let tensors: Vec<(String, Tensor)> = trainable_parameters(&self.var_store)
                .into_iter()
                .chain(self.named_variables().into_iter().filter(|(n, _)| {
                    crate::model::is_lora(n) && self.mode == TrainingMode::Decoder
                }))
                .collect();
            weights::save_adapter(path, &meta, &tensors)?;
        }
        Ok(())
    }

    /// Writes the resumable checkpoint (weights, optimiser moments, state) atomically.
    pub fn save_checkpoint(&self) -> Result<()> {
        let mut tensors: Vec<(String, Tensor)> = self
            .named_variables()
            .into_iter()
            .map(|(n, t)| (format!("model.{n}"), t))
            .collect();
        tensors.extend(self.optimiser.state_tensors());
        let mut metadata = BTreeMap::new();
        metadata.insert(CONFIG_METADATA_KEY.to_string(), self.sam.config().to_json());
        metadata.insert(
            STATE_METADATA_KEY.to_string(),
            serde_json::to_string(&self.state)
                .map_err(|e| Error::Internal(format!("training state: {e}")))?,
        );
        metadata.insert(
            "brainsam_optimiser_step".to_string(),
            self.optimiser.step_count().to_string(),
        );
        metadata.insert("brainsam_training_mode".to_string(), self.mode.to_string());
        weights::save_safetensors(&self.checkpoint_path(), &tensors, &metadata)
    }

    fn load_checkpoint(&mut self) -> Result<()> {
        let path = self.checkpoint_path();
        let (tensors, metadata) = weights::read_safetensors(&path)?;
        let invalid = |reason: String| Error::invalid_file(&path, reason);
        let saved_config = metadata
            .get(CONFIG_METADATA_KEY)
            .ok_or_else(|| invalid("no model configuration in the checkpoint".into()))?;
        if SamConfig::from_json(saved_config)? != *self.sam.config() {
            return Err(invalid(
                "the checkpoint was made for another model configuration than this run's".into(),
            ));
        }
        if metadata.get("brainsam_training_mode") != Some(&self.mode.to_string()) {
            return Err(invalid(format!(
                "the checkpoint was made in another training mode than {}",
                self.mode
            )));
        }
        let state: TrainState = serde_json::from_str(
            metadata
                .get(STATE_METADATA_KEY)
                .ok_or_else(|| invalid("no training state in the checkpoint".into()))?,
        )
        .map_err(|e| invalid(format!("training state: {e}")))?;
        let step: i64 = metadata
            .get("brainsam_optimiser_step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no optimiser step in the checkpoint".into()))?;
        let model: Vec<(String, Tensor)> = tensors
            .iter()
            .filter_map(|(n, t)| {
                n.strip_prefix("model.")
                    .map(|n| (n.to_string(), t.shallow_clone()))
            })
            .collect();
        weights::load_into_var_store(&self.var_store, &model, &LoadOptions::strict())
            .map_err(|e| invalid(e.to_string()))?;
        self.optimiser.load_state(&tensors, step)?;
        log::info!(
            "resumed {} at iteration {}",
            path.display(),
            state.iteration
        );
        self.state = state;
        Ok(())
    }

    /// Writes `loss.csv`, `validation.csv`, `curves.png` and `curves.txt`.
    pub fn write_curves(&self) -> Result<()> {
        let mut loss_csv = String::from("iteration,loss,ce,dice_loss,lr\n");
        for p in &self.state.losses {
            loss_csv.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:.8}\n",
                p.iteration, p.loss, p.ce, p.dice_loss, p.lr
            ));
        }
        let mut validation_csv = String::from("iteration,mean_dice");
        for s in STRUCTURES.iter() {
            validation_csv.push_str(&format!(",{}", s.short_name));
        }
        validation_csv.push('\n');
        for v in &self.state.validations {
            validation_csv.push_str(&format!("{},{:.5}", v.iteration, v.mean_dice));
            for d in &v.structure_dice {
                match d {
                    Some(d) => validation_csv.push_str(&format!(",{d:.5}")),
                    None => validation_csv.push(','),
                }
            }
            validation_csv.push('\n');
        }
        for (name, text) in [("loss.csv", loss_csv), ("validation.csv", validation_csv)] {
            let path = self.output_dir.join(name);
            weights::atomic_write(&path, |w| {
                w.write_all(text.as_bytes())
                    .map_err(|e| Error::io(&path, e))
            })?;
        }
        let loss_points: Vec<(f64, f64)> = self
            .state
            .losses
            .iter()
            .map(|p| (p.iteration as f64, p.loss))
            .collect();
        let dice_points: Vec<(f64, f64)> = self
            .state
            .validations
            .iter()
            .map(|v| (v.iteration as f64, v.mean_dice))
            .collect();
        plot_panels(
            &self.output_dir.join("curves.png"),
            &self.output_dir.join("curves.txt"),
            &[
                vec![Series {
                    name: "training loss",
                    points: loss_points,
                    colour: [200, 40, 40],
                }],
                vec![Series {
                    name: "validation mean Dice",
                    points: dice_points,
                    colour: [30, 90, 200],
                }],
            ],
        )
    }
}

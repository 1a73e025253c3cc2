//! The fine-tuning configuration: every setting of a run, readable from TOML.
//!
//! ```toml
//! [model]
//! config = "small"            # vit_b, vit_l, vit_h, small, tiny (ignored when the
//!                             # base checkpoint has BrainSAM metadata)
//! checkpoint = "sam_vit_b_01ec64.pth"   # optional base weights
//! mode = "lora"               # lora, lora-encoder, decoder, full
//! lora_rank = 16
//! input_size = 256
//!
//! [run]
//! output_dir = "runs/small"
//! iterations = 2000
//! batch_size = 12
//! seed = 1
//!
//! validation = ["sub-09"]
//!
//! [[subjects]]
//! name = "sub-01"
//! image = "/data/sub-01/T1.nii.gz"
//! label = "/data/sub-01/aseg.nii.gz"
//! scheme = "freesurfer"
//!
//! [[label_only]]
//! label = "/data/synthseg/training_seg_01.nii.gz"
//! scheme = "freesurfer"
//! ```
//!
//! Top-level keys must come before the tables (TOML rule). Unknown keys are errors.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::volume::frame::SliceOrientation;

/// A subject with an image and its label map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEntry {
    /// Name used for the split (default: the image file name's parent folder name
    /// when it is not generic, else the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// T1 image (NIfTI).
    pub image: PathBuf,
    /// Label map on the same grid (NIfTI).
    pub label: PathBuf,
    /// Label scheme name (see [`crate::labels::LabelScheme::from_name`]) or a mapping
    /// file path.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

/// A label map without image: images are synthesised from it (SynthSeg style).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelOnlyEntry {
    /// Name (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Label map (NIfTI) holding integer codes.
    pub label: PathBuf,
    /// Label scheme name or mapping file.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_scheme() -> String {
    "freesurfer".to_string()
}

/// The model to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Configuration name (vit_b, vit_l, vit_h, small, tiny), used when there is no
    /// base checkpoint or the checkpoint carries no configuration.
    pub config: String,
    /// Base weights (official SAM `.pth` or BrainSAM `.safetensors`); None: random
    /// initialisation (use mode `full`).
    pub checkpoint: Option<PathBuf>,
    /// Training mode: `lora`, `lora-encoder`, `decoder` or `full`.
    pub mode: String,
    /// LoRA rank (modes `lora` and `lora-encoder`; 0 = no LoRA).
    pub lora_rank: i64,
    /// Model input size in pixels (None: the configuration's).
    pub input_size: Option<i64>,
    /// Through-plane context of the trained model in mm (see
    /// `SamConfig::slice_context_mm`; None: the base model's, 0 for official SAM).
    /// Giving context to a model trained without it starts from its weights: the three
    /// input channels then differ only where the neighbouring slices do.
    pub slice_context_mm: Option<f64>,
    /// Whether the trained model's mask decoder has the fine output stage (see
    /// `MaskDecoderConfig::fine_output`; None: as the base model). Adding it to a base
    /// without one starts the stage as bilinear upsampling (the base's own logits).
    pub fine_output: Option<bool>,
    /// The plane the trained model reads (`coronal`, `axial` or `sagittal`; None: as the
    /// base model). A model trained in another orientation starts from the base's
    /// weights; a sagittal one learns left and right structures as one class and needs
    /// `augment.flip_probability = 0`.
    pub slice_orientation: Option<SliceOrientation>,
    /// Start from the model of this orientation that `checkpoint` carries beside its main
    /// model (a file made by `brainsam combine-views`), to train it further; None: the
    /// file's main model. A file without a model of that orientation is an error.
    pub checkpoint_view: Option<SliceOrientation>,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            config: "small".into(),
            checkpoint: None,
            mode: "full".into(),
            lora_rank: 16,
            input_size: None,
            slice_context_mm: None,
            fine_output: None,
            slice_orientation: None,
            checkpoint_view: None,
        }
    }
}

/// Learning-rate decay after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LrDecay {
    /// SAMed: `base * (1 - (it - warmup) / iterations) ^ power`.
    Polynomial {
        /// Exponent (SAMed: 0.9).
        power: f64,
    },
    /// `base * gamma ^ (it - warmup)`.
    Exponential {
        /// Factor per iteration (e.g. 0.999).
        gamma: f64,
    },
    /// No decay.
    Constant,
}

/// Optimiser and schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// Base learning rate (paper: 0.005).
    pub lr: f64,
    /// AdamW beta1.
    pub beta1: f64,
    /// AdamW beta2.
    pub beta2: f64,
    /// AdamW epsilon.
    pub eps: f64,
    /// Decoupled weight decay (paper: 0.1).
    pub weight_decay: f64,
    /// Linear warm-up iterations (paper: 250).
    pub warmup: u64,
    /// Decay after the warm-up.
    pub decay: LrDecay,
    /// Clip the global gradient norm to this value (None: no clipping).
    pub clip_grad_norm: Option<f64>,
}

impl Default for OptimSection {
    fn default() -> Self {
        OptimSection {
            lr: 0.005,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
            warmup: 250,
            decay: LrDecay::Polynomial { power: 0.9 },
            clip_grad_norm: Some(1.0),
        }
    }
}

/// Loss weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSection {
    /// Weight of the cross-entropy (paper: 0.2).
    pub ce_weight: f64,
    /// Weight of the soft Dice loss (paper: 0.8).
    pub dice_weight: f64,
}

impl Default for LossSection {
    fn default() -> Self {
        LossSection {
            ce_weight: 0.2,
            dice_weight: 0.8,
        }
    }
}

/// Slice-level augmentation (probabilities per sample, ranges symmetric).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Master switch.
    pub enabled: bool,
    /// Probability of a random affine transform.
    pub affine_probability: f64,
    /// Maximum rotation, degrees.
    pub rotation_degrees: f64,
    /// Maximum relative scale change (0.1 = ±10 %).
    pub scale: f64,
    /// Maximum translation, fraction of the image side.
    pub translation: f64,
    /// Probability of an elastic deformation.
    pub elastic_probability: f64,
    /// Elastic displacement amplitude, fraction of the image side.
    pub elastic_magnitude: f64,
    /// Control grid of the elastic field (points per side).
    pub elastic_grid: i64,
    /// Probability of each intensity change (gamma, contrast, bias, noise).
    pub intensity_probability: f64,
    /// Maximum |log gamma|.
    pub log_gamma: f64,
    /// Maximum relative contrast change.
    pub contrast: f64,
    /// Maximum bias-field amplitude (log scale).
    pub bias_field: f64,
    /// Maximum noise standard deviation (image range is about 0..1).
    pub noise_std: f64,
    /// Probability of blur / resolution loss.
    pub blur_probability: f64,
    /// Maximum Gaussian blur sigma, pixels.
    pub blur_sigma: f64,
    /// Maximum down-sampling factor of the resolution change (1 = off).
    pub max_downsample: f64,
    /// Probability of a left-right flip (left and right structures swap labels).
    pub flip_probability: f64,
    /// Relative jitter of the through-plane context distance of models with context
    /// (0.5: each sample uses 0.5 to 1.5 times the model's distance), so the model
    /// copes with scans of other slice spacings.
    pub context_jitter: f64,
}

impl Default for AugmentSection {
    fn default() -> Self {
        AugmentSection {
            enabled: true,
            affine_probability: 0.5,
            rotation_degrees: 10.0,
            scale: 0.1,
            translation: 0.05,
            elastic_probability: 0.3,
            elastic_magnitude: 0.01,
            elastic_grid: 5,
            intensity_probability: 0.5,
            log_gamma: 0.3,
            contrast: 0.2,
            bias_field: 0.3,
            noise_std: 0.03,
            blur_probability: 0.2,
            blur_sigma: 1.0,
            max_downsample: 2.0,
            flip_probability: 0.0,
            context_jitter: 0.0,
        }
    }
}

/// SynthSeg-style image synthesis from label maps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthSection {
    /// Probability that a sample from an image subject is replaced by an image
    /// synthesised from its label codes (label-only samples are always synthesised).
    pub image_subject_probability: f64,
    /// Maximum within-label standard deviation (image range 0..1).
    pub label_std: f64,
    /// Maximum bias-field amplitude (log scale).
    pub bias_field: f64,
    /// Maximum blur sigma, pixels.
    pub blur_sigma: f64,
    /// Maximum noise standard deviation.
    pub noise_std: f64,
}

impl Default for SynthSection {
    fn default() -> Self {
        SynthSection {
            image_subject_probability: 0.0,
            label_std: 0.05,
            bias_field: 0.4,
            blur_sigma: 1.0,
            noise_std: 0.03,
        }
    }
}

/// Prompt sampling during training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptSection {
    /// Probability that a sample gets prompts for one of its structures.
    pub probability: f64,
    /// Probability that a prompted sample gets a box (else only points).
    pub box_probability: f64,
    /// Probability that a box-prompted sample also gets points.
    pub box_with_points_probability: f64,
    /// Maximum positive points.
    pub max_positive: usize,
    /// Maximum negative points.
    pub max_negative: usize,
    /// Box jitter: each side moves by up to this fraction of the box size (plus 2 px).
    pub box_jitter: f64,
}

impl Default for PromptSection {
    fn default() -> Self {
        PromptSection {
            probability: 0.5,
            box_probability: 0.5,
            box_with_points_probability: 0.3,
            max_positive: 3,
            max_negative: 2,
            box_jitter: 0.1,
        }
    }
}

/// Largest `run.batch_size` accepted (slices per iteration).
pub const MAX_BATCH_SIZE: usize = 1024;
/// Largest `run.iterations` accepted.
pub const MAX_ITERATIONS: u64 = 100_000_000;

/// Run control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Output folder (checkpoints, model, curves).
    pub output_dir: PathBuf,
    /// Total optimiser iterations.
    pub iterations: u64,
    /// Slices per iteration.
    pub batch_size: usize,
    /// Seed of every random choice (sampling, augmentation, initialisation).
    pub seed: u64,
    /// Write the resumable checkpoint every N iterations (0: only at the end).
    pub checkpoint_every: u64,
    /// Validate every N iterations (0: only at the end).
    pub validate_every: u64,
    /// Average the training loss over N iterations per curve point.
    pub log_every: u64,
    /// `auto`, `cpu` or `cuda`.
    pub device: String,
    /// bf16 autocast on CUDA (the CPU always runs fp32).
    pub mixed_precision: bool,
    /// Weight of a slice without any structure relative to one with structures.
    pub empty_slice_weight: f64,
    /// Weight of a slice holding a small structure (pallidum, hippocampus, amygdala)
    /// relative to other slices with structures (structure-aware sampling).
    pub small_structure_weight: f64,
    /// Validate with 3D inference (session pipeline) rather than per slice.
    pub validate_3d: bool,
    /// Time budget in minutes (None: none). The run times its first iterations and then
    /// lowers `iterations` to what fits the budget, so the learning-rate schedule still
    /// decays to its end; it stops at the budget in any case (see
    /// [`super::optim::IterationBudget`]).
    pub minutes: Option<f64>,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            output_dir: PathBuf::from("brainsam-run"),
            iterations: 1000,
            batch_size: 8,
            seed: 0,
            checkpoint_every: 200,
            validate_every: 200,
            log_every: 10,
            device: "auto".into(),
            mixed_precision: true,
            empty_slice_weight: 0.1,
            small_structure_weight: 1.0,
            validate_3d: true,
            minutes: None,
        }
    }
}

/// Everything about a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[derive(Default)]
pub struct TrainConfig {
    /// Names of the subjects held out for validation (split by subject).
    pub validation: Vec<String>,
    /// When `validation` is empty: this many image subjects (the last ones by name)
    /// are held out.
    pub validation_count: usize,
    /// Image + label subjects.
    pub subjects: Vec<SubjectEntry>,
    /// Label-only subjects (synthesised images).
    pub label_only: Vec<LabelOnlyEntry>,
    /// Model.
    pub model: ModelSection,
    /// Run control.
    pub run: RunSection,
    /// Optimiser and schedule.
    pub optim: OptimSection,
    /// Loss weights.
    pub loss: LossSection,
    /// Augmentation.
    pub augment: AugmentSection,
    /// Synthesis.
    pub synth: SynthSection,
    /// Prompt sampling.
    pub prompts: PromptSection,
    /// When present, the run trains only the interactive head of `model.checkpoint`
    /// (see [`super::interactive`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<super::interactive::InteractiveSection>,
}

impl TrainConfig {
    /// Parses TOML text; relative data paths stay as written.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| Error::invalid_argument(format!("training configuration: {e}")))
    }

    /// Reads a TOML file; relative paths in it are taken relative to its folder.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: TrainConfig = toml::from_str(&text)
            .map_err(|e| Error::invalid_file(path, format!("training configuration: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for subject in &mut config.subjects {
            resolve(&mut subject.image);
            resolve(&mut subject.label);
        }
        for entry in &mut config.label_only {
            resolve(&mut entry.label);
        }
        if let Some(checkpoint) = &mut config.model.checkpoint {
            resolve(checkpoint);
        }
        if let Some(cache) = config
            .interactive
            .as_mut()
            .and_then(|i| i.embedding_cache.as_mut())
        {
            resolve(cache);
        }
        resolve(&mut config.run.output_dir);
        Ok(config)
    }

    /// The configuration as TOML (saved next to the outputs).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Internal(format!("cannot write TOML: {e}")))
    }

    /// Checks that the configuration names training data and that every file it names
    /// exists (their content is checked when the data is prepared): done before a run
    /// starts, so that a caller hears of a missing file at once.
    pub fn check_sources(&self) -> Result<()> {
        if self.subjects.is_empty() && self.label_only.is_empty() {
            return Err(Error::invalid_argument(
                "no training data (the subject lists are empty): give a configuration file with \
                 [[subjects]] or [[label_only]]",
            ));
        }
        let files = self
            .subjects
            .iter()
            .flat_map(|s| [("image", &s.image), ("label", &s.label)])
            .chain(self.label_only.iter().map(|s| ("label", &s.label)))
            .chain(
                self.model
                    .checkpoint
                    .iter()
                    .map(|c| ("model.checkpoint", c)),
            );
        for (what, path) in files {
            if !path.is_file() {
                return Err(Error::invalid_argument(format!(
                    "{what} file {} does not exist (or is not a file)",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks value ranges (not the files; see [`super::Dataset::prepare`]).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid_argument(m));
        if self.run.iterations == 0 {
            return bad("run.iterations must be at least 1".into());
        }
        if self.run.batch_size == 0 {
            return bad("run.batch_size must be at least 1".into());
        }
        if self.model.checkpoint_view.is_some() && self.model.checkpoint.is_none() {
            return bad(
                "model.checkpoint_view names a view model of model.checkpoint: give the checkpoint"
                    .into(),
            );
        }
        if let Some(minutes) = self.run.minutes {
            if !(minutes.is_finite() && minutes > 0.0) {
                return bad(format!(
                    "run.minutes {minutes}: give a positive number of minutes (or leave it out \
                     for no time budget)"
                ));
            }
        }
        if self.run.batch_size > MAX_BATCH_SIZE {
            return bad(format!(
                "run.batch_size {} is above the largest supported {MAX_BATCH_SIZE}",
                self.run.batch_size
            ));
        }
        if self.run.iterations > MAX_ITERATIONS {
            return bad(format!(
                "run.iterations {} is above the largest supported {MAX_ITERATIONS}",
                self.run.iterations
            ));
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return bad(format!("optim.lr {} must be positive", self.optim.lr));
        }
        for (name, beta) in [("beta1", self.optim.beta1), ("beta2", self.optim.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("optim.{name} {beta} must be in [0, 1)"));
            }
        }
        if self.optim.weight_decay < 0.0 {
            return bad("optim.weight_decay must not be negative".into());
        }
        if let Some(clip) = self.optim.clip_grad_norm {
            if clip.is_nan() || clip <= 0.0 {
                return bad(format!("optim.clip_grad_norm {clip} must be positive"));
            }
        }
        if self.loss.ce_weight < 0.0
            || self.loss.dice_weight < 0.0
            || self.loss.ce_weight + self.loss.dice_weight <= 0.0
        {
            return bad("loss weights must be non-negative and not both zero".into());
        }
        let probabilities = [
            ("prompts.probability", self.prompts.probability),
            ("prompts.box_probability", self.prompts.box_probability),
            (
                "prompts.box_with_points_probability",
                self.prompts.box_with_points_probability,
            ),
            (
                "synth.image_subject_probability",
                self.synth.image_subject_probability,
            ),
            (
                "augment.affine_probability",
                self.augment.affine_probability,
            ),
            (
                "augment.elastic_probability",
                self.augment.elastic_probability,
            ),
            (
                "augment.intensity_probability",
                self.augment.intensity_probability,
            ),
            ("augment.blur_probability", self.augment.blur_probability),
            ("augment.flip_probability", self.augment.flip_probability),
            ("augment.context_jitter", self.augment.context_jitter),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} {p} must be in [0, 1]"));
            }
        }
        if self.augment.elastic_grid < 2 {
            return bad("augment.elastic_grid must be at least 2".into());
        }
        if self.augment.max_downsample < 1.0 {
            return bad("augment.max_downsample must be at least 1".into());
        }
        if self.prompts.max_positive == 0 && self.prompts.max_negative == 0 {
            return bad("prompts.max_positive and max_negative cannot both be 0".into());
        }
        if self.run.empty_slice_weight.is_nan() || self.run.empty_slice_weight < 0.0 {
            return bad("run.empty_slice_weight must not be negative".into());
        }
        if !(self.run.small_structure_weight.is_finite() && self.run.small_structure_weight > 0.0) {
            return bad(format!(
                "run.small_structure_weight {}: give a positive weight (1: no preference)",
                self.run.small_structure_weight
            ));
        }
        match self.optim.decay {
            LrDecay::Polynomial { power } if power.is_nan() || power <= 0.0 => {
                bad(format!("polynomial decay power {power} must be positive"))
            }
            LrDecay::Exponential { gamma } if gamma.is_nan() || gamma <= 0.0 || gamma > 1.0 => {
                bad(format!("exponential decay gamma {gamma} must be in (0, 1]"))
            }
            _ => Ok(()),
        }
    }
}

//! Fine-tuning engine: datasets of (image, label) NIfTI pairs or label maps alone,
//! turned into the inference pipeline's coronal slices; SynthSeg-style synthesis and
//! 2D augmentation; prompt-aware training with 0.2 CE + 0.8 Dice, our own AdamW and
//! a warm-up + decay schedule; atomic, resumable checkpoints; validation Dice (3D
//! through the session, or per slice); outputs loadable by
//! [`crate::session::Model::load`] (full weights, or an adapter for the base model).
//!
//! ```ignore
//! let config = TrainConfig::read(Path::new("run.toml"))?;
//! let mut trainer = Trainer::new(config, TrainOptions::default())?;
//! let report = trainer.run(&mut |p: &TrainProgress| {
//!     println!("{} / {}: loss {:.4}", p.iteration, p.total, p.loss);
//!     true // false cancels (after a checkpoint)
//! })?;
//! ```
//!
//! Runs are deterministic on the CPU for a given seed: every iteration draws its
//! samples, augmentation and prompts from an RNG seeded by (seed, iteration) and
//! re-seeds torch's generator likewise, so a resumed run repeats exactly what the
//! uninterrupted one would have done. Torch's generator is process-wide: two trainings
//! running at the same time in one process are each valid but not reproducible.

pub mod adapt;
pub mod adapt_run;
pub mod augment;
pub mod config;
pub mod dataset;
pub mod interactive;
pub mod loss;
pub mod optim;
pub mod partial;
pub mod plot;
pub mod prompts;
pub mod run;
pub mod trainer;
pub mod validate;

pub use config::{
    AugmentSection, LabelOnlyEntry, LossSection, LrDecay, ModelSection, OptimSection,
    PromptSection, RunSection, SubjectEntry, SynthSection, TrainConfig, MAX_BATCH_SIZE,
    MAX_ITERATIONS,
};
pub use dataset::{
    Dataset, DatasetOptions, HeldOutSlices, ScoredPlanes, Subject, SubjectSlices, ValidationSubject,
};
pub use interactive::{train_interactive, InteractiveProgress, InteractiveSection};
pub use optim::{learning_rate, AdamW};
pub use prompts::sample_prompt;
pub use run::{FineTuneOutcome, FineTuneOutput, FineTuneRun, FineTuneSnapshot};
pub use trainer::{
    prepare_output_folder, RunLock, TrainOptions, TrainOutputs, TrainProgress, TrainProgressFn,
    TrainReport, TrainState, Trainer, LOCK_FILE,
};
pub use validate::{prompted_dice, EvalPrompt, ValidationRecord};

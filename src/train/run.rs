//! A fine-tuning run on a background thread that the caller polls, cancels, waits for
//! and whose outputs it copies out: the core behind the C ABI (`brainsam_fine_tune_*`),
//! the C++ `FineTune` and the Python `FineTune`, so all of them behave the same.
//!
//! The run is a [`Job`] (the library's one background-run pattern) whose work is a
//! [`Trainer`]; the job's cancel flag is the trainer's, so a cancel during data
//! preparation stops before training and one during training writes a checkpoint first.
//!
//! Thread safety: every method may be called from any thread, on the same run at the
//! same time. The per-iteration hook runs on the training thread; [`FineTuneRun::wait`]
//! from it returns [`Error::InvalidState`], and dropping the run there does not wait.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::job::{Job, JobState};
use crate::train::{TrainConfig, TrainOptions, TrainOutputs, TrainProgress, Trainer};

/// How a run ended.
#[derive(Debug, Clone)]
pub enum FineTuneOutcome {
    /// Trained to the end; the written files.
    Finished(TrainOutputs),
    /// Cancelled after writing a checkpoint (or before training began).
    Cancelled,
    /// Failed with this error (the same one on every poll and wait).
    Failed(Arc<Error>),
}

/// What a poll sees.
#[derive(Debug, Clone)]
pub struct FineTuneSnapshot {
    /// Iterations done (resumed ones included).
    pub iteration: u64,
    /// Iterations of the whole run.
    pub total: u64,
    /// Loss of the last iteration (NaN before the first).
    pub loss: f64,
    /// Learning rate of the last iteration (NaN before the first).
    pub lr: f64,
    /// Mean Dice of the last validation (NaN: none yet).
    pub last_validation_dice: f64,
    /// Best mean validation Dice so far (NaN: none yet).
    pub best_validation_dice: f64,
    /// None while running.
    pub outcome: Option<FineTuneOutcome>,
}

/// Which output of a finished run [`FineTuneRun::save`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FineTuneOutput {
    /// The final full weights.
    Model,
    /// The final LoRA adapter (adapter training modes only).
    Adapter,
    /// The full weights with the best validation Dice (runs that validated only).
    BestModel,
}

/// The per-iteration hook of a run besides its snapshot (e.g. a C progress callback);
/// returning false cancels the run (after a checkpoint).
pub type IterationHook = Box<dyn FnMut(&TrainProgress) -> bool + Send>;

/// Progress figures besides the job's state.
#[derive(Debug, Clone)]
struct Figures {
    iteration: u64,
    total: u64,
    loss: f64,
    lr: f64,
    last_validation_dice: f64,
    best_validation_dice: f64,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a plain field write, so the data is consistent even after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A training run on its own thread. Dropping it cancels the run and joins the thread.
pub struct FineTuneRun {
    figures: Arc<Mutex<Figures>>,
    job: Job<TrainOutputs>,
}

impl FineTuneRun {
    /// Reads and checks the configuration at `config_path` (its errors, a missing data or
    /// model file, and an output folder holding an earlier run without `resume` or
    /// `overwrite`, are returned here), then prepares the data and trains on a new thread.
    pub fn start(
        config_path: &Path,
        resume: bool,
        overwrite: bool,
        mut hook: Option<IterationHook>,
    ) -> Result<Self> {
        let config = TrainConfig::read(config_path)?;
        // Everything that can be checked without reading the data is checked here, so
        // the caller gets the error from this call rather than from a failed run later.
        let in_file = |e: Error| match e {
            Error::InvalidArgument(message) => {
                Error::invalid_argument(format!("{}: {message}", config_path.display()))
            }
            other => other,
        };
        config.validate().map_err(in_file)?;
        config.check_sources().map_err(in_file)?;
        crate::model::TrainingMode::parse(&config.model.mode).map_err(in_file)?;
        crate::session::DeviceChoice::parse(&config.run.device).map_err(in_file)?;
        let run_lock = Arc::new(crate::train::prepare_output_folder(
            &config.run.output_dir,
            resume,
            overwrite,
        )?);
        let figures = Arc::new(Mutex::new(Figures {
            iteration: 0,
            total: config.run.iterations,
            loss: f64::NAN,
            lr: f64::NAN,
            last_validation_dice: f64::NAN,
            best_validation_dice: f64::NAN,
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let options = TrainOptions {
            resume,
            overwrite,
            run_lock: Some(run_lock),
            cancel: Some(Arc::clone(&cancel)),
            stop_after: None,
        };
        let thread_figures = Arc::clone(&figures);
        let job = Job::start_with_cancel("brainsam-fine-tune", cancel, move |report| {
            train(config, options, &thread_figures, report, &mut hook)
        })?;
        Ok(FineTuneRun { figures, job })
    }

    /// The current progress; never blocks on training.
    pub fn snapshot(&self) -> FineTuneSnapshot {
        // The state first: a finished run's figures are final by then.
        let state = self.job.progress().state;
        let figures = locked(&self.figures).clone();
        let outcome = match state {
            JobState::Running => None,
            JobState::Finished => Some(match self.job.output() {
                Some(outputs) => FineTuneOutcome::Finished(outputs),
                None => FineTuneOutcome::Failed(Arc::new(Error::Internal(
                    "the training thread finished without its outputs".into(),
                ))),
            }),
            JobState::Cancelled => Some(FineTuneOutcome::Cancelled),
            JobState::Failed(error) => Some(FineTuneOutcome::Failed(error)),
        };
        FineTuneSnapshot {
            iteration: figures.iteration,
            total: figures.total,
            loss: figures.loss,
            lr: figures.lr,
            last_validation_dice: figures.last_validation_dice,
            best_validation_dice: figures.best_validation_dice,
            outcome,
        }
    }

    /// Asks the run to stop after its current iteration (it writes a checkpoint first).
    /// No effect on a run that has ended.
    pub fn cancel(&self) {
        self.job.cancel();
    }

    /// Blocks until the run has ended and returns how. [`Error::InvalidState`] when
    /// called on the training thread (from the run's own hook).
    pub fn wait(&self) -> Result<FineTuneOutcome> {
        if self.job.is_own_thread() {
            return Err(Error::InvalidState(
                "cannot wait for a fine-tuning run from its own progress callback".into(),
            ));
        }
        // The outcome is read from the snapshot below, so the error is not needed here.
        let _ = self.job.wait();
        self.snapshot()
            .outcome
            .ok_or_else(|| Error::Internal("the training thread ended without an outcome".into()))
    }

    /// Copies an output of a finished run to `destination` atomically (see
    /// [`crate::weights::atomic_write`]): `destination` is either left as it was or
    /// replaced by the complete file.
    pub fn save(&self, output: FineTuneOutput, destination: &Path) -> Result<()> {
        let outputs = match self.snapshot().outcome {
            Some(FineTuneOutcome::Finished(outputs)) => outputs,
            None => {
                return Err(Error::InvalidState(
                    "the fine-tuning run is still running: wait for it to finish before saving"
                        .into(),
                ))
            }
            Some(FineTuneOutcome::Cancelled) => {
                return Err(Error::InvalidState(
                    "the fine-tuning run was cancelled and wrote no final model (its \
                     checkpoint is in the output folder: start again with resume)"
                        .into(),
                ))
            }
            Some(FineTuneOutcome::Failed(error)) => {
                return Err(Error::InvalidState(format!(
                    "the fine-tuning run failed and wrote no model: {error}"
                )))
            }
        };
        let source = match output {
            FineTuneOutput::Model => outputs.model,
            FineTuneOutput::Adapter => outputs.adapter.ok_or_else(|| {
                Error::InvalidState(
                    "this run wrote no adapter: only adapter training modes (lora) write one"
                        .into(),
                )
            })?,
            FineTuneOutput::BestModel => outputs.best_model.ok_or_else(|| {
                Error::InvalidState(
                    "this run wrote no best model: it ran no validation (set `validation` \
                     subjects)"
                        .into(),
                )
            })?,
        };
        copy_file_atomically(&source, destination)
    }
}

/// Copies `source` over `destination` with [`crate::weights::atomic_write`]. Errors name
/// the file at fault (a missing source names the source).
pub(crate) fn copy_file_atomically(source: &Path, destination: &Path) -> Result<()> {
    if destination.file_name().is_none() {
        return Err(Error::invalid_argument(format!(
            "save path {} does not name a file",
            destination.display()
        )));
    }
    let mut reader = File::open(source).map_err(|e| Error::io(source, e))?;
    crate::weights::atomic_write(destination, |writer| {
        std::io::copy(&mut reader, writer)
            .map(|_| ())
            .map_err(|e| Error::io(destination, e))
    })
}

/// The body of the training thread.
fn train(
    config: TrainConfig,
    options: TrainOptions,
    figures: &Mutex<Figures>,
    report: &mut crate::job::JobReport<'_>,
    hook: &mut Option<IterationHook>,
) -> Result<TrainOutputs> {
    let mut trainer = Trainer::new(config, options)?;
    let total = {
        let state = trainer.state();
        let mut shared = locked(figures);
        shared.iteration = state.iteration;
        shared.best_validation_dice = state.best_dice.unwrap_or(f64::NAN);
        shared.last_validation_dice = state
            .validations
            .last()
            .map_or(f64::NAN, |record| record.mean_dice);
        shared.total
    };
    // Preparing the data may take a while; a cancel meanwhile stops before training.
    if !report(locked(figures).iteration as usize, total as usize) {
        return Err(Error::Cancelled);
    }
    let outcome = trainer.run(&mut |progress| {
        {
            let mut shared = locked(figures);
            shared.iteration = progress.iteration;
            shared.total = progress.total;
            shared.loss = progress.loss;
            shared.lr = progress.lr;
            if let Some(record) = &progress.validation {
                shared.last_validation_dice = record.mean_dice;
                if shared.best_validation_dice.is_nan()
                    || record.mean_dice > shared.best_validation_dice
                {
                    shared.best_validation_dice = record.mean_dice;
                }
            }
        }
        // The trainer polls the shared cancel flag itself; the report keeps the job's
        // counters current.
        report(progress.iteration as usize, progress.total as usize);
        hook.as_mut().is_none_or(|hook| hook(progress))
    });
    Ok(outcome?.outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_replace_the_destination_whole_and_name_a_missing_source() {
        let folder = tempfile::tempdir().unwrap();
        let source = folder.path().join("model.safetensors");
        let destination = folder.path().join("copy.safetensors");
        std::fs::write(&source, b"new weights").unwrap();
        std::fs::write(&destination, b"old").unwrap();
        copy_file_atomically(&source, &destination).unwrap();
        assert_eq!(std::fs::read(&destination).unwrap(), b"new weights");
        let missing = folder.path().join("absent.safetensors");
        let error = copy_file_atomically(&missing, &destination).unwrap_err();
        assert!(error.to_string().contains("absent.safetensors"), "{error}");
        assert_eq!(std::fs::read(&destination).unwrap(), b"new weights");
        // Nothing but the two files is left behind.
        assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_bad_configuration_fails_at_start() {
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("run.toml");
        std::fs::write(&config, "this is = = not toml").unwrap();
        let error = FineTuneRun::start(&config, false, false, None)
            .err()
            .expect("a broken configuration is refused");
        assert!(error.to_string().contains("run.toml"), "{error}");
    }
}

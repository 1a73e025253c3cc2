//! An adaptation ([`super::adapt::adapt`]) on a background thread that the caller polls,
//! cancels, waits for and whose adapter it saves: the core behind the C ABI
//! (`brainsam_adapt_*`), the C++ and the Python `Adapt`, so all of them behave the same.
//! It is a [`Job`], the library's one background-run pattern.
//!
//! Every pair is checked when the run starts (errors are returned by [`AdaptRun::start`]);
//! training then runs on the job's thread. A cancelled or failed run has no adapter:
//! [`AdaptRun::save`] refuses, and nothing was written anywhere.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use super::adapt::{
    adapt, check_model, check_pair, AdaptOptions, AdaptPair, AdaptProgress, AdaptResult,
};
use crate::error::{Error, Result};
use crate::job::{Job, JobState};
use crate::session::Model;

/// The per-iteration hook of a run besides its snapshot (e.g. a C progress callback);
/// returning false cancels the run.
pub type AdaptHook = Box<dyn FnMut(&AdaptProgress) -> bool + Send>;

/// What a poll sees.
#[derive(Debug, Clone)]
pub struct AdaptSnapshot {
    /// Where the run is.
    pub state: JobState,
    /// Iterations done.
    pub iteration: u64,
    /// Iterations planned (0 until the data is prepared).
    pub total: u64,
    /// Loss of the last iteration (NaN before the first).
    pub loss: f64,
    /// Mean Dice of the last validation (NaN: none yet).
    pub last_validation_dice: f64,
    /// Best validation mean Dice so far, the base model's included (NaN: none yet).
    pub best_validation_dice: f64,
    /// Seconds since the start.
    pub elapsed_seconds: f64,
    /// Estimated seconds left (NaN before the first iteration).
    pub eta_seconds: f64,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain field writes only: consistent even after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An adaptation on its own thread. Dropping it cancels the run and joins the thread.
pub struct AdaptRun {
    figures: Arc<Mutex<AdaptSnapshot>>,
    job: Job<AdaptResult>,
}

impl AdaptRun {
    /// Checks the model and every pair (errors are returned here), then adapts on a new
    /// thread.
    pub fn start(
        model: Arc<Model>,
        pairs: Vec<AdaptPair>,
        options: AdaptOptions,
        mut hook: Option<AdaptHook>,
    ) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::invalid_argument(
                "no pairs given: adapting needs at least one image with its label map",
            ));
        }
        check_model(&model)?;
        for (i, pair) in pairs.iter().enumerate() {
            check_pair(i, pair)?;
        }
        let figures = Arc::new(Mutex::new(AdaptSnapshot {
            state: JobState::Running,
            iteration: 0,
            total: 0,
            loss: f64::NAN,
            last_validation_dice: f64::NAN,
            best_validation_dice: f64::NAN,
            elapsed_seconds: 0.0,
            eta_seconds: f64::NAN,
        }));
        let cancel = options
            .cancel
            .clone()
            .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
        let options = AdaptOptions {
            cancel: Some(Arc::clone(&cancel)),
            ..options
        };
        let thread_figures = Arc::clone(&figures);
        let job = Job::start_with_cancel("brainsam-adapt", cancel, move |report| {
            adapt(&model, pairs, &options, &mut |p| {
                {
                    let mut f = locked(&thread_figures);
                    f.iteration = p.iteration;
                    f.total = p.total;
                    f.loss = p.loss;
                    if let Some(d) = p.validation_dice {
                        f.last_validation_dice = d;
                    }
                    f.best_validation_dice = p.best_dice.unwrap_or(f64::NAN);
                    f.elapsed_seconds = p.elapsed_seconds;
                    f.eta_seconds = p.eta_seconds;
                }
                let keep_going = hook.as_mut().is_none_or(|hook| hook(p));
                report(p.iteration as usize, p.total as usize) && keep_going
            })
        })?;
        Ok(AdaptRun { figures, job })
    }

    /// The current progress; never blocks on training.
    pub fn snapshot(&self) -> AdaptSnapshot {
        let state = self.job.progress().state;
        let mut snapshot = locked(&self.figures).clone();
        snapshot.state = state;
        snapshot
    }

    /// Asks the run to stop after its current iteration (no adapter is produced).
    pub fn cancel(&self) {
        self.job.cancel();
    }

    /// Blocks until the run has ended: Ok when it finished, [`Error::Cancelled`] or its
    /// error otherwise; [`Error::InvalidState`] from the run's own progress callback.
    pub fn wait(&self) -> std::result::Result<(), Arc<Error>> {
        self.job.wait()
    }

    /// The result of a finished run (None while running, after a cancel or a failure).
    pub fn result(&self) -> Option<AdaptResult> {
        self.job.output()
    }

    /// Writes the adapter of a finished run to `path` atomically.
    /// [`Error::InvalidState`] while running, after a cancel or a failure.
    pub fn save(&self, path: &Path) -> Result<()> {
        match self.job.progress().state {
            JobState::Running => Err(Error::InvalidState(
                "the adaptation is still running: wait for it to finish before saving".into(),
            )),
            JobState::Cancelled => Err(Error::InvalidState(
                "the adaptation was cancelled: it produced no adapter".into(),
            )),
            JobState::Failed(error) => Err(Error::InvalidState(format!(
                "the adaptation failed and produced no adapter: {error}"
            ))),
            JobState::Finished => self
                .result()
                .ok_or_else(|| Error::Internal("a finished adaptation without result".into()))?
                .save(path),
        }
    }
}

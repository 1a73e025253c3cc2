//! Background jobs: long work (automatic segmentation, re-segmenting slices) on a thread
//! of its own that the caller polls, cancels and waits for.
//!
//! Why: a host that polls from its UI thread (3D Slicer's Python, with PythonQt holding
//! the GIL on the main thread) cannot run long work in a Python thread at full speed, and
//! a progress callback into Python would stall on the GIL. A [`Job`] runs entirely in
//! Rust; polling it ([`Job::progress`]) never blocks on the work.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};

use crate::error::{Error, Result};

/// Where a job stands.
#[derive(Debug, Clone)]
pub enum JobState {
    /// Still working.
    Running,
    /// Finished successfully.
    Finished,
    /// Stopped by [`Job::cancel`] (or the work reported a cancellation).
    Cancelled,
    /// Failed with this error (shared: every poll and wait sees the same one).
    Failed(Arc<Error>),
}

/// One poll of a job: work units done out of `total` (0 when not known yet), and the state.
#[derive(Debug, Clone)]
pub struct JobProgress {
    /// Units done (slices, for segmentation jobs).
    pub done: u64,
    /// Units in all (0 until the work has reported once).
    pub total: u64,
    /// The state.
    pub state: JobState,
}

/// Progress reporter handed to a job's work: `report(done, total)` returns false once
/// the job was cancelled (the shape of [`crate::session::ProgressFn`]).
pub type JobReport<'a> = dyn FnMut(usize, usize) -> bool + 'a;

struct Shared<T> {
    done: AtomicU64,
    total: AtomicU64,
    cancel: Arc<AtomicBool>,
    /// What the work returned, set before `outcome` becomes `Finished`.
    output: Mutex<Option<T>>,
    outcome: Mutex<Option<JobState>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain writes only: consistent even after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Work running on its own thread; `T` is what the work returns when it finishes (see
/// [`Job::output`]). Dropping a job cancels it and waits for its thread.
///
/// This is the one background-run pattern of the library: session jobs (C ABI
/// `brainsam_job`) and fine-tuning runs ([`crate::train::FineTuneRun`]) are both jobs.
pub struct Job<T = ()> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: ThreadId,
}

impl Job<()> {
    /// Starts `work` on a new thread named `name`. The work gets a reporter to call with
    /// its progress; when the reporter returns false it should stop with
    /// [`Error::Cancelled`]. A panic in the work becomes [`Error::Internal`].
    pub fn start<F>(name: &str, work: F) -> Result<Self>
    where
        F: FnOnce(&mut JobReport<'_>) -> Result<()> + Send + 'static,
    {
        Job::start_with_cancel(name, Arc::new(AtomicBool::new(false)), work)
    }
}

impl<T: Send + 'static> Job<T> {
    /// Starts `work` on a new thread named `name`, as [`Job::start`], with `cancel` as
    /// the job's cancel flag (so that work polling a flag of its own, such as
    /// [`crate::train::TrainOptions::cancel`], sees [`Job::cancel`]). What the work
    /// returns is kept for [`Job::output`].
    pub fn start_with_cancel<F>(name: &str, cancel: Arc<AtomicBool>, work: F) -> Result<Self>
    where
        F: FnOnce(&mut JobReport<'_>) -> Result<T> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancel,
            output: Mutex::new(None),
            outcome: Mutex::new(None),
        });
        let thread_shared = Arc::clone(&shared);
        let job_name = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let shared = thread_shared;
                let mut report = |done: usize, total: usize| {
                    shared.done.store(done as u64, Ordering::Relaxed);
                    shared.total.store(total as u64, Ordering::Relaxed);
                    !shared.cancel.load(Ordering::Relaxed)
                };
                let outcome = catch_unwind(AssertUnwindSafe(|| work(&mut report)));
                let state = match outcome {
                    Ok(Ok(output)) => {
                        *locked(&shared.output) = Some(output);
                        JobState::Finished
                    }
                    Ok(Err(Error::Cancelled)) => JobState::Cancelled,
                    Ok(Err(error)) => JobState::Failed(Arc::new(error)),
                    // Displayed as "internal error: <panic> (please report)".
                    Err(payload) => JobState::Failed(Arc::new(Error::Internal(format!(
                        "{} (please report)",
                        crate::error::panic_message(&*payload).unwrap_or("unknown panic")
                    )))),
                };
                if let JobState::Failed(error) = &state {
                    log::error!("{job_name} failed: {error}");
                }
                *locked(&shared.outcome) = Some(state);
            })
            .map_err(|e| Error::Internal(format!("cannot start a job thread: {e}")))?;
        let thread_id = thread.thread().id();
        Ok(Job {
            shared,
            thread: Mutex::new(Some(thread)),
            thread_id,
        })
    }
}

impl<T> Job<T> {
    /// The current progress and state; never blocks on the work.
    pub fn progress(&self) -> JobProgress {
        let state = locked(&self.shared.outcome)
            .clone()
            .unwrap_or(JobState::Running);
        JobProgress {
            done: self.shared.done.load(Ordering::Relaxed),
            total: self.shared.total.load(Ordering::Relaxed),
            state,
        }
    }

    /// What the work returned, once the job has finished (None while running, and after
    /// a cancel or a failure).
    pub fn output(&self) -> Option<T>
    where
        T: Clone,
    {
        locked(&self.shared.output).clone()
    }

    /// Asks the job to stop at its next progress report. Returns at once; no effect on
    /// a job that has ended.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether this is the job's own thread (e.g. inside a progress callback of its work).
    pub fn is_own_thread(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Blocks until the job has ended: `Ok(())` when it finished, [`Error::Cancelled`]
    /// when cancelled, its error when it failed (the same error on every call).
    /// [`Error::InvalidState`] when called from the job's own thread.
    pub fn wait(&self) -> std::result::Result<(), Arc<Error>> {
        if self.is_own_thread() {
            return Err(Arc::new(Error::InvalidState(
                "a job cannot wait for itself".into(),
            )));
        }
        let mut thread = locked(&self.thread);
        if let Some(handle) = thread.take() {
            handle
                .join()
                .map_err(|_| Arc::new(Error::Internal("a job thread panicked".into())))?;
        }
        drop(thread);
        match self.progress().state {
            JobState::Finished => Ok(()),
            JobState::Cancelled => Err(Arc::new(Error::Cancelled)),
            JobState::Failed(error) => Err(error),
            JobState::Running => Err(Arc::new(Error::Internal(
                "a job thread ended without an outcome".into(),
            ))),
        }
    }
}

impl<T> Drop for Job<T> {
    fn drop(&mut self) {
        self.cancel();
        // Dropped on the job's own thread (freed from a progress callback): the thread
        // ends by itself once the callback returns.
        if self.is_own_thread() {
            return;
        }
        if let Some(handle) = locked(&self.thread).take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_job_reports_progress_and_finishes() {
        let job = Job::start("test", |report| {
            for step in 1..=3 {
                assert!(report(step, 3));
            }
            Ok(())
        })
        .unwrap();
        job.wait().unwrap();
        let progress = job.progress();
        assert_eq!((progress.done, progress.total), (3, 3));
        assert!(matches!(progress.state, JobState::Finished));
    }

    #[test]
    fn cancel_stops_the_work_at_its_next_report() {
        let job = Job::start("test", |report| {
            for step in 0..10_000 {
                if !report(step, 10_000) {
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(job.progress().state, JobState::Running));
        job.cancel();
        assert!(matches!(job.wait().unwrap_err().as_ref(), Error::Cancelled));
        assert!(job.progress().done < 10_000);
        assert!(matches!(job.progress().state, JobState::Cancelled));
    }

    #[test]
    fn errors_and_panics_become_failed_states() {
        let failing = Job::start("test", |_| {
            Err(Error::invalid_argument("slice 400 is outside"))
        })
        .unwrap();
        let error = failing.wait().unwrap_err();
        assert!(matches!(error.as_ref(), Error::InvalidArgument(m) if m.contains("400")));
        assert!(matches!(failing.progress().state, JobState::Failed(_)));
        let panicking = Job::start("test", |_| panic!("boom")).unwrap();
        let error = panicking.wait().unwrap_err();
        assert!(
            matches!(error.as_ref(), Error::Internal(m) if m.contains("boom")),
            "{error}"
        );
        // A second wait gives the same outcome.
        assert!(matches!(
            panicking.wait().unwrap_err().as_ref(),
            Error::Internal(_)
        ));
    }

    #[test]
    fn a_job_keeps_its_output_and_shares_its_cancel_flag() {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&flag);
        let job = Job::start_with_cancel("test", Arc::clone(&flag), move |_| {
            while !seen.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(7_u32)
        })
        .unwrap();
        assert_eq!(job.output(), None);
        job.cancel();
        job.wait().unwrap();
        assert!(flag.load(Ordering::Relaxed));
        assert_eq!(job.output(), Some(7));
    }
}

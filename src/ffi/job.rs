//! Background jobs in the C ABI: session work on a library thread that the caller polls
//! (`brainsam_job_progress`), cancels, waits for and frees. Thin layer over
//! [`crate::job::Job`].
//!
//! While a job runs, it holds its session: other calls on that session return
//! `BRAINSAM_STATUS_INVALID_STATE` ("in use by another thread") until the job has ended.
//! A host UI polls the job from a timer and never needs a callback, so it keeps the work
//! at full speed even when the host's own threads are slowed (e.g. Python's GIL held by
//! a Qt main thread).

use std::sync::{mpsc, Arc, TryLockError};

use super::handles::HandleRegistry;
use super::session::{brainsam_session, SESSIONS};
use super::{brainsam_status, guard, require_non_null, FfiError};
use crate::error::Error;
use crate::job::{Job, JobState};
use crate::session::Session;

/// State of a background job (`brainsam_job_progress`); the same numbers as
/// `brainsam_fine_tune_state`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_job_state {
    /// Still working.
    BRAINSAM_JOB_RUNNING = 0,
    /// Finished successfully.
    BRAINSAM_JOB_FINISHED = 1,
    /// Failed: `brainsam_job_wait` returns the error's status and message.
    BRAINSAM_JOB_FAILED = 2,
    /// Cancelled by `brainsam_job_cancel`.
    BRAINSAM_JOB_CANCELLED = 3,
}

/// Session work running on a library thread (opaque).
pub struct brainsam_job {
    job: Job,
}

static JOBS: HandleRegistry<brainsam_job> = HandleRegistry::new("brainsam_job");

fn session_in_use() -> Error {
    Error::InvalidState(
        "the session is in use by another thread: one session serves one thread at a time".into(),
    )
}

/// Starts `work` on the session in a job and writes the handle to `*job_out`. Returns
/// only once the job holds the session, so that a call made right after is refused
/// rather than run first; fails with INVALID_STATE when the session is busy.
///
/// # Safety
/// `job_out` must be null or writable.
unsafe fn start(
    name: &str,
    session: *mut brainsam_session,
    job_out: *mut *mut brainsam_job,
    work: impl FnOnce(&mut Session, &mut crate::job::JobReport<'_>) -> crate::Result<()>
        + Send
        + 'static,
) -> Result<(), FfiError> {
    let session = SESSIONS.get(session, "session")?;
    require_non_null(job_out, "job_out")?;
    let (locked_tx, locked_rx) = mpsc::channel::<bool>();
    let job = Job::start(name, move |report| {
        let mut guard = match session.session.try_lock() {
            Ok(guard) => guard,
            // A panic in an earlier call poisoned the lock; the session is still
            // memory-safe to use.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                let _ = locked_tx.send(false);
                return Err(session_in_use());
            }
        };
        let _ = locked_tx.send(true);
        work(&mut guard, report)
    })?;
    if !locked_rx.recv().unwrap_or(false) {
        let _ = job.wait();
        return Err(session_in_use().into());
    }
    let handle = JOBS.register(Arc::new(brainsam_job { job }));
    // SAFETY: non-null and writable per the contract.
    unsafe { job_out.write(handle) };
    Ok(())
}

/// Starts the automatic 13-class segmentation of the whole volume
/// (`brainsam_session_segment_all`) as a job; progress counts slices. A cancelled job
/// keeps the earlier result, if any. Free the job with `brainsam_job_free`.
///
/// # Safety
/// `session` must be a live session handle; `job_out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_segment_all_start(
    session: *mut brainsam_session,
    job_out: *mut *mut brainsam_job,
) -> brainsam_status {
    guard("brainsam_session_segment_all_start", || {
        // SAFETY: per the contract.
        unsafe {
            start(
                "brainsam-segment-all",
                session,
                job_out,
                |session, report| session.segment_all(report).map(|_| ()),
            )
        }
    })
}

/// Starts `brainsam_session_segment_structure(session, structure, slice)` as a job
/// (one unit of progress). The arguments are checked when the job runs; a wrong one
/// makes the job FAILED with its message.
///
/// # Safety
/// `session` must be a live session handle; `job_out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_segment_structure_start(
    session: *mut brainsam_session,
    structure: u32,
    slice: i64,
    job_out: *mut *mut brainsam_job,
) -> brainsam_status {
    guard("brainsam_session_segment_structure_start", || {
        let structure = u8::try_from(structure).map_err(|_| {
            Error::invalid_argument(format!(
                "structure {structure} is not a class id: use 1..=12"
            ))
        })?;
        let plane = usize::try_from(slice)
            .map_err(|_| Error::invalid_argument(format!("slice {slice} is negative")))?;
        // SAFETY: per the contract.
        unsafe {
            start(
                "brainsam-segment-structure",
                session,
                job_out,
                move |session, report| {
                    report(0, 1);
                    session.segment_structure(structure, plane)?;
                    report(1, 1);
                    Ok(())
                },
            )
        }
    })
}

/// Writes the job's progress (`done` of `total` units; total is 0 until known) and its
/// `brainsam_job_state` as u32. Any output pointer may be NULL. Never blocks on the work.
///
/// # Safety
/// Non-null output pointers must be writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_job_progress(
    job: *const brainsam_job,
    done: *mut u64,
    total: *mut u64,
    state: *mut u32,
) -> brainsam_status {
    guard("brainsam_job_progress", || {
        let job = JOBS.get(job, "job")?;
        let progress = job.job.progress();
        let code = match progress.state {
            JobState::Running => brainsam_job_state::BRAINSAM_JOB_RUNNING,
            JobState::Finished => brainsam_job_state::BRAINSAM_JOB_FINISHED,
            JobState::Cancelled => brainsam_job_state::BRAINSAM_JOB_CANCELLED,
            JobState::Failed(_) => brainsam_job_state::BRAINSAM_JOB_FAILED,
        };
        // SAFETY: each is null or writable per the contract.
        unsafe {
            if !done.is_null() {
                done.write(progress.done);
            }
            if !total.is_null() {
                total.write(progress.total);
            }
            if !state.is_null() {
                state.write(code as u32);
            }
        }
        Ok(())
    })
}

/// Asks the job to stop at its next unit of work; returns at once. No effect on a job
/// that has ended.
#[no_mangle]
pub extern "C" fn brainsam_job_cancel(job: *const brainsam_job) -> brainsam_status {
    guard("brainsam_job_cancel", || {
        JOBS.get(job, "job")?.job.cancel();
        Ok(())
    })
}

/// Blocks until the job has ended. OK when it finished, `BRAINSAM_STATUS_CANCELLED` when
/// it was cancelled, the error's status and message when it failed. Returns at once for
/// a job that has ended, so a poller calls it once after seeing a final state.
#[no_mangle]
pub extern "C" fn brainsam_job_wait(job: *const brainsam_job) -> brainsam_status {
    guard("brainsam_job_wait", || {
        JOBS.get(job, "job")?.job.wait().map_err(|error| {
            FfiError::Status(brainsam_status::from_error(&error), error.to_string())
        })
    })
}

/// Frees a job: a running one is cancelled and waited for first. NULL and double frees
/// are ignored.
#[no_mangle]
pub extern "C" fn brainsam_job_free(job: *mut brainsam_job) {
    let _ = std::panic::catch_unwind(|| {
        JOBS.release(job);
    });
}

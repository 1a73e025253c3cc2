//! Background jobs in the C ABI: session work on a library thread that the caller polls
//! (`brainsam_job_progress`), cancels, waits for and frees. Thin layer over
//! [`crate::job::Job`].
//!
//! While a job runs, it holds its session: other calls on that session return
//! `BRAINSAM_STATUS_INVALID_STATE` ("in use by another thread") until the job has ended.
//! A host UI polls the job from a timer and never needs a callback, so it keeps the work
//! at full speed even when the host's own threads are slowed (e.g. Python's GIL held by
//! a Qt main thread).

use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, TryLockError};

use super::handles::HandleRegistry;
use super::session::{brainsam_session, lock, SESSIONS};
use super::{brainsam_status, guard, require_non_null, FfiError};
use crate::error::Error;
use crate::job::{Job, JobState};
use crate::session::{covered_slices, PropagationOptions, Session};

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
    job: Job<Option<SliceRange>>,
}

/// The slices a propagation covered: `first..=last` (voxel indices along the slicing
/// axis, the start slice included) and how many were segmented (the start slice not
/// counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SliceRange {
    first: u64,
    last: u64,
    count: u64,
}

impl SliceRange {
    fn of(from_plane: usize, done: &[usize]) -> Self {
        let (first, last) = covered_slices(from_plane, done);
        SliceRange {
            first: first as u64,
            last: last as u64,
            count: done.len() as u64,
        }
    }

    /// Writes the range to the non-null pointers.
    ///
    /// # Safety
    /// Each pointer must be NULL or writable.
    unsafe fn write(self, first: *mut u64, last: *mut u64, count: *mut u64) {
        // SAFETY: each is NULL or writable per the contract.
        unsafe {
            for (out, value) in [(first, self.first), (last, self.last), (count, self.count)] {
                if !out.is_null() {
                    out.write(value);
                }
            }
        }
    }
}

fn propagation_options(direction: u32, max_slices: u32) -> Result<PropagationOptions, FfiError> {
    Ok(PropagationOptions::from_codes(direction, max_slices)?)
}

/// Which way a propagation goes from its start slice (`direction` of
/// `brainsam_session_propagate_structure`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_propagation_direction {
    /// Both ways.
    BRAINSAM_PROPAGATE_BOTH = 0,
    /// Towards increasing voxel indices along the slicing axis.
    BRAINSAM_PROPAGATE_FORWARD = 1,
    /// Towards decreasing voxel indices along the slicing axis.
    BRAINSAM_PROPAGATE_BACKWARD = 2,
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
    work: impl FnOnce(&mut Session, &mut crate::job::JobReport<'_>) -> crate::Result<Option<SliceRange>>
        + Send
        + 'static,
) -> Result<(), FfiError> {
    let session = SESSIONS.get(session, "session")?;
    require_non_null(job_out, "job_out")?;
    let (locked_tx, locked_rx) = mpsc::channel::<bool>();
    let job = Job::start_with_cancel(name, Arc::new(AtomicBool::new(false)), move |report| {
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
                |session, report| session.segment_all(report).map(|_| None),
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
                    Ok(None)
                },
            )
        }
    })
}

fn plane_of(slice: i64) -> Result<usize, FfiError> {
    usize::try_from(slice)
        .map_err(|_| Error::invalid_argument(format!("slice {slice} is negative")).into())
}

fn structure_of(structure: u32) -> Result<u8, FfiError> {
    u8::try_from(structure).map_err(|_| {
        Error::invalid_argument(format!(
            "structure {structure} is not a class id: use 1..=12"
        ))
        .into()
    })
}

/// Propagates `structure` from coronal slice `from_slice` (voxel index along the slicing
/// axis) to its neighbours: starting from the structure's current mask there (its
/// interactive mask if its prompts there were applied, else its voxels in the label
/// volume), each next slice gets as only prompt the previous slice's mask's bounding box,
/// slightly grown, and is segmented, until the mask vanishes, the region of interest
/// ends or `max_slices` slices per direction are done (0: no limit). `direction` is a
/// `brainsam_propagation_direction`. Writes the slices covered, `*first_slice..=
/// *last_slice` (the start slice included), and the number of slices segmented to
/// `*count` (any output may be NULL). Fails with INVALID_ARGUMENT when the structure is
/// absent on `from_slice`.
///
/// # Safety
/// `session` must be a live session handle; the outputs NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_propagate_structure(
    session: *mut brainsam_session,
    structure: u32,
    from_slice: i64,
    direction: u32,
    max_slices: u32,
    first_slice: *mut u64,
    last_slice: *mut u64,
    count: *mut u64,
) -> brainsam_status {
    guard("brainsam_session_propagate_structure", || {
        let structure = structure_of(structure)?;
        let plane = plane_of(from_slice)?;
        let options = propagation_options(direction, max_slices)?;
        let session = SESSIONS.get(session, "session")?;
        let done =
            lock(&session)?.propagate_structure(structure, plane, options, &mut |_, _| true)?;
        // SAFETY: per the contract.
        unsafe { SliceRange::of(plane, &done).write(first_slice, last_slice, count) };
        Ok(())
    })
}

/// Starts `brainsam_session_propagate_structure` as a job; progress counts slices
/// against the most possible. A cancelled job keeps the slices done so far. Once the
/// job has FINISHED, `brainsam_job_slice_range` gives the slices covered. The arguments
/// are checked before the job starts.
///
/// # Safety
/// `session` must be a live session handle; `job_out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_propagate_structure_start(
    session: *mut brainsam_session,
    structure: u32,
    from_slice: i64,
    direction: u32,
    max_slices: u32,
    job_out: *mut *mut brainsam_job,
) -> brainsam_status {
    guard("brainsam_session_propagate_structure_start", || {
        let structure = structure_of(structure)?;
        let plane = plane_of(from_slice)?;
        let options = propagation_options(direction, max_slices)?;
        // SAFETY: per the contract.
        unsafe {
            start(
                "brainsam-propagate-structure",
                session,
                job_out,
                move |session, report| {
                    let done = session.propagate_structure(structure, plane, options, report)?;
                    Ok(Some(SliceRange::of(plane, &done)))
                },
            )
        }
    })
}

/// Writes the slices a finished propagation job covered (as
/// `brainsam_session_propagate_structure` does). INVALID_STATE for a job that is still
/// running, did not finish, or is not a propagation.
///
/// # Safety
/// The outputs must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_job_slice_range(
    job: *const brainsam_job,
    first_slice: *mut u64,
    last_slice: *mut u64,
    count: *mut u64,
) -> brainsam_status {
    guard("brainsam_job_slice_range", || {
        let job = JOBS.get(job, "job")?;
        let range = job.job.output().flatten().ok_or_else(|| {
            Error::InvalidState(
                "the job has no slice range: it is not a finished propagation".into(),
            )
        })?;
        // SAFETY: per the contract.
        unsafe { range.write(first_slice, last_slice, count) };
        Ok(())
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

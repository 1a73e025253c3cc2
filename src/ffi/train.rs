//! Fine-tuning in the C ABI: a run of [`crate::train::Trainer`] on a background thread
//! that the caller polls, cancels, waits for and whose outputs it copies out.
//!
//! A thin layer over [`crate::train::run::FineTuneRun`], which the C++ `FineTune`
//! (src/cxx_bridge.rs) also wraps, so both behave the same.
//!
//! Thread safety: every function may be called from any thread, on the same handle at
//! the same time. The progress callback runs on the training thread; it must not call
//! `brainsam_fine_tune_wait` or `brainsam_fine_tune_free` on its own run (the first
//! returns `BRAINSAM_STATUS_INVALID_STATE`; the second does not wait for the thread).

use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::path::PathBuf;
use std::sync::Arc;

use super::handles::HandleRegistry;
use super::session::{checked_struct_size, optional_path};
use super::{brainsam_status, guard, require_non_null, FfiError};
use crate::error::Error;
use crate::train::run::{
    FineTuneOutcome, FineTuneOutput, FineTuneRun, FineTuneSnapshot, IterationHook,
};
use crate::train::TrainProgress;

/// State of a fine-tuning run (`brainsam_fine_tune_status.state`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_fine_tune_state {
    /// Preparing the data or training.
    BRAINSAM_FINE_TUNE_RUNNING = 0,
    /// Trained to the last iteration; the outputs are written.
    BRAINSAM_FINE_TUNE_FINISHED = 1,
    /// Stopped by an error; `error_status` and `error_message` say which.
    BRAINSAM_FINE_TUNE_FAILED = 2,
    /// Stopped by `brainsam_fine_tune_cancel` (or the progress callback) after writing a
    /// checkpoint to the output folder; start again with `resume` to continue.
    BRAINSAM_FINE_TUNE_CANCELLED = 3,
}

/// Which output `brainsam_fine_tune_save` copies (its `output` argument).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_fine_tune_output {
    /// The final full weights (load with `brainsam_model_options.checkpoint_path`).
    BRAINSAM_FINE_TUNE_OUTPUT_MODEL = 0,
    /// The final LoRA adapter (load with `adapter_path` on the base checkpoint); only
    /// runs in an adapter mode write one.
    BRAINSAM_FINE_TUNE_OUTPUT_ADAPTER = 1,
    /// The full weights with the best validation Dice; only runs that validated.
    BRAINSAM_FINE_TUNE_OUTPUT_BEST_MODEL = 2,
}

/// Called on the training thread after every iteration with the iteration done, the
/// run's total, the iteration's loss, its learning rate and the mean validation Dice of
/// a validation run after this iteration (NaN when none ran). Return non-zero to cancel
/// the run (it writes a checkpoint first).
pub type brainsam_fine_tune_progress_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        iteration: u64,
        total: u64,
        loss: f64,
        lr: f64,
        validation_dice: f64,
    ) -> i32,
>;

/// Options of `brainsam_fine_tune_start`.
#[repr(C)]
pub struct brainsam_fine_tune_options {
    /// Set to `sizeof(brainsam_fine_tune_options)`.
    pub struct_size: u32,
    /// Non-zero: continue from the checkpoint in the run's output folder, if any.
    pub resume: u32,
    /// Progress callback (may be NULL); see `brainsam_fine_tune_progress_fn`.
    pub progress: brainsam_fine_tune_progress_fn,
    /// Passed to `progress`, on the training thread.
    pub user_data: *mut c_void,
    /// Non-zero: start afresh even if the output folder holds an earlier run, deleting
    /// its results. Without it (or `resume`) such a folder is refused with
    /// INVALID_ARGUMENT. Added in 0.2.1: callers built against an older header (smaller
    /// `struct_size`) are read as 0.
    pub overwrite: u32,
}

/// `sizeof(brainsam_fine_tune_options)` before `overwrite` was appended.
const FINE_TUNE_OPTIONS_V1_SIZE: usize =
    std::mem::offset_of!(brainsam_fine_tune_options, overwrite);

/// Bytes of `brainsam_fine_tune_status.error_message`, its terminating NUL included.
pub const BRAINSAM_FINE_TUNE_MESSAGE_SIZE: usize = 512;

/// A snapshot of a run, filled by `brainsam_fine_tune_progress`.
#[repr(C)]
pub struct brainsam_fine_tune_status {
    /// Set to `sizeof(brainsam_fine_tune_status)` before the call.
    pub struct_size: u32,
    /// Where the run is: a `brainsam_fine_tune_state` value.
    pub state: u32,
    /// Iterations done (resumed ones included).
    pub iteration: u64,
    /// Iterations of the whole run.
    pub total: u64,
    /// Loss of the last iteration (NaN before the first).
    pub loss: f64,
    /// Learning rate of the last iteration (NaN before the first).
    pub lr: f64,
    /// Mean Dice of the last validation (NaN when none ran yet).
    pub last_validation_dice: f64,
    /// Best mean validation Dice so far (NaN when none ran yet).
    pub best_validation_dice: f64,
    /// When `state` is FAILED, the `brainsam_status` of the error; else OK (0).
    pub error_status: u32,
    /// When `state` is FAILED, the error message (UTF-8, NUL-terminated, cut to fit);
    /// else empty.
    pub error_message: [c_char; BRAINSAM_FINE_TUNE_MESSAGE_SIZE],
}

/// A fine-tuning run on a background thread (opaque).
pub struct brainsam_fine_tune {
    run: FineTuneRun,
}

static FINE_TUNES: HandleRegistry<brainsam_fine_tune> = HandleRegistry::new("brainsam_fine_tune");

/// The C state of a snapshot.
fn state_of(snapshot: &FineTuneSnapshot) -> brainsam_fine_tune_state {
    use brainsam_fine_tune_state::*;
    match snapshot.outcome {
        None => BRAINSAM_FINE_TUNE_RUNNING,
        Some(FineTuneOutcome::Finished(_)) => BRAINSAM_FINE_TUNE_FINISHED,
        Some(FineTuneOutcome::Cancelled) => BRAINSAM_FINE_TUNE_CANCELLED,
        Some(FineTuneOutcome::Failed(_)) => BRAINSAM_FINE_TUNE_FAILED,
    }
}

/// The C callback and its user data, moved to the training thread.
struct CProgress {
    function: unsafe extern "C" fn(*mut c_void, u64, u64, f64, f64, f64) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the caller of brainsam_fine_tune_start promises (documented there) that the
// callback and user_data may be used from the training thread.
unsafe impl Send for CProgress {}

impl CProgress {
    fn call(&self, progress: &TrainProgress) -> bool {
        let dice = progress
            .validation
            .as_ref()
            .map_or(f64::NAN, |record| record.mean_dice);
        // SAFETY: per the contract of brainsam_fine_tune_start.
        let cancel = unsafe {
            (self.function)(
                self.user_data,
                progress.iteration,
                progress.total,
                progress.loss,
                progress.lr,
                dice,
            )
        };
        cancel == 0
    }
}

/// Starts fine-tuning as configured by the TOML file `config_toml_path` (the format of
/// `brainsam train`; relative paths in it are taken relative to its folder). The file is
/// read and its values checked before this returns (IO_ERROR, INVALID_FILE,
/// INVALID_ARGUMENT: also for a configuration without training data, a data or model
/// file that does not exist, or an output folder holding an earlier run without
/// `resume` or `overwrite`; INVALID_STATE when another run writes into the same output
/// folder); the data is then prepared and the model trained on a new thread:
/// poll with `brainsam_fine_tune_progress`, stop with `brainsam_fine_tune_cancel`, join
/// with `brainsam_fine_tune_wait`. Errors of the data or of training end the run in the
/// FAILED state. `options` may be NULL (no resume, no callback). On success `*out`
/// receives a handle to free with `brainsam_fine_tune_free`.
///
/// # Safety
/// `config_toml_path` must be null or NUL-terminated; `options` null or a valid struct;
/// `out` null or writable. `options->progress` and `options->user_data` must be safe to
/// use from the training thread until the run ends.
#[no_mangle]
pub unsafe extern "C" fn brainsam_fine_tune_start(
    config_toml_path: *const c_char,
    options: *const brainsam_fine_tune_options,
    out: *mut *mut brainsam_fine_tune,
) -> brainsam_status {
    guard("brainsam_fine_tune_start", || {
        require_non_null(config_toml_path, "config_toml_path")?;
        require_non_null(out, "out")?;
        // SAFETY: non-null and NUL-terminated per the contract.
        let path = unsafe { optional_path(config_toml_path, "config_toml_path") }?
            .ok_or_else(|| Error::invalid_argument("config_toml_path is an empty string"))?;
        let (resume, overwrite, hook) = if options.is_null() {
            (false, false, None)
        } else {
            // SAFETY: non-null; every version starts with `struct_size`.
            let struct_size =
                unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
            checked_struct_size(
                struct_size,
                FINE_TUNE_OPTIONS_V1_SIZE,
                "brainsam_fine_tune_options",
            )?;
            // SAFETY: `struct_size` covers the first version's fields.
            let (resume, progress, user_data) = unsafe {
                (
                    std::ptr::addr_of!((*options).resume).read_unaligned(),
                    std::ptr::addr_of!((*options).progress).read_unaligned(),
                    std::ptr::addr_of!((*options).user_data).read_unaligned(),
                )
            };
            let overwrite =
                if struct_size as usize >= std::mem::size_of::<brainsam_fine_tune_options>() {
                    // SAFETY: the caller's struct is the whole current version.
                    unsafe { std::ptr::addr_of!((*options).overwrite).read_unaligned() }
                } else {
                    0
                };
            let hook = progress.map(|function| {
                let progress = CProgress {
                    function,
                    user_data,
                };
                Box::new(move |p: &TrainProgress| progress.call(p)) as IterationHook
            });
            (resume != 0, overwrite != 0, hook)
        };
        let run = FineTuneRun::start(&path, resume, overwrite, hook)?;
        let handle = FINE_TUNES.register(Arc::new(brainsam_fine_tune { run }));
        // SAFETY: non-null checked above.
        unsafe { *out = handle };
        Ok(())
    })
}

/// Fills `*out` with the run's progress and state (and the error when it failed).
/// Never blocks on training.
///
/// # Safety
/// `out` must be null or point to a writable `brainsam_fine_tune_status` whose
/// `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn brainsam_fine_tune_progress(
    fine_tune: *const brainsam_fine_tune,
    out: *mut brainsam_fine_tune_status,
) -> brainsam_status {
    guard("brainsam_fine_tune_progress", || {
        let fine_tune = FINE_TUNES.get(fine_tune, "fine_tune")?;
        require_non_null(out, "out")?;
        // SAFETY: non-null; the caller sets struct_size in a writable struct. Only
        // struct_size is read: the rest may be uninitialised.
        let declared = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        checked_struct_size(
            declared,
            std::mem::size_of::<brainsam_fine_tune_status>(),
            "brainsam_fine_tune_status",
        )?;
        let snapshot = fine_tune.run.snapshot();
        let mut status = brainsam_fine_tune_status {
            struct_size: declared,
            state: state_of(&snapshot) as u32,
            iteration: snapshot.iteration,
            total: snapshot.total,
            loss: snapshot.loss,
            lr: snapshot.lr,
            last_validation_dice: snapshot.last_validation_dice,
            best_validation_dice: snapshot.best_validation_dice,
            error_status: brainsam_status::BRAINSAM_STATUS_OK as u32,
            error_message: [0; BRAINSAM_FINE_TUNE_MESSAGE_SIZE],
        };
        if let Some(FineTuneOutcome::Failed(error)) = &snapshot.outcome {
            status.error_status = brainsam_status::from_error(error) as u32;
            write_truncated(&error.to_string(), &mut status.error_message);
        }
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(status) };
        Ok(())
    })
}

/// Copies `text` into `buffer`, NUL-terminated, cut at a character boundary to fit.
pub(super) fn write_truncated(text: &str, buffer: &mut [c_char]) {
    let mut end = text.len().min(buffer.len().saturating_sub(1));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (slot, &byte) in buffer.iter_mut().zip(&text.as_bytes()[..end]) {
        *slot = byte as c_char;
    }
    if let Some(terminator) = buffer.get_mut(end) {
        *terminator = 0;
    }
}

/// Asks the run to stop after its current iteration; it writes a checkpoint to its
/// output folder and ends in the CANCELLED state. Returns at once (use
/// `brainsam_fine_tune_wait` to join). No effect on a run that has ended.
#[no_mangle]
pub extern "C" fn brainsam_fine_tune_cancel(
    fine_tune: *const brainsam_fine_tune,
) -> brainsam_status {
    guard("brainsam_fine_tune_cancel", || {
        FINE_TUNES.get(fine_tune, "fine_tune")?.run.cancel();
        Ok(())
    })
}

/// Blocks until the run has ended. Returns OK when it finished,
/// `BRAINSAM_STATUS_CANCELLED` when it was cancelled, and the error's status (with its
/// message) when it failed. `BRAINSAM_STATUS_INVALID_STATE` when called from the run's
/// own progress callback.
#[no_mangle]
pub extern "C" fn brainsam_fine_tune_wait(fine_tune: *const brainsam_fine_tune) -> brainsam_status {
    guard("brainsam_fine_tune_wait", || {
        let fine_tune = FINE_TUNES.get(fine_tune, "fine_tune")?;
        match fine_tune.run.wait()? {
            FineTuneOutcome::Finished(_) => Ok(()),
            FineTuneOutcome::Cancelled => Err(Error::Cancelled.into()),
            FineTuneOutcome::Failed(error) => Err(FfiError::Status(
                brainsam_status::from_error(&error),
                error.to_string(),
            )),
        }
    })
}

/// Copies an output (a `brainsam_fine_tune_output` value) of a finished run to `path`
/// (UTF-8), atomically: `path` is either left as it was or replaced by the complete file.
/// `BRAINSAM_STATUS_INVALID_STATE` while running, after a cancel or a failure, and for
/// an output the run did not write.
///
/// # Safety
/// `path` must be null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brainsam_fine_tune_save(
    fine_tune: *const brainsam_fine_tune,
    output: u32,
    path: *const c_char,
) -> brainsam_status {
    guard("brainsam_fine_tune_save", || {
        let fine_tune = FINE_TUNES.get(fine_tune, "fine_tune")?;
        require_non_null(path, "path")?;
        let output = match output {
            0 => FineTuneOutput::Model,
            1 => FineTuneOutput::Adapter,
            2 => FineTuneOutput::BestModel,
            other => {
                return Err(Error::invalid_argument(format!(
                    "output {other} is not a brainsam_fine_tune_output (0 model, 1 adapter, \
                     2 best model)"
                ))
                .into())
            }
        };
        // SAFETY: non-null and NUL-terminated per the contract.
        let path: PathBuf = unsafe { optional_path(path, "path") }?
            .ok_or_else(|| Error::invalid_argument("path is an empty string"))?;
        fine_tune.run.save(output, &path)?;
        Ok(())
    })
}

/// Frees a run: cancels it if still running and waits for its thread (a checkpoint is
/// written first). NULL, an already freed handle and a foreign pointer are ignored (the
/// latter two with a warning in the log). When another thread is inside a call on the
/// handle (e.g. waiting), the run is freed when that call returns.
#[no_mangle]
pub extern "C" fn brainsam_fine_tune_free(fine_tune: *mut brainsam_fine_tune) {
    let _ = catch_unwind(|| {
        // Cancel first so that a call holding its own reference returns soon.
        if let Ok(run) = FINE_TUNES.get(fine_tune, "fine_tune") {
            run.run.cancel();
        }
        FINE_TUNES.release(fine_tune)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_at_character_boundaries() {
        let mut buffer = [1 as c_char; 6];
        write_truncated("abcdé", &mut buffer);
        // "abcd" + 2-byte é needs 6 + NUL: é is dropped whole.
        assert_eq!(&buffer[..5], &[97, 98, 99, 100, 0]);
        write_truncated("ab", &mut buffer);
        assert_eq!(&buffer[..3], &[97, 98, 0]);
    }
}

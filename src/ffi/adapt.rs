//! "Adapt to my site" in the C ABI: [`crate::train::adapt_run::AdaptRun`] behind a
//! handle, with the progress / cancel / wait / save pattern of `brainsam_fine_tune_*`.
//! Everything here converts; the work is in the core.

use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::sync::Arc;

use super::handles::HandleRegistry;
use super::session::{
    brainsam_volume_desc, checked_struct_size, optional_path, volume_from_desc, MODELS,
};
use super::train::{brainsam_fine_tune_state, write_truncated, BRAINSAM_FINE_TUNE_MESSAGE_SIZE};
use super::{brainsam_model, brainsam_status, guard, optional_utf8, require_non_null, FfiError};
use crate::error::Error;
use crate::job::JobState;
use crate::labels::LabelScheme;
use crate::train::adapt::{AdaptOptions, AdaptPair, AdaptProgress};
use crate::train::adapt_run::{AdaptHook, AdaptRun};

/// One corrected example for `brainsam_adapt_start`: an image and its label map on the
/// same grid (same dims and geometry).
#[repr(C)]
pub struct brainsam_adapt_pair {
    /// Set to `sizeof(brainsam_adapt_pair)`.
    pub struct_size: u32,
    /// The T1 image (copied).
    pub image: *const brainsam_volume_desc,
    /// The label map (copied): integer codes of `label_scheme`.
    pub labels: *const brainsam_volume_desc,
    /// Label scheme of `labels` (UTF-8): `classes` (BrainSAM class ids 0..12, the default
    /// when NULL), `freesurfer`, `aal`, `harvard-oxford`, `neuromorphometrics`, or a
    /// mapping file path (`code,class` lines).
    pub label_scheme: *const c_char,
    /// Name used in messages (UTF-8); NULL: "pair N".
    pub name: *const c_char,
}

/// Called on the training thread after every iteration with the iteration done, the
/// planned total, the iteration's loss, the mean Dice of a validation after this
/// iteration (NaN when none ran), the best validation Dice so far and the estimated
/// seconds left. Return non-zero to cancel.
pub type brainsam_adapt_progress_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        iteration: u64,
        total: u64,
        loss: f64,
        validation_dice: f64,
        best_dice: f64,
        eta_seconds: f64,
    ) -> i32,
>;

/// Options of `brainsam_adapt_start`; zero means "the library chooses" for every number.
#[repr(C)]
pub struct brainsam_adapt_options {
    /// Set to `sizeof(brainsam_adapt_options)`.
    pub struct_size: u32,
    /// Iterations (0: chosen from the number of pairs).
    pub iterations: u64,
    /// Time budget in minutes (0: none): the run stops then and keeps the best checkpoint.
    pub minutes: f64,
    /// Base learning rate (0: 2e-4).
    pub learning_rate: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// `auto`, `cpu` or `cuda` (UTF-8; NULL: auto).
    pub device: *const c_char,
    /// Progress callback (may be NULL).
    pub progress: brainsam_adapt_progress_fn,
    /// Passed to `progress`, on the training thread.
    pub user_data: *mut c_void,
}

/// A snapshot of an adaptation, filled by `brainsam_adapt_progress`.
#[repr(C)]
pub struct brainsam_adapt_status {
    /// Set to `sizeof(brainsam_adapt_status)` before the call.
    pub struct_size: u32,
    /// A `brainsam_fine_tune_state` value.
    pub state: u32,
    /// Iterations done.
    pub iteration: u64,
    /// Iterations planned (0 while the data is prepared).
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
    /// When `state` is FAILED, the `brainsam_status` of the error; else OK (0).
    pub error_status: u32,
    /// When `state` is FAILED, the error message (UTF-8, NUL-terminated, cut to fit).
    pub error_message: [c_char; BRAINSAM_FINE_TUNE_MESSAGE_SIZE],
}

/// An adaptation on a background thread (opaque).
pub struct brainsam_adapt {
    run: AdaptRun,
}

static ADAPTS: HandleRegistry<brainsam_adapt> = HandleRegistry::new("brainsam_adapt");

/// Reads a UTF-8 string argument (None for NULL).
///
/// # Safety
/// `text` must be null or NUL-terminated.
unsafe fn optional_text(text: *const c_char, what: &str) -> Result<Option<String>, FfiError> {
    // SAFETY: null or NUL-terminated per the contract.
    Ok(unsafe { optional_utf8(text, what) }?.map(str::to_string))
}

/// Reads pair `index`.
///
/// # Safety
/// `pair` must point to a readable `brainsam_adapt_pair` whose pointers are valid.
unsafe fn read_pair(pair: *const brainsam_adapt_pair, index: usize) -> Result<AdaptPair, FfiError> {
    // SAFETY: every version starts with `struct_size`.
    let struct_size = unsafe { std::ptr::addr_of!((*pair).struct_size).read_unaligned() };
    checked_struct_size(
        struct_size,
        std::mem::size_of::<brainsam_adapt_pair>(),
        "brainsam_adapt_pair",
    )?;
    // SAFETY: the struct is the whole current version.
    let (image, labels, scheme, name) = unsafe {
        (
            std::ptr::addr_of!((*pair).image).read_unaligned(),
            std::ptr::addr_of!((*pair).labels).read_unaligned(),
            std::ptr::addr_of!((*pair).label_scheme).read_unaligned(),
            std::ptr::addr_of!((*pair).name).read_unaligned(),
        )
    };
    let number = index + 1;
    // SAFETY: null or NUL-terminated per the contract.
    let name =
        unsafe { optional_text(name, "pair name") }?.unwrap_or_else(|| format!("pair {number}"));
    let what = |part: &str| format!("pairs[{index}] ({name}) {part}");
    if image.is_null() {
        return Err(Error::invalid_argument(format!("{} is NULL", what("image"))).into());
    }
    if labels.is_null() {
        return Err(Error::invalid_argument(format!("{} is NULL", what("labels"))).into());
    }
    // SAFETY: null or NUL-terminated per the contract.
    let scheme = match unsafe { optional_text(scheme, "label_scheme") }? {
        None => LabelScheme::Classes,
        Some(text) => LabelScheme::from_name_or_file(&text)?,
    };
    Ok(AdaptPair {
        // SAFETY: valid descriptors per the contract.
        image: unsafe { volume_from_desc(image, &what("image")) }?,
        // SAFETY: as above.
        labels: unsafe { volume_from_desc(labels, &what("labels")) }?,
        name,
        scheme,
    })
}

/// The C callback and its user data, moved to the training thread.
struct CProgress {
    function: unsafe extern "C" fn(*mut c_void, u64, u64, f64, f64, f64, f64) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the caller of brainsam_adapt_start promises (documented there) that the
// callback and user_data may be used from the training thread.
unsafe impl Send for CProgress {}

impl CProgress {
    fn call(&self, p: &AdaptProgress) -> bool {
        // SAFETY: per the contract of brainsam_adapt_start.
        let cancel = unsafe {
            (self.function)(
                self.user_data,
                p.iteration,
                p.total,
                p.loss,
                p.validation_dice.unwrap_or(f64::NAN),
                p.best_dice.unwrap_or(f64::NAN),
                p.eta_seconds,
            )
        };
        cancel == 0
    }
}

/// Starts adapting `model` (loaded from a checkpoint file, without adapter) to the
/// user's site from `count` pairs of image + corrected label map (copied before this
/// returns). Settings the options leave at 0 are chosen by the library from the amount
/// of data (LoRA mode, iterations, learning rate, augmentation, validation on a held-out
/// pair when there are 3 or more, else on held-out blocks of slices). Structures absent
/// from a label map are not trained from it (partial labels). Structures that validate
/// worse than the base model are handed back to it (recorded in the adapter). Every pair is checked here: INVALID_ARGUMENT names the pair
/// and the problem (grids that differ, NaN voxels, label values unknown to the scheme, no
/// labelled structure); also for a model that already has an adapter. Training then runs
/// on a new thread: poll with `brainsam_adapt_progress`, stop with
/// `brainsam_adapt_cancel`, join with `brainsam_adapt_wait`, write the adapter with
/// `brainsam_adapt_save` (it records the base checkpoint's SHA-256; loading it on another
/// base is refused with WEIGHT_MISMATCH). `options` may be NULL. On success `*out`
/// receives a handle to free with `brainsam_adapt_free`.
///
/// # Safety
/// `pairs` must point to `count` valid pairs whose descriptors and strings are valid;
/// `options` null or valid; `out` writable. `options->progress` and `user_data` must be
/// safe to use from the training thread until the run ends.
#[no_mangle]
pub unsafe extern "C" fn brainsam_adapt_start(
    model: *const brainsam_model,
    pairs: *const brainsam_adapt_pair,
    count: usize,
    options: *const brainsam_adapt_options,
    out: *mut *mut brainsam_adapt,
) -> brainsam_status {
    guard("brainsam_adapt_start", || {
        let model = MODELS.get(model, "model")?;
        require_non_null(out, "out")?;
        if count == 0 {
            return Err(Error::invalid_argument(
                "count is 0: adapting needs at least one image with its label map",
            )
            .into());
        }
        require_non_null(pairs, "pairs")?;
        let mut adapt_pairs = Vec::with_capacity(count);
        for index in 0..count {
            // SAFETY: `pairs` holds `count` pairs per the contract.
            adapt_pairs.push(unsafe { read_pair(pairs.add(index), index) }?);
        }
        let mut adapt_options = AdaptOptions::default();
        let mut hook: Option<AdaptHook> = None;
        if !options.is_null() {
            // SAFETY: non-null; every version starts with `struct_size`.
            let struct_size =
                unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
            checked_struct_size(
                struct_size,
                std::mem::size_of::<brainsam_adapt_options>(),
                "brainsam_adapt_options",
            )?;
            // SAFETY: the struct is the whole current version.
            let o = unsafe { options.read_unaligned() };
            let positive = |value: f64, what: &str| -> Result<Option<f64>, FfiError> {
                if value == 0.0 {
                    Ok(None)
                } else if value.is_finite() && value > 0.0 {
                    Ok(Some(value))
                } else {
                    Err(Error::invalid_argument(format!(
                        "options->{what} is {value}: give a positive number, or 0 for the default"
                    ))
                    .into())
                }
            };
            adapt_options.iterations = (o.iterations != 0).then_some(o.iterations);
            adapt_options.minutes = positive(o.minutes, "minutes")?;
            adapt_options.learning_rate = positive(o.learning_rate, "learning_rate")?;
            adapt_options.seed = o.seed;
            // SAFETY: null or NUL-terminated per the contract.
            adapt_options.device = unsafe { optional_path(o.device, "options->device") }?
                .map(|p| p.to_string_lossy().to_string());
            if let Some(device) = &adapt_options.device {
                crate::session::DeviceChoice::parse(device)?;
            }
            hook = o.progress.map(|function| {
                let progress = CProgress {
                    function,
                    user_data: o.user_data,
                };
                Box::new(move |p: &AdaptProgress| progress.call(p)) as AdaptHook
            });
        }
        let run = AdaptRun::start(Arc::clone(&model.model), adapt_pairs, adapt_options, hook)?;
        let handle = ADAPTS.register(Arc::new(brainsam_adapt { run }));
        // SAFETY: non-null checked above.
        unsafe { *out = handle };
        Ok(())
    })
}

/// Fills `*out` with the run's progress and state (and the error when it failed).
/// Never blocks on training.
///
/// # Safety
/// `out` must be null or point to a writable `brainsam_adapt_status` whose
/// `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn brainsam_adapt_progress(
    adapt: *const brainsam_adapt,
    out: *mut brainsam_adapt_status,
) -> brainsam_status {
    guard("brainsam_adapt_progress", || {
        let adapt = ADAPTS.get(adapt, "adapt")?;
        require_non_null(out, "out")?;
        // SAFETY: non-null; only struct_size is read.
        let declared = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        checked_struct_size(
            declared,
            std::mem::size_of::<brainsam_adapt_status>(),
            "brainsam_adapt_status",
        )?;
        let s = adapt.run.snapshot();
        use brainsam_fine_tune_state::*;
        let state = match &s.state {
            JobState::Running => BRAINSAM_FINE_TUNE_RUNNING,
            JobState::Finished => BRAINSAM_FINE_TUNE_FINISHED,
            JobState::Cancelled => BRAINSAM_FINE_TUNE_CANCELLED,
            JobState::Failed(_) => BRAINSAM_FINE_TUNE_FAILED,
        };
        let mut status = brainsam_adapt_status {
            struct_size: declared,
            state: state as u32,
            iteration: s.iteration,
            total: s.total,
            loss: s.loss,
            last_validation_dice: s.last_validation_dice,
            best_validation_dice: s.best_validation_dice,
            elapsed_seconds: s.elapsed_seconds,
            eta_seconds: s.eta_seconds,
            error_status: brainsam_status::BRAINSAM_STATUS_OK as u32,
            error_message: [0; BRAINSAM_FINE_TUNE_MESSAGE_SIZE],
        };
        if let JobState::Failed(error) = &s.state {
            status.error_status = brainsam_status::from_error(error) as u32;
            write_truncated(&error.to_string(), &mut status.error_message);
        }
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(status) };
        Ok(())
    })
}

/// Asks the run to stop after its current iteration; it ends CANCELLED without an
/// adapter. Returns at once. No effect on a run that has ended.
#[no_mangle]
pub extern "C" fn brainsam_adapt_cancel(adapt: *const brainsam_adapt) -> brainsam_status {
    guard("brainsam_adapt_cancel", || {
        ADAPTS.get(adapt, "adapt")?.run.cancel();
        Ok(())
    })
}

/// Blocks until the run has ended: OK when it finished, `BRAINSAM_STATUS_CANCELLED` when
/// cancelled, the error's status and message when it failed; INVALID_STATE from its own
/// progress callback.
#[no_mangle]
pub extern "C" fn brainsam_adapt_wait(adapt: *const brainsam_adapt) -> brainsam_status {
    guard("brainsam_adapt_wait", || {
        let adapt = ADAPTS.get(adapt, "adapt")?;
        adapt.run.wait().map_err(|error| {
            FfiError::Status(brainsam_status::from_error(&error), error.to_string())
        })
    })
}

/// Writes the adapter of a finished run to `path` (UTF-8) atomically: `path` is either
/// left as it was or replaced by the complete file. INVALID_STATE while running, after
/// a cancel or a failure (no adapter exists then).
///
/// # Safety
/// `path` must be null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brainsam_adapt_save(
    adapt: *const brainsam_adapt,
    path: *const c_char,
) -> brainsam_status {
    guard("brainsam_adapt_save", || {
        let adapt = ADAPTS.get(adapt, "adapt")?;
        require_non_null(path, "path")?;
        // SAFETY: non-null and NUL-terminated per the contract.
        let path = unsafe { optional_path(path, "path") }?
            .ok_or_else(|| Error::invalid_argument("path is an empty string"))?;
        adapt.run.save(&path)?;
        Ok(())
    })
}

/// Frees a run: cancels it if still running and waits for its thread. NULL, an already
/// freed handle and a foreign pointer are ignored (the latter two with a warning).
#[no_mangle]
pub extern "C" fn brainsam_adapt_free(adapt: *mut brainsam_adapt) {
    let _ = catch_unwind(|| {
        if let Ok(run) = ADAPTS.get(adapt, "adapt") {
            run.run.cancel();
        }
        ADAPTS.release(adapt)
    });
}

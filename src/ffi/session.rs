//! Models and sessions in the C ABI: thin wrappers over [`crate::session`].
//!
//! Handles are opaque heap objects. A session holds a reference to its model, so
//! `brainsam_model_free` while sessions exist only drops the caller's reference: the
//! model lives until its last session is freed (safe by design).
//!
//! Thread safety: a model may be shared by sessions on any threads; one session must
//! not be used by two threads at the same time (a concurrent call returns
//! `BRAINSAM_STATUS_INVALID_STATE` instead of racing); different sessions run
//! concurrently.

use std::ffi::{c_char, c_void, CStr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use super::{brainsam_status, guard, require_non_null, FfiError};
use crate::error::Error;
use crate::session::{DeviceChoice, Model, ModelOptions, Session, SessionOptions};
use crate::volume::{grid::Grid, Volume};

/// Where a model runs (values of `brainsam_model_options.device`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_device {
    /// CUDA when available, else CPU.
    BRAINSAM_DEVICE_AUTO = 0,
    /// CPU.
    BRAINSAM_DEVICE_CPU = 1,
    /// CUDA device 0 (an error without CUDA).
    BRAINSAM_DEVICE_CUDA = 2,
}

/// Voxel types accepted by `brainsam_session_set_volume`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_dtype {
    /// uint8_t
    BRAINSAM_DTYPE_UINT8 = 0,
    /// int8_t
    BRAINSAM_DTYPE_INT8 = 1,
    /// uint16_t
    BRAINSAM_DTYPE_UINT16 = 2,
    /// int16_t
    BRAINSAM_DTYPE_INT16 = 3,
    /// uint32_t
    BRAINSAM_DTYPE_UINT32 = 4,
    /// int32_t
    BRAINSAM_DTYPE_INT32 = 5,
    /// float
    BRAINSAM_DTYPE_FLOAT32 = 6,
    /// double
    BRAINSAM_DTYPE_FLOAT64 = 7,
}

/// The physical coordinate system of a volume's origin and direction.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_coordinates {
    /// Left-posterior-superior, as ITK and DICOM.
    BRAINSAM_COORDINATES_LPS = 0,
    /// Right-anterior-superior, as NIfTI and 3D Slicer.
    BRAINSAM_COORDINATES_RAS = 1,
}

/// Options of `brainsam_model_load`.
#[repr(C)]
pub struct brainsam_model_options {
    /// Set to `sizeof(brainsam_model_options)`.
    pub struct_size: u32,
    /// Weights file (UTF-8 path); NULL for the bundled default model.
    pub checkpoint_path: *const c_char,
    /// LoRA adapter file (UTF-8 path); NULL for none.
    pub adapter_path: *const c_char,
    /// A `brainsam_device` value.
    pub device: u32,
}

/// A volume handed to `brainsam_session_set_volume`. The voxels are copied: the caller
/// may free or reuse its buffer as soon as the call returns.
///
/// Voxel order: `data[i + dims[0] * (j + dims[1] * k)]` is voxel (i, j, k), i fastest.
/// That is the buffer order of `itk::Image` and `vtkImageData`, and of a C-ordered
/// numpy array indexed `[k, j, i]` (as Slicer's `arrayFromVolume` returns).
#[repr(C)]
pub struct brainsam_volume_desc {
    /// Set to `sizeof(brainsam_volume_desc)`.
    pub struct_size: u32,
    /// The voxels (read-only; `dims[0] * dims[1] * dims[2]` values of `dtype`).
    pub data: *const c_void,
    /// A `brainsam_dtype` value.
    pub dtype: u32,
    /// Voxels along i, j, k.
    pub dims: [u64; 3],
    /// Voxel size along i, j, k in millimetres (> 0).
    pub spacing: [f64; 3],
    /// Physical position (mm) of the centre of voxel (0, 0, 0), in `coordinates`.
    pub origin: [f64; 3],
    /// Row-major 3x3 direction matrix: column c is the unit direction of voxel axis c
    /// (ITK's `GetDirection()` order), in `coordinates`.
    pub direction: [f64; 9],
    /// A `brainsam_coordinates` value.
    pub coordinates: u32,
}

/// A loaded model (opaque).
pub struct brainsam_model {
    model: Arc<Model>,
}

/// A segmentation session (opaque).
pub struct brainsam_session {
    session: Mutex<Session>,
}

/// Progress callback: return non-zero to cancel the operation.
pub type brainsam_progress_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, done: u64, total: u64) -> i32>;

fn checked_struct_size(declared: u32, needed: usize, name: &str) -> Result<(), FfiError> {
    if (declared as usize) < needed {
        return Err(FfiError::BufferTooSmall(format!(
            "{name}.struct_size is {declared}, this library needs at least {needed}: set it to \
             sizeof({name}) and build against a matching brainsam.h"
        )));
    }
    Ok(())
}

/// Reads an optional UTF-8 path argument.
///
/// # Safety
/// `text` must be null or a NUL-terminated string.
unsafe fn optional_path(text: *const c_char, what: &str) -> Result<Option<PathBuf>, FfiError> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    let text = unsafe { CStr::from_ptr(text) };
    let text = text.to_str().map_err(|_| {
        FfiError::Core(Error::invalid_argument(format!(
            "{what} is not valid UTF-8"
        )))
    })?;
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(text)))
}

fn lock(session: &brainsam_session) -> Result<std::sync::MutexGuard<'_, Session>, FfiError> {
    match session.session.try_lock() {
        Ok(guard) => Ok(guard),
        // A panic inside an earlier call poisoned the lock; the session state may be
        // half-updated but is still memory-safe to use.
        Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => Err(FfiError::Core(Error::InvalidState(
            "the session is in use by another thread: one session serves one thread at a time"
                .into(),
        ))),
    }
}

/// Loads a model. On success `*out_model` receives a handle to free with
/// `brainsam_model_free`.
///
/// # Safety
/// `options` and `out_model` must be valid pointers (checked for null); the strings in
/// `options` must be null or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brainsam_model_load(
    options: *const brainsam_model_options,
    out_model: *mut *mut brainsam_model,
) -> brainsam_status {
    guard("brainsam_model_load", || {
        require_non_null(options, "options")?;
        require_non_null(out_model, "out_model")?;
        // SAFETY: non-null; the caller guarantees a readable struct of struct_size bytes.
        let options = unsafe { &*options };
        checked_struct_size(
            options.struct_size,
            std::mem::size_of::<brainsam_model_options>(),
            "brainsam_model_options",
        )?;
        let device = match options.device {
            0 => DeviceChoice::Auto,
            1 => DeviceChoice::Cpu,
            2 => DeviceChoice::Cuda,
            other => {
                return Err(Error::invalid_argument(format!(
                    "device {other} is not a brainsam_device (0 auto, 1 cpu, 2 cuda)"
                ))
                .into())
            }
        };
        let model_options = ModelOptions {
            // SAFETY: per the function contract.
            checkpoint: unsafe { optional_path(options.checkpoint_path, "checkpoint_path") }?,
            adapter: unsafe { optional_path(options.adapter_path, "adapter_path") }?,
            config: None,
            device,
        };
        let model = Model::load(&model_options)?;
        let handle = Box::into_raw(Box::new(brainsam_model { model }));
        // SAFETY: non-null checked above.
        unsafe { *out_model = handle };
        Ok(())
    })
}

/// Frees a model handle (NULL is ignored). Sessions created from it keep working.
///
/// # Safety
/// `model` must be null or a handle from `brainsam_model_load` not freed before.
#[no_mangle]
pub unsafe extern "C" fn brainsam_model_free(model: *mut brainsam_model) {
    if !model.is_null() {
        // SAFETY: per the contract, an owned handle from Box::into_raw.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(model) }));
    }
}

/// Creates a session on `model`. On success `*out_session` receives a handle to free
/// with `brainsam_session_free`.
///
/// # Safety
/// `model` must be a live model handle; `out_session` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_create(
    model: *const brainsam_model,
    out_session: *mut *mut brainsam_session,
) -> brainsam_status {
    guard("brainsam_session_create", || {
        require_non_null(model, "model")?;
        require_non_null(out_session, "out_session")?;
        // SAFETY: non-null live handle per the contract.
        let model = unsafe { &*model };
        let session = Session::new(Arc::clone(&model.model), SessionOptions::default())?;
        let handle = Box::into_raw(Box::new(brainsam_session {
            session: Mutex::new(session),
        }));
        // SAFETY: non-null checked above.
        unsafe { *out_session = handle };
        Ok(())
    })
}

/// Frees a session (NULL is ignored).
///
/// # Safety
/// `session` must be null or a handle from `brainsam_session_create` not freed before.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_free(session: *mut brainsam_session) {
    if !session.is_null() {
        // SAFETY: per the contract, an owned handle from Box::into_raw.
        let _ = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(session) }));
    }
}

/// Converts a caller buffer of `dtype` to f32 voxels.
///
/// # Safety
/// `data` must point to `count` readable values of `dtype`.
unsafe fn voxels_as_f32(
    data: *const c_void,
    dtype: u32,
    count: usize,
) -> Result<Vec<f32>, FfiError> {
    macro_rules! convert {
        ($t:ty) => {{
            // SAFETY: per the function contract.
            let values = unsafe { std::slice::from_raw_parts(data.cast::<$t>(), count) };
            values.iter().map(|&v| v as f32).collect()
        }};
    }
    Ok(match dtype {
        0 => convert!(u8),
        1 => convert!(i8),
        2 => convert!(u16),
        3 => convert!(i16),
        4 => convert!(u32),
        5 => convert!(i32),
        6 => convert!(f32),
        7 => convert!(f64),
        other => {
            return Err(Error::invalid_argument(format!(
                "dtype {other} is not a brainsam_dtype (0..=7)"
            ))
            .into())
        }
    })
}

/// Sets the volume of a session (copied), replacing any earlier one with its prompts
/// and results.
///
/// # Safety
/// `session` must be a live session handle; `volume` a valid descriptor whose `data`
/// holds `dims[0] * dims[1] * dims[2]` values of `dtype`.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_set_volume(
    session: *mut brainsam_session,
    volume: *const brainsam_volume_desc,
) -> brainsam_status {
    guard("brainsam_session_set_volume", || {
        require_non_null(session, "session")?;
        require_non_null(volume, "volume")?;
        // SAFETY: non-null per the contract.
        let (session, desc) = unsafe { (&*session, &*volume) };
        checked_struct_size(
            desc.struct_size,
            std::mem::size_of::<brainsam_volume_desc>(),
            "brainsam_volume_desc",
        )?;
        require_non_null(desc.data, "volume->data")?;
        let mut dims = [0usize; 3];
        for (dim, &given) in dims.iter_mut().zip(&desc.dims) {
            *dim = usize::try_from(given)
                .ok()
                .filter(|&d| d > 0)
                .ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "volume dims {:?}: every dimension must be at least 1",
                        desc.dims
                    ))
                })?;
        }
        let count = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= (1usize << 31))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "volume dims {:?} hold too many voxels (at most 2^31)",
                    desc.dims
                ))
            })?;
        let d = desc.direction;
        let mut direction = [[d[0], d[1], d[2]], [d[3], d[4], d[5]], [d[6], d[7], d[8]]];
        let (origin, direction) = match desc.coordinates {
            0 => (desc.origin, direction),
            1 => {
                // RAS → LPS flips the first two world axes.
                let mut origin = desc.origin;
                for row in 0..2 {
                    origin[row] = -origin[row];
                    for value in direction[row].iter_mut() {
                        *value = -*value;
                    }
                }
                (origin, direction)
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "coordinates {other} is not a brainsam_coordinates (0 LPS, 1 RAS)"
                ))
                .into())
            }
        };
        let grid = Grid::from_lps(dims, desc.spacing, origin, direction)?;
        // SAFETY: the caller guarantees `count` values of `dtype` at `data`.
        let voxels = unsafe { voxels_as_f32(desc.data, desc.dtype, count) }?;
        let volume = Volume::new(grid, voxels)?;
        lock(session)?.set_volume(volume)?;
        Ok(())
    })
}

/// Automatic 13-class segmentation of the whole volume. `progress` (may be NULL) is
/// called with (done, total) slices; returning non-zero cancels the call with
/// `BRAINSAM_STATUS_CANCELLED` (the earlier result, if any, is kept).
///
/// # Safety
/// `session` must be a live session handle; `progress`, if not NULL, must be safe to
/// call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_segment_all(
    session: *mut brainsam_session,
    progress: brainsam_progress_fn,
    user_data: *mut c_void,
) -> brainsam_status {
    guard("brainsam_session_segment_all", || {
        require_non_null(session, "session")?;
        // SAFETY: live handle per the contract.
        let session = unsafe { &*session };
        let mut report = |done: usize, total: usize| match progress {
            // SAFETY: per the contract.
            Some(callback) => unsafe { callback(user_data, done as u64, total as u64) == 0 },
            None => true,
        };
        lock(session)?.segment_all(&mut report)?;
        Ok(())
    })
}

/// Reads three finite voxel coordinates.
///
/// # Safety
/// `ijk` must be null or point to three doubles.
unsafe fn read_ijk(ijk: *const f64, name: &'static str) -> Result<[f64; 3], FfiError> {
    require_non_null(ijk, name)?;
    // SAFETY: non-null, three values per the contract.
    let values = unsafe { std::slice::from_raw_parts(ijk, 3) };
    Ok([values[0], values[1], values[2]])
}

fn structure_id(structure: u32) -> Result<u8, FfiError> {
    u8::try_from(structure).map_err(|_| {
        FfiError::Core(Error::invalid_argument(format!(
            "structure {structure} is not a class id: use 1..=12"
        )))
    })
}

/// Adds a positive (`positive` != 0) or negative point prompt for `structure` (1..12)
/// at voxel coordinates `ijk` (continuous; voxel centres at integers). The prompt
/// belongs to the coronal slice containing the point.
///
/// # Safety
/// `session` must be a live session handle; `ijk` must point to three doubles.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_add_point(
    session: *mut brainsam_session,
    structure: u32,
    ijk: *const f64,
    positive: i32,
) -> brainsam_status {
    guard("brainsam_session_add_point", || {
        require_non_null(session, "session")?;
        // SAFETY: per the contract.
        let (session, point) = unsafe { (&*session, read_ijk(ijk, "ijk")?) };
        lock(session)?.add_point(structure_id(structure)?, point, positive != 0)?;
        Ok(())
    })
}

/// Sets the box prompt of `structure` from two opposite corners in voxel coordinates,
/// which must lie on the same coronal slice.
///
/// # Safety
/// `session` must be a live session handle; `ijk_a` and `ijk_b` must point to three
/// doubles each.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_add_box(
    session: *mut brainsam_session,
    structure: u32,
    ijk_a: *const f64,
    ijk_b: *const f64,
) -> brainsam_status {
    guard("brainsam_session_add_box", || {
        require_non_null(session, "session")?;
        // SAFETY: per the contract.
        let (session, a, b) = unsafe {
            (
                &*session,
                read_ijk(ijk_a, "ijk_a")?,
                read_ijk(ijk_b, "ijk_b")?,
            )
        };
        lock(session)?.add_box(structure_id(structure)?, a, b)?;
        Ok(())
    })
}

fn optional_slice(slice: i64) -> Option<usize> {
    usize::try_from(slice).ok()
}

/// Removes the prompts of `structure` on coronal slice `slice` (voxel index along the
/// slicing axis), or on every slice when `slice` < 0.
///
/// # Safety
/// `session` must be a live session handle.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_clear_prompts(
    session: *mut brainsam_session,
    structure: u32,
    slice: i64,
) -> brainsam_status {
    guard("brainsam_session_clear_prompts", || {
        require_non_null(session, "session")?;
        // SAFETY: per the contract.
        let session = unsafe { &*session };
        lock(session)?.clear_prompts(structure_id(structure)?, optional_slice(slice))?;
        Ok(())
    })
}

/// Interactive path: re-runs the decoder for `structure` on coronal slice `slice`
/// (voxel index along the slicing axis) with that slice's prompts and the previous mask,
/// and updates the structure on that slice of the label volume.
///
/// # Safety
/// `session` must be a live session handle.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_segment_structure(
    session: *mut brainsam_session,
    structure: u32,
    slice: i64,
) -> brainsam_status {
    guard("brainsam_session_segment_structure", || {
        require_non_null(session, "session")?;
        // SAFETY: per the contract.
        let session = unsafe { &*session };
        let plane = optional_slice(slice)
            .ok_or_else(|| Error::invalid_argument(format!("slice {slice} is negative")))?;
        lock(session)?.segment_structure(structure_id(structure)?, plane)?;
        Ok(())
    })
}

/// Writes the voxel axis (0, 1 or 2) used as the coronal slicing axis to `*axis`.
///
/// # Safety
/// `session` must be a live session handle; `axis` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_slicing_axis(
    session: *const brainsam_session,
    axis: *mut u32,
) -> brainsam_status {
    guard("brainsam_session_slicing_axis", || {
        require_non_null(session, "session")?;
        require_non_null(axis, "axis")?;
        // SAFETY: per the contract.
        let session = unsafe { &*session };
        let value = lock(session)?.slicing_axis()?;
        // SAFETY: non-null checked above.
        unsafe { *axis = value as u32 };
        Ok(())
    })
}

/// Copies the label volume (class ids 0..12, same voxel order as the input) into
/// `buffer` of `buffer_len` bytes (at least the voxel count).
///
/// # Safety
/// `session` must be a live session handle; `buffer` must have `buffer_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_copy_labels(
    session: *const brainsam_session,
    buffer: *mut u8,
    buffer_len: usize,
) -> brainsam_status {
    guard("brainsam_session_copy_labels", || {
        require_non_null(session, "session")?;
        require_non_null(buffer, "buffer")?;
        // SAFETY: per the contract.
        let session = unsafe { &*session };
        let session = lock(session)?;
        let labels = session.labels()?.data();
        if buffer_len < labels.len() {
            return Err(FfiError::BufferTooSmall(format!(
                "buffer_len is {buffer_len} bytes, the label volume needs {}",
                labels.len()
            )));
        }
        // SAFETY: `buffer` has at least labels.len() writable bytes (checked above and
        // per the contract); the regions cannot overlap (ours is owned by the session).
        unsafe { std::ptr::copy_nonoverlapping(labels.as_ptr(), buffer, labels.len()) };
        Ok(())
    })
}

/// Writes the volume in mm³ and mean model confidence in [0, 1] of `structure` (1..12)
/// in the current label volume. Either output pointer may be NULL.
///
/// # Safety
/// `session` must be a live session handle; non-null outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_structure_stats(
    session: *const brainsam_session,
    structure: u32,
    volume_mm3: *mut f64,
    confidence: *mut f64,
) -> brainsam_status {
    guard("brainsam_session_structure_stats", || {
        require_non_null(session, "session")?;
        // SAFETY: per the contract.
        let session = unsafe { &*session };
        let stats = lock(session)?.structure_stats(structure_id(structure)?)?;
        if !volume_mm3.is_null() {
            // SAFETY: non-null, writable per the contract.
            unsafe { *volume_mm3 = stats.volume_mm3 };
        }
        if !confidence.is_null() {
            // SAFETY: as above.
            unsafe { *confidence = stats.confidence };
        }
        Ok(())
    })
}

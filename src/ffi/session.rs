//! Models and sessions in the C ABI: thin wrappers over [`crate::session`].
//!
//! Handles are opaque, reference-counted and registered (see [`super::handles`]): a
//! freed or foreign handle gives `BRAINSAM_STATUS_INVALID_HANDLE`, a double free is
//! ignored. A session holds a reference to its model, so `brainsam_model_free` while
//! sessions exist only drops the caller's reference: the model lives until its last
//! session is freed.
//!
//! Thread safety: every function may be called from any thread. A model may be shared
//! by sessions on any threads; different sessions run concurrently. One session serves
//! one call at a time: a call on a session that another thread is using returns
//! `BRAINSAM_STATUS_INVALID_STATE` at once instead of racing or blocking.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};

use super::handles::HandleRegistry;
use super::{brainsam_status, guard, optional_utf8, require_non_null, FfiError};
use crate::error::Error;
#[cfg(test)]
use crate::session::EmbeddingCache;
use crate::session::{
    DeviceChoice, Model, ModelOptions, Precision, Session, SessionOptions, SessionSwitches,
};
use crate::volume::descriptor::{Coordinates, VolumeGeometry};
use crate::volume::Volume;

/// Where a model runs (values of `brainsam_model_options.device`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_device {
    /// CUDA when available, else CPU.
    BRAINSAM_DEVICE_AUTO = 0,
    /// CPU.
    BRAINSAM_DEVICE_CPU = 1,
    /// The CUDA device `brainsam_model_options.device_index` (an error without it).
    BRAINSAM_DEVICE_CUDA = 2,
}

/// Precision of the image encoder (values of `brainsam_model_options.precision`). The
/// prompt encoder and mask decoder always run in fp32.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_precision {
    /// bf16 on CUDA devices that support it (fp16 on older ones), fp32 on the CPU.
    BRAINSAM_PRECISION_AUTO = 0,
    /// fp32.
    BRAINSAM_PRECISION_FP32 = 1,
    /// bf16 (fp16 on CUDA devices without bf16).
    BRAINSAM_PRECISION_BF16 = 2,
    /// fp16.
    BRAINSAM_PRECISION_FP16 = 3,
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
    /// CUDA device number for `BRAINSAM_DEVICE_CUDA` (0 for the first). Added in 0.2:
    /// callers built against the 0.1 header (smaller `struct_size`) get 0.
    pub device_index: u32,
    /// A `brainsam_precision` value. Added in 0.2: callers built against the 0.1 header
    /// get `BRAINSAM_PRECISION_AUTO`.
    pub precision: u32,
}

/// Options of `brainsam_session_create_with_options`. All zeros (with `struct_size`
/// set) are the defaults that `brainsam_session_create` uses.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct brainsam_session_options {
    /// Set to `sizeof(brainsam_session_options)`.
    pub struct_size: u32,
    /// Slices per image-encoder pass; 0: automatic (4 on the CPU, up to 32 on a GPU by
    /// its free memory; a batch that runs out of memory is retried in halves).
    pub batch_size: u32,
    /// Non-zero: automatic segmentation skips mirror averaging (about twice as fast,
    /// a little less accurate).
    pub no_mirror_averaging: u32,
    /// Non-zero: automatic segmentation skips the 3D clean-up (largest component per
    /// structure, hole filling).
    pub no_cleanup: u32,
    /// Where image embeddings are cached: 0 automatic (on the model's device while it
    /// has room, else in host memory), 1 always on the device, 2 always in host memory.
    pub embedding_cache: u32,
    /// Non-zero: automatic segmentation skips shift averaging (the slices segmented again
    /// with their content shifted by half an encoder patch; about four times as fast, a little
    /// less accurate). Added after the first 0.2 struct: callers whose `struct_size`
    /// ends before it get 0.
    pub no_shift_averaging: u32,
    /// Non-zero: automatic segmentation uses only the model's own slice orientation, not
    /// also the models of other orientations its file carries (the default model's axial
    /// and sagittal models; about twice as fast, less accurate). Added after 0.2: callers whose
    /// `struct_size` ends before it get 0.
    pub no_view_averaging: u32,
}

/// `sizeof(brainsam_session_options)` as first published in 0.2 (up to
/// `embedding_cache`).
const SESSION_OPTIONS_V1_SIZE: usize =
    std::mem::offset_of!(brainsam_session_options, no_shift_averaging);

/// `sizeof(brainsam_model_options)` as first published (0.1: up to `device`, padded to
/// the pointer alignment). The 0.2 fields start inside that padding, so they are read only
/// from callers whose `struct_size` is the whole 0.2 struct.
const MODEL_OPTIONS_V1_SIZE: usize = (std::mem::offset_of!(brainsam_model_options, device) + 4)
    .next_multiple_of(std::mem::align_of::<brainsam_model_options>());

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
    /// Size in bytes of the buffer at `data`. When given (non-zero), a buffer shorter than
    /// `dims[0] * dims[1] * dims[2]` values of `dtype` is refused with
    /// `BRAINSAM_STATUS_BUFFER_TOO_SMALL` instead of being read past its end. 0: not given
    /// (the library cannot check). Added in 0.2.1: callers built against an older header
    /// (smaller `struct_size`) are read as 0.
    pub data_len: u64,
}

/// `sizeof(brainsam_volume_desc)` before `data_len` was appended.
const VOLUME_DESC_V1_SIZE: usize = std::mem::offset_of!(brainsam_volume_desc, data_len);

/// A loaded model (opaque).
pub struct brainsam_model {
    pub(super) model: Arc<Model>,
}

/// A segmentation session (opaque).
pub struct brainsam_session {
    pub(super) session: Mutex<Session>,
}

pub(super) static MODELS: HandleRegistry<brainsam_model> = HandleRegistry::new("brainsam_model");
pub(super) static SESSIONS: HandleRegistry<brainsam_session> =
    HandleRegistry::new("brainsam_session");

/// Progress callback: return non-zero to cancel the operation.
pub type brainsam_progress_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, done: u64, total: u64) -> i32>;

pub(crate) fn checked_struct_size(
    declared: u32,
    needed: usize,
    name: &str,
) -> Result<(), FfiError> {
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
pub(crate) unsafe fn optional_path(
    text: *const c_char,
    what: &str,
) -> Result<Option<PathBuf>, FfiError> {
    // SAFETY: null or NUL-terminated per the contract.
    let Some(text) = (unsafe { optional_utf8(text, what) })? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(text)))
}

thread_local! {
    /// Sessions this thread is inside a call on (a progress callback can call back in).
    static SESSIONS_IN_USE_HERE: std::cell::RefCell<Vec<usize>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A locked session; remembers on its thread that it is in use until dropped.
pub(crate) struct SessionGuard<'a> {
    guard: std::sync::MutexGuard<'a, Session>,
    key: usize,
}

impl std::ops::Deref for SessionGuard<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.guard
    }
}

impl std::ops::DerefMut for SessionGuard<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        &mut self.guard
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let _ = SESSIONS_IN_USE_HERE.try_with(|keys| {
            let mut keys = keys.borrow_mut();
            if let Some(at) = keys.iter().rposition(|&k| k == self.key) {
                keys.remove(at);
            }
        });
    }
}

pub(super) fn lock(session: &brainsam_session) -> Result<SessionGuard<'_>, FfiError> {
    let key = session as *const brainsam_session as usize;
    let guard = match session.session.try_lock() {
        Ok(guard) => guard,
        // A panic inside an earlier call poisoned the lock; the session state may be
        // half-updated but is still memory-safe to use.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => {
            let here = SESSIONS_IN_USE_HERE
                .try_with(|keys| keys.borrow().contains(&key))
                .unwrap_or(false);
            let message = if here {
                "re-entrant call: this thread is already inside a call on this session (from \
                 its progress callback?); make the call after that one returns"
            } else {
                "the session is in use by another thread: one session serves one thread at a time"
            };
            return Err(FfiError::Core(Error::InvalidState(message.into())));
        }
    };
    let _ = SESSIONS_IN_USE_HERE.try_with(|keys| keys.borrow_mut().push(key));
    Ok(SessionGuard { guard, key })
}

/// The fields of a caller's `brainsam_model_options`, which may be the shorter 0.1
/// version: fields are read through the raw pointer, the 0.2 ones only when
/// `struct_size` covers the whole current struct (they start in the 0.1 struct's
/// padding), else they take their defaults (0).
///
/// # Safety
/// `options` must be non-null and readable for its `struct_size` bytes.
unsafe fn read_model_options(
    options: *const brainsam_model_options,
) -> Result<(*const c_char, *const c_char, u32, u32, u32), FfiError> {
    // SAFETY: every version starts with `struct_size`.
    let struct_size = unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
    checked_struct_size(struct_size, MODEL_OPTIONS_V1_SIZE, "brainsam_model_options")?;
    // SAFETY: `struct_size` covers the first version's fields.
    let (checkpoint_path, adapter_path, device) = unsafe {
        (
            std::ptr::addr_of!((*options).checkpoint_path).read_unaligned(),
            std::ptr::addr_of!((*options).adapter_path).read_unaligned(),
            std::ptr::addr_of!((*options).device).read_unaligned(),
        )
    };
    let (device_index, precision) =
        if struct_size as usize >= std::mem::size_of::<brainsam_model_options>() {
            // SAFETY: the caller's struct is the whole current version.
            unsafe {
                (
                    std::ptr::addr_of!((*options).device_index).read_unaligned(),
                    std::ptr::addr_of!((*options).precision).read_unaligned(),
                )
            }
        } else {
            (0, 0)
        };
    Ok((
        checkpoint_path,
        adapter_path,
        device,
        device_index,
        precision,
    ))
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
        // SAFETY: non-null; readable for its struct_size bytes per the contract.
        let (checkpoint_path, adapter_path, device, device_index, precision) =
            unsafe { read_model_options(options) }?;
        let device = match device {
            0 => DeviceChoice::Auto,
            1 => DeviceChoice::Cpu,
            2 => DeviceChoice::Cuda(device_index as usize),
            other => {
                return Err(Error::invalid_argument(format!(
                    "device {other} is not a brainsam_device (0 auto, 1 cpu, 2 cuda)"
                ))
                .into())
            }
        };
        let precision = match precision {
            0 => Precision::Auto,
            1 => Precision::Fp32,
            2 => Precision::Bf16,
            3 => Precision::Fp16,
            other => {
                return Err(Error::invalid_argument(format!(
                    "precision {other} is not a brainsam_precision (0 auto, 1 fp32, 2 bf16, 3 fp16)"
                ))
                .into())
            }
        };
        let model_options = ModelOptions {
            // SAFETY: per the function contract.
            checkpoint: unsafe { optional_path(checkpoint_path, "checkpoint_path") }?,
            adapter: unsafe { optional_path(adapter_path, "adapter_path") }?,
            config: None,
            device,
            precision,
        };
        let model = Model::load(&model_options)?;
        let handle = MODELS.register(Arc::new(brainsam_model { model }));
        // SAFETY: non-null checked above.
        unsafe { *out_model = handle };
        Ok(())
    })
}

/// Frees a model handle. Sessions created from it keep working (they hold their own
/// reference). NULL, an already freed handle and a foreign pointer are ignored (the
/// latter two with a warning in the log).
#[no_mangle]
pub extern "C" fn brainsam_model_free(model: *mut brainsam_model) {
    let _ = std::panic::catch_unwind(|| MODELS.release(model));
}

/// Creates a session on `model` with the default options. On success `*out_session`
/// receives a handle to free with `brainsam_session_free`.
///
/// # Safety
/// `out_session` must be null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_create(
    model: *const brainsam_model,
    out_session: *mut *mut brainsam_session,
) -> brainsam_status {
    guard("brainsam_session_create", || {
        let model = MODELS.get(model, "model")?;
        // SAFETY: per this function's contract.
        unsafe { create_session(&model, SessionOptions::default(), out_session) }
    })
}

/// Creates a session on `model` with `options` (NULL: the defaults). On success
/// `*out_session` receives a handle to free with `brainsam_session_free`.
///
/// # Safety
/// `options` must be null or point to a readable struct of its `struct_size` bytes;
/// `out_session` must be null or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_create_with_options(
    model: *const brainsam_model,
    options: *const brainsam_session_options,
    out_session: *mut *mut brainsam_session,
) -> brainsam_status {
    guard("brainsam_session_create_with_options", || {
        // Arguments are checked in order: the model handle first.
        let model = MODELS.get(model, "model")?;
        let options = if options.is_null() {
            SessionOptions::default()
        } else {
            // SAFETY: non-null; readable for its struct_size bytes per the contract.
            session_options(&unsafe { read_session_options(options) }?)?
        };
        // SAFETY: per this function's contract.
        unsafe { create_session(&model, options, out_session) }
    })
}

/// A copy of the caller's `options`, with the fields its `struct_size` does not cover
/// (a caller built against an older header) zero, i.e. their defaults.
///
/// # Safety
/// `options` must point to a readable struct of at least its `struct_size` bytes.
unsafe fn read_session_options(
    options: *const brainsam_session_options,
) -> Result<brainsam_session_options, FfiError> {
    // SAFETY: every version starts with `struct_size`.
    let struct_size = unsafe { std::ptr::addr_of!((*options).struct_size).read_unaligned() };
    checked_struct_size(
        struct_size,
        SESSION_OPTIONS_V1_SIZE,
        "brainsam_session_options",
    )?;
    // SAFETY: `struct_size` covers the first version's fields.
    let mut copy = unsafe {
        brainsam_session_options {
            struct_size,
            batch_size: std::ptr::addr_of!((*options).batch_size).read_unaligned(),
            no_mirror_averaging: std::ptr::addr_of!((*options).no_mirror_averaging)
                .read_unaligned(),
            no_cleanup: std::ptr::addr_of!((*options).no_cleanup).read_unaligned(),
            embedding_cache: std::ptr::addr_of!((*options).embedding_cache).read_unaligned(),
            no_shift_averaging: 0,
            no_view_averaging: 0,
        }
    };
    let holds = |offset: usize| struct_size as usize >= offset + std::mem::size_of::<u32>();
    if holds(std::mem::offset_of!(
        brainsam_session_options,
        no_shift_averaging
    )) {
        // SAFETY: the caller's struct reaches this field.
        copy.no_shift_averaging =
            unsafe { std::ptr::addr_of!((*options).no_shift_averaging).read_unaligned() };
    }
    if holds(std::mem::offset_of!(
        brainsam_session_options,
        no_view_averaging
    )) {
        // SAFETY: the caller's struct reaches this field.
        copy.no_view_averaging =
            unsafe { std::ptr::addr_of!((*options).no_view_averaging).read_unaligned() };
    }
    Ok(copy)
}

/// The core options for C `options`.
pub(crate) fn session_options(
    options: &brainsam_session_options,
) -> crate::error::Result<SessionOptions> {
    SessionSwitches {
        batch_size: options.batch_size,
        no_mirror_averaging: options.no_mirror_averaging != 0,
        no_cleanup: options.no_cleanup != 0,
        embedding_cache: options.embedding_cache,
        no_shift_averaging: options.no_shift_averaging != 0,
        no_view_averaging: options.no_view_averaging != 0,
    }
    .to_options()
}

/// Registers a new session on the live `model` and writes its handle.
///
/// # Safety
/// `out_session` must be null or valid for writing a pointer.
unsafe fn create_session(
    model: &brainsam_model,
    options: SessionOptions,
    out_session: *mut *mut brainsam_session,
) -> Result<(), FfiError> {
    require_non_null(out_session, "out_session")?;
    let session = Session::new(Arc::clone(&model.model), options)?;
    let handle = SESSIONS.register(Arc::new(brainsam_session {
        session: Mutex::new(session),
    }));
    // SAFETY: non-null checked above; valid per the caller's contract.
    unsafe { *out_session = handle };
    Ok(())
}

/// Frees a session. NULL, an already freed handle and a foreign pointer are ignored
/// (the latter two with a warning in the log). When another thread is inside a call on
/// the session, the session is destroyed when that call returns.
#[no_mangle]
pub extern "C" fn brainsam_session_free(session: *mut brainsam_session) {
    let _ = std::panic::catch_unwind(|| SESSIONS.release(session));
}

pub(super) fn voxel_dtype(value: u32) -> Result<brainsam_dtype, FfiError> {
    use brainsam_dtype::*;
    Ok(match value {
        0 => BRAINSAM_DTYPE_UINT8,
        1 => BRAINSAM_DTYPE_INT8,
        2 => BRAINSAM_DTYPE_UINT16,
        3 => BRAINSAM_DTYPE_INT16,
        4 => BRAINSAM_DTYPE_UINT32,
        5 => BRAINSAM_DTYPE_INT32,
        6 => BRAINSAM_DTYPE_FLOAT32,
        7 => BRAINSAM_DTYPE_FLOAT64,
        other => {
            return Err(Error::invalid_argument(format!(
                "volume->dtype {other} is not a brainsam_dtype (0..=7)"
            ))
            .into())
        }
    })
}

/// Bytes per value of `dtype`.
pub(super) fn dtype_size(dtype: brainsam_dtype) -> u64 {
    use brainsam_dtype::*;
    match dtype {
        BRAINSAM_DTYPE_UINT8 | BRAINSAM_DTYPE_INT8 => 1,
        BRAINSAM_DTYPE_UINT16 | BRAINSAM_DTYPE_INT16 => 2,
        BRAINSAM_DTYPE_UINT32 | BRAINSAM_DTYPE_INT32 | BRAINSAM_DTYPE_FLOAT32 => 4,
        BRAINSAM_DTYPE_FLOAT64 => 8,
    }
}

/// A copy of the caller's descriptor; `data_len` is 0 when its `struct_size` ends
/// before that field (a caller built against an older header).
///
/// # Safety
/// `desc` must point to a readable descriptor of at least its `struct_size` bytes.
pub(super) unsafe fn read_volume_desc(
    desc: *const brainsam_volume_desc,
) -> Result<brainsam_volume_desc, FfiError> {
    // SAFETY: every version starts with `struct_size`.
    let struct_size = unsafe { std::ptr::addr_of!((*desc).struct_size).read_unaligned() };
    checked_struct_size(struct_size, VOLUME_DESC_V1_SIZE, "brainsam_volume_desc")?;
    // SAFETY: `struct_size` covers the first version's fields.
    let mut copy = unsafe {
        brainsam_volume_desc {
            struct_size,
            data: std::ptr::addr_of!((*desc).data).read_unaligned(),
            dtype: std::ptr::addr_of!((*desc).dtype).read_unaligned(),
            dims: std::ptr::addr_of!((*desc).dims).read_unaligned(),
            spacing: std::ptr::addr_of!((*desc).spacing).read_unaligned(),
            origin: std::ptr::addr_of!((*desc).origin).read_unaligned(),
            direction: std::ptr::addr_of!((*desc).direction).read_unaligned(),
            coordinates: std::ptr::addr_of!((*desc).coordinates).read_unaligned(),
            data_len: 0,
        }
    };
    if struct_size as usize >= std::mem::size_of::<brainsam_volume_desc>() {
        // SAFETY: the caller's struct is the whole current version.
        copy.data_len = unsafe { std::ptr::addr_of!((*desc).data_len).read_unaligned() };
    }
    Ok(copy)
}

/// Converts a caller buffer of `dtype` to f32 voxels.
///
/// # Safety
/// `data` must point to `count` readable values of `dtype`.
pub(super) unsafe fn voxels_as_f32(
    data: *const c_void,
    dtype: brainsam_dtype,
    count: usize,
) -> Vec<f32> {
    macro_rules! convert {
        ($t:ty) => {{
            // SAFETY: per the function contract.
            let values = unsafe { std::slice::from_raw_parts(data.cast::<$t>(), count) };
            values.iter().map(|&v| v as f32).collect()
        }};
    }
    use brainsam_dtype::*;
    match dtype {
        BRAINSAM_DTYPE_UINT8 => convert!(u8),
        BRAINSAM_DTYPE_INT8 => convert!(i8),
        BRAINSAM_DTYPE_UINT16 => convert!(u16),
        BRAINSAM_DTYPE_INT16 => convert!(i16),
        BRAINSAM_DTYPE_UINT32 => convert!(u32),
        BRAINSAM_DTYPE_INT32 => convert!(i32),
        BRAINSAM_DTYPE_FLOAT32 => convert!(f32),
        BRAINSAM_DTYPE_FLOAT64 => convert!(f64),
    }
}

/// Reads a volume descriptor and copies its voxels into a core [`Volume`]; `what` names
/// the argument in error messages (e.g. `volume`, `pairs[2].image`).
///
/// # Safety
/// `desc` must be non-null and readable for its `struct_size` bytes; its `data` must
/// hold `dims[0] * dims[1] * dims[2]` values of `dtype`.
pub(super) unsafe fn volume_from_desc(
    desc: *const brainsam_volume_desc,
    what: &str,
) -> Result<Volume, FfiError> {
    // SAFETY: the caller's contract.
    let desc = unsafe { read_volume_desc(desc) }?;
    let dtype = voxel_dtype(desc.dtype)?;
    if desc.data.is_null() {
        return Err(FfiError::Status(
            brainsam_status::BRAINSAM_STATUS_NULL_POINTER,
            format!("null pointer passed for `{what}->data`"),
        ));
    }
    let in_context = |e: Error| Error::invalid_argument(format!("{what}: {e}"));
    let geometry = VolumeGeometry {
        dims: desc.dims,
        spacing: desc.spacing,
        origin: desc.origin,
        direction: desc.direction,
        coordinates: Coordinates::from_code(desc.coordinates).map_err(in_context)?,
    };
    let grid = geometry.grid().map_err(in_context)?;
    let needed = grid.len() as u64 * dtype_size(dtype);
    if desc.data_len != 0 && desc.data_len < needed {
        return Err(FfiError::BufferTooSmall(format!(
            "{what}->data_len is {} bytes, but dims {:?} of {dtype:?} need {needed}",
            desc.data_len, desc.dims
        )));
    }
    // SAFETY: the caller guarantees `dims` product values of `dtype` at `data` (checked
    // against data_len when given).
    let voxels = unsafe { voxels_as_f32(desc.data, dtype, grid.len()) };
    Ok(Volume::new(grid, voxels).map_err(in_context)?)
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
        let session = SESSIONS.get(session, "session")?;
        let mut session = lock(&session)?;
        // Whatever happens next, the previous volume (and its labels) is gone: a failed
        // call must not leave segment_all answering for the old volume.
        session.clear_volume();
        require_non_null(volume, "volume")?;
        // SAFETY: non-null; readable per the contract.
        let volume = unsafe { volume_from_desc(volume, "volume") }?;
        session.set_volume(volume)?;
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
        let session = SESSIONS.get(session, "session")?;
        let mut report = |done: usize, total: usize| match progress {
            // SAFETY: per the contract.
            Some(callback) => unsafe { callback(user_data, done as u64, total as u64) == 0 },
            None => true,
        };
        lock(&session)?.segment_all(&mut report)?;
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
    if let Some(axis) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid_argument(format!(
            "{name}[{axis}] is {}: voxel coordinates must be finite",
            values[axis]
        ))
        .into());
    }
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
/// belongs to the coronal slice containing the point
/// (`brainsam_session_add_point_with_slice` also returns that slice).
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
        // SAFETY: per the contract.
        unsafe { add_point(session, structure, ijk, positive) }.map(|_| ())
    })
}

/// `brainsam_session_add_point`, also writing the slice the prompt landed on (voxel
/// index along the slicing axis: pass it to `brainsam_session_segment_structure`) to
/// `*slice` (may be NULL).
///
/// # Safety
/// As `brainsam_session_add_point`; `slice` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_add_point_with_slice(
    session: *mut brainsam_session,
    structure: u32,
    ijk: *const f64,
    positive: i32,
    slice: *mut u64,
) -> brainsam_status {
    guard("brainsam_session_add_point_with_slice", || {
        // SAFETY: per the contract.
        let landed = unsafe { add_point(session, structure, ijk, positive) }?;
        // SAFETY: null or writable per the contract.
        unsafe { write_optional(slice, landed as u64) };
        Ok(())
    })
}

/// The body of the add_point functions: the slice the prompt landed on.
///
/// # Safety
/// As `brainsam_session_add_point`.
unsafe fn add_point(
    session: *mut brainsam_session,
    structure: u32,
    ijk: *const f64,
    positive: i32,
) -> Result<usize, FfiError> {
    let session = SESSIONS.get(session, "session")?;
    // SAFETY: per the contract.
    let point = unsafe { read_ijk(ijk, "ijk")? };
    let slice = lock(&session)?.add_point(structure_id(structure)?, point, positive != 0)?;
    Ok(slice)
}

/// Sets the box prompt of `structure` from two opposite corners in voxel coordinates,
/// which must lie on the same coronal slice (`brainsam_session_add_box_with_slice` also
/// returns that slice).
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
        // SAFETY: per the contract.
        unsafe { add_box(session, structure, ijk_a, ijk_b) }.map(|_| ())
    })
}

/// `brainsam_session_add_box`, also writing the box's slice (voxel index along the
/// slicing axis) to `*slice` (may be NULL).
///
/// # Safety
/// As `brainsam_session_add_box`; `slice` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_add_box_with_slice(
    session: *mut brainsam_session,
    structure: u32,
    ijk_a: *const f64,
    ijk_b: *const f64,
    slice: *mut u64,
) -> brainsam_status {
    guard("brainsam_session_add_box_with_slice", || {
        // SAFETY: per the contract.
        let landed = unsafe { add_box(session, structure, ijk_a, ijk_b) }?;
        // SAFETY: null or writable per the contract.
        unsafe { write_optional(slice, landed as u64) };
        Ok(())
    })
}

/// The body of the add_box functions: the box's slice.
///
/// # Safety
/// As `brainsam_session_add_box`.
unsafe fn add_box(
    session: *mut brainsam_session,
    structure: u32,
    ijk_a: *const f64,
    ijk_b: *const f64,
) -> Result<usize, FfiError> {
    let session = SESSIONS.get(session, "session")?;
    // SAFETY: per the contract.
    let (a, b) = unsafe { (read_ijk(ijk_a, "ijk_a")?, read_ijk(ijk_b, "ijk_b")?) };
    let slice = lock(&session)?.add_box(structure_id(structure)?, a, b)?;
    Ok(slice)
}

/// Writes `value` to `out` unless it is null.
///
/// # Safety
/// `out` must be null or writable.
unsafe fn write_optional<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(value) };
    }
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
        let session = SESSIONS.get(session, "session")?;
        lock(&session)?.clear_prompts(structure_id(structure)?, optional_slice(slice))?;
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
        let session = SESSIONS.get(session, "session")?;
        let plane = optional_slice(slice)
            .ok_or_else(|| Error::invalid_argument(format!("slice {slice} is negative")))?;
        lock(&session)?.segment_structure(structure_id(structure)?, plane)?;
        Ok(())
    })
}

/// 3D interactive segmentation of `structure` from one box: the box (opposite corners
/// `ijk_a` and `ijk_b`, voxel coordinates on one coronal slice, normally the
/// structure's middle slice) is applied on its slice and propagated slice by slice in
/// both directions (each next slice gets the previous slice's mask's bounding box,
/// slightly grown) until the mask vanishes. Earlier prompts of `structure` are
/// cleared first. Needs a model with an interactive head (the default model); other
/// models give `BRAINSAM_STATUS_UNSUPPORTED`. Writes the first and last slice that
/// received a box to `*first_slice` and `*last_slice` (either may be NULL).
///
/// # Safety
/// `session` must be a live session handle; `ijk_a` and `ijk_b` must point to three
/// doubles each; `first_slice` and `last_slice` must be NULL or valid pointers.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_segment_structure_3d(
    session: *mut brainsam_session,
    structure: u32,
    ijk_a: *const f64,
    ijk_b: *const f64,
    first_slice: *mut u64,
    last_slice: *mut u64,
) -> brainsam_status {
    guard("brainsam_session_segment_structure_3d", || {
        let session = SESSIONS.get(session, "session")?;
        // SAFETY: per the contract.
        let (a, b) = unsafe { (read_ijk(ijk_a, "ijk_a")?, read_ijk(ijk_b, "ijk_b")?) };
        let slices = lock(&session)?.segment_structure_3d(structure_id(structure)?, a, b)?;
        let (first, last) = match (slices.first(), slices.last()) {
            (Some(&first), Some(&last)) => (first as u64, last as u64),
            _ => return Err(Error::Internal("propagation touched no slice".into()).into()),
        };
        // SAFETY: each is NULL or valid per the contract.
        unsafe {
            if !first_slice.is_null() {
                *first_slice = first;
            }
            if !last_slice.is_null() {
                *last_slice = last;
            }
        }
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
        let session = SESSIONS.get(session, "session")?;
        require_non_null(axis, "axis")?;
        let value = lock(&session)?.slicing_axis()?;
        // SAFETY: non-null checked above.
        unsafe { *axis = value as u32 };
        Ok(())
    })
}

/// Writes the first and last slice (voxel indices along the slicing axis) of the region
/// of interest that `brainsam_session_segment_all` segments and prompts may use; every
/// slice in between belongs to it. Either output may be NULL.
///
/// # Safety
/// Non-null outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_slice_range(
    session: *const brainsam_session,
    first: *mut u64,
    last: *mut u64,
) -> brainsam_status {
    guard("brainsam_session_slice_range", || {
        let session = SESSIONS.get(session, "session")?;
        let (low, high) = lock(&session)?.roi_slice_range()?;
        if !first.is_null() {
            // SAFETY: non-null, writable per the contract.
            unsafe { *first = low as u64 };
        }
        if !last.is_null() {
            // SAFETY: as above.
            unsafe { *last = high as u64 };
        }
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
        let session = SESSIONS.get(session, "session")?;
        require_non_null(buffer, "buffer")?;
        let session = lock(&session)?;
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
        let session = SESSIONS.get(session, "session")?;
        let stats = lock(&session)?.structure_stats(structure_id(structure)?)?;
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

/// Statistics of one structure, filled by `brainsam_session_get_structure_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct brainsam_structure_stats {
    /// Set to `sizeof(brainsam_structure_stats)` before the call.
    pub struct_size: u32,
    /// Input-QC flags (`BRAINSAM_QC_*` bits; 0: plausible for a T1 brain).
    pub qc: u32,
    /// Voxels labelled with the structure.
    pub voxels: u64,
    /// Volume in mm³.
    pub volume_mm3: f64,
    /// Mean model confidence in [0, 1].
    pub confidence: f64,
}

/// Fills `*out` with the voxel count, volume, mean confidence and input-QC flags of
/// `structure` (1..12) in the current label volume (what the C++ `structure_stats`
/// returns; `brainsam_session_structure_stats` gives volume and confidence only).
///
/// # Safety
/// `session` must be a live session handle; `out` null or a writable struct whose
/// `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_get_structure_stats(
    session: *const brainsam_session,
    structure: u32,
    out: *mut brainsam_structure_stats,
) -> brainsam_status {
    guard("brainsam_session_get_structure_stats", || {
        let session = SESSIONS.get(session, "session")?;
        require_non_null(out, "out")?;
        // SAFETY: non-null; the caller sets struct_size in a writable struct.
        let declared = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        checked_struct_size(
            declared,
            std::mem::size_of::<brainsam_structure_stats>(),
            "brainsam_structure_stats",
        )?;
        let class = structure_id(structure)?;
        let stats = lock(&session)?.structure_stats(class)?;
        let filled = brainsam_structure_stats {
            struct_size: declared,
            qc: crate::session::qc::structure_flags(class, &stats),
            voxels: stats.voxels as u64,
            volume_mm3: stats.volume_mm3,
            confidence: stats.confidence,
        };
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(filled) };
        Ok(())
    })
}

/// `brainsam_session_structure_qc` flag: the structure's volume is below the range
/// plausible for a T1 brain (absent included).
pub const BRAINSAM_QC_VOLUME_LOW: u32 = 1;
/// `brainsam_session_structure_qc` flag: the structure's volume is above the plausible range.
pub const BRAINSAM_QC_VOLUME_HIGH: u32 = 2;
/// `brainsam_session_structure_qc` flag: the model's mean confidence in the structure is low.
pub const BRAINSAM_QC_LOW_CONFIDENCE: u32 = 4;
const _: () = assert!(
    BRAINSAM_QC_VOLUME_LOW == crate::session::qc::QC_VOLUME_LOW
        && BRAINSAM_QC_VOLUME_HIGH == crate::session::qc::QC_VOLUME_HIGH
        && BRAINSAM_QC_LOW_CONFIDENCE == crate::session::qc::QC_LOW_CONFIDENCE
);

/// Writes the input-QC flags (`BRAINSAM_QC_*` bits; 0: plausible) of `structure` (1..12)
/// in the current label volume to `*flags`, or the union over all 12 structures for
/// `structure` 0. A non-zero result means the input is probably not a T1 brain image
/// with a correct header, or the model failed on it: show a warning with the numbers.
/// The ranges are documented in the README's Reliability section.
///
/// # Safety
/// `session` must be a live session handle; `flags` a valid pointer.
#[no_mangle]
pub unsafe extern "C" fn brainsam_session_structure_qc(
    session: *const brainsam_session,
    structure: u32,
    flags: *mut u32,
) -> brainsam_status {
    guard("brainsam_session_structure_qc", || {
        let session = SESSIONS.get(session, "session")?;
        require_non_null(flags, "flags")?;
        let structure = u8::try_from(structure)
            .ok()
            .filter(|&s| s <= 12)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "structure {structure} is not a class id: use 1..=12, or 0 for all"
                ))
            })?;
        let value = lock(&session)?.structure_qc(structure)?;
        // SAFETY: non-null checked above.
        unsafe { *flags = value };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_1_sized_model_options_struct_reads_the_new_fields_as_defaults() {
        // The whole current struct poisoned, then filled as a 0.1 caller would: its
        // padding (where device_index now lies) keeps the poison.
        let mut options: brainsam_model_options = unsafe { std::mem::zeroed() };
        // SAFETY: plain bytes of a repr(C) struct of integers and raw pointers.
        unsafe {
            std::ptr::write_bytes(
                std::ptr::addr_of_mut!(options).cast::<u8>(),
                0xAB,
                std::mem::size_of::<brainsam_model_options>(),
            )
        };
        options.struct_size = MODEL_OPTIONS_V1_SIZE as u32;
        options.checkpoint_path = std::ptr::null();
        options.adapter_path = std::ptr::null();
        options.device = 2;
        assert_eq!(
            MODEL_OPTIONS_V1_SIZE, 32,
            "the 0.1 struct on 64-bit targets"
        );
        // SAFETY: a live struct of at least struct_size bytes.
        let (_, _, device, device_index, precision) =
            unsafe { read_model_options(&options) }.unwrap();
        assert_eq!((device, device_index, precision), (2, 0, 0));
        // The whole current struct: the new fields are read.
        options.struct_size = std::mem::size_of::<brainsam_model_options>() as u32;
        options.device_index = 3;
        options.precision = 2;
        let (_, _, _, device_index, precision) = unsafe { read_model_options(&options) }.unwrap();
        assert_eq!((device_index, precision), (3, 2));
        // Shorter than 0.1: refused.
        options.struct_size = 28;
        assert!(unsafe { read_model_options(&options) }.is_err());
    }

    #[test]
    fn a_first_0_2_sized_session_options_struct_keeps_shift_averaging_on() {
        let mut options = brainsam_session_options {
            struct_size: SESSION_OPTIONS_V1_SIZE as u32,
            batch_size: 3,
            no_mirror_averaging: 1,
            no_cleanup: 0,
            embedding_cache: 2,
            // Beyond a first-0.2 caller's struct: must not be read.
            no_shift_averaging: 1,
            no_view_averaging: 1,
        };
        assert_eq!(SESSION_OPTIONS_V1_SIZE, 20);
        // SAFETY: a live struct of at least struct_size bytes.
        let read = session_options(&unsafe { read_session_options(&options) }.unwrap()).unwrap();
        assert_eq!(read.batch_size, 3);
        assert!(!read.mirror_averaging);
        assert!(read.shift_averaging, "the field after struct_size was read");
        assert_eq!(read.embedding_cache, EmbeddingCache::Host);
        // The whole current struct: the new field is read.
        options.struct_size = std::mem::size_of::<brainsam_session_options>() as u32;
        let read = session_options(&unsafe { read_session_options(&options) }.unwrap()).unwrap();
        assert!(!read.shift_averaging);
        assert!(!read.view_averaging);
        // The 0.2 struct (up to no_shift_averaging): shift read, view averaging kept on.
        options.struct_size =
            std::mem::offset_of!(brainsam_session_options, no_view_averaging) as u32;
        let read = session_options(&unsafe { read_session_options(&options) }.unwrap()).unwrap();
        assert!(!read.shift_averaging);
        assert!(
            read.view_averaging,
            "the field after the 0.2 struct was read"
        );
        // Shorter than the first 0.2 struct: refused.
        options.struct_size = 16;
        assert!(unsafe { read_session_options(&options) }.is_err());
    }
}

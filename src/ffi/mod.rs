//! The stable C ABI (`include/brainsam.h`, generated from this module by cbindgen).
//!
//! Conventions every exported function follows:
//! - it returns a [`brainsam_status`] (or a value whose meaning is documented, for the few
//!   functions that cannot fail);
//! - on failure, a message naming the problem is kept per thread and returned by
//!   [`brainsam_last_error_message`] until the next BrainSAM call on the same thread;
//! - every pointer is checked for null and every size for range before use;
//! - no Rust panic and no libtorch exception crosses the boundary: they become
//!   [`brainsam_status::BRAINSAM_STATUS_INTERNAL_ERROR`].
//!
//! Status numbers are stable: new ones are only ever appended.

#![allow(non_camel_case_types)]

mod adapt;
mod handles;
mod job;
mod logging;
mod runtime;
mod session;
mod tables;
mod train;

pub use adapt::*;
pub use job::*;
pub use logging::*;
pub use runtime::*;
pub use session::*;
pub use tables::*;
pub use train::*;

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;

/// Version of the C ABI. Bumped only when an existing function or struct changes in
/// an incompatible way; additions keep it.
pub const BRAINSAM_ABI_VERSION: u32 = 1;

/// Number of classes in a label volume: 0 background and the structures 1..=12.
pub const BRAINSAM_NUM_CLASSES: u32 = 13;
const _: () = assert!(BRAINSAM_NUM_CLASSES as usize == crate::labels::NUM_CLASSES);

/// Result of every fallible C function. The numbers are part of the ABI and never change.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum brainsam_status {
    /// Success.
    BRAINSAM_STATUS_OK = 0,
    /// An argument is out of range, inconsistent, NaN, or otherwise wrong.
    BRAINSAM_STATUS_INVALID_ARGUMENT = 1,
    /// A pointer argument that must not be null was null.
    BRAINSAM_STATUS_NULL_POINTER = 2,
    /// A file could not be opened, read or written.
    BRAINSAM_STATUS_IO_ERROR = 3,
    /// A file's content is invalid (not NIfTI, corrupt checkpoint, ...).
    BRAINSAM_STATUS_INVALID_FILE = 4,
    /// Weights do not match the model (names, shapes, adapter base).
    BRAINSAM_STATUS_WEIGHT_MISMATCH = 5,
    /// The call is not allowed in the object's current state (wrong order).
    BRAINSAM_STATUS_INVALID_STATE = 6,
    /// The feature or device is not available.
    BRAINSAM_STATUS_UNSUPPORTED = 7,
    /// The operation was cancelled by the caller.
    BRAINSAM_STATUS_CANCELLED = 8,
    /// libtorch reported an error.
    BRAINSAM_STATUS_TORCH_ERROR = 9,
    /// A caller-provided buffer is too small; the message says the size needed.
    BRAINSAM_STATUS_BUFFER_TOO_SMALL = 10,
    /// A handle argument is not a live handle: it was freed already, or did not come from
    /// BrainSAM. Nothing was touched.
    BRAINSAM_STATUS_INVALID_HANDLE = 11,
    /// A bug inside BrainSAM (a caught panic); the message has details.
    BRAINSAM_STATUS_INTERNAL_ERROR = 99,
}

impl brainsam_status {
    /// The status a core error maps to.
    pub fn from_error(error: &Error) -> Self {
        use brainsam_status::*;
        match error {
            Error::InvalidArgument(_) => BRAINSAM_STATUS_INVALID_ARGUMENT,
            Error::Io { .. } => BRAINSAM_STATUS_IO_ERROR,
            Error::InvalidFile { .. } => BRAINSAM_STATUS_INVALID_FILE,
            Error::WeightMismatch(_) => BRAINSAM_STATUS_WEIGHT_MISMATCH,
            Error::InvalidState(_) => BRAINSAM_STATUS_INVALID_STATE,
            Error::Unsupported(_) => BRAINSAM_STATUS_UNSUPPORTED,
            Error::Cancelled => BRAINSAM_STATUS_CANCELLED,
            Error::Torch(_) => BRAINSAM_STATUS_TORCH_ERROR,
            Error::Internal(_) => BRAINSAM_STATUS_INTERNAL_ERROR,
        }
    }
}

/// Errors of the C layer itself, on top of the core's [`Error`].
#[derive(Debug)]
pub(crate) enum FfiError {
    /// A core error.
    Core(Error),
    /// A null pointer passed for the named argument.
    NullPointer(&'static str),
    /// A caller buffer too small.
    BufferTooSmall(String),
    /// A handle that is not live (freed, or foreign).
    InvalidHandle(String),
    /// A status and message recorded earlier (e.g. by a background run).
    Status(brainsam_status, String),
}

impl From<Error> for FfiError {
    fn from(error: Error) -> Self {
        FfiError::Core(error)
    }
}

impl FfiError {
    fn status_and_message(&self) -> (brainsam_status, String) {
        match self {
            FfiError::Core(e) => (brainsam_status::from_error(e), e.to_string()),
            FfiError::NullPointer(arg) => (
                brainsam_status::BRAINSAM_STATUS_NULL_POINTER,
                format!("null pointer passed for `{arg}`"),
            ),
            FfiError::BufferTooSmall(msg) => (
                brainsam_status::BRAINSAM_STATUS_BUFFER_TOO_SMALL,
                msg.clone(),
            ),
            FfiError::InvalidHandle(msg) => {
                (brainsam_status::BRAINSAM_STATUS_INVALID_HANDLE, msg.clone())
            }
            FfiError::Status(status, msg) => (*status, msg.clone()),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // Interior NULs would truncate the message in C; replace them.
    let cleaned = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = cleaned);
}

/// Runs `body` as the implementation of the exported function `function`: clears the
/// thread's last error, catches panics, and turns errors into a status plus message.
pub(crate) fn guard(
    function: &str,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> brainsam_status {
    set_last_error("");
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let (status, message) = match outcome {
        Ok(Ok(())) => {
            // A call made from a log callback during `body` may have set a message.
            set_last_error("");
            return brainsam_status::BRAINSAM_STATUS_OK;
        }
        Ok(Err(error)) => error.status_and_message(),
        Err(payload) => {
            let detail = crate::error::panic_message(payload.as_ref()).unwrap_or("unknown panic");
            // tch panics with libtorch's text, backtrace included: log it, show one line.
            log::debug!("{function}: panic in full: {detail}");
            (
                brainsam_status::BRAINSAM_STATUS_INTERNAL_ERROR,
                format!(
                    "internal error (please report): {}",
                    crate::error::strip_backtrace(detail)
                ),
            )
        }
    };
    let message = format!("{function}: {message}");
    log::debug!("{message}");
    set_last_error(&message);
    status
}

/// Reads a NUL-terminated UTF-8 argument (the one C-string reader of the ABI layer).
///
/// # Safety
/// `text` must be non-null and NUL-terminated.
pub(crate) unsafe fn utf8<'a>(text: *const c_char, what: &str) -> Result<&'a str, Error> {
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| Error::invalid_argument(format!("{what} is not valid UTF-8")))
}

/// [`utf8`] for an optional argument: None when `text` is null.
///
/// # Safety
/// `text` must be null or NUL-terminated.
pub(crate) unsafe fn optional_utf8<'a>(
    text: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Error> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null; NUL-terminated per the contract.
    unsafe { utf8(text, what) }.map(Some)
}

/// Returns `Err(FfiError::NullPointer(name))` when `pointer` is null.
pub(crate) fn require_non_null<T>(pointer: *const T, name: &'static str) -> Result<(), FfiError> {
    if pointer.is_null() {
        Err(FfiError::NullPointer(name))
    } else {
        Ok(())
    }
}

/// The message of the last failed BrainSAM call on this thread, or an empty string when the
/// last call succeeded. The pointer stays valid until the next BrainSAM call on this thread;
/// copy the text to keep it. Never returns null.
#[no_mangle]
pub extern "C" fn brainsam_last_error_message() -> *const c_char {
    // Must not clear the message itself, so it is not wrapped in `guard`; it cannot panic
    // except on thread-local destruction, which catch_unwind turns into an empty string.
    catch_unwind(|| LAST_ERROR.with(|slot| slot.borrow().as_ptr())).unwrap_or(c"".as_ptr())
}

impl brainsam_status {
    /// Every status, in number order.
    const ALL: [brainsam_status; 13] = {
        use brainsam_status::*;
        [
            BRAINSAM_STATUS_OK,
            BRAINSAM_STATUS_INVALID_ARGUMENT,
            BRAINSAM_STATUS_NULL_POINTER,
            BRAINSAM_STATUS_IO_ERROR,
            BRAINSAM_STATUS_INVALID_FILE,
            BRAINSAM_STATUS_WEIGHT_MISMATCH,
            BRAINSAM_STATUS_INVALID_STATE,
            BRAINSAM_STATUS_UNSUPPORTED,
            BRAINSAM_STATUS_CANCELLED,
            BRAINSAM_STATUS_TORCH_ERROR,
            BRAINSAM_STATUS_BUFFER_TOO_SMALL,
            BRAINSAM_STATUS_INVALID_HANDLE,
            BRAINSAM_STATUS_INTERNAL_ERROR,
        ]
    };
}

/// The names of [`brainsam_status::ALL`]: the enum's own identifiers, NUL-terminated once.
static STATUS_NAMES: once_cell::sync::Lazy<Vec<(u32, CString)>> =
    once_cell::sync::Lazy::new(|| {
        brainsam_status::ALL
            .iter()
            .map(|&status| {
                let name = CString::new(format!("{status:?}")).unwrap_or_default();
                (status as u32, name)
            })
            .collect()
    });

/// A short constant name for a status (e.g. `"BRAINSAM_STATUS_NULL_POINTER"`), or
/// `"BRAINSAM_STATUS_UNKNOWN"` for numbers this version does not know. Never null.
#[no_mangle]
pub extern "C" fn brainsam_status_name(status: u32) -> *const c_char {
    catch_unwind(|| {
        STATUS_NAMES
            .iter()
            .find(|(number, _)| *number == status)
            .map_or(c"BRAINSAM_STATUS_UNKNOWN".as_ptr(), |(_, name)| {
                name.as_ptr()
            })
    })
    .unwrap_or(c"BRAINSAM_STATUS_UNKNOWN".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_message() -> String {
        unsafe { CStr::from_ptr(brainsam_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_internal_error_with_message() {
        let status = guard("brainsam_test", || panic!("boom {}", 42));
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_INTERNAL_ERROR);
        let message = last_message();
        assert!(
            message.contains("brainsam_test") && message.contains("boom 42"),
            "{message}"
        );
    }

    #[test]
    fn core_errors_map_to_their_status_and_success_clears_message() {
        let status = guard("brainsam_test", || {
            Err(Error::invalid_argument("spacing is NaN").into())
        });
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_INVALID_ARGUMENT);
        assert!(last_message().contains("spacing is NaN"));
        assert_eq!(
            guard("brainsam_test", || Ok(())),
            brainsam_status::BRAINSAM_STATUS_OK
        );
        assert_eq!(last_message(), "");
    }

    #[test]
    fn status_names_match_numbers() {
        assert_eq!(
            unsafe { CStr::from_ptr(brainsam_status_name(10)) }
                .to_str()
                .unwrap(),
            "BRAINSAM_STATUS_BUFFER_TOO_SMALL"
        );
        let numbers: Vec<u32> = brainsam_status::ALL.iter().map(|&s| s as u32).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99]);
        for status in brainsam_status::ALL {
            let name = unsafe { CStr::from_ptr(brainsam_status_name(status as u32)) };
            assert_eq!(name.to_str().unwrap(), format!("{status:?}"));
        }
        let unknown = unsafe { CStr::from_ptr(brainsam_status_name(12345)) };
        assert_eq!(unknown.to_str().unwrap(), "BRAINSAM_STATUS_UNKNOWN");
    }
}

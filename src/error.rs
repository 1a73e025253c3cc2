//! The one error type of the BrainSAM core.
//!
//! Every fallible function of the Rust API returns [`Result`]. The C ABI maps each
//! variant to a stable status number ([`Error::status_code`]) and keeps the
//! `Display` text as the thread-local last error message.

use std::path::PathBuf;

/// Errors reported by the BrainSAM core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is wrong (shape, range, NaN, unknown name...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file was read but its content is not what it should be (not NIfTI,
    /// truncated checkpoint, corrupt archive, wrong header...).
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Model weights do not fit the model (missing or unexpected tensor names,
    /// wrong shapes, an adapter made for another base model).
    #[error("weights do not match the model: {0}")]
    WeightMismatch(String),

    /// A call that is not allowed in the current state (for example prompting
    /// a session that has no volume yet).
    #[error("invalid state: {0}")]
    InvalidState(String),

    /// A requested feature or device is not available in this build or machine.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// The operation was cancelled by the caller.
    #[error("operation cancelled")]
    Cancelled,

    /// libtorch reported an error.
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),

    /// A bug inside BrainSAM (a caught panic); please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The text of a caught panic's payload (`panic!` with a literal or a formatted message,
/// as tch does with libtorch's error text); None for any other payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Result type of the BrainSAM core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }

    /// Shorthand for [`Error::InvalidFile`].
    pub fn invalid_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

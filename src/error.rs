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

    /// libtorch reported an error. The message is libtorch's first line only: the C++
    /// backtrace that follows it (frame addresses, build paths) is logged at debug level
    /// when the error is converted, never shown to users.
    #[error("libtorch error: {}", torch_summary(.0))]
    Torch(#[source] tch::TchError),

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

impl From<tch::TchError> for Error {
    fn from(error: tch::TchError) -> Self {
        log::debug!("libtorch error in full: {error}");
        Error::Torch(error)
    }
}

/// The user-facing part of a libtorch error text: its first non-empty line, without
/// the "Exception raised from ..." trailer and C++ backtrace frames.
pub fn torch_summary(error: &tch::TchError) -> String {
    strip_backtrace(&error.to_string())
}

/// The first non-empty line of a libtorch message (see [`torch_summary`]); also used on
/// panic texts, which carry libtorch messages when tch panics.
pub fn strip_backtrace(text: &str) -> String {
    let text = text.split("Exception raised from").next().unwrap_or(text);
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("(no message)");
    const MAX_CHARS: usize = 500;
    if line.chars().count() > MAX_CHARS {
        let short: String = line.chars().take(MAX_CHARS).collect();
        format!("{short}...")
    } else {
        line.to_string()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_errors_show_one_line_without_the_backtrace() {
        // A real libtorch error: its text carries the C++ backtrace.
        let torch_error = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu))
            .f_reshape([7])
            .unwrap_err();
        let full = torch_error.to_string();
        let message = Error::from(torch_error).to_string();
        assert!(message.starts_with("libtorch error: "), "{message}");
        assert!(message.contains("[7]"), "{message}");
        assert!(!message.contains('\n'), "{message}");
        for trace in ["Exception raised from", "frame #"] {
            assert!(!message.contains(trace), "{message}");
        }
        assert!(full.len() >= message.len() - "libtorch error: ".len());
        let text =
            "shape '[7]' is invalid\nException raised from foo at /build/x.cpp:1\nframe #0: 0x7f";
        assert_eq!(strip_backtrace(text), "shape '[7]' is invalid");
        assert_eq!(strip_backtrace("\n\n"), "(no message)");
    }
}

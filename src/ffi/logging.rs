//! Forwarding the library's log messages to a C callback.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Mutex;

use super::{brainsam_status, guard};

/// Log callback: `level` is 1 error, 2 warn, 3 info, 4 debug, 5 trace; `message` is a
/// NUL-terminated UTF-8 string valid only during the call.
pub type brainsam_log_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>;

struct Target {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char),
    user_data: usize,
}

static TARGET: Mutex<Option<Target>> = Mutex::new(None);

thread_local! {
    /// Set while this thread runs the callback: messages logged from inside it (by
    /// BrainSAM calls the callback makes) are dropped instead of re-entering it, and
    /// `brainsam_set_log_callback` is refused instead of deadlocking.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct CallbackLogger;

static LOGGER: CallbackLogger = CallbackLogger;

impl log::Log for CallbackLogger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if IN_CALLBACK.with(Cell::get) {
            return;
        }
        // The lock is held during the call so that a callback being replaced is never
        // called after `brainsam_set_log_callback` returned.
        let Ok(target) = TARGET.lock() else { return };
        let Some(target) = target.as_ref() else {
            return;
        };
        let text = format!("{}", record.args()).replace('\0', " ");
        let Ok(message) = CString::new(text) else {
            return;
        };
        // SAFETY: the callback and user data were registered together by the caller,
        // who guarantees the callback may be called with them from any thread.
        IN_CALLBACK.with(|flag| flag.set(true));
        unsafe {
            (target.callback)(
                target.user_data as *mut c_void,
                record.level() as u32,
                message.as_ptr(),
            )
        };
        IN_CALLBACK.with(|flag| flag.set(false));
    }

    fn flush(&self) {}
}

/// Sends the library's log messages (info and more severe) to
/// `callback(user_data, level, message)`; a NULL callback stops forwarding. The
/// callback may be called from any thread that runs BrainSAM work, one message at a
/// time; it is never called after this function returned with another callback. Fails
/// with `BRAINSAM_STATUS_UNSUPPORTED` when the process already installed another Rust
/// logger, and with `BRAINSAM_STATUS_INVALID_STATE` when called from inside the
/// callback.
///
/// # Safety
/// `callback`, if not NULL, must stay callable with `user_data` from any thread until
/// it is replaced or removed.
#[no_mangle]
pub unsafe extern "C" fn brainsam_set_log_callback(
    callback: brainsam_log_fn,
    user_data: *mut c_void,
) -> brainsam_status {
    guard("brainsam_set_log_callback", || {
        if IN_CALLBACK.with(Cell::get) {
            return Err(crate::error::Error::InvalidState(
                "brainsam_set_log_callback cannot be called from inside the log callback".into(),
            )
            .into());
        }
        // Installing fails if this process already has a logger; that is fine when it
        // is ours (an earlier call), and an error otherwise.
        if log::set_logger(&LOGGER).is_err() && !std::ptr::addr_eq(log::logger(), &LOGGER) {
            return Err(crate::error::Error::Unsupported(
                "another logger is already installed in this process".into(),
            )
            .into());
        }
        let mut target = TARGET.lock().unwrap_or_else(|p| p.into_inner());
        *target = callback.map(|callback| Target {
            callback,
            user_data: user_data as usize,
        });
        log::set_max_level(if target.is_some() {
            log::LevelFilter::Info
        } else {
            log::LevelFilter::Off
        });
        Ok(())
    })
}

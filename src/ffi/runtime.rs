//! Version and runtime queries of the C ABI.

use std::ffi::c_char;

use super::{brainsam_status, guard, require_non_null, FfiError, BRAINSAM_ABI_VERSION};
use crate::runtime::RuntimeInfo;

/// Major version of the library.
pub const BRAINSAM_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const BRAINSAM_VERSION_MINOR: u32 = 2;
/// Patch version of the library.
pub const BRAINSAM_VERSION_PATCH: u32 = 0;

// The C macros above must agree with Cargo.toml; checked at compile time.
const _: () = {
    const fn parse(s: &str) -> u32 {
        let bytes = s.as_bytes();
        let mut value = 0;
        let mut i = 0;
        while i < bytes.len() {
            value = value * 10 + (bytes[i] - b'0') as u32;
            i += 1;
        }
        value
    }
    assert!(parse(env!("CARGO_PKG_VERSION_MAJOR")) == BRAINSAM_VERSION_MAJOR);
    assert!(parse(env!("CARGO_PKG_VERSION_MINOR")) == BRAINSAM_VERSION_MINOR);
    assert!(parse(env!("CARGO_PKG_VERSION_PATCH")) == BRAINSAM_VERSION_PATCH);
};

const VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// Runtime facts filled in by [`brainsam_runtime_info`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct brainsam_runtime {
    /// Set by the caller to `sizeof(brainsam_runtime)` before the call, so that later
    /// versions can append fields without breaking older callers.
    pub struct_size: u32,
    /// The libtorch version BrainSAM was built against, NUL-terminated (e.g. "2.11.0+cu130").
    pub libtorch_version: [c_char; 32],
    /// 1 when a CUDA device is usable, 0 otherwise.
    pub cuda_available: i32,
    /// Number of CUDA devices (0 without CUDA).
    pub cuda_device_count: i32,
    /// Number of CPU threads libtorch uses.
    pub cpu_threads: i32,
}

/// The library version as a NUL-terminated string, e.g. "0.1.0". Never null; static.
#[no_mangle]
pub extern "C" fn brainsam_version() -> *const c_char {
    VERSION_C.as_ptr().cast()
}

/// The library version as one number: major * 10000 + minor * 100 + patch.
#[no_mangle]
pub extern "C" fn brainsam_version_number() -> u32 {
    BRAINSAM_VERSION_MAJOR * 10000 + BRAINSAM_VERSION_MINOR * 100 + BRAINSAM_VERSION_PATCH
}

/// The ABI version of the loaded library; compare with the header's `BRAINSAM_ABI_VERSION`.
#[no_mangle]
pub extern "C" fn brainsam_abi_version() -> u32 {
    BRAINSAM_ABI_VERSION
}

/// Fills `*info` with the runtime facts. The caller sets `info->struct_size` first.
///
/// # Safety
/// `info` must be null or point to writable memory of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn brainsam_runtime_info(info: *mut brainsam_runtime) -> brainsam_status {
    guard("brainsam_runtime_info", || {
        require_non_null(info, "info")?;
        // SAFETY: non-null checked above; the caller guarantees it is writable.
        let declared = unsafe { (*info).struct_size } as usize;
        let needed = std::mem::size_of::<brainsam_runtime>();
        if declared < needed {
            return Err(FfiError::BufferTooSmall(format!(
                "info->struct_size is {declared}, this library needs {needed}: set it to \
                 sizeof(brainsam_runtime) and build against a matching brainsam.h"
            )));
        }
        let current = RuntimeInfo::current();
        let mut version = [0 as c_char; 32];
        for (dst, src) in version
            .iter_mut()
            .zip(current.libtorch_version.bytes().take(31))
        {
            *dst = src as c_char;
        }
        // SAFETY: as above.
        unsafe {
            *info = brainsam_runtime {
                struct_size: needed as u32,
                libtorch_version: version,
                cuda_available: i32::from(current.cuda_available),
                cuda_device_count: current.cuda_device_count.clamp(0, i32::MAX as i64) as i32,
                cpu_threads: current.cpu_threads,
            };
        }
        Ok(())
    })
}

//! The library's tables and parsers for callers that must not restate them (the Python
//! binding, the Slicer module, the ITK example): the structures with their names and
//! colours, and the device and precision names. Thin layer over [`crate::labels`] and
//! [`crate::session::DeviceChoice`] / [`crate::session::Precision`].

use std::ffi::{c_char, CString};

use once_cell::sync::Lazy;

use super::session::{brainsam_device, brainsam_precision, checked_struct_size};
use super::{brainsam_status, guard, require_non_null, utf8};
use crate::error::Error;
use crate::labels::STRUCTURES;
use crate::session::{DeviceChoice, Precision};

/// Number of structures (class ids 1..=count); the same as `BRAINSAM_NUM_CLASSES - 1`.
#[no_mangle]
pub extern "C" fn brainsam_structure_count() -> u32 {
    STRUCTURES.len() as u32
}

/// One structure, filled by `brainsam_get_structure_info`. The strings are static (valid
/// for the life of the process), UTF-8 and NUL-terminated.
#[repr(C)]
pub struct brainsam_structure_info {
    /// Set to `sizeof(brainsam_structure_info)` before the call.
    pub struct_size: u32,
    /// Class id (1..=12): the value in label volumes.
    pub class_id: u32,
    /// FreeSurfer aseg code (FreeSurferColorLUT), e.g. 10 for the left thalamus.
    pub freesurfer_code: i32,
    /// Display colour (RGB, 0..255) from FreeSurferColorLUT.txt.
    pub colour: [u8; 3],
    /// Name for people, e.g. "Left thalamus".
    pub name: *const c_char,
    /// Short name, e.g. "L-Thal".
    pub short_name: *const c_char,
    /// FreeSurferColorLUT name, e.g. "Left-Thalamus".
    pub freesurfer_name: *const c_char,
}

/// NUL-terminated copies of the structure names, made once.
struct Names {
    name: CString,
    short_name: CString,
    freesurfer_name: CString,
}

static NAMES: Lazy<Vec<Names>> = Lazy::new(|| {
    STRUCTURES
        .iter()
        .map(|s| Names {
            name: CString::new(s.long_name).unwrap_or_default(),
            short_name: CString::new(s.short_name).unwrap_or_default(),
            freesurfer_name: CString::new(s.freesurfer_name()).unwrap_or_default(),
        })
        .collect()
});

/// Fills `*out` with structure `class_id` (1..=`brainsam_structure_count()`):
/// INVALID_ARGUMENT for another id.
///
/// # Safety
/// `out` must be null or point to a writable struct whose `struct_size` is set.
#[no_mangle]
pub unsafe extern "C" fn brainsam_get_structure_info(
    class_id: u32,
    out: *mut brainsam_structure_info,
) -> brainsam_status {
    guard("brainsam_get_structure_info", || {
        require_non_null(out, "out")?;
        // SAFETY: non-null; the caller sets struct_size in a writable struct.
        let declared = unsafe { std::ptr::addr_of!((*out).struct_size).read() };
        checked_struct_size(
            declared,
            std::mem::size_of::<brainsam_structure_info>(),
            "brainsam_structure_info",
        )?;
        let index = (class_id as usize)
            .checked_sub(1)
            .filter(|&index| index < STRUCTURES.len())
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "structure {class_id} is not a class id: use 1..={}",
                    STRUCTURES.len()
                ))
            })?;
        let structure = &STRUCTURES[index];
        let names = &NAMES[index];
        let info = brainsam_structure_info {
            struct_size: declared,
            class_id,
            freesurfer_code: structure.freesurfer_code,
            colour: structure.colour,
            name: names.name.as_ptr(),
            short_name: names.short_name.as_ptr(),
            freesurfer_name: names.freesurfer_name.as_ptr(),
        };
        // SAFETY: non-null and writable per the contract.
        unsafe { out.write(info) };
        Ok(())
    })
}

/// Parses a device name as the command line and the settings files do ("auto", "cpu",
/// "cuda", "cuda:N"; case and surrounding blanks ignored) into a `brainsam_device` value
/// and a device index for `brainsam_model_options`. INVALID_ARGUMENT (with the accepted
/// names in the message) for anything else. Either output may be NULL.
///
/// # Safety
/// `text` must be null or NUL-terminated; non-null outputs must be writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_parse_device(
    text: *const c_char,
    device: *mut u32,
    device_index: *mut u32,
) -> brainsam_status {
    guard("brainsam_parse_device", || {
        require_non_null(text, "text")?;
        // SAFETY: non-null and NUL-terminated per the contract.
        let choice = DeviceChoice::parse(unsafe { utf8(text, "text") }?)?;
        let (code, index) = match choice {
            DeviceChoice::Auto => (brainsam_device::BRAINSAM_DEVICE_AUTO, 0),
            DeviceChoice::Cpu => (brainsam_device::BRAINSAM_DEVICE_CPU, 0),
            DeviceChoice::Cuda(index) => (
                brainsam_device::BRAINSAM_DEVICE_CUDA,
                u32::try_from(index).map_err(|_| {
                    Error::invalid_argument(format!("device index {index} is too large"))
                })?,
            ),
        };
        // SAFETY: each is null or writable per the contract.
        unsafe {
            if !device.is_null() {
                device.write(code as u32);
            }
            if !device_index.is_null() {
                device_index.write(index);
            }
        }
        Ok(())
    })
}

/// Parses a precision name as the command line does ("auto", "fp32", "bf16", "fp16" and
/// their long forms) into a `brainsam_precision` value. INVALID_ARGUMENT for anything
/// else.
///
/// # Safety
/// `text` must be null or NUL-terminated; `precision` null or writable.
#[no_mangle]
pub unsafe extern "C" fn brainsam_parse_precision(
    text: *const c_char,
    precision: *mut u32,
) -> brainsam_status {
    guard("brainsam_parse_precision", || {
        require_non_null(text, "text")?;
        require_non_null(precision, "precision")?;
        // SAFETY: non-null and NUL-terminated per the contract.
        let code = match Precision::parse(unsafe { utf8(text, "text") }?)? {
            Precision::Auto => brainsam_precision::BRAINSAM_PRECISION_AUTO,
            Precision::Fp32 => brainsam_precision::BRAINSAM_PRECISION_FP32,
            Precision::Bf16 => brainsam_precision::BRAINSAM_PRECISION_BF16,
            Precision::Fp16 => brainsam_precision::BRAINSAM_PRECISION_FP16,
        };
        // SAFETY: non-null and writable per the contract.
        unsafe { precision.write(code as u32) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn structure_info_comes_from_the_core_table() {
        assert_eq!(brainsam_structure_count(), 12);
        let mut info: brainsam_structure_info = unsafe { std::mem::zeroed() };
        info.struct_size = std::mem::size_of::<brainsam_structure_info>() as u32;
        let status = unsafe { brainsam_get_structure_info(8, &mut info) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_OK);
        assert_eq!((info.class_id, info.freesurfer_code), (8, 52));
        assert_eq!(info.colour, STRUCTURES[7].colour);
        let name = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().unwrap();
        assert_eq!(name(info.name), "Right pallidum");
        assert_eq!(name(info.freesurfer_name), "Right-Pallidum");
        for wrong in [0, 13] {
            let status = unsafe { brainsam_get_structure_info(wrong, &mut info) };
            assert_eq!(status, brainsam_status::BRAINSAM_STATUS_INVALID_ARGUMENT);
        }
        info.struct_size = 8;
        let status = unsafe { brainsam_get_structure_info(1, &mut info) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_BUFFER_TOO_SMALL);
    }

    #[test]
    fn device_and_precision_names_parse_as_in_the_core() {
        let (mut device, mut index, mut precision) = (9, 9, 9);
        let status = unsafe { brainsam_parse_device(c" CUDA:1".as_ptr(), &mut device, &mut index) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_OK);
        assert_eq!((device, index), (2, 1));
        let status = unsafe { brainsam_parse_device(c"tpu".as_ptr(), &mut device, &mut index) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_INVALID_ARGUMENT);
        let status = unsafe { brainsam_parse_precision(c"half".as_ptr(), &mut precision) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_OK);
        assert_eq!(precision, 3);
        let status = unsafe { brainsam_parse_precision(std::ptr::null(), &mut precision) };
        assert_eq!(status, brainsam_status::BRAINSAM_STATUS_NULL_POINTER);
    }
}

//! Reading and writing model weights: official `.pth` checkpoints, `.pt`/`.bin`,
//! `.safetensors`, and BrainSAM adapter files.
//!
//! - [`read_state_dict`] reads a `torch.save` zip archive (with a reader of our own
//!   that never executes pickle code, so `OrderedDict` state dicts such as the official
//!   SAM checkpoints work) or a safetensors file, chosen by content, not by extension.
//! - [`load_into_var_store`] copies named tensors into a `tch::nn::VarStore`, strictly
//!   unless [`LoadOptions`] allow differences.
//! - [`save_safetensors`] and [`save_adapter`] write files atomically ([`atomic_write`]).
//!
//! ```no_run
//! use std::path::Path;
//! use brainsam::weights::{load_into_var_store, read_state_dict, LoadOptions};
//!
//! # fn main() -> brainsam::Result<()> {
//! let var_store = tch::nn::VarStore::new(tch::Device::Cpu);
//! // ... build the model on var_store.root() ...
//! let tensors = read_state_dict(Path::new("sam_vit_b_01ec64.pth"))?;
//! let options = LoadOptions::strict().allowing_missing(["image_encoder.blocks.*.attn.lora_*"]);
//! let report = load_into_var_store(&var_store, &tensors, &options)?;
//! log::info!("{report}");
//! # Ok(())
//! # }
//! ```

mod adapter;
mod atomic;
mod dtype;
mod load;
mod pickle;
mod safetensors;
mod torch_refs;
mod torch_zip;

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use tch::Tensor;

pub use adapter::{
    load_adapter, save_adapter, sha256_file, AdapterMetadata, ADAPTER_FORMAT,
    ADAPTER_FORMAT_VERSION,
};
pub use atomic::atomic_write;
pub use load::{load_into_var_store, name_matches, LoadOptions, LoadReport};
pub use safetensors::{read_safetensors, save_safetensors};

use crate::error::{Error, Result};

/// Named tensors in file order, as read from or written to a weight file.
pub type NamedTensors = Vec<(String, Tensor)>;

/// The container formats recognised by [`detect_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// A `torch.save` zip archive (`.pth`, `.pt`, `.bin`).
    TorchZip,
    /// A safetensors file.
    Safetensors,
}

/// Identifies a weight file by its first bytes; the error says what the file looks
/// like instead (empty, legacy torch format, NIfTI, gzip, text...).
pub fn detect_format(path: &Path) -> Result<WeightFormat> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(352);
    file.by_ref()
        .take(352)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    classify(&head).map_err(|reason| Error::invalid_file(path, reason))
}

fn classify(head: &[u8]) -> std::result::Result<WeightFormat, String> {
    const EXPECTED: &str =
        "expected a torch.save zip archive (.pth/.pt/.bin) or a safetensors file";
    if head.is_empty() {
        return Err(format!("the file is empty; {EXPECTED}"));
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(WeightFormat::TorchZip);
    }
    // Safetensors: an 8-byte header length, then the JSON header. A wrong length is
    // reported by the safetensors reader, which says more than "unrecognised".
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(WeightFormat::Safetensors);
    }
    // Legacy torch.save writes a pickled magic number first: PROTO 2, LONG1 0x1950a86a20f9469cfc6c.
    if head.starts_with(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19") {
        return Err(
            "legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a current PyTorch (torch.save(torch.load(f), g))".into(),
        );
    }
    if head.first() == Some(&0x80) {
        return Err(format!(
            "a bare pickle file, not a torch.save zip archive; {EXPECTED}"
        ));
    }
    if head.len() >= 348 && (&head[344..348] == b"n+1\0" || &head[344..348] == b"ni1\0") {
        return Err(format!(
            "this is a NIfTI image, not a weights file; {EXPECTED}"
        ));
    }
    if head.starts_with(b"\x1f\x8b") {
        return Err(format!(
            "a gzip-compressed file (e.g. a .nii.gz image), not a weights file; {EXPECTED}"
        ));
    }
    if head.starts_with(b"\x89HDF") {
        return Err(format!(
            "an HDF5 file (Keras?), not a weights file; {EXPECTED}"
        ));
    }
    let shown: String = head
        .iter()
        .take(16)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    Err(format!(
        "unrecognised content starting with {shown:?}; {EXPECTED}"
    ))
}

pub(crate) fn ensure_safetensors(path: &Path) -> Result<()> {
    match detect_format(path)? {
        WeightFormat::Safetensors => Ok(()),
        WeightFormat::TorchZip => Err(Error::invalid_file(
            path,
            "this is a torch.save archive, but a safetensors file is needed here",
        )),
    }
}

/// Reads every named tensor of a weight file, in file order.
///
/// Accepts `torch.save` zip archives of a state dict (a dict or `OrderedDict` of
/// tensors, or one nested under `state_dict`/`model`/`model_state_dict`/`module`/`net`)
/// and safetensors files. Tensors are on the CPU with their stored dtype; from torch
/// archives they can be strided views that share a storage, as `torch.load` returns
/// them. Each storage is read once. Corrupt or foreign files give an error naming the
/// problem, never a panic.
pub fn read_state_dict(path: &Path) -> Result<NamedTensors> {
    if cfg!(target_endian = "big") {
        return Err(Error::Unsupported(
            "reading weights on a big-endian machine".into(),
        ));
    }
    let format = detect_format(path)?;
    // The zip and JSON parsers are not ours: turn any panic on a corrupt file into an error.
    let outcome = catch_unwind(AssertUnwindSafe(|| match format {
        WeightFormat::TorchZip => torch_zip::read_torch_zip(path).and_then(|tensors| {
            check_finite(path, &tensors)?;
            Ok(tensors)
        }),
        WeightFormat::Safetensors => read_safetensors(path).map(|(tensors, _)| tensors),
    }));
    outcome.unwrap_or_else(|panic| {
        let message = crate::error::panic_message(panic.as_ref()).unwrap_or_default();
        Err(Error::invalid_file(
            path,
            format!("corrupt weights file (reader failed: {message})"),
        ))
    })
}

/// Refuses weights with NaN or infinite values: a model loaded from them segments
/// nothing (every pixel background) without any other sign of trouble.
pub(crate) fn check_finite(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    use tch::Kind::{BFloat16, Double, Float, Half};
    for (name, tensor) in tensors {
        if !matches!(tensor.f_kind()?, Float | Double | Half | BFloat16) || tensor.numel() == 0 {
            continue;
        }
        let bad = tensor
            .f_isfinite()?
            .f_logical_not()?
            .f_sum(tch::Kind::Int64)?
            .f_int64_value(&[])?;
        if bad > 0 {
            return Err(Error::invalid_file(
                path,
                format!(
                    "tensor '{name}' has {bad} NaN or infinite values among its {}: the weights \
                     are corrupt (a diverged training run?)",
                    tensor.numel()
                ),
            ));
        }
    }
    Ok(())
}

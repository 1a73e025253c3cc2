//! Reading and writing the safetensors format: an 8-byte little-endian header length,
//! a JSON header `{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`
//! and the raw little-endian tensor bytes.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::{Map, Value as Json};
use tch::{Device, Kind, Tensor};

use super::atomic::atomic_write;
use super::dtype::{kind_from_safetensors, safetensors_name};
use super::NamedTensors;
use crate::error::{Error, Result};

/// Largest header accepted (the reference implementation uses the same bound).
const MAX_HEADER_BYTES: u64 = 100 << 20;
const METADATA_KEY: &str = "__metadata__";
/// Most dimensions of one tensor.
const MAX_RANK: usize = 16;
/// Most elements of one tensor, counting zero dimensions as one (2^40).
const MAX_ELEMENTS: i64 = 1 << 40;

/// Reads all tensors of a safetensors file in the order of their data, with the
/// file's `__metadata__` (empty when absent). Each tensor is read once, directly
/// into its own memory.
pub fn read_safetensors(path: &Path) -> Result<(NamedTensors, BTreeMap<String, String>)> {
    let invalid = |reason: String| Error::invalid_file(path, reason);
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_length = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut length_bytes = [0u8; 8];
    file.read_exact(&mut length_bytes).map_err(|_| {
        invalid(format!(
            "{file_length} bytes is too short for a safetensors file"
        ))
    })?;
    let header_length = u64::from_le_bytes(length_bytes);
    if header_length > MAX_HEADER_BYTES || header_length > file_length - 8 {
        return Err(invalid(format!(
            "safetensors header length {header_length} is larger than the file ({file_length} bytes) allows"
        )));
    }
    let mut header = vec![0u8; header_length as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let header: Json = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("safetensors header is not valid JSON: {e}")))?;
    let Json::Object(header) = header else {
        return Err(invalid("safetensors header is not a JSON object".into()));
    };
    let data_start = 8 + header_length;
    let data_length = file_length - data_start;

    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, info) in &header {
        if name == METADATA_KEY {
            let Json::Object(map) = info else {
                return Err(invalid("__metadata__ is not a JSON object".into()));
            };
            for (key, value) in map {
                let Json::String(value) = value else {
                    return Err(invalid(format!(
                        "metadata value of '{key}' is not a string"
                    )));
                };
                metadata.insert(key.clone(), value.clone());
            }
            continue;
        }
        let entry = parse_entry(name, info, data_length).map_err(invalid)?;
        entries.push(entry);
    }
    entries.sort_by_key(|entry| (entry.begin, entry.end));
    // The tensors must tile the data section exactly, as the reference reader requires:
    // overlaps, gaps or a length that does not add up mean a corrupt file, most often a
    // wrong header length that would shift every tensor's bytes.
    for pair in entries.windows(2) {
        if pair[1].begin < pair[0].end {
            return Err(invalid(format!(
                "tensors '{}' and '{}' overlap in the data section",
                pair[0].name, pair[1].name
            )));
        }
        if pair[1].begin > pair[0].end {
            return Err(invalid(format!(
                "{} unused bytes between tensors '{}' and '{}' in the data section (corrupt file)",
                pair[1].begin - pair[0].end,
                pair[0].name,
                pair[1].name
            )));
        }
    }
    let covered = (
        entries.first().map_or(0, |entry| entry.begin),
        entries.last().map_or(0, |entry| entry.end),
    );
    if covered != (0, data_length) {
        return Err(invalid(format!(
            "the tensors cover bytes {}..{} of the {data_length}-byte data section, which must be \
             covered exactly (the header length {header_length} is wrong, or the file is truncated or corrupt)",
            covered.0, covered.1
        )));
    }

    let mut tensors = Vec::with_capacity(entries.len());
    for entry in entries {
        let tensor = Tensor::f_empty(entry.shape.as_slice(), (entry.kind, Device::Cpu))?;
        let byte_count = (entry.end - entry.begin) as usize;
        if byte_count > 0 {
            file.seek(SeekFrom::Start(data_start + entry.begin))
                .map_err(|e| Error::io(path, e))?;
            // SAFETY: `tensor` is a fresh contiguous CPU tensor of exactly `byte_count`
            // bytes (checked in parse_entry), referenced nowhere else yet.
            let buffer =
                unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr() as *mut u8, byte_count) };
            file.read_exact(buffer).map_err(|e| {
                invalid(format!(
                    "cannot read the data of tensor '{}': {e}",
                    entry.name
                ))
            })?;
        }
        tensors.push((entry.name, tensor));
    }
    super::check_finite(path, &tensors)?;
    Ok((tensors, metadata))
}

struct Entry {
    name: String,
    kind: Kind,
    shape: Vec<i64>,
    begin: u64,
    end: u64,
}

fn parse_entry(name: &str, info: &Json, data_length: u64) -> std::result::Result<Entry, String> {
    let dtype = info
        .get("dtype")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("tensor '{name}' has no dtype string"))?;
    let kind = kind_from_safetensors(dtype)
        .ok_or_else(|| format!("tensor '{name}' has unsupported dtype {dtype}"))?;
    let shape: Vec<i64> = info
        .get("shape")
        .and_then(Json::as_array)
        .ok_or_else(|| format!("tensor '{name}' has no shape array"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .filter(|&d| d <= i64::MAX as u64)
                .map(|d| d as i64)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            format!("tensor '{name}' has a shape that is not a list of non-negative integers")
        })?;
    if shape.len() > MAX_RANK {
        return Err(format!(
            "tensor '{name}' has {} dimensions (at most {MAX_RANK} are supported)",
            shape.len()
        ));
    }
    // Checked before anything is allocated: with a zero somewhere the byte count is 0
    // whatever the other dimensions are, but libtorch still computes strides from them.
    if shape
        .iter()
        .try_fold(1i64, |acc, &d| acc.checked_mul(d.max(1)))
        .is_none_or(|n| n > MAX_ELEMENTS)
    {
        return Err(format!(
            "tensor '{name}' has shape {shape:?}, too large for any tensor (more than 2^40 elements)"
        ));
    }
    let offsets: Vec<u64> = info
        .get("data_offsets")
        .and_then(Json::as_array)
        .and_then(|a| a.iter().map(Json::as_u64).collect::<Option<Vec<_>>>())
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("tensor '{name}' has no [begin, end] data_offsets"))?;
    let (begin, end) = (offsets[0], offsets[1]);
    if begin > end || end > data_length {
        return Err(format!(
            "tensor '{name}' data_offsets [{begin}, {end}] lie outside the {data_length}-byte data section (truncated file?)"
        ));
    }
    let expected = shape
        .iter()
        .try_fold(kind.elt_size_in_bytes() as u64, |acc, &d| {
            acc.checked_mul(d as u64)
        })
        .ok_or_else(|| format!("tensor '{name}' shape {shape:?} overflows"))?;
    if expected != end - begin {
        return Err(format!(
            "tensor '{name}' ({dtype} {shape:?}) needs {expected} bytes but its data_offsets span {}",
            end - begin
        ));
    }
    Ok(Entry {
        name: name.to_string(),
        kind,
        shape,
        begin,
        end,
    })
}

/// Writes tensors and string metadata to a safetensors file, atomically (see
/// [`atomic_write`]). Tensors may live on any device and be non-contiguous; they are
/// written in the given order. Names must be unique.
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut header = Map::new();
    if !metadata.is_empty() {
        let map = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        header.insert(METADATA_KEY.into(), Json::Object(map));
    }
    let mut prepared = Vec::with_capacity(tensors.len());
    let mut offset = 0u64;
    for (name, tensor) in tensors {
        if name == METADATA_KEY || !seen.insert(name.as_str()) {
            return Err(Error::invalid_argument(format!(
                "cannot save tensor name '{name}' twice or under the reserved name {METADATA_KEY}"
            )));
        }
        let kind = tensor.f_kind()?;
        let dtype = safetensors_name(kind).ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor '{name}' has dtype {kind:?}, which cannot be saved"
            ))
        })?;
        let contiguous = tensor.f_to_device(Device::Cpu)?.f_contiguous()?;
        let byte_count = (contiguous.numel() * kind.elt_size_in_bytes()) as u64;
        let shape = contiguous.size();
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype,
                "shape": shape,
                "data_offsets": [offset, offset + byte_count],
            }),
        );
        offset += byte_count;
        prepared.push((contiguous, byte_count as usize));
    }
    let mut header = serde_json::to_vec(&Json::Object(header))
        .map_err(|e| Error::Internal(format!("cannot encode a safetensors header: {e}")))?;
    // Pad so that the data section starts 8-byte aligned, as the reference writer does.
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    atomic_write(path, |writer| {
        let io = |e| Error::io(path, e);
        writer
            .write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        writer.write_all(&header).map_err(io)?;
        for (tensor, byte_count) in &prepared {
            if *byte_count == 0 {
                continue;
            }
            // SAFETY: `tensor` is a contiguous CPU tensor of `byte_count` bytes that we
            // own and do not modify while reading.
            let bytes =
                unsafe { std::slice::from_raw_parts(tensor.data_ptr() as *const u8, *byte_count) };
            writer.write_all(bytes).map_err(io)?;
        }
        Ok(())
    })
}

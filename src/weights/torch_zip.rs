//! Reader of the `torch.save` zip format (PyTorch >= 1.6) without running pickle code.
//!
//! Layout: `<top>/data.pkl` holds the pickled object, whose tensors refer to raw
//! little-endian storages `<top>/data/<key>` through persistent ids
//! `('storage', torch.FloatStorage, key, location, numel)`. Each storage is read once,
//! straight into libtorch memory, and tensors are strided views of it, exactly as
//! `torch.load` returns them (views of one storage keep sharing it).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;
use std::rc::Rc;

use tch::{Device, Kind, Tensor};

use super::dtype::kind_name;
use super::pickle::{self, Dict, GlobalRef, Resolver, Value};
use super::torch_refs::{StorageRef, TensorRef};
use crate::error::{Error, Result};

/// Largest `data.pkl` accepted; real state dicts need a few hundred kilobytes.
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Dict keys under which training scripts commonly nest the state dict.
const WRAPPER_KEYS: [&str; 5] = ["state_dict", "model", "model_state_dict", "module", "net"];

/// Maps torch's pickled globals onto values; everything unknown becomes opaque.
struct TorchResolver;

fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "DoubleStorage" => Kind::Double,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" | "UntypedStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

fn dtype_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "float32" | "float" => Kind::Float,
        "float16" | "half" => Kind::Half,
        "bfloat16" => Kind::BFloat16,
        "float64" | "double" => Kind::Double,
        "int64" | "long" => Kind::Int64,
        "int32" | "int" => Kind::Int,
        "int16" | "short" => Kind::Int16,
        "int8" => Kind::Int8,
        "uint8" => Kind::Uint8,
        "bool" => Kind::Bool,
        _ => return None,
    })
}

fn int_tuple(value: &Value, what: &str) -> std::result::Result<Vec<i64>, String> {
    let items = value
        .as_sequence()
        .ok_or_else(|| format!("{what} is a {}, not a tuple", value.type_name()))?;
    items
        .iter()
        .map(|item| {
            item.as_int()
                .ok_or_else(|| format!("{what} holds a {}, not an int", item.type_name()))
        })
        .collect()
}

impl TorchResolver {
    fn rebuild_tensor(
        &self,
        callable: &GlobalRef,
        args: &[Value],
        dtype_arg: bool,
    ) -> std::result::Result<Value, String> {
        let minimum = if dtype_arg { 7 } else { 4 };
        if args.len() < minimum {
            return Err(format!(
                "{callable} needs at least {minimum} arguments, got {}",
                args.len()
            ));
        }
        let Value::Storage(storage) = &args[0] else {
            return Err(format!(
                "{callable} got a {} instead of a storage",
                args[0].type_name()
            ));
        };
        let offset = args[1]
            .as_int()
            .ok_or_else(|| format!("{callable}: storage offset is a {}", args[1].type_name()))?;
        let size = int_tuple(&args[2], "tensor size")?;
        let stride = int_tuple(&args[3], "tensor stride")?;
        let kind = if dtype_arg {
            match &args[6] {
                Value::Global(global) if global.module == "torch" => dtype_kind(&global.name)
                    .ok_or_else(|| format!("unsupported dtype torch.{}", global.name))?,
                other => return Err(format!("{callable}: dtype is a {}", other.type_name())),
            }
        } else {
            storage.kind
        };
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            kind,
            offset,
            size,
            stride,
        })))
    }
}

impl Resolver for TorchResolver {
    fn persistent_load(&mut self, pid: Value) -> std::result::Result<Value, String> {
        let items = match &pid {
            Value::Tuple(items, _) => items.clone(),
            other => {
                return Err(format!(
                    "persistent id is a {}, not a tuple",
                    other.type_name()
                ))
            }
        };
        match items.first() {
            Some(Value::Str(tag)) if &**tag == "storage" => {}
            _ => return Err("persistent id is not a ('storage', ...) tuple".into()),
        }
        if items.len() != 5 {
            return Err(format!(
                "storage persistent id has {} fields, expected 5",
                items.len()
            ));
        }
        let kind = match &items[1] {
            Value::Global(global) => match global.module.as_str() {
                "torch" | "torch.storage" => storage_kind(&global.name),
                _ => None,
            }
            .ok_or_else(|| format!("unsupported storage type {global} (unsupported dtype)"))?,
            other => return Err(format!("storage type is a {}", other.type_name())),
        };
        let key = match &items[2] {
            Value::Str(key) => key.to_string(),
            other => return Err(format!("storage key is a {}", other.type_name())),
        };
        if key.is_empty() || key.contains(['/', '\\']) || key.contains("..") {
            return Err(format!("storage key {key:?} is not a plain record name"));
        }
        let numel = items[4]
            .as_int()
            .filter(|&n| n >= 0)
            .ok_or_else(|| format!("storage {key}: element count is not a non-negative int"))?;
        Ok(Value::Storage(Rc::new(StorageRef {
            key,
            kind,
            numel: numel as u64,
        })))
    }

    fn call(&mut self, callable: &GlobalRef, args: &[Value]) -> std::result::Result<Value, String> {
        match (callable.module.as_str(), callable.name.as_str()) {
            ("collections", "OrderedDict") | ("builtins", "dict") | ("__builtin__", "dict") => {
                let mut dict = Dict::default();
                if let Some(pairs) = args.first() {
                    // OrderedDict(iterable_of_pairs): rare in pickles, but cheap to honour.
                    let pairs = pairs
                        .as_sequence()
                        .ok_or("OrderedDict argument is not a sequence")?;
                    for pair in pairs {
                        match pair.as_sequence().as_deref() {
                            Some([key, value]) => dict.insert(key.clone(), value.clone())?,
                            _ => return Err("OrderedDict argument holds a non-pair".into()),
                        }
                    }
                }
                Ok(Value::Dict(Rc::new(RefCell::new(dict))))
            }
            ("torch._utils", "_rebuild_tensor_v2") => self.rebuild_tensor(callable, args, false),
            ("torch._utils", "_rebuild_tensor_v3") => self.rebuild_tensor(callable, args, true),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                match args.first() {
                    Some(tensor @ Value::Tensor(_)) => Ok(tensor.clone()),
                    _ => Err(format!("{callable} needs a tensor as first argument")),
                }
            }
            // Tensor subclasses: (func, type, args, state) -> func(*args).
            ("torch._tensor", "_rebuild_from_type_v2") => match args {
                [Value::Global(function), _, Value::Tuple(inner, _), ..] => {
                    let (function, inner) = (function.clone(), inner.clone());
                    self.call(&function, &inner)
                }
                _ => Err(format!("{callable} has malformed arguments")),
            },
            _ => {
                if callable.module == "torch._utils" && callable.name.starts_with("_rebuild") {
                    return Err(format!(
                        "unsupported tensor kind {callable} (sparse, quantized or subclass tensors are not supported)"
                    ));
                }
                Ok(Value::Opaque(Rc::new(callable.clone())))
            }
        }
    }
}

/// Checks that a tensor's view stays inside its storage.
fn check_extent(name: &str, tensor: &TensorRef) -> std::result::Result<(), String> {
    if tensor.size.len() != tensor.stride.len() {
        return Err(format!(
            "tensor {name}: {} sizes but {} strides",
            tensor.size.len(),
            tensor.stride.len()
        ));
    }
    if tensor.offset < 0 || tensor.size.iter().chain(&tensor.stride).any(|&v| v < 0) {
        return Err(format!(
            "tensor {name}: negative offset, size or stride (offset {}, size {:?}, stride {:?})",
            tensor.offset, tensor.size, tensor.stride
        ));
    }
    let storage_bytes = tensor
        .storage
        .numel
        .checked_mul(tensor.storage.kind.elt_size_in_bytes() as u64)
        .ok_or_else(|| format!("tensor {name}: storage size overflows"))?;
    // Bounded even when a zero dimension makes the tensor empty: libtorch still computes
    // with the other dimensions (and fails with a C++ backtrace when they overflow).
    if tensor.size.len() > 16
        || tensor
            .size
            .iter()
            .try_fold(1i64, |acc, &d| acc.checked_mul(d.max(1)))
            .is_none_or(|n| n > 1 << 40)
    {
        return Err(format!(
            "tensor {name}: size {:?} is too large for any tensor (at most 16 dimensions and 2^40 elements)",
            tensor.size
        ));
    }
    let element = tensor.kind.elt_size_in_bytes() as u64;
    if tensor.size.contains(&0) {
        return Ok(());
    }
    // Last element reached is offset + sum((size - 1) * stride).
    let mut last = tensor.offset as u64;
    for (&size, &stride) in tensor.size.iter().zip(&tensor.stride) {
        last = (size as u64 - 1)
            .checked_mul(stride as u64)
            .and_then(|span| last.checked_add(span))
            .ok_or_else(|| format!("tensor {name}: size {:?} overflows", tensor.size))?;
    }
    let needed = last
        .checked_add(1)
        .and_then(|count| count.checked_mul(element))
        .ok_or_else(|| format!("tensor {name}: size {:?} overflows", tensor.size))?;
    if needed > storage_bytes {
        return Err(format!(
            "tensor {name} (size {:?}, stride {:?}, offset {}) needs {needed} bytes but its storage {} holds {storage_bytes}",
            tensor.size, tensor.stride, tensor.offset, tensor.storage.key
        ));
    }
    Ok(())
}

/// Finds the state dict in the unpickled object: a dict of tensors, or one nested
/// under a common wrapper key.
fn state_dict_entries(root: &Value) -> std::result::Result<Vec<(String, Rc<TensorRef>)>, String> {
    let Value::Dict(dict) = root else {
        return Err(format!(
            "the archive holds a {}, not a state dict (a dict of tensors)",
            root.type_name()
        ));
    };
    let dict = dict.borrow();
    match tensor_entries(&dict) {
        Ok(entries) => Ok(entries),
        Err(first_problem) => {
            for key in WRAPPER_KEYS {
                if let Some(Value::Dict(inner)) = dict.get(key) {
                    if let Ok(entries) = tensor_entries(&inner.borrow()) {
                        return Ok(entries);
                    }
                }
            }
            Err(format!(
                "the archive holds a dict that is not a state dict ({first_problem}) and has no {} entry holding one",
                WRAPPER_KEYS.map(|k| format!("'{k}'")).join("/")
            ))
        }
    }
}

fn tensor_entries(dict: &Dict) -> std::result::Result<Vec<(String, Rc<TensorRef>)>, String> {
    dict.entries
        .iter()
        .map(|(key, value)| {
            let Value::Str(name) = key else {
                return Err(format!("a key is not a string (found {})", key.type_name()));
            };
            match value {
                Value::Tensor(tensor) => Ok((name.to_string(), tensor.clone())),
                other => Err(format!(
                    "entry '{name}' is not a tensor (found {})",
                    other.type_name()
                )),
            }
        })
        .collect()
}

/// Reads every tensor of a `torch.save` zip archive in the pickle's order.
pub fn read_torch_zip(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let invalid = |reason: String| Error::invalid_file(path, reason);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_length = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| invalid(format!("truncated or corrupt zip archive: {e}")))?;

    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let pickle_name = names
        .iter()
        .filter(|name| *name == "data.pkl" || name.ends_with("/data.pkl"))
        .min_by_key(|name| name.len())
        .ok_or_else(|| {
            invalid("zip archive without data.pkl: not a torch.save checkpoint".to_string())
        })?
        .clone();
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    if names
        .iter()
        .any(|name| name.starts_with(&format!("{prefix}code/")))
    {
        return Err(invalid(
            "this is a TorchScript archive (torch.jit.save), not a torch.save state dict".into(),
        ));
    }
    if let Ok(mut record) = archive.by_name(&format!("{prefix}byteorder")) {
        let mut order = String::new();
        // A short read is harmless here: the record holds one word.
        let _ = record.by_ref().take(16).read_to_string(&mut order);
        if order.trim() != "little" {
            return Err(Error::Unsupported(format!(
                "{}: tensors stored with byte order {:?}; only little-endian checkpoints are supported",
                path.display(),
                order.trim()
            )));
        }
    }

    let pickle_bytes = {
        let mut record = archive
            .by_name(&pickle_name)
            .map_err(|e| invalid(format!("cannot open {pickle_name}: {e}")))?;
        let declared = record.size();
        if declared > MAX_PICKLE_BYTES || declared > file_length.saturating_mul(1100) {
            return Err(invalid(format!(
                "{pickle_name} declares an implausible size of {declared} bytes"
            )));
        }
        let mut bytes = Vec::with_capacity(declared as usize);
        record
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("cannot read {pickle_name}: {e}")))?;
        bytes
    };
    let root = pickle::unpickle(&pickle_bytes, &mut TorchResolver)
        .map_err(|e| invalid(format!("corrupt pickle in {pickle_name}: {e}")))?;
    let entries = state_dict_entries(&root).map_err(invalid)?;

    for (name, tensor) in &entries {
        check_extent(name, tensor).map_err(invalid)?;
    }

    // Read each storage once, in order of first use.
    let mut storages: HashMap<String, (Kind, Tensor)> = HashMap::new();
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, tensor) in entries {
        let storage = &tensor.storage;
        let bytes = match storages.get(&storage.key) {
            Some((kind, bytes)) => {
                if *kind != storage.kind {
                    return Err(invalid(format!(
                        "storage {} is used both as {} and as {}",
                        storage.key,
                        kind_name(*kind),
                        kind_name(storage.kind)
                    )));
                }
                bytes.shallow_clone()
            }
            None => {
                let record = format!("{prefix}data/{}", storage.key);
                let bytes = read_storage(&mut archive, &record, storage, file_length)
                    .map_err(|reason| invalid(format!("tensor {name}: {reason}")))?;
                storages.insert(storage.key.clone(), (storage.kind, bytes.shallow_clone()));
                bytes
            }
        };
        let element = tensor.kind.elt_size_in_bytes() as i64;
        let usable = bytes.size()[0] / element * element;
        let view = bytes
            .f_narrow(0, 0, usable)
            .and_then(|b| b.f_view_dtype(tensor.kind))
            .and_then(|typed| typed.f_as_strided(&tensor.size, &tensor.stride, tensor.offset))
            .map_err(|e| invalid(format!("tensor {name}: cannot build the view: {e}")))?;
        tensors.push((name, view));
    }
    Ok(tensors)
}

/// Reads one storage record into a byte tensor, checking its size first so that a
/// corrupt size never causes a huge allocation.
fn read_storage<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    record_name: &str,
    storage: &StorageRef,
    file_length: u64,
) -> std::result::Result<Tensor, String> {
    let mut record = archive
        .by_name(record_name)
        .map_err(|e| format!("storage record {record_name} is missing or unreadable: {e}"))?;
    let needed = storage
        .numel
        .checked_mul(storage.kind.elt_size_in_bytes() as u64)
        .ok_or_else(|| format!("storage {} size overflows", storage.key))?;
    let stored = record.size();
    if stored < needed {
        return Err(format!(
            "storage record {record_name} holds {stored} bytes but {} {} elements need {needed}",
            storage.numel,
            kind_name(storage.kind)
        ));
    }
    let plausible = match record.compression() {
        zip::CompressionMethod::Stored => {
            record.compressed_size() == stored && stored <= file_length
        }
        // Deflate cannot compress more than about 1032:1.
        _ => stored <= record.compressed_size().saturating_mul(1100),
    };
    if !plausible {
        return Err(format!(
            "storage record {record_name} declares an implausible size of {stored} bytes"
        ));
    }
    let bytes = Tensor::f_empty([needed as i64], (Kind::Uint8, Device::Cpu)).map_err(|e| {
        format!(
            "cannot allocate {needed} bytes for storage {}: {e}",
            storage.key
        )
    })?;
    if needed > 0 {
        // SAFETY: `bytes` is a fresh contiguous CPU tensor of exactly `needed` bytes that
        // nothing else references while the slice lives.
        let buffer =
            unsafe { std::slice::from_raw_parts_mut(bytes.data_ptr() as *mut u8, needed as usize) };
        record
            .read_exact(buffer)
            .map_err(|e| format!("storage record {record_name} is truncated or corrupt: {e}"))?;
    }
    // Reading the rest lets the zip reader verify the record's CRC-32.
    std::io::copy(&mut record, &mut std::io::sink())
        .map_err(|e| format!("storage record {record_name} is corrupt: {e}"))?;
    Ok(bytes)
}

//! Element types supported in weight files and their names in each format.

use tch::Kind;

/// The element types BrainSAM reads and writes.
pub(crate) const SUPPORTED_KINDS: [Kind; 10] = [
    Kind::Float,
    Kind::Half,
    Kind::BFloat16,
    Kind::Double,
    Kind::Int64,
    Kind::Int,
    Kind::Int16,
    Kind::Int8,
    Kind::Uint8,
    Kind::Bool,
];

/// The PyTorch name of an element type, for messages.
pub(crate) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "float32",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Double => "float64",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Int16 => "int16",
        Kind::Int8 => "int8",
        Kind::Uint8 => "uint8",
        Kind::Bool => "bool",
        _ => "an unsupported dtype",
    }
}

/// The safetensors `dtype` string of a supported element type.
pub(crate) fn safetensors_name(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Float => "F32",
        Kind::Half => "F16",
        Kind::BFloat16 => "BF16",
        Kind::Double => "F64",
        Kind::Int64 => "I64",
        Kind::Int => "I32",
        Kind::Int16 => "I16",
        Kind::Int8 => "I8",
        Kind::Uint8 => "U8",
        Kind::Bool => "BOOL",
        _ => return None,
    })
}

/// The element type named by a safetensors `dtype` string.
pub(crate) fn kind_from_safetensors(name: &str) -> Option<Kind> {
    SUPPORTED_KINDS
        .into_iter()
        .find(|&kind| safetensors_name(kind) == Some(name))
}

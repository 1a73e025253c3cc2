//! BrainSAM adapter files: the trained LoRA matrices, prompt encoder and mask decoder
//! tensors in a safetensors file whose metadata names the base model they belong to.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tch::Tensor;

use super::safetensors::{read_safetensors, save_safetensors};
use crate::error::{Error, Result};

/// The `format` metadata value of adapter files.
pub const ADAPTER_FORMAT: &str = "brainsam-adapter";
/// The adapter format version this build writes and the newest it reads.
pub const ADAPTER_FORMAT_VERSION: u32 = 1;

const KEY_FORMAT: &str = "format";
const KEY_FORMAT_VERSION: &str = "format_version";
const KEY_BASE_CONFIG: &str = "base_config";
const KEY_BASE_SHA256: &str = "base_checkpoint_sha256";
const KEY_LORA_RANK: &str = "lora_rank";
const KEY_NUM_CLASSES: &str = "num_classes";
const KEY_INPUT_SIZE: &str = "input_size";
const KEY_CLASS_NAMES: &str = "class_names";
const KEY_CREATED_BY: &str = "created_by";
const RESERVED_KEYS: [&str; 9] = [
    KEY_FORMAT,
    KEY_FORMAT_VERSION,
    KEY_BASE_CONFIG,
    KEY_BASE_SHA256,
    KEY_LORA_RANK,
    KEY_NUM_CLASSES,
    KEY_INPUT_SIZE,
    KEY_CLASS_NAMES,
    KEY_CREATED_BY,
];

/// What an adapter file records about itself and the base model it adapts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterMetadata {
    /// Adapter format version (written as [`ADAPTER_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The base model configuration, as a string chosen by the caller (e.g. the
    /// serialised `SamConfig`); compared verbatim by [`AdapterMetadata::check_base`].
    pub base_config: String,
    /// Lower-case hex SHA-256 of the base checkpoint file (see [`sha256_file`]).
    pub base_checkpoint_sha256: String,
    /// Rank of the LoRA matrices (0 when the adapter has no LoRA).
    pub lora_rank: u32,
    /// Number of output classes, background included (13 for BrainSAM).
    pub num_classes: u32,
    /// Side of the square model input in pixels (e.g. 512).
    pub input_size: u32,
    /// One name per output class, in class-id order (`num_classes` entries).
    pub class_names: Vec<String>,
    /// The program that wrote the file, e.g. `brainsam 0.1.0`.
    pub created_by: String,
    /// Further string metadata (training settings...), kept as is.
    pub extra: BTreeMap<String, String>,
}

impl AdapterMetadata {
    /// Metadata for a new adapter written by this build of BrainSAM.
    pub fn new(
        base_config: impl Into<String>,
        base_checkpoint_sha256: impl Into<String>,
        lora_rank: u32,
        input_size: u32,
        class_names: Vec<String>,
    ) -> Self {
        Self {
            format_version: ADAPTER_FORMAT_VERSION,
            base_config: base_config.into(),
            base_checkpoint_sha256: base_checkpoint_sha256.into().to_ascii_lowercase(),
            lora_rank,
            num_classes: class_names.len() as u32,
            input_size,
            class_names,
            created_by: format!("brainsam {}", env!("CARGO_PKG_VERSION")),
            extra: BTreeMap::new(),
        }
    }

    /// Checks that the adapter was made for this base model; the error names the
    /// recorded and the expected values.
    pub fn check_base(&self, expected_config: &str, expected_sha256: &str) -> Result<()> {
        let mut problems = Vec::new();
        if self.base_config != expected_config {
            problems.push(format!(
                "base config: adapter was trained on '{}' but the model is '{expected_config}'",
                self.base_config
            ));
        }
        if !self
            .base_checkpoint_sha256
            .eq_ignore_ascii_case(expected_sha256)
        {
            problems.push(format!(
                "base checkpoint SHA-256: adapter was trained on {} but the model's checkpoint is {}",
                self.base_checkpoint_sha256, expected_sha256
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::WeightMismatch(format!(
                "adapter does not fit the base model ({})",
                problems.join("; ")
            )))
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.class_names.len() != self.num_classes as usize {
            return Err(format!(
                "num_classes is {} but {} class names are given",
                self.num_classes,
                self.class_names.len()
            ));
        }
        let sha = &self.base_checkpoint_sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "base_checkpoint_sha256 {sha:?} is not 64 hex digits"
            ));
        }
        if let Some(key) = self
            .extra
            .keys()
            .find(|k| RESERVED_KEYS.contains(&k.as_str()))
        {
            return Err(format!("extra metadata uses the reserved key '{key}'"));
        }
        Ok(())
    }

    /// The metadata as safetensors string pairs.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut map = self.extra.clone();
        let class_names = serde_json::Value::from(self.class_names.clone()).to_string();
        for (key, value) in [
            (KEY_FORMAT, ADAPTER_FORMAT.to_string()),
            (KEY_FORMAT_VERSION, self.format_version.to_string()),
            (KEY_BASE_CONFIG, self.base_config.clone()),
            (KEY_BASE_SHA256, self.base_checkpoint_sha256.clone()),
            (KEY_LORA_RANK, self.lora_rank.to_string()),
            (KEY_NUM_CLASSES, self.num_classes.to_string()),
            (KEY_INPUT_SIZE, self.input_size.to_string()),
            (KEY_CLASS_NAMES, class_names),
            (KEY_CREATED_BY, self.created_by.clone()),
        ] {
            map.insert(key.to_string(), value);
        }
        map
    }

    /// Parses safetensors metadata written by [`AdapterMetadata::to_map`].
    pub fn from_map(map: &BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let get = |key: &str| {
            map.get(key)
                .ok_or_else(|| format!("metadata has no '{key}' entry"))
        };
        let number = |key: &str| -> std::result::Result<u32, String> {
            let text = get(key)?;
            text.parse()
                .map_err(|_| format!("metadata '{key}' is {text:?}, not a non-negative integer"))
        };
        let format = get(KEY_FORMAT)?;
        if format != ADAPTER_FORMAT {
            return Err(format!(
                "metadata format is {format:?}, not {ADAPTER_FORMAT:?}"
            ));
        }
        let format_version = number(KEY_FORMAT_VERSION)?;
        if format_version == 0 || format_version > ADAPTER_FORMAT_VERSION {
            return Err(format!(
                "adapter format version {format_version} is not supported (this build reads 1 to {ADAPTER_FORMAT_VERSION})"
            ));
        }
        let class_names_text = get(KEY_CLASS_NAMES)?;
        let class_names: Vec<String> = serde_json::from_str(class_names_text).map_err(|_| {
            format!("metadata class_names {class_names_text:?} is not a JSON list of strings")
        })?;
        let metadata = Self {
            format_version,
            base_config: get(KEY_BASE_CONFIG)?.clone(),
            base_checkpoint_sha256: get(KEY_BASE_SHA256)?.to_ascii_lowercase(),
            lora_rank: number(KEY_LORA_RANK)?,
            num_classes: number(KEY_NUM_CLASSES)?,
            input_size: number(KEY_INPUT_SIZE)?,
            class_names,
            created_by: get(KEY_CREATED_BY)?.clone(),
            extra: map
                .iter()
                .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        metadata.validate()?;
        Ok(metadata)
    }
}

/// Writes an adapter file (safetensors, atomically).
pub fn save_adapter(
    path: &Path,
    metadata: &AdapterMetadata,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    metadata
        .validate()
        .map_err(|reason| Error::invalid_argument(format!("adapter metadata: {reason}")))?;
    save_safetensors(path, tensors, &metadata.to_map())
}

/// Reads an adapter file written by [`save_adapter`].
pub fn load_adapter(path: &Path) -> Result<(AdapterMetadata, Vec<(String, Tensor)>)> {
    super::ensure_safetensors(path)?;
    let (tensors, map) = read_safetensors(path)?;
    let metadata = AdapterMetadata::from_map(&map).map_err(|reason| {
        Error::invalid_file(path, format!("not a valid BrainSAM adapter: {reason}"))
    })?;
    Ok((metadata, tensors))
}

/// The lower-case hex SHA-256 of a file, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let count = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buffer[..count]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

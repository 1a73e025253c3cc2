//! A loaded segmentation model: SAM weights (+ optional LoRA adapter) on a device,
//! immutable after loading and shared by any number of sessions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::nn::VarStore;
use tch::{Device, Kind};

use super::{adapt_state_dict, set_image_encoder_kind, Sam, SamConfig};
use crate::error::{Error, Result};
use crate::weights::{self, LoadOptions};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N (`cuda:N`; `cuda` is device 0); an error when it does not exist.
    Cuda(usize),
}

impl DeviceChoice {
    /// Parses `auto`, `cpu`, `cuda` (device 0) or `cuda:N`.
    pub fn parse(text: &str) -> Result<Self> {
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => return Ok(DeviceChoice::Auto),
            "cpu" => return Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => return Ok(DeviceChoice::Cuda(0)),
            _ => {}
        }
        if let Some(index) = lower.strip_prefix("cuda:") {
            if let Ok(index) = index.parse::<usize>() {
                return Ok(DeviceChoice::Cuda(index));
            }
        }
        Err(Error::invalid_argument(format!(
            "unknown device `{text}`: use auto, cpu, cuda or cuda:N (N = 0, 1, ...)"
        )))
    }

    /// The libtorch device this choice resolves to on this machine.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda(_) if !tch::Cuda::is_available() => {
                Err(Error::Unsupported(format!(
                    "device `{self}` requested but libtorch sees no CUDA device on this machine"
                )))
            }
            DeviceChoice::Cuda(index) => {
                let count = tch::Cuda::device_count().max(0) as usize;
                if index < count {
                    Ok(Device::Cuda(index))
                } else {
                    Err(Error::invalid_argument(format!(
                        "device `{self}` does not exist: this machine has {count} CUDA device{} \
                         (cuda:0{})",
                        if count == 1 { "" } else { "s" },
                        if count > 1 {
                            format!("..cuda:{}", count - 1)
                        } else {
                            String::new()
                        }
                    )))
                }
            }
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => write!(f, "auto"),
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(index) => write!(f, "cuda:{index}"),
        }
    }
}

/// Numeric precision of the image encoder (the expensive part). The prompt encoder and
/// mask decoder always run in fp32: they are cheap, and the masks need the precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 on CUDA devices that support it (compute capability 8.0 and later), fp16 on
    /// older CUDA devices, fp32 on the CPU (where reduced precision is not faster).
    #[default]
    Auto,
    /// fp32 everywhere.
    Fp32,
    /// bf16 encoder; falls back to fp16 on CUDA devices without bf16.
    Bf16,
    /// fp16 encoder.
    Fp16,
}

impl Precision {
    /// Parses `auto`, `fp32`, `bf16` or `fp16` (also `float32`, `bfloat16`, `float16`,
    /// `half`).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Precision::Auto),
            "fp32" | "float32" | "float" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            other => Err(Error::invalid_argument(format!(
                "unknown precision `{other}`: use auto, fp32, bf16 or fp16"
            ))),
        }
    }

    /// The weight kind of the image encoder on `device`.
    pub fn encoder_kind(self, device: Device) -> Kind {
        let bf16_supported = match device {
            Device::Cuda(index) => crate::runtime::cuda_capability(index)
                // Unknown capability (built without the CUDA headers): assume a current GPU.
                .is_none_or(|(major, _)| major >= 8),
            _ => true,
        };
        match (self, device) {
            (Precision::Fp32, _) | (Precision::Auto, Device::Cpu) => Kind::Float,
            (Precision::Fp16, _) => Kind::Half,
            (Precision::Auto | Precision::Bf16, _) if bf16_supported => Kind::BFloat16,
            (Precision::Auto | Precision::Bf16, _) => {
                log::warn!("{device:?} has no bf16 support: the image encoder runs in fp16");
                Kind::Half
            }
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Weights file (`.safetensors` written by BrainSAM, or an official SAM `.pth`).
    /// None: the bundled default model ([`default_model_path`]).
    pub checkpoint: Option<PathBuf>,
    /// Optional LoRA adapter made for `checkpoint`.
    pub adapter: Option<PathBuf>,
    /// Model configuration; None: read from the checkpoint's metadata, or for official
    /// checkpoints inferred from the tensor shapes.
    pub config: Option<SamConfig>,
    /// Device.
    pub device: DeviceChoice,
    /// Precision of the image encoder.
    pub precision: Precision,
}

/// Metadata key under which BrainSAM stores a model's configuration (JSON).
pub const CONFIG_METADATA_KEY: &str = "brainsam_config";

/// Prefix of the tensors of a model of another slice orientation stored in the same
/// file (`views.axial.image_encoder...`): its class probabilities are averaged with the
/// main model's in automatic segmentation (see [`Model::other_views`]).
pub const VIEW_TENSOR_PREFIX: &str = "views.";

/// Prefix of the metadata key holding such a view model's configuration
/// (`brainsam_view_config.axial`).
pub const VIEW_CONFIG_METADATA_PREFIX: &str = "brainsam_view_config.";

/// A model file's tensors split into the main model's and, per view model named in
/// the metadata, that model's configuration and tensors (prefix removed). Tensors
/// under [`VIEW_TENSOR_PREFIX`] without a configuration are an error, as is a view
/// configuration without tensors.
#[allow(clippy::type_complexity)]
pub fn split_view_models(
    tensors: Vec<(String, tch::Tensor)>,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<(
    Vec<(String, tch::Tensor)>,
    Vec<(String, SamConfig, Vec<(String, tch::Tensor)>)>,
)> {
    let mut views: Vec<(String, SamConfig, Vec<(String, tch::Tensor)>)> = Vec::new();
    for (key, json) in metadata {
        if let Some(name) = key.strip_prefix(VIEW_CONFIG_METADATA_PREFIX) {
            let config = SamConfig::from_json(json)
                .map_err(|e| Error::invalid_argument(format!("view model {name:?}: {e}")))?;
            views.push((name.to_string(), config, Vec::new()));
        }
    }
    let mut main = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let Some(rest) = name.strip_prefix(VIEW_TENSOR_PREFIX) else {
            main.push((name, tensor));
            continue;
        };
        let view = views
            .iter_mut()
            .find(|(view, ..)| rest.starts_with(&format!("{view}.")))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "tensor {name} belongs to no view model named in the file's metadata"
                ))
            })?;
        let own = rest[view.0.len() + 1..].to_string();
        view.2.push((own, tensor));
    }
    if let Some((name, ..)) = views.iter().find(|(_, _, t)| t.is_empty()) {
        return Err(Error::invalid_argument(format!(
            "view model {name:?} is named in the metadata but has no tensors"
        )));
    }
    Ok((main, views))
}

/// The configuration stored in a BrainSAM model file's `metadata` (read from `path`);
/// an error naming the file when it has none.
pub fn stored_config(
    path: &Path,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<SamConfig> {
    let json = metadata.get(CONFIG_METADATA_KEY).ok_or_else(|| {
        Error::invalid_file(
            path,
            "not a BrainSAM model file (no configuration in its metadata)",
        )
    })?;
    SamConfig::from_json(json)
}

/// Writes `main` (a BrainSAM model file, with or without view models) with the models
/// `views` (BrainSAM model files of other slice orientations, for the same classes)
/// added as view models, to `output` (atomically). The view models' interactive heads
/// are left out: prompts use the main model's.
pub fn combine_view_models(main: &Path, views: &[PathBuf], output: &Path) -> Result<()> {
    combine(main, views, output, false)
}

/// As [`combine_view_models`], but a view model of `main` in the orientation of one of
/// `views` is replaced by it instead of refused: to ship a view model trained further.
pub fn replace_view_models(main: &Path, views: &[PathBuf], output: &Path) -> Result<()> {
    combine(main, views, output, true)
}

fn combine(main: &Path, views: &[PathBuf], output: &Path, replace: bool) -> Result<()> {
    let (mut tensors, mut metadata) = weights::read_safetensors(main)?;
    let main_config = stored_config(main, &metadata)?;
    // A main file that holds view models keeps them: the new ones are added.
    split_view_models(
        tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect(),
        &metadata,
    )
    .map_err(|e| Error::invalid_file(main, e.to_string()))?;
    for path in views {
        let (view_tensors, view_metadata) = weights::read_safetensors(path)?;
        let config = stored_config(path, &view_metadata)?;
        let name = config.slice_orientation.name();
        let config_key = format!("{VIEW_CONFIG_METADATA_PREFIX}{name}");
        if replace && config.slice_orientation != main_config.slice_orientation {
            if metadata.remove(&config_key).is_none() {
                return Err(Error::invalid_file(
                    path,
                    format!("{} holds no {name} view model to replace", main.display()),
                ));
            }
            let prefix = format!("{VIEW_TENSOR_PREFIX}{name}.");
            tensors.retain(|(tensor, _)| !tensor.starts_with(&prefix));
        }
        if config.slice_orientation == main_config.slice_orientation
            || metadata.contains_key(&config_key)
        {
            return Err(Error::invalid_file(
                path,
                format!("its slice orientation ({name}) is already in the combined model"),
            ));
        }
        if config.mask_decoder.num_mask_tokens != main_config.mask_decoder.num_mask_tokens {
            return Err(Error::invalid_file(
                path,
                "it has another number of classes than the main model",
            ));
        }
        if view_metadata
            .keys()
            .any(|k| k.starts_with(VIEW_CONFIG_METADATA_PREFIX))
        {
            return Err(Error::invalid_file(path, "already holds view models"));
        }
        metadata.insert(config_key, config.with_interactive(false).to_json());
        tensors.extend(
            view_tensors
                .into_iter()
                .filter(|(tensor, _)| !tensor.starts_with("interactive."))
                .map(|(tensor, value)| (format!("{VIEW_TENSOR_PREFIX}{name}.{tensor}"), value)),
        );
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    weights::save_safetensors(output, &tensors, &metadata)
}

/// Saves all weights of a model (`var_store`, built for `config`) as a BrainSAM model
/// file: safetensors with the configuration (JSON) under [`CONFIG_METADATA_KEY`], so that
/// [`Model::load`] needs nothing else. Written atomically.
pub fn save_model(path: &Path, var_store: &VarStore, config: &SamConfig) -> Result<()> {
    let mut tensors: Vec<(String, tch::Tensor)> = var_store.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(CONFIG_METADATA_KEY.to_string(), config.to_json());
    metadata.insert("format".to_string(), "brainsam-model".to_string());
    metadata.insert(
        "created_by".to_string(),
        format!("brainsam {}", env!("CARGO_PKG_VERSION")),
    );
    weights::save_safetensors(path, &tensors, &metadata)
}

/// Builds a freshly initialised model of `config` (random weights, fixed `seed`) and
/// saves it with [`save_model`]: the starting point for training from scratch, and a
/// stand-in model for tests.
pub fn init_model(path: &Path, config: &SamConfig, seed: i64) -> Result<()> {
    tch::manual_seed(seed);
    let var_store = VarStore::new(Device::Cpu);
    Sam::new(&var_store.root(), config)?;
    save_model(path, &var_store, config)
}

/// The bundled default model: `$BRAINSAM_MODEL` if set, else the first existing of
/// `<repo>/models/brainsam-default.safetensors` (source builds) and
/// `<exe dir>/../share/brainsam/brainsam-default.safetensors` (installs).
pub fn default_model_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("BRAINSAM_MODEL") {
        return Ok(PathBuf::from(path));
    }
    let mut candidates = vec![Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join("brainsam-default.safetensors")];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("../share/brainsam/brainsam-default.safetensors"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            Error::InvalidState(format!(
                "no model given and the bundled default model is missing (looked at {}); \
                 pass a checkpoint or set BRAINSAM_MODEL",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// A SAM model ready for inference. Immutable once loaded.
pub struct Model {
    sam: Sam,
    // Owns the parameters `sam` refers to; kept alive with it.
    _var_store: VarStore,
    checkpoint: Option<PathBuf>,
    adapter: Option<PathBuf>,
    base_fallback: Option<BaseFallback>,
    other_views: Vec<Arc<Model>>,
}

/// Structures an adapter hands back to its base model: for these the adapted model
/// outputs the base model's probabilities (the adaptation validated worse on them), see
/// [`Model::base_fallback`]. Recorded in the adapter's metadata under
/// [`BASE_STRUCTURES_KEY`].
#[derive(Debug)]
pub struct BaseFallback {
    /// The base model (the adapter's checkpoint, without adapter).
    pub base: Arc<Model>,
    /// Class ids (1..=12) whose probabilities come from `base`.
    pub structures: Vec<u8>,
}

/// Adapter metadata key of the structures kept from the base model (comma-separated
/// class ids; absent or empty: none).
pub const BASE_STRUCTURES_KEY: &str = "base_structures";

/// Parses [`BASE_STRUCTURES_KEY`]'s value.
pub fn parse_base_structures(text: &str) -> Result<Vec<u8>> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.parse::<u8>() {
            Ok(class) if crate::labels::structure(class).is_some() => Ok(class),
            _ => Err(Error::invalid_argument(format!(
                "{BASE_STRUCTURES_KEY} {text:?}: {t:?} is not a structure id (1..=12)"
            ))),
        })
        .collect()
}

// SAFETY: tch marks tensors `Send` but not `Sync`. A `Model` is never mutated after
// `load` returns (no method takes `&mut self` and the parameters are not exposed
// mutably), and concurrent read-only forward passes over the same parameters are
// supported by libtorch (it is how multi-threaded inference servers use it).
unsafe impl Sync for Model {}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("checkpoint", &self.checkpoint)
            .field("adapter", &self.adapter)
            .field("device", &self.sam.device())
            .finish()
    }
}

impl Model {
    /// Loads a model as described by `options`: the checkpoint (BrainSAM safetensors
    /// with its configuration in the metadata, or an official SAM checkpoint whose
    /// configuration is given or inferred), resized to the configured input size, plus
    /// the optional LoRA adapter, which must have been made for this checkpoint.
    pub fn load(options: &ModelOptions) -> Result<Arc<Model>> {
        let device = options.device.resolve()?;
        let checkpoint = match &options.checkpoint {
            Some(path) => path.clone(),
            None => default_model_path()?,
        };
        let (tensors, metadata) = match weights::detect_format(&checkpoint)? {
            weights::WeightFormat::Safetensors => weights::read_safetensors(&checkpoint)?,
            weights::WeightFormat::TorchZip => {
                (weights::read_state_dict(&checkpoint)?, Default::default())
            }
        };
        let (tensors, views) = split_view_models(tensors, &metadata)
            .map_err(|e| Error::invalid_file(&checkpoint, e.to_string()))?;
        let base_config = match (&options.config, metadata.get(CONFIG_METADATA_KEY)) {
            (Some(config), _) => config.clone(),
            (None, Some(json)) => SamConfig::from_json(json)?,
            (None, None) => SamConfig::infer_from_state_dict(&tensors).ok_or_else(|| {
                Error::invalid_file(
                    &checkpoint,
                    "cannot tell the model configuration: the file has no BrainSAM \
                     metadata and its tensors match no known SAM configuration",
                )
            })?,
        };
        let adapter = match &options.adapter {
            Some(path) => {
                let (meta, adapter_tensors) = weights::load_adapter(path)?;
                meta.check_base(&base_config.to_json(), &weights::sha256_file(&checkpoint)?)
                    .map_err(|e| Error::WeightMismatch(format!("{}: {e}", path.display())))?;
                Some((path.clone(), meta, adapter_tensors))
            }
            None => None,
        };
        let config = match &adapter {
            Some((_, meta, _)) => base_config
                .clone()
                .with_input_size(i64::from(meta.input_size))
                .with_num_classes(i64::from(meta.num_classes) - 1)
                .with_lora_rank(i64::from(meta.lora_rank)),
            None => base_config,
        };
        let var_store = VarStore::new(device);
        let sam = Sam::new(&var_store.root(), &config)?;
        let adapted = adapt_state_dict(&config, tensors)?;
        for resized in &adapted.resized {
            log::info!(
                "{}: resized {} from {:?} to {:?}",
                checkpoint.display(),
                resized.name,
                resized.from,
                resized.to
            );
        }
        // Without an adapter, only LoRA tensors may be absent (they start as an
        // identity bypass); class-dependent decoder tensors re-initialised for another
        // class count are reported.
        let mut allowed_missing: Vec<String> = vec!["*.lora_*".into()];
        if adapter.is_some() {
            allowed_missing.extend(adapted.missing.iter().cloned());
        } else if !adapted.dropped.is_empty() {
            log::warn!(
                "{}: {} class-dependent decoder tensors do not fit {} classes and were \
                 re-initialised: this model needs fine-tuning before it segments anything",
                checkpoint.display(),
                adapted.dropped.len(),
                config.mask_decoder.num_mask_tokens
            );
            allowed_missing.extend(adapted.missing.iter().cloned());
        }
        weights::load_into_var_store(
            &var_store,
            &adapted.tensors,
            &LoadOptions::strict().allowing_missing(allowed_missing),
        )
        .map_err(|e| Error::WeightMismatch(format!("{}: {e}", checkpoint.display())))?;
        let base_structures = match &adapter {
            Some((path, meta, _)) => meta
                .extra
                .get(BASE_STRUCTURES_KEY)
                .map(|text| parse_base_structures(text))
                .transpose()
                .map_err(|e| Error::invalid_file(path, e.to_string()))?
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let adapter_path = match adapter {
            Some((path, _, adapter_tensors)) => {
                weights::load_into_var_store(
                    &var_store,
                    &adapter_tensors,
                    &LoadOptions::strict().allowing_missing(["*"]),
                )
                .map_err(|e| Error::WeightMismatch(format!("{}: {e}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        let encoder_kind = options.precision.encoder_kind(device);
        set_image_encoder_kind(&var_store, encoder_kind)?;
        log::info!(
            "loaded {} ({}, input {}, {} mask tokens) on {:?}, image encoder in {:?}",
            checkpoint.display(),
            config.name,
            config.input_size,
            config.mask_decoder.num_mask_tokens,
            device,
            encoder_kind
        );
        let base_fallback = if base_structures.is_empty() {
            None
        } else {
            log::info!(
                "the adapter keeps the base model's output for structures {base_structures:?}"
            );
            let base = Model::load(&ModelOptions {
                checkpoint: Some(checkpoint.clone()),
                adapter: None,
                ..options.clone()
            })?;
            Some(BaseFallback {
                base,
                structures: base_structures,
            })
        };
        // An adapter or a configuration given by the caller changes the main model
        // only: the view models, made for the file's own main model, are not used then.
        let other_views = if adapter_path.is_some() || options.config.is_some() {
            if !views.is_empty() {
                log::info!(
                    "{}: its other slice orientations are not used with an adapter or a \
                     given configuration",
                    checkpoint.display()
                );
            }
            Vec::new()
        } else {
            views
                .into_iter()
                .map(|(name, view_config, view_tensors)| {
                    let view_store = VarStore::new(device);
                    let view_sam = Sam::new(&view_store.root(), &view_config)?;
                    weights::load_into_var_store(
                        &view_store,
                        &view_tensors,
                        &LoadOptions::strict().allowing_missing(["*.lora_*"]),
                    )
                    .map_err(|e| {
                        Error::WeightMismatch(format!(
                            "{} (view model {name}): {e}",
                            checkpoint.display()
                        ))
                    })?;
                    set_image_encoder_kind(&view_store, encoder_kind)?;
                    log::info!("{}: view model {name} loaded", checkpoint.display());
                    Ok(Arc::new(Model {
                        sam: view_sam,
                        _var_store: view_store,
                        checkpoint: Some(checkpoint.clone()),
                        adapter: None,
                        base_fallback: None,
                        other_views: Vec::new(),
                    }))
                })
                .collect::<Result<Vec<_>>>()?
        };
        Ok(Arc::new(Model {
            sam,
            _var_store: var_store,
            checkpoint: Some(checkpoint),
            adapter: adapter_path,
            base_fallback,
            other_views,
        }))
    }

    /// Wraps an already built model (used by training and tests).
    pub fn from_parts(sam: Sam, var_store: VarStore) -> Arc<Model> {
        Arc::new(Model {
            sam,
            _var_store: var_store,
            checkpoint: None,
            adapter: None,
            base_fallback: None,
            other_views: Vec::new(),
        })
    }

    /// The SAM network.
    pub fn sam(&self) -> &Sam {
        &self.sam
    }

    /// The model configuration.
    pub fn config(&self) -> &SamConfig {
        self.sam.config()
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.sam.device()
    }

    /// The checkpoint file it was loaded from, if any.
    pub fn checkpoint(&self) -> Option<&Path> {
        self.checkpoint.as_deref()
    }

    /// The adapter file applied, if any.
    pub fn adapter(&self) -> Option<&Path> {
        self.adapter.as_deref()
    }

    /// The structures for which this adapted model gives the base model's output, with
    /// the base model (None: every structure comes from this model). Automatic
    /// segmentation runs both models then (about twice the time).
    pub fn base_fallback(&self) -> Option<&BaseFallback> {
        self.base_fallback.as_ref()
    }

    /// Models of other slice orientations stored in the same file (the default model's
    /// axial and sagittal models): automatic segmentation averages their class
    /// probabilities with this model's in 3D unless
    /// [`crate::session::SessionOptions::view_averaging`] is off. Prompts use this model
    /// only.
    pub fn other_views(&self) -> &[Arc<Model>] {
        &self.other_views
    }
}

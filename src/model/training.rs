//! Training modes (which parameters learn), applying them to a VarStore, and
//! parameter counts.

use std::fmt;

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

use crate::error::{Error, Result};

/// Which parameters are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainingMode {
    /// The paper's setting: the image encoder is frozen except its LoRA tensors;
    /// the prompt encoder and the mask decoder are fully trained.
    Lora,
    /// Only the image encoder's LoRA tensors train; prompt encoder and mask decoder
    /// stay as in the base model. Adapts how images look (a scanner, a contrast) while
    /// keeping the decoder's anatomy learned from many subjects; the adapter holds only
    /// the LoRA matrices.
    LoraEncoder,
    /// Only the mask decoder trains; the image encoder (LoRA included) and the
    /// prompt encoder are frozen. Useful to fit a new class head quickly.
    Decoder,
    /// Everything trains (LoRA tensors included, when present).
    Full,
}

impl TrainingMode {
    /// Whether the parameter called `name` (official naming) trains in this mode.
    /// Buffers (the prompt encoder's random Fourier matrix) never train.
    pub fn is_trainable(self, name: &str) -> bool {
        // The interactive head learns only in its own trainer (train::interactive): the
        // automatic loss never reaches it, and AdamW's weight decay would shrink it.
        if is_buffer(name) || name.starts_with(super::INTERACTIVE_PREFIX) {
            return false;
        }
        let in_encoder = name.starts_with("image_encoder.");
        match self {
            TrainingMode::Lora => !in_encoder || is_lora(name),
            TrainingMode::LoraEncoder => in_encoder && is_lora(name),
            TrainingMode::Decoder => name.starts_with("mask_decoder."),
            TrainingMode::Full => true,
        }
    }

    /// Whether the mode trains LoRA tensors (the model then needs a LoRA rank).
    pub fn uses_lora(self) -> bool {
        matches!(self, TrainingMode::Lora | TrainingMode::LoraEncoder)
    }

    /// Parses "lora", "lora-encoder", "decoder" or "full".
    pub fn parse(text: &str) -> Result<Self> {
        match text.to_ascii_lowercase().as_str() {
            "lora" => Ok(TrainingMode::Lora),
            "lora-encoder" => Ok(TrainingMode::LoraEncoder),
            "decoder" => Ok(TrainingMode::Decoder),
            "full" => Ok(TrainingMode::Full),
            other => Err(Error::invalid_argument(format!(
                "unknown training mode '{other}' (known: lora, lora-encoder, decoder, full)"
            ))),
        }
    }
}

impl fmt::Display for TrainingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrainingMode::Lora => "lora",
            TrainingMode::LoraEncoder => "lora-encoder",
            TrainingMode::Decoder => "decoder",
            TrainingMode::Full => "full",
        })
    }
}

/// Whether `name` is a LoRA tensor.
pub fn is_lora(name: &str) -> bool {
    name.contains(".lora_")
}

/// Whether `name` is a buffer (stored with the weights but not a parameter).
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("positional_encoding_gaussian_matrix")
}

/// Parameter counts of a model in a training mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParameterCounts {
    /// Values that receive gradients.
    pub trainable: i64,
    /// Parameter values that are frozen.
    pub frozen: i64,
    /// Buffer values (never trained, not counted as parameters).
    pub buffers: i64,
}

impl ParameterCounts {
    /// Trainable + frozen parameters (buffers excluded).
    pub fn total(&self) -> i64 {
        self.trainable + self.frozen
    }

    /// Counts `(name, shape)` pairs, e.g. from [`SamConfig::parameter_shapes`](super::SamConfig::parameter_shapes).
    pub fn from_shapes<'a>(
        shapes: impl IntoIterator<Item = (&'a str, &'a [i64])>,
        mode: TrainingMode,
    ) -> Self {
        let mut counts = Self::default();
        for (name, shape) in shapes {
            let n: i64 = shape.iter().product();
            if is_buffer(name) {
                counts.buffers += n;
            } else if mode.is_trainable(name) {
                counts.trainable += n;
            } else {
                counts.frozen += n;
            }
        }
        counts
    }
}

/// Sets `requires_grad` of every variable of `vs` according to `mode` and returns
/// the resulting counts. Optimisers should then be given only
/// [`trainable_parameters`] (frozen tensors get no gradient).
pub fn apply_training_mode(vs: &VarStore, mode: TrainingMode) -> ParameterCounts {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, tensor) in &named {
        let _ = tensor.set_requires_grad(mode.is_trainable(name));
    }
    ParameterCounts::from_shapes(
        named
            .iter()
            .map(|(n, t)| (n.as_str(), t.size()))
            .collect::<Vec<_>>()
            .iter()
            .map(|(n, s)| (*n, s.as_slice())),
        mode,
    )
}

/// Parameters of `vs` that currently require gradients, sorted by name.
pub fn trainable_parameters(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

/// Parameters of `vs` that are frozen (buffers excluded), sorted by name.
pub fn frozen_parameters(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, t)| !t.requires_grad() && !is_buffer(n))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

//! Adapting a SAM state dict to a configuration (other input size, other class
//! count) and copying it into a VarStore.

use std::collections::{HashMap, HashSet};

use tch::{Kind, Tensor};

use super::config::SamConfig;
use crate::error::{Error, Result};

/// A tensor whose shape was changed by [`adapt_state_dict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResizedTensor {
    /// Tensor name.
    pub name: String,
    /// Shape in the checkpoint.
    pub from: Vec<i64>,
    /// Shape after resizing (the model's).
    pub to: Vec<i64>,
}

/// A tensor left out by [`adapt_state_dict`]; the model keeps its fresh initialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTensor {
    /// Tensor name.
    pub name: String,
    /// Shape in the checkpoint.
    pub shape: Vec<i64>,
    /// Why it was dropped.
    pub reason: String,
}

/// Result of [`adapt_state_dict`].
#[derive(Debug)]
pub struct AdaptReport {
    /// Tensors to load, with the model's shapes.
    pub tensors: Vec<(String, Tensor)>,
    /// Tensors that were interpolated to the model's input size.
    pub resized: Vec<ResizedTensor>,
    /// Class-dependent tensors dropped because the mask-token count differs.
    pub dropped: Vec<DroppedTensor>,
    /// Names in the checkpoint that the model does not have (left out).
    pub unexpected: Vec<String>,
    /// Model tensors the checkpoint does not provide (LoRA tensors, dropped ones...).
    pub missing: Vec<String>,
}

/// Whether `name` is one of the decoder tensors whose shape or meaning depends on
/// the number of mask tokens (classes).
/// The interactive head's copies (`interactive.mask_decoder.*`) count too.
pub fn is_class_dependent(name: &str) -> bool {
    let name = name
        .strip_prefix(super::config::INTERACTIVE_PREFIX)
        .unwrap_or(name);
    name.starts_with("mask_decoder.mask_tokens.")
        || name.starts_with("mask_decoder.output_hypernetworks_mlps.")
        || name.starts_with("mask_decoder.iou_prediction_head.")
}

/// Resizes `pos_embed` [1, H, W, C] to [1, h, w, C] bilinearly (align_corners
/// false, no antialiasing), as SAMed does.
fn resize_pos_embed(t: &Tensor, to: &[i64]) -> Result<Tensor> {
    let kind = t.kind();
    let chw = t.f_to_kind(Kind::Float)?.f_permute([0, 3, 1, 2])?;
    let resized = chw.f_upsample_bilinear2d([to[1], to[2]], false, None, None)?;
    Ok(resized
        .f_permute([0, 2, 3, 1])?
        .f_contiguous()?
        .f_to_kind(kind)?)
}

/// Resizes a rel_pos table [L, C] to [l, C] by linear interpolation along L
/// (align_corners false), as the reference's `get_rel_pos` does.
fn resize_rel_pos(t: &Tensor, to: &[i64]) -> Result<Tensor> {
    let kind = t.kind();
    let lc = t
        .f_to_kind(Kind::Float)?
        .f_transpose(0, 1)?
        .f_unsqueeze(0)?;
    let resized = lc.f_upsample_linear1d([to[0]], false, None)?;
    Ok(resized
        .f_squeeze_dim(0)?
        .f_transpose(0, 1)?
        .f_contiguous()?
        .f_to_kind(kind)?)
}

/// Adapts a state dict (official names) to `config`:
/// - `image_encoder.pos_embed` of another grid is resized bilinearly;
/// - `rel_pos_h/w` of another length (global blocks at another input size) are
///   resized linearly along their length;
/// - when `mask_decoder.mask_tokens.weight` has another token count, every
///   class-dependent tensor (mask_tokens, output_hypernetworks_mlps.*,
///   iou_prediction_head.*) is dropped and stays freshly initialised;
/// - names the model lacks are reported as unexpected and left out.
///
/// Any other shape difference is a [`Error::WeightMismatch`] naming the tensor.
pub fn adapt_state_dict(
    config: &SamConfig,
    state_dict: Vec<(String, Tensor)>,
) -> Result<AdaptReport> {
    let expected: HashMap<String, Vec<i64>> = config.parameter_shapes()?.into_iter().collect();
    let token_count_differs = state_dict.iter().any(|(name, t)| {
        name == "mask_decoder.mask_tokens.weight"
            && t.size().first() != Some(&config.mask_decoder.num_mask_tokens)
    });
    let mut report = AdaptReport {
        tensors: Vec::with_capacity(state_dict.len()),
        resized: Vec::new(),
        dropped: Vec::new(),
        unexpected: Vec::new(),
        missing: Vec::new(),
    };
    let mut seen = HashSet::new();
    for (name, tensor) in state_dict {
        let Some(to) = expected.get(&name) else {
            report.unexpected.push(name);
            continue;
        };
        let from = tensor.size();
        if token_count_differs && is_class_dependent(&name) {
            report.dropped.push(DroppedTensor {
                reason: format!(
                    "checkpoint has another mask-token count than the model's {}",
                    config.mask_decoder.num_mask_tokens
                ),
                name,
                shape: from,
            });
            continue;
        }
        seen.insert(name.clone());
        if &from == to {
            report.tensors.push((name, tensor));
            continue;
        }
        let resized = if name == "image_encoder.pos_embed"
            && from.len() == 4
            && from[0] == 1
            && from[3] == to[3]
        {
            resize_pos_embed(&tensor, to)?
        } else if (name.ends_with(".attn.rel_pos_h") || name.ends_with(".attn.rel_pos_w"))
            && from.len() == 2
            && from[1] == to[1]
        {
            resize_rel_pos(&tensor, to)?
        } else {
            return Err(Error::WeightMismatch(format!(
                "tensor '{name}' has shape {from:?} in the checkpoint but {to:?} in model '{}' \
                 (input size {}, {} mask tokens)",
                config.name, config.input_size, config.mask_decoder.num_mask_tokens
            )));
        };
        report.resized.push(ResizedTensor {
            name: name.clone(),
            from,
            to: to.clone(),
        });
        report.tensors.push((name, resized));
    }
    let mut missing: Vec<String> = expected.into_keys().filter(|n| !seen.contains(n)).collect();
    missing.sort();
    report.missing = missing;
    Ok(report)
}

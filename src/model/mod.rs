//! SAM (Segment Anything) in tch, one file per component as in the reference
//! implementation, plus the LoRA bypass of the paper.
//!
//! Build a model on a VarStore path with [`Sam::new`]; tensor names are the official
//! ones (`image_encoder.blocks.0.attn.qkv.weight`, ...), so official checkpoints load
//! after [`adapt_state_dict`] and [`crate::weights::load_into_var_store`]. LoRA tensors are named
//! `image_encoder.blocks.{i}.attn.lora_{q,v}_{a,b}.weight`.
//!
//! ```ignore
//! let config = SamConfig::vit_b().with_input_size(512).with_num_classes(12).with_lora_rank(16);
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let sam = Sam::new(&vs.root(), &config)?;
//! let adapted = adapt_state_dict(&config, official_tensors)?; // resize + drop class tensors
//! let allowed: Vec<String> = adapted.missing.clone(); // LoRA + fresh class tensors
//! load_into_var_store(&vs, &adapted.tensors, &LoadOptions::strict().allowing_missing(allowed))?;
//! apply_training_mode(&vs, TrainingMode::Lora);
//! let embeddings = tch::no_grad(|| sam.encode_images(&sam.preprocess(&image)?))?;
//! let out = sam.decode(&embeddings, &Prompts::from_points(coords, labels))?;
//! // out.low_res_logits: [B, 13, 128, 128]; out.iou: [B, 13]
//! ```
//!
//! Numerics: fp32 CPU outputs agree with `segment-anything` 1.0 within 1e-5
//! (tests/parity.rs); the encoder uses `scaled_dot_product_attention` with the
//! relative position bias as an additive mask.

pub mod attention;
pub mod checkpoint;
pub mod common;
pub mod config;
pub mod image_encoder;
pub mod load;
pub mod lora;
pub mod mask_decoder;
pub mod prompt_encoder;
pub mod recorder;
pub mod sam;
pub mod training;
pub mod transformer;

pub use checkpoint::{
    adapt_state_dict, is_class_dependent, AdaptReport, DroppedTensor, ResizedTensor,
};
pub use config::{
    ImageEncoderConfig, LoraConfig, MaskDecoderConfig, PromptEncoderConfig, SamConfig,
    INTERACTIVE_PREFIX,
};
pub use recorder::{ParamPath, ShapeRecorder, TensorShapes};
pub use sam::{
    copy_automatic_to_interactive, set_image_encoder_kind, DecoderOutput, PointPrompts, Prompts,
    Sam,
};
pub use training::{
    apply_training_mode, frozen_parameters, is_buffer, is_lora, trainable_parameters,
    ParameterCounts, TrainingMode,
};

#[cfg(test)]
mod tests;

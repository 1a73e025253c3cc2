//! SAM (Segment Anything) in tch, one file per component as in the reference
//! implementation, plus the LoRA bypass of the paper.
//!
//! Build a model on a VarStore path with [`Sam::new`]; tensor names are the official
//! ones (`image_encoder.blocks.0.attn.qkv.weight`, ...), so official checkpoints load
//! after [`adapt_state_dict`] and [`load_state_dict`]. LoRA tensors are named
//! `image_encoder.blocks.{i}.attn.lora_{q,v}_{a,b}.weight`.

pub mod attention;
pub mod checkpoint;
pub mod common;
pub mod config;
pub mod image_encoder;
pub mod lora;
pub mod mask_decoder;
pub mod prompt_encoder;
pub mod sam;
pub mod training;
pub mod transformer;

pub use checkpoint::{
    adapt_state_dict, is_class_dependent, load_state_dict, AdaptReport, DroppedTensor, LoadReport,
    ResizedTensor,
};
pub use config::{
    ImageEncoderConfig, LoraConfig, MaskDecoderConfig, PromptEncoderConfig, SamConfig,
};
pub use sam::{DecoderOutput, PointPrompts, Prompts, Sam};
pub use training::{
    apply_training_mode, frozen_parameters, is_buffer, is_lora, trainable_parameters,
    ParameterCounts, TrainingMode,
};

#[cfg(test)]
mod tests;

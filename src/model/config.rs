//! Model configurations: the published SAM sizes, small sizes for tests and CPU use,
//! and builders to change the input size, the class count and the LoRA rank.

use serde::{Deserialize, Serialize};

pub use crate::volume::frame::SliceOrientation;

use crate::error::{Error, Result};

/// Configuration of the ViT image encoder (ViTDet-style backbone with a conv neck).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEncoderConfig {
    /// Token width of the transformer.
    pub embed_dim: i64,
    /// Number of transformer blocks.
    pub depth: i64,
    /// Attention heads per block.
    pub num_heads: i64,
    /// Hidden width of each block's MLP.
    pub mlp_dim: i64,
    /// Side of the square patches (pixels per token side).
    pub patch_size: i64,
    /// Side of the attention windows of the non-global blocks.
    pub window_size: i64,
    /// Indexes of the blocks that attend globally instead of within windows.
    pub global_attn_indexes: Vec<i64>,
    /// Channels of the output embedding (the neck's width).
    pub out_chans: i64,
}

/// Configuration of the prompt encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptEncoderConfig {
    /// Width of the prompt embeddings (equal to the image embedding's channels).
    pub embed_dim: i64,
    /// Hidden channels of the dense mask-input downscaling.
    pub mask_in_chans: i64,
}

/// Configuration of the mask decoder and its two-way transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskDecoderConfig {
    /// Token width of the two-way transformer.
    pub transformer_dim: i64,
    /// Number of two-way attention blocks.
    pub transformer_depth: i64,
    /// Attention heads of the two-way transformer.
    pub num_heads: i64,
    /// Hidden width of the token MLPs of the two-way transformer.
    pub mlp_dim: i64,
    /// Channel reduction of the cross attentions (internal width = dim / rate).
    pub attention_downsample_rate: i64,
    /// Number of mask tokens, i.e. masks predicted per prompt. The reference SAM
    /// uses 4 (one single-mask token + 3 multimask tokens); BrainSAM uses
    /// `num_classes + 1` (background first).
    pub num_mask_tokens: i64,
    /// Number of layers of the IoU prediction head.
    pub iou_head_depth: i64,
    /// Hidden width of the IoU prediction head.
    pub iou_head_hidden_dim: i64,
    /// A third, learned 2x upscaling stage after the reference's two
    /// (`mask_decoder.fine_upscaling.*`): mask logits at 8x the embedding grid instead
    /// of 4x (1 mm instead of 2 mm for the `small` BrainSAM model). The stage adds a
    /// refinement (3x3 conv, GELU, 1x1 conv whose weights start at zero) to the
    /// bilinearly upsampled features, so a decoder trained without it reproduces its
    /// own logits, bilinearly upsampled, when the stage is added. False for the
    /// published SAM models and for files written before this field existed.
    #[serde(default)]
    pub fine_output: bool,
}

/// Configuration of the LoRA bypass on the q and v projections of the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank of the low-rank update.
    pub rank: i64,
    /// Optional alpha: the update is scaled by `alpha / rank`; without it the scale is 1
    /// (as in SAMed and the paper).
    pub alpha: Option<f64>,
}

impl LoraConfig {
    /// LoRA of the given rank without scaling.
    pub fn new(rank: i64) -> Self {
        Self { rank, alpha: None }
    }

    /// Factor applied to the low-rank update.
    pub fn scale(&self) -> f64 {
        match self.alpha {
            Some(alpha) => alpha / self.rank as f64,
            None => 1.0,
        }
    }
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self::new(16)
    }
}

/// Complete model configuration. Build one with a named constructor and adjust it
/// with the `with_*` methods, e.g. `SamConfig::vit_b().with_input_size(512).with_num_classes(12)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamConfig {
    /// Short name of the base architecture ("vit_b", "small", ...).
    pub name: String,
    /// Image encoder.
    pub image_encoder: ImageEncoderConfig,
    /// Prompt encoder.
    pub prompt_encoder: PromptEncoderConfig,
    /// Mask decoder.
    pub mask_decoder: MaskDecoderConfig,
    /// LoRA on the encoder's q and v projections, if any.
    pub lora: Option<LoraConfig>,
    /// Side of the square model input in pixels (a multiple of the patch size).
    pub input_size: i64,
    /// Per-channel mean subtracted by `Sam::preprocess`.
    pub pixel_mean: [f64; 3],
    /// Per-channel standard deviation divided by `Sam::preprocess`.
    pub pixel_std: [f64; 3],
    /// Through-plane context: 0 (the published models, and files written before this
    /// field existed) feeds a slice's grey level on all three input channels; a positive
    /// distance feeds the slices that far (in mm, at least one slice) behind and in front
    /// of it on the first and third channels, so the model sees a little of the 3D shape.
    #[serde(default)]
    pub slice_context_mm: f64,
    /// Interactive head: a second prompt encoder and mask decoder (same shapes as the
    /// automatic ones, tensors `interactive.prompt_encoder.*` and
    /// `interactive.mask_decoder.*`) that turns a box or clicks given for one structure
    /// into that structure's mask (see `Sam::decode_interactive`). False for the
    /// published models and for files written before this field existed.
    #[serde(default)]
    pub interactive: bool,
    /// The plane the model reads its slices in: coronal for the published models, for
    /// files written before this field existed and (left out of the JSON, so such
    /// configurations keep their text and adapters made for them stay valid) by default.
    #[serde(default, skip_serializing_if = "SliceOrientation::is_coronal")]
    pub slice_orientation: SliceOrientation,
}

/// Largest model input side accepted by [`SamConfig::validate`] (published: 1024).
pub const MAX_INPUT_SIZE: i64 = 2048;
/// Largest token grid side (input size / patch size; published: 64).
pub const MAX_GRID: i64 = 128;
/// Largest width of any layer (published ViT-H: 1280).
pub const MAX_WIDTH: i64 = 8192;
/// Largest MLP hidden width (published ViT-H: 5120).
pub const MAX_MLP_DIM: i64 = 32768;
/// Largest block count of the encoder or decoder (published ViT-H: 32).
pub const MAX_DEPTH: i64 = 128;
/// Largest attention head count (published: 16).
pub const MAX_HEADS: i64 = 256;
/// Largest patch side (published: 16).
pub const MAX_PATCH_SIZE: i64 = 64;
/// Largest mask-token count, i.e. classes + 1 (BrainSAM: 13).
pub const MAX_MASK_TOKENS: i64 = 256;
/// Largest LoRA rank (BrainSAM: 16).
pub const MAX_LORA_RANK: i64 = 1024;
/// Largest parameter count of a whole model (published ViT-H: 0.64 billion).
pub const MAX_PARAMETERS: i64 = 2_000_000_000;
/// Name prefix of the interactive head's tensors (`interactive.mask_decoder.*`, ...).
pub const INTERACTIVE_PREFIX: &str = "interactive.";

/// Pixel mean of the published SAM models (ImageNet statistics in 0..255).
pub const SAM_PIXEL_MEAN: [f64; 3] = [123.675, 116.28, 103.53];
/// Pixel standard deviation of the published SAM models.
pub const SAM_PIXEL_STD: [f64; 3] = [58.395, 57.12, 57.375];

impl SamConfig {
    fn published(
        name: &str,
        embed_dim: i64,
        depth: i64,
        num_heads: i64,
        global_attn_indexes: Vec<i64>,
    ) -> Self {
        Self {
            name: name.to_string(),
            image_encoder: ImageEncoderConfig {
                embed_dim,
                depth,
                num_heads,
                mlp_dim: embed_dim * 4,
                patch_size: 16,
                window_size: 14,
                global_attn_indexes,
                out_chans: 256,
            },
            prompt_encoder: PromptEncoderConfig {
                embed_dim: 256,
                mask_in_chans: 16,
            },
            mask_decoder: MaskDecoderConfig {
                transformer_dim: 256,
                transformer_depth: 2,
                num_heads: 8,
                mlp_dim: 2048,
                attention_downsample_rate: 2,
                num_mask_tokens: 4,
                iou_head_depth: 3,
                iou_head_hidden_dim: 256,
                fine_output: false,
            },
            lora: None,
            input_size: 1024,
            pixel_mean: SAM_PIXEL_MEAN,
            pixel_std: SAM_PIXEL_STD,
            slice_context_mm: 0.0,
            interactive: false,
            slice_orientation: SliceOrientation::Coronal,
        }
    }

    /// SAM ViT-B as published (sam_vit_b_01ec64.pth): 1024 input, 4 mask tokens.
    pub fn vit_b() -> Self {
        Self::published("vit_b", 768, 12, 12, vec![2, 5, 8, 11])
    }

    /// SAM ViT-L as published (sam_vit_l_0b3195.pth).
    pub fn vit_l() -> Self {
        Self::published("vit_l", 1024, 24, 16, vec![5, 11, 17, 23])
    }

    /// SAM ViT-H as published (sam_vit_h_4b8939.pth).
    pub fn vit_h() -> Self {
        Self::published("vit_h", 1280, 32, 16, vec![7, 15, 23, 31])
    }

    /// A small model (2.92 M parameters at 256 input, 3.24 M with 13 mask tokens) for CPU use: 4 blocks of
    /// width 192 with 3 heads, window 8, decoder width 128. Trained from scratch only.
    pub fn small() -> Self {
        let mut config = Self::published("small", 192, 4, 3, vec![1, 3]);
        config.image_encoder.window_size = 8;
        config.image_encoder.out_chans = 128;
        config.prompt_encoder.embed_dim = 128;
        config.mask_decoder.transformer_dim = 128;
        config.mask_decoder.num_heads = 4;
        config.mask_decoder.mlp_dim = 512;
        config.mask_decoder.iou_head_hidden_dim = 128;
        config.input_size = 256;
        config
    }

    /// A tiny model for unit tests (about 100 thousand parameters, 64 input).
    pub fn tiny() -> Self {
        let mut config = Self::published("tiny", 32, 2, 2, vec![1]);
        config.image_encoder.window_size = 3;
        config.image_encoder.out_chans = 32;
        config.prompt_encoder.embed_dim = 32;
        config.prompt_encoder.mask_in_chans = 8;
        config.mask_decoder.transformer_dim = 32;
        config.mask_decoder.num_heads = 2;
        config.mask_decoder.mlp_dim = 64;
        config.mask_decoder.iou_head_hidden_dim = 32;
        config.input_size = 64;
        config
    }

    /// The configuration called `name`: "vit_b", "vit_l", "vit_h", "small" or "tiny".
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "vit_b" => Ok(Self::vit_b()),
            "vit_l" => Ok(Self::vit_l()),
            "vit_h" => Ok(Self::vit_h()),
            "small" => Ok(Self::small()),
            "tiny" => Ok(Self::tiny()),
            other => Err(Error::invalid_argument(format!(
                "unknown model configuration '{other}' (known: vit_b, vit_l, vit_h, small, tiny)"
            ))),
        }
    }

    /// The published configuration (vit_b, vit_l or vit_h, told apart by the embedding
    /// width) that an official-style state dict was made for, with its input size and
    /// mask-token count; None when the tensors match none of them.
    pub fn infer_from_state_dict(tensors: &[(String, tch::Tensor)]) -> Option<Self> {
        let shape = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.size())
        };
        let patch = shape("image_encoder.patch_embed.proj.weight")?;
        let pos_embed = shape("image_encoder.pos_embed")?;
        let mask_tokens = shape("mask_decoder.mask_tokens.weight")?;
        let base = match patch.first()? {
            768 => Self::vit_b(),
            1024 => Self::vit_l(),
            1280 => Self::vit_h(),
            _ => return None,
        };
        let (grid, tokens) = (*pos_embed.get(1)?, *mask_tokens.first()?);
        let config = base
            .clone()
            .with_input_size(grid * base.image_encoder.patch_size)
            .with_num_classes(tokens - 1);
        config.validate().ok().map(|()| config)
    }

    /// Same configuration at another square input size (multiple of the patch size).
    pub fn with_input_size(mut self, input_size: i64) -> Self {
        self.input_size = input_size;
        self
    }

    /// Same configuration predicting `num_classes` structures plus background
    /// (`num_classes + 1` mask tokens).
    pub fn with_num_classes(mut self, num_classes: i64) -> Self {
        self.mask_decoder.num_mask_tokens = num_classes + 1;
        self
    }

    /// Same configuration with a LoRA bypass of the given rank (no scaling).
    pub fn with_lora_rank(mut self, rank: i64) -> Self {
        self.lora = Some(LoraConfig::new(rank));
        self
    }

    /// Same configuration with the given LoRA settings (or none).
    pub fn with_lora(mut self, lora: Option<LoraConfig>) -> Self {
        self.lora = lora;
        self
    }

    /// Same configuration with other normalisation statistics (e.g. mean 0, std 1 for
    /// images already scaled to [0, 1] as in SAMed).
    pub fn with_pixel_stats(mut self, mean: [f64; 3], std: [f64; 3]) -> Self {
        self.pixel_mean = mean;
        self.pixel_std = std;
        self
    }

    /// Same configuration with through-plane context `mm` (0: none; see
    /// [`SamConfig::slice_context_mm`]).
    pub fn with_slice_context_mm(mut self, mm: f64) -> Self {
        self.slice_context_mm = mm;
        self
    }

    /// Same configuration reading slices of `orientation` (see
    /// [`SamConfig::slice_orientation`]).
    pub fn with_slice_orientation(mut self, orientation: SliceOrientation) -> Self {
        self.slice_orientation = orientation;
        self
    }

    /// Same configuration with or without the interactive head (see
    /// [`SamConfig::interactive`]).
    pub fn with_interactive(mut self, interactive: bool) -> Self {
        self.interactive = interactive;
        self
    }

    /// Same configuration with or without the decoder's fine output stage (see
    /// [`MaskDecoderConfig::fine_output`]).
    pub fn with_fine_output(mut self, fine_output: bool) -> Self {
        self.mask_decoder.fine_output = fine_output;
        self
    }

    /// Side of the image-embedding grid (input size / patch size).
    pub fn grid_size(&self) -> i64 {
        self.input_size / self.image_encoder.patch_size
    }

    /// Side of the low-resolution mask logits the decoder outputs: 4 x the grid, or
    /// 8 x with [`MaskDecoderConfig::fine_output`].
    pub fn low_res_size(&self) -> i64 {
        if self.mask_decoder.fine_output {
            8 * self.grid_size()
        } else {
            self.mask_input_size()
        }
    }

    /// Side of the mask prompt the prompt encoder reads (4 x the grid, as in the
    /// reference; equal to [`SamConfig::low_res_size`] unless the decoder has a fine
    /// output, whose logits are then area-averaged to this size when fed back).
    pub fn mask_input_size(&self) -> i64 {
        4 * self.grid_size()
    }

    /// Checks each field and that the fields fit together, without building anything;
    /// [`SamConfig::validate`] (src/model/recorder.rs) adds the parameter-count bound,
    /// counted from the module tree. The constructors may rely on these checks.
    pub(crate) fn check_fields(&self) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::invalid_argument(format!(
                "model config '{}': {msg}",
                self.name
            )))
        };
        let enc = &self.image_encoder;
        let positive = [
            ("input_size", self.input_size),
            ("image_encoder.embed_dim", enc.embed_dim),
            ("image_encoder.depth", enc.depth),
            ("image_encoder.num_heads", enc.num_heads),
            ("image_encoder.mlp_dim", enc.mlp_dim),
            ("image_encoder.patch_size", enc.patch_size),
            ("image_encoder.window_size", enc.window_size),
            ("image_encoder.out_chans", enc.out_chans),
            (
                "prompt_encoder.mask_in_chans",
                self.prompt_encoder.mask_in_chans,
            ),
            (
                "mask_decoder.transformer_depth",
                self.mask_decoder.transformer_depth,
            ),
            ("mask_decoder.num_heads", self.mask_decoder.num_heads),
            ("mask_decoder.mlp_dim", self.mask_decoder.mlp_dim),
            (
                "mask_decoder.num_mask_tokens",
                self.mask_decoder.num_mask_tokens,
            ),
            (
                "mask_decoder.iou_head_depth",
                self.mask_decoder.iou_head_depth,
            ),
            (
                "mask_decoder.iou_head_hidden_dim",
                self.mask_decoder.iou_head_hidden_dim,
            ),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return bad(format!("{name} must be positive, got {value}"));
            }
        }
        // Upper bounds, checked before anything is built: configurations also come from
        // checkpoint and adapter metadata, and a corrupt or hostile number must give this
        // error rather than an out-of-memory abort inside libtorch. Each bound is at least
        // 4x (depths 2x) the largest published SAM (ViT-H) value.
        let within = [
            ("input_size", self.input_size, MAX_INPUT_SIZE),
            ("image_encoder.embed_dim", enc.embed_dim, MAX_WIDTH),
            ("image_encoder.depth", enc.depth, MAX_DEPTH),
            ("image_encoder.num_heads", enc.num_heads, MAX_HEADS),
            ("image_encoder.mlp_dim", enc.mlp_dim, MAX_MLP_DIM),
            ("image_encoder.patch_size", enc.patch_size, MAX_PATCH_SIZE),
            ("image_encoder.window_size", enc.window_size, MAX_GRID),
            ("image_encoder.out_chans", enc.out_chans, MAX_WIDTH),
            (
                "prompt_encoder.embed_dim",
                self.prompt_encoder.embed_dim,
                MAX_WIDTH,
            ),
            (
                "prompt_encoder.mask_in_chans",
                self.prompt_encoder.mask_in_chans,
                MAX_WIDTH,
            ),
            (
                "mask_decoder.transformer_dim",
                self.mask_decoder.transformer_dim,
                MAX_WIDTH,
            ),
            (
                "mask_decoder.transformer_depth",
                self.mask_decoder.transformer_depth,
                MAX_DEPTH,
            ),
            (
                "mask_decoder.num_heads",
                self.mask_decoder.num_heads,
                MAX_HEADS,
            ),
            (
                "mask_decoder.mlp_dim",
                self.mask_decoder.mlp_dim,
                MAX_MLP_DIM,
            ),
            (
                "mask_decoder.attention_downsample_rate",
                self.mask_decoder.attention_downsample_rate,
                MAX_WIDTH,
            ),
            (
                "mask_decoder.num_mask_tokens",
                self.mask_decoder.num_mask_tokens,
                MAX_MASK_TOKENS,
            ),
            (
                "mask_decoder.iou_head_depth",
                self.mask_decoder.iou_head_depth,
                MAX_DEPTH,
            ),
            (
                "mask_decoder.iou_head_hidden_dim",
                self.mask_decoder.iou_head_hidden_dim,
                MAX_WIDTH,
            ),
            (
                "lora.rank",
                self.lora.as_ref().map_or(1, |lora| lora.rank),
                MAX_LORA_RANK,
            ),
        ];
        for (name, value, limit) in within {
            if value > limit {
                return bad(format!(
                    "{name} is {value}, above the largest supported value {limit} (corrupt metadata?)"
                ));
            }
        }
        if self.name.len() > 64 || self.name.chars().any(char::is_control) {
            return bad("the name must be at most 64 printable characters".into());
        }
        if enc.global_attn_indexes.len() > enc.depth as usize {
            return bad(format!(
                "{} global attention blocks listed for {} blocks",
                enc.global_attn_indexes.len(),
                enc.depth
            ));
        }
        if self.input_size / enc.patch_size > MAX_GRID {
            return bad(format!(
                "input_size {} / patch_size {} gives a token grid of {}, above the largest supported {MAX_GRID}",
                self.input_size,
                enc.patch_size,
                self.input_size / enc.patch_size
            ));
        }
        if self.input_size % enc.patch_size != 0 {
            return bad(format!(
                "input_size {} is not a multiple of the patch size {}",
                self.input_size, enc.patch_size
            ));
        }
        if enc.embed_dim % enc.num_heads != 0 {
            return bad(format!(
                "image_encoder.embed_dim {} is not divisible by num_heads {}",
                enc.embed_dim, enc.num_heads
            ));
        }
        if let Some(&i) = enc
            .global_attn_indexes
            .iter()
            .find(|&&i| i < 0 || i >= enc.depth)
        {
            return bad(format!(
                "global attention block {i} outside 0..{}",
                enc.depth
            ));
        }
        let dec = &self.mask_decoder;
        if self.prompt_encoder.embed_dim != dec.transformer_dim
            || enc.out_chans != dec.transformer_dim
        {
            return bad(format!(
                "image_encoder.out_chans ({}), prompt_encoder.embed_dim ({}) and mask_decoder.transformer_dim ({}) must be equal",
                enc.out_chans, self.prompt_encoder.embed_dim, dec.transformer_dim
            ));
        }
        if dec.transformer_dim % 8 != 0 || self.prompt_encoder.embed_dim % 2 != 0 {
            return bad(format!(
                "mask_decoder.transformer_dim {} must be a multiple of 8",
                dec.transformer_dim
            ));
        }
        if self.prompt_encoder.mask_in_chans % 4 != 0 {
            return bad(format!(
                "prompt_encoder.mask_in_chans {} must be a multiple of 4",
                self.prompt_encoder.mask_in_chans
            ));
        }
        let internal = dec.transformer_dim / dec.attention_downsample_rate.max(1);
        if dec.attention_downsample_rate <= 0
            || dec.transformer_dim % dec.attention_downsample_rate != 0
            || internal % dec.num_heads != 0
        {
            return bad(format!(
                "mask_decoder: transformer_dim {} / attention_downsample_rate {} must be divisible by num_heads {}",
                dec.transformer_dim, dec.attention_downsample_rate, dec.num_heads
            ));
        }
        if let Some(lora) = &self.lora {
            if lora.rank <= 0 {
                return bad(format!("lora.rank must be positive, got {}", lora.rank));
            }
            if let Some(alpha) = lora.alpha {
                if !alpha.is_finite() {
                    return bad(format!("lora.alpha must be finite, got {alpha}"));
                }
            }
        }
        if !(self.slice_context_mm.is_finite() && self.slice_context_mm >= 0.0) {
            return bad(format!(
                "slice_context_mm must be finite and >= 0, got {}",
                self.slice_context_mm
            ));
        }
        if self.pixel_std.iter().any(|&s| !(s.is_finite() && s > 0.0))
            || self.pixel_mean.iter().any(|m| !m.is_finite())
        {
            return bad(format!(
                "pixel statistics must be finite with positive std, got mean {:?} std {:?}",
                self.pixel_mean, self.pixel_std
            ));
        }
        Ok(())
    }

    /// Compact JSON text of this configuration (recorded in adapter metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("SamConfig serialises to JSON")
    }

    /// Parses a configuration written by [`SamConfig::to_json`] and validates it.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| Error::invalid_argument(format!("model config JSON: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Side of the token grid that block `block` attends over: the window size for
    /// windowed blocks, the whole grid for global ones (sets its rel_pos length).
    pub fn attention_extent(&self, block: i64) -> i64 {
        if self.image_encoder.global_attn_indexes.contains(&block) {
            self.grid_size()
        } else {
            self.image_encoder.window_size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let config = SamConfig::vit_b()
            .with_input_size(512)
            .with_num_classes(12)
            .with_lora_rank(16)
            .with_slice_context_mm(2.0);
        let back = SamConfig::from_json(&config.to_json()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn configs_written_before_slice_context_read_as_without_context() {
        let mut json: serde_json::Value =
            serde_json::from_str(&SamConfig::small().to_json()).unwrap();
        json.as_object_mut()
            .unwrap()
            .remove("slice_context_mm")
            .unwrap();
        let back = SamConfig::from_json(&json.to_string()).unwrap();
        assert_eq!(back.slice_context_mm, 0.0);
        assert_eq!(back, SamConfig::small());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = SamConfig::small()
                .with_slice_context_mm(bad)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("slice_context_mm"), "{err}");
        }
    }

    #[test]
    fn coronal_configs_keep_their_json_and_axial_ones_say_so() {
        // Adapters record their base model's JSON: coronal models must keep the text
        // they had before orientations existed.
        let coronal = SamConfig::small().to_json();
        assert!(!coronal.contains("slice_orientation"), "{coronal}");
        let axial = SamConfig::small().with_slice_orientation(SliceOrientation::Axial);
        let json = axial.to_json();
        assert!(json.contains(r#""slice_orientation":"axial""#), "{json}");
        assert_eq!(SamConfig::from_json(&json).unwrap(), axial);
        let wrong = json.replace("axial", "oblique");
        assert!(SamConfig::from_json(&wrong).is_err());
    }

    #[test]
    fn validate_rejects_input_not_multiple_of_patch() {
        let err = SamConfig::vit_b()
            .with_input_size(500)
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("not a multiple of the patch size"),
            "{err}"
        );
        assert!(SamConfig::by_name("vit_x").is_err());
        for name in ["vit_b", "vit_l", "vit_h", "small", "tiny"] {
            SamConfig::by_name(name).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn published_vit_b_has_the_official_parameter_count() {
        // 93,735,472 parameters (+ the 512-value gaussian buffer) in sam_vit_b_01ec64.pth.
        let total: i64 = SamConfig::vit_b()
            .parameter_shapes()
            .unwrap()
            .iter()
            .map(|(_, s)| s.iter().product::<i64>())
            .sum();
        assert_eq!(total, 93_735_472 + 256);
    }

    #[test]
    fn small_configs_have_the_reference_parameter_counts() {
        // Counted with the reference modules built from the same numbers
        // (buffer of the Fourier matrix excluded).
        let params = |config: SamConfig| -> i64 {
            config
                .parameter_shapes()
                .unwrap()
                .iter()
                .filter(|(n, _)| !n.ends_with("gaussian_matrix"))
                .map(|(_, s)| s.iter().product::<i64>())
                .sum()
        };
        assert_eq!(params(SamConfig::small()), 2_920_192);
        assert_eq!(params(SamConfig::small().with_num_classes(12)), 3_238_297);
        assert_eq!(params(SamConfig::tiny()), 102_470);
    }

    #[test]
    fn every_field_is_bounded_before_anything_is_built() {
        type Edit = fn(&mut SamConfig);
        let cases: [(Edit, &str); 10] = [
            (
                |c| c.mask_decoder.num_mask_tokens = 1_000_000,
                "num_mask_tokens",
            ),
            (|c| c.input_size = 1 << 20, "input_size"),
            (|c| c.image_encoder.embed_dim = 1 << 20, "embed_dim"),
            (|c| c.image_encoder.mlp_dim = 1 << 40, "mlp_dim"),
            (|c| c.lora = Some(LoraConfig::new(1 << 30)), "lora.rank"),
            (|c| c.image_encoder.depth = 100_000, "depth"),
            (
                |c| c.mask_decoder.transformer_depth = 100_000,
                "transformer_depth",
            ),
            (|c| c.image_encoder.patch_size = 1, "token grid"),
            (|c| c.name = "x".repeat(1000), "name"),
            // Each value within its own bound, the whole model far too big.
            (
                |c| {
                    c.image_encoder.embed_dim = 8192;
                    c.image_encoder.num_heads = 64;
                    c.image_encoder.mlp_dim = 32768;
                    c.image_encoder.depth = 128;
                },
                "parameters",
            ),
        ];
        for (edit, needle) in cases {
            let mut config = SamConfig::vit_b();
            edit(&mut config);
            let started = std::time::Instant::now();
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(needle), "{needle}: {message}");
            assert!(started.elapsed().as_secs_f64() < 1.0, "{needle}: slow");
            // The same from checkpoint metadata (JSON).
            let message = SamConfig::from_json(&config.to_json())
                .unwrap_err()
                .to_string();
            assert!(message.contains(needle), "{needle} from JSON: {message}");
        }
        for name in ["vit_b", "vit_l", "vit_h", "small", "tiny"] {
            SamConfig::by_name(name).unwrap().validate().unwrap();
        }
        SamConfig::vit_h()
            .with_input_size(MAX_INPUT_SIZE)
            .with_num_classes(12)
            .with_lora_rank(64)
            .validate()
            .unwrap();
    }
}

//! Mask decoder: IoU token and mask tokens through the two-way transformer, 4x
//! upscaling of the image tokens, one hypernetwork MLP per mask token, IoU head.

use tch::nn::Module;
use tch::{Kind, Tensor};

use super::common::{
    conv2d, conv2d_zeros, conv_transpose2x2, embedding, Conv2d, ConvTranspose2x2, LayerNorm2d, Mlp,
};
use super::config::MaskDecoderConfig;
use super::recorder::ParamPath;
use super::transformer::TwoWayTransformer;

/// Predicts `num_mask_tokens` masks and their IoU scores per prompt.
#[derive(Debug)]
pub struct MaskDecoder {
    transformer: TwoWayTransformer,
    iou_token: Tensor,
    mask_tokens: Tensor,
    upscale_conv1: ConvTranspose2x2,
    upscale_norm: LayerNorm2d,
    upscale_conv2: ConvTranspose2x2,
    fine_upscaling: Option<FineUpscaling>,
    output_hypernetworks_mlps: Vec<Mlp>,
    iou_prediction_head: Mlp,
    num_mask_tokens: i64,
}

impl MaskDecoder {
    /// Kind of the decoder's weights.
    pub fn kind(&self) -> Kind {
        self.iou_token.kind()
    }

    /// Creates the tensors under `path` (normally `root / "mask_decoder"`).
    pub fn new(path: &ParamPath, config: &MaskDecoderConfig) -> Self {
        let d = config.transformer_dim;
        let up = path / "output_upscaling";
        let hyper = path / "output_hypernetworks_mlps";
        Self {
            transformer: TwoWayTransformer::new(&(path / "transformer"), config),
            iou_token: embedding(path / "iou_token", 1, d),
            mask_tokens: embedding(path / "mask_tokens", config.num_mask_tokens, d),
            upscale_conv1: conv_transpose2x2(&up / 0, d, d / 4),
            upscale_norm: LayerNorm2d::new(&up / 1, d / 4),
            upscale_conv2: conv_transpose2x2(&up / 3, d / 4, d / 8),
            fine_upscaling: config
                .fine_output
                .then(|| FineUpscaling::new(&(path / "fine_upscaling"), d / 8)),
            output_hypernetworks_mlps: (0..config.num_mask_tokens)
                .map(|i| Mlp::new(&hyper / i, d, d, d / 8, 3))
                .collect(),
            iou_prediction_head: Mlp::new(
                path / "iou_prediction_head",
                d,
                config.iou_head_hidden_dim,
                config.num_mask_tokens,
                config.iou_head_depth,
            ),
            num_mask_tokens: config.num_mask_tokens,
        }
    }

    /// Number of masks predicted per prompt.
    pub fn num_mask_tokens(&self) -> i64 {
        self.num_mask_tokens
    }

    /// Predicts masks for B prompts. `image_embeddings` [B, C, h, w] (one per prompt),
    /// `image_pe` [1, C, h, w], `sparse` [B, N, C], `dense` [B, C, h, w].
    /// Returns (mask logits [B, T, 4h, 4w], or [B, T, 8h, 8w] with the fine output
    /// stage, IoU predictions [B, T]) for all T tokens.
    pub fn predict_masks(
        &self,
        image_embeddings: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        dense: &Tensor,
    ) -> (Tensor, Tensor) {
        let batch = sparse.size()[0];
        let output_tokens = Tensor::cat(&[&self.iou_token, &self.mask_tokens], 0);
        let output_tokens = output_tokens.unsqueeze(0).expand([batch, -1, -1], false);
        let tokens = Tensor::cat(&[output_tokens, sparse.to_kind(self.iou_token.kind())], 1);

        let src = image_embeddings + dense;
        let size = src.size();
        let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
        let pos_src = image_pe.expand([b, c, h, w], false);
        let (hs, src) = self.transformer.forward(&src, &pos_src, &tokens);
        let iou_token_out = hs.select(1, 0);

        let src = src.transpose(1, 2).reshape([b, c, h, w]);
        let upscaled = self
            .upscale_norm
            .forward(&self.upscale_conv1.forward(&src))
            .gelu("none");
        let upscaled = self.upscale_conv2.forward(&upscaled).gelu("none");
        let upscaled = match &self.fine_upscaling {
            Some(fine) => fine.forward(&upscaled),
            None => upscaled,
        };
        let hyper_in: Vec<Tensor> = self
            .output_hypernetworks_mlps
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(&hs.select(1, 1 + i as i64)))
            .collect();
        let hyper_in = Tensor::stack(&hyper_in, 1);
        let size = upscaled.size();
        let (uc, uh, uw) = (size[1], size[2], size[3]);
        let masks = hyper_in
            .matmul(&upscaled.view([b, uc, uh * uw]))
            .view([b, -1, uh, uw]);
        let iou = self.iou_prediction_head.forward(&iou_token_out);
        (masks, iou)
    }
}

/// The fine output stage (see [`MaskDecoderConfig::fine_output`]): the upscaled
/// features bilinearly upsampled 2x plus a learned refinement of them. The refinement's
/// last layer starts at zero, so the stage starts as plain bilinear upsampling (which,
/// the hypernetwork product being linear, upsamples the logits bilinearly too).
#[derive(Debug)]
struct FineUpscaling {
    conv: Conv2d,
    project: Conv2d,
}

impl FineUpscaling {
    fn new(path: &ParamPath, channels: i64) -> Self {
        Self {
            conv: conv2d(path / 0, channels, 2 * channels, 3, 1, 1, true),
            project: conv2d_zeros(path / 2, 2 * channels, channels, 1),
        }
    }

    fn forward(&self, features: &Tensor) -> Tensor {
        let size = features.size();
        let up = features.upsample_bilinear2d([2 * size[2], 2 * size[3]], false, None, None);
        let refinement = self.project.forward(&self.conv.forward(&up).gelu("none"));
        up + refinement
    }
}

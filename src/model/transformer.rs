//! Two-way transformer of the mask decoder: prompt tokens and image tokens attend
//! to each other.

use tch::nn::{self, Module};
use tch::Tensor;

use super::common::{layer_norm, linear, Activation, LayerNorm, MlpBlock};
use super::config::MaskDecoderConfig;
use super::recorder::ParamPath;

/// Multi-head attention with separate q/k/v projections that may shrink the width
/// (`downsample_rate`).
#[derive(Debug)]
pub struct DecoderAttention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    out_proj: nn::Linear,
    num_heads: i64,
}

impl DecoderAttention {
    fn new(path: &ParamPath, dim: i64, num_heads: i64, downsample_rate: i64) -> Self {
        let internal = dim / downsample_rate;
        Self {
            q_proj: linear(path / "q_proj", dim, internal),
            k_proj: linear(path / "k_proj", dim, internal),
            v_proj: linear(path / "v_proj", dim, internal),
            out_proj: linear(path / "out_proj", internal, dim),
            num_heads,
        }
    }

    /// [B, N, C] → [B, heads, N, C/heads]
    fn separate_heads(&self, xs: &Tensor) -> Tensor {
        let size = xs.size();
        xs.view([size[0], size[1], self.num_heads, size[2] / self.num_heads])
            .transpose(1, 2)
    }

    /// Attends queries `q` [B, Nq, C] to keys `k` [B, Nk, C] with values `v`.
    pub fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let q = self.separate_heads(&self.q_proj.forward(q));
        let k = self.separate_heads(&self.k_proj.forward(k));
        let v = self.separate_heads(&self.v_proj.forward(v));
        let head_dim = q.size()[3];
        let attn = q.matmul(&k.transpose(-2, -1)) / (head_dim as f64).sqrt();
        let out = attn.softmax(-1, None::<tch::Kind>).matmul(&v);
        let size = out.size();
        let out = out
            .transpose(1, 2)
            .reshape([size[0], size[2], size[1] * size[3]]);
        self.out_proj.forward(&out)
    }
}

/// Self-attention of tokens, token→image cross-attention, token MLP and
/// image→token cross-attention, each followed by a LayerNorm.
#[derive(Debug)]
struct TwoWayAttentionBlock {
    self_attn: DecoderAttention,
    norm1: LayerNorm,
    cross_attn_token_to_image: DecoderAttention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: DecoderAttention,
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    fn new(path: &ParamPath, config: &MaskDecoderConfig, skip_first_layer_pe: bool) -> Self {
        let d = config.transformer_dim;
        let heads = config.num_heads;
        let rate = config.attention_downsample_rate;
        Self {
            self_attn: DecoderAttention::new(&(path / "self_attn"), d, heads, 1),
            norm1: layer_norm(path / "norm1", d, 1e-5),
            cross_attn_token_to_image: DecoderAttention::new(
                &(path / "cross_attn_token_to_image"),
                d,
                heads,
                rate,
            ),
            norm2: layer_norm(path / "norm2", d, 1e-5),
            mlp: MlpBlock::new(path / "mlp", d, config.mlp_dim, Activation::Relu),
            norm3: layer_norm(path / "norm3", d, 1e-5),
            norm4: layer_norm(path / "norm4", d, 1e-5),
            cross_attn_image_to_token: DecoderAttention::new(
                &(path / "cross_attn_image_to_token"),
                d,
                heads,
                rate,
            ),
            skip_first_layer_pe,
        }
    }

    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> (Tensor, Tensor) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)
        } else {
            let q = queries + query_pe;
            queries + self.self_attn.forward(&q, &q, queries)
        };
        let queries = self.norm1.forward(&queries);

        let q = &queries + query_pe;
        let k = keys + key_pe;
        let queries = &queries + self.cross_attn_token_to_image.forward(&q, &k, keys);
        let queries = self.norm2.forward(&queries);

        let queries = &queries + self.mlp.forward(&queries);
        let queries = self.norm3.forward(&queries);

        let q = &queries + query_pe;
        let keys = keys + self.cross_attn_image_to_token.forward(&k, &q, &queries);
        let keys = self.norm4.forward(&keys);
        (queries, keys)
    }
}

/// The two-way transformer: `layers.{i}`, `final_attn_token_to_image`, `norm_final_attn`.
#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: DecoderAttention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    /// Creates the tensors under `path` (`mask_decoder.transformer`).
    pub fn new(path: &ParamPath, config: &MaskDecoderConfig) -> Self {
        let layers_path = path / "layers";
        Self {
            layers: (0..config.transformer_depth)
                .map(|i| TwoWayAttentionBlock::new(&(&layers_path / i), config, i == 0))
                .collect(),
            final_attn_token_to_image: DecoderAttention::new(
                &(path / "final_attn_token_to_image"),
                config.transformer_dim,
                config.num_heads,
                config.attention_downsample_rate,
            ),
            norm_final_attn: layer_norm(path / "norm_final_attn", config.transformer_dim, 1e-5),
        }
    }

    /// `image` [B, C, h, w], `image_pe` [B, C, h, w], `tokens` [B, N, C] →
    /// (processed tokens [B, N, C], processed image tokens [B, h·w, C]).
    pub fn forward(&self, image: &Tensor, image_pe: &Tensor, tokens: &Tensor) -> (Tensor, Tensor) {
        let image = image.flatten(2, -1).permute([0, 2, 1]);
        let image_pe = image_pe.flatten(2, -1).permute([0, 2, 1]);
        let mut queries = tokens.shallow_clone();
        let mut keys = image;
        for layer in &self.layers {
            let (q, k) = layer.forward(&queries, &keys, tokens, &image_pe);
            queries = q;
            keys = k;
        }
        let q = &queries + tokens;
        let k = &keys + &image_pe;
        let queries = queries + self.final_attn_token_to_image.forward(&q, &k, &keys);
        (self.norm_final_attn.forward(&queries), keys)
    }
}

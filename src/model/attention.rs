//! Multi-head self-attention of the image encoder with decomposed relative position
//! bias (MViTv2), optionally with the LoRA bypass on q and v.

use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

use super::common::linear;
use super::config::LoraConfig;
use super::lora::LoraQv;
use super::recorder::ParamPath;

/// Most bytes the relative-position bias of one attention call may take: larger batches
/// are processed in chunks. The bias is a dense [B, heads, N, N] tensor (fused kernels
/// need it materialised), which at 1024 input (N = 4096 in global blocks) is 400 MB per
/// slice in fp32; chunking keeps big batches from running out of device memory.
pub const ATTENTION_BIAS_BUDGET_BYTES: usize = 1 << 30;

/// Self-attention over a [B, H, W, C] grid of tokens (a window or the whole image).
#[derive(Debug)]
pub struct Attention {
    qkv: nn::Linear,
    proj: nn::Linear,
    rel_pos_h: Tensor,
    rel_pos_w: Tensor,
    /// rel_pos row of each (query, key) pair along one axis: i - j + extent - 1.
    rel_index: Tensor,
    extent: i64,
    num_heads: i64,
    head_dim: i64,
    lora: Option<LoraQv>,
}

impl Attention {
    /// Creates `qkv`, `proj`, `rel_pos_h`, `rel_pos_w` (and LoRA tensors) under `path`
    /// for a square token grid of side `extent`.
    pub fn new(
        path: &ParamPath,
        dim: i64,
        num_heads: i64,
        extent: i64,
        lora: Option<&LoraConfig>,
    ) -> Self {
        let head_dim = dim / num_heads;
        let rel_len = 2 * extent - 1;
        let positions = Tensor::arange(extent, (Kind::Int64, path.device()));
        let rel_index = (positions.unsqueeze(1) - positions.unsqueeze(0) + (extent - 1)).view([-1]);
        Self {
            qkv: linear(path / "qkv", dim, 3 * dim),
            proj: linear(path / "proj", dim, dim),
            rel_pos_h: path.var("rel_pos_h", &[rel_len, head_dim], Init::Const(0.0)),
            rel_pos_w: path.var("rel_pos_w", &[rel_len, head_dim], Init::Const(0.0)),
            rel_index,
            extent,
            num_heads,
            head_dim,
            lora: lora.map(|config| LoraQv::new(path, dim, config)),
        }
    }

    /// Decomposed relative position bias [B·heads, H·W, H·W] (rows padded in memory) of
    /// the unscaled queries `q` [B·heads, H, W, head_dim], as in the reference.
    fn relative_position_bias(&self, q: &Tensor) -> Tensor {
        let (n, h, w) = (q.size()[0], self.extent, self.extent);
        // No-op unless the VarStore was moved to another device after construction.
        let rel_index = self.rel_index.to_device(q.device());
        let rh = self
            .rel_pos_h
            .index_select(0, &rel_index)
            .view([h, h, self.head_dim]);
        let rw = self
            .rel_pos_w
            .index_select(0, &rel_index)
            .view([w, w, self.head_dim]);
        let rel_h = Tensor::einsum("bhwc,hkc->bhwk", &[q, &rh], None::<i64>);
        let rel_w = Tensor::einsum("bhwc,wkc->bhwk", &[q, &rw], None::<i64>);
        // One materialised [n, h, w, h, w] tensor: rel_h broadcast over key columns,
        // plus rel_w broadcast over key rows. Its rows are padded to a multiple of 16
        // elements because CUDA's memory-efficient attention kernel needs aligned mask
        // rows (it would otherwise copy the whole bias to pad it).
        let tokens = h * w;
        let row = (tokens + 15) / 16 * 16;
        let storage = Tensor::empty([n, tokens, row], (q.kind(), q.device()));
        let bias = storage.narrow(2, 0, tokens);
        let mut grid = bias.view([n, h, w, h, w]);
        grid.copy_(&rel_h.unsqueeze(-1).expand([n, h, w, h, w], false));
        grid += rel_w.unsqueeze(-2);
        bias
    }
}

impl Attention {
    /// [`Module::forward`] with the batch split into chunks whose relative-position bias
    /// fits in `budget_bytes` (at least one image per chunk).
    pub fn forward_within(&self, xs: &Tensor, budget_bytes: usize) -> Tensor {
        let batch = xs.size()[0];
        let tokens = (self.extent * self.extent) as usize;
        let per_image = self.num_heads as usize * tokens * tokens * xs.kind().elt_size_in_bytes();
        let chunk = (budget_bytes / per_image.max(1)).max(1) as i64;
        if batch <= chunk {
            return self.attend(xs);
        }
        let outputs: Vec<Tensor> = xs
            .split(chunk, 0)
            .iter()
            .map(|part| self.attend(part))
            .collect();
        Tensor::cat(&outputs, 0)
    }

    fn attend(&self, xs: &Tensor) -> Tensor {
        let size = xs.size();
        let (b, h, w, c) = (size[0], size[1], size[2], size[3]);
        let tokens = h * w;
        let qkv = match &self.lora {
            Some(lora) => xs.linear(&lora.merged_qkv_weight(&self.qkv.ws), self.qkv.bs.as_ref()),
            None => self.qkv.forward(xs),
        };
        // [B, N, 3, heads, hd] -> [3, B, heads, N, hd]
        let qkv = qkv
            .view([b, tokens, 3, self.num_heads, self.head_dim])
            .permute([2, 0, 3, 1, 4]);
        let q = qkv.get(0);
        let k = qkv.get(1);
        let v = qkv.get(2);
        let scale = (self.head_dim as f64).powf(-0.5);
        // Fused attention (flash / memory-efficient kernels where available) with the
        // relative position bias as an additive mask; matches the reference's
        // explicit softmax within ~1e-5.
        let bias = self
            .relative_position_bias(&q.reshape([b * self.num_heads, h, w, self.head_dim]))
            .view([b, self.num_heads, tokens, tokens]);
        let out =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&bias), 0.0, false, scale, false);
        // [B, heads, N, hd] -> [B, H, W, heads·hd]
        let out = out
            .view([b, self.num_heads, h, w, self.head_dim])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c]);
        self.proj.forward(&out)
    }
}

impl Module for Attention {
    /// `xs`: [B, H, W, C] with H = W = extent; returns the same shape.
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_within(xs, ATTENTION_BIAS_BUDGET_BYTES)
    }
}

//! LoRA bypass on the q and v parts of an encoder block's fused qkv projection.
//!
//! Tensors (per block `i`): `image_encoder.blocks.{i}.attn.lora_q_a.weight` [r, C],
//! `lora_q_b.weight` [C, r], `lora_v_a.weight`, `lora_v_b.weight`. A is
//! Kaiming-uniform(a = sqrt(5)), B zero, so a fresh bypass leaves the model unchanged.

use tch::nn::Init;
use tch::{Kind, Tensor};

use super::common::TORCH_DEFAULT_INIT;
use super::config::LoraConfig;
use super::recorder::ParamPath;

/// Low-rank updates `scale * B_q A_q` and `scale * B_v A_v` of a qkv projection.
#[derive(Debug)]
pub struct LoraQv {
    q_a: Tensor,
    q_b: Tensor,
    v_a: Tensor,
    v_b: Tensor,
    scale: f64,
}

impl LoraQv {
    /// Creates the four LoRA matrices for a qkv projection of width `dim` under
    /// `path` (the block's `attn` path).
    pub fn new(path: &ParamPath, dim: i64, config: &LoraConfig) -> Self {
        let r = config.rank;
        let make_a = |name: &str| (path / name).var("weight", &[r, dim], TORCH_DEFAULT_INIT);
        let make_b = |name: &str| (path / name).var("weight", &[dim, r], Init::Const(0.0));
        Self {
            q_a: make_a("lora_q_a"),
            q_b: make_b("lora_q_b"),
            v_a: make_a("lora_v_a"),
            v_b: make_b("lora_v_b"),
            scale: config.scale(),
        }
    }

    /// The qkv weight with the update merged in: W + scale * [B_q A_q; 0; B_v A_v].
    ///
    /// Merging costs 2·C²·r multiply-adds per forward, far less than applying the
    /// bypass to every token, and autograd still reaches A and B through it.
    pub fn merged_qkv_weight(&self, qkv_weight: &Tensor) -> Tensor {
        let dim = qkv_weight.size()[1];
        let delta_q = self.q_b.matmul(&self.q_a);
        let delta_v = self.v_b.matmul(&self.v_a);
        let zeros = Tensor::zeros([dim, dim], (qkv_weight.kind(), qkv_weight.device()));
        let delta = Tensor::cat(&[delta_q, zeros, delta_v], 0);
        if self.scale == 1.0 {
            qkv_weight + delta
        } else {
            qkv_weight + delta * self.scale
        }
    }

    /// Number of LoRA values (4 · C · r).
    pub fn numel(&self) -> i64 {
        [&self.q_a, &self.q_b, &self.v_a, &self.v_b]
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Kind of the LoRA tensors.
    pub fn kind(&self) -> Kind {
        self.q_a.kind()
    }
}

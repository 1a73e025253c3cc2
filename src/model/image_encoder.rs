//! ViT image encoder of SAM (ViTDet backbone): patch embedding, absolute position
//! embedding, blocks with windowed or global attention, conv neck.

use tch::nn::{Init, Module};
use tch::{Device, Kind, Tensor};

use super::attention::Attention;
use super::common::{conv2d, layer_norm, Activation, Conv2d, LayerNorm, LayerNorm2d, MlpBlock};
use super::config::SamConfig;
use super::recorder::ParamPath;

/// A transformer block; attends within `window_size` windows, or globally when 0.
#[derive(Debug)]
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    window_size: i64,
}

impl Block {
    fn new(path: &ParamPath, config: &SamConfig, index: i64) -> Self {
        let enc = &config.image_encoder;
        let global = enc.global_attn_indexes.contains(&index);
        Self {
            norm1: layer_norm(path / "norm1", enc.embed_dim, 1e-6),
            attn: Attention::new(
                &(path / "attn"),
                enc.embed_dim,
                enc.num_heads,
                config.attention_extent(index),
                config.lora.as_ref(),
            ),
            norm2: layer_norm(path / "norm2", enc.embed_dim, 1e-6),
            mlp: MlpBlock::new(path / "mlp", enc.embed_dim, enc.mlp_dim, Activation::Gelu),
            window_size: if global { 0 } else { enc.window_size },
        }
    }
}

/// Splits [B, H, W, C] into [B·nw, ws, ws, C] windows, zero-padding H and W up to a
/// multiple of `ws`; returns the padded size too.
fn window_partition(xs: &Tensor, ws: i64) -> (Tensor, (i64, i64)) {
    let size = xs.size();
    let (b, h, w, c) = (size[0], size[1], size[2], size[3]);
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let padded = if pad_h > 0 || pad_w > 0 {
        xs.constant_pad_nd([0, 0, 0, pad_w, 0, pad_h])
    } else {
        xs.shallow_clone()
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows = padded
        .view([b, hp / ws, ws, wp / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([-1, ws, ws, c]);
    (windows, (hp, wp))
}

/// Inverse of [`window_partition`], dropping the padding.
fn window_unpartition(windows: &Tensor, ws: i64, padded: (i64, i64), hw: (i64, i64)) -> Tensor {
    let (hp, wp) = padded;
    let (h, w) = hw;
    let b = windows.size()[0] / (hp * wp / ws / ws);
    let xs = windows
        .view([b, hp / ws, wp / ws, ws, ws, -1])
        .permute([0, 1, 3, 2, 4, 5])
        .contiguous()
        .view([b, hp, wp, -1]);
    if hp > h || wp > w {
        xs.narrow(1, 0, h).narrow(2, 0, w).contiguous()
    } else {
        xs
    }
}

impl Module for Block {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let normed = self.norm1.forward(xs);
        let attended = if self.window_size > 0 {
            let (h, w) = (xs.size()[1], xs.size()[2]);
            let (windows, padded) = window_partition(&normed, self.window_size);
            let out = self.attn.forward(&windows);
            window_unpartition(&out, self.window_size, padded, (h, w))
        } else {
            self.attn.forward(&normed)
        };
        let xs = xs + attended;
        let mlp_out = self.mlp.forward(&self.norm2.forward(&xs));
        xs + mlp_out
    }
}

/// The ViT image encoder: [B, 3, S, S] normalised images → [B, out_chans, S/p, S/p].
#[derive(Debug)]
pub struct ImageEncoderViT {
    patch_embed: Conv2d,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    neck_conv1: Conv2d,
    neck_norm1: LayerNorm2d,
    neck_conv2: Conv2d,
    neck_norm2: LayerNorm2d,
}

impl ImageEncoderViT {
    /// Creates the encoder's tensors under `path` (normally `root / "image_encoder"`).
    pub fn new(path: &ParamPath, config: &SamConfig) -> Self {
        let enc = &config.image_encoder;
        let grid = config.grid_size();
        let blocks_path = path / "blocks";
        let neck = path / "neck";
        Self {
            patch_embed: conv2d(
                path / "patch_embed" / "proj",
                3,
                enc.embed_dim,
                enc.patch_size,
                enc.patch_size,
                0,
                true,
            ),
            pos_embed: path.var(
                "pos_embed",
                &[1, grid, grid, enc.embed_dim],
                Init::Const(0.0),
            ),
            blocks: (0..enc.depth)
                .map(|i| Block::new(&(&blocks_path / i), config, i))
                .collect(),
            neck_conv1: conv2d(&neck / 0, enc.embed_dim, enc.out_chans, 1, 1, 0, false),
            neck_norm1: LayerNorm2d::new(&neck / 1, enc.out_chans),
            neck_conv2: conv2d(&neck / 2, enc.out_chans, enc.out_chans, 3, 1, 1, false),
            neck_norm2: LayerNorm2d::new(&neck / 3, enc.out_chans),
        }
    }
}

impl ImageEncoderViT {
    /// Kind of the encoder's weights.
    pub fn kind(&self) -> Kind {
        self.pos_embed.kind()
    }

    /// Device of the encoder's weights.
    pub fn device(&self) -> Device {
        self.pos_embed.device()
    }
}

impl Module for ImageEncoderViT {
    fn forward(&self, xs: &Tensor) -> Tensor {
        // [B, C, h, w] -> [B, h, w, C]: the blocks work channel-last.
        let mut xs = self.patch_embed.forward(xs).permute([0, 2, 3, 1]) + &self.pos_embed;
        for block in &self.blocks {
            xs = block.forward(&xs);
        }
        let xs = xs.permute([0, 3, 1, 2]);
        let xs = self.neck_norm1.forward(&self.neck_conv1.forward(&xs));
        self.neck_norm2.forward(&self.neck_conv2.forward(&xs))
    }
}

//! Prompt encoder: random Fourier position encoding of points and box corners,
//! learned point-type embeddings, dense mask-input downscaling.

use std::f64::consts::PI;

use tch::nn::Module;
use tch::{Kind, Tensor};

use super::common::{conv2d, embedding, Conv2d, LayerNorm2d};
use super::config::SamConfig;
use super::recorder::ParamPath;

/// Positional encoding with random spatial frequencies (a fixed buffer).
#[derive(Debug)]
pub struct PositionEmbeddingRandom {
    gaussian_matrix: Tensor,
}

impl PositionEmbeddingRandom {
    fn new(path: &ParamPath, num_pos_feats: i64) -> Self {
        // A buffer in the reference: stored and loaded, never trained.
        let dims = [2, num_pos_feats];
        Self {
            gaussian_matrix: path.buffer("positional_encoding_gaussian_matrix", &dims, |device| {
                Tensor::randn(dims, (Kind::Float, device))
            }),
        }
    }

    /// Encodes coordinates normalised to [0, 1]: [..., 2] → [..., 2·num_pos_feats].
    /// Computed in fp32 whatever the model's kind (the features are sin/cos of
    /// large arguments), then converted to the kind of the stored matrix.
    fn encode(&self, coords: &Tensor) -> Tensor {
        let gaussian = self.gaussian_matrix.to_kind(Kind::Float);
        let projected = (coords * 2.0 - 1.0).matmul(&gaussian) * (2.0 * PI);
        Tensor::cat(&[projected.sin(), projected.cos()], -1).to_kind(self.gaussian_matrix.kind())
    }

    /// Encoding of the centres of an `h` x `w` grid: [C, h, w].
    pub fn dense(&self, h: i64, w: i64) -> Tensor {
        let options = (Kind::Float, self.gaussian_matrix.device());
        let ys = (Tensor::arange(h, options) + 0.5) / h as f64;
        let xs = (Tensor::arange(w, options) + 0.5) / w as f64;
        let grid = Tensor::stack(
            &[
                xs.view([1, w]).expand([h, w], false),
                ys.view([h, 1]).expand([h, w], false),
            ],
            -1,
        );
        self.encode(&grid).permute([2, 0, 1])
    }

    /// Encodes pixel coordinates [B, N, 2] (x, y) of an image of `size` = (h, w).
    pub fn with_coords(&self, coords: &Tensor, size: (i64, i64)) -> Tensor {
        let extent = Tensor::from_slice(&[size.1 as f32, size.0 as f32]).to_device(coords.device());
        self.encode(&(coords.to_kind(Kind::Float) / extent))
    }
}

/// Encodes point, box and mask prompts into sparse and dense embeddings.
#[derive(Debug)]
pub struct PromptEncoder {
    pe_layer: PositionEmbeddingRandom,
    /// negative point, positive point, box top-left, box bottom-right: [1, C] each
    point_embeddings: Vec<Tensor>,
    not_a_point_embed: Tensor,
    no_mask_embed: Tensor,
    mask_conv1: Conv2d,
    mask_norm1: LayerNorm2d,
    mask_conv2: Conv2d,
    mask_norm2: LayerNorm2d,
    mask_conv3: Conv2d,
    embed_dim: i64,
    grid: i64,
    input_size: i64,
}

impl PromptEncoder {
    /// Creates the tensors under `path` (normally `root / "prompt_encoder"`).
    pub fn new(path: &ParamPath, config: &SamConfig) -> Self {
        let e = config.prompt_encoder.embed_dim;
        let m = config.prompt_encoder.mask_in_chans;
        let points = path / "point_embeddings";
        let down = path / "mask_downscaling";
        Self {
            pe_layer: PositionEmbeddingRandom::new(&(path / "pe_layer"), e / 2),
            point_embeddings: (0..4).map(|i| embedding(&points / i, 1, e)).collect(),
            not_a_point_embed: embedding(path / "not_a_point_embed", 1, e),
            no_mask_embed: embedding(path / "no_mask_embed", 1, e),
            mask_conv1: conv2d(&down / 0, 1, m / 4, 2, 2, 0, true),
            mask_norm1: LayerNorm2d::new(&down / 1, m / 4),
            mask_conv2: conv2d(&down / 3, m / 4, m, 2, 2, 0, true),
            mask_norm2: LayerNorm2d::new(&down / 4, m),
            mask_conv3: conv2d(&down / 6, m, e, 1, 1, 0, true),
            embed_dim: e,
            grid: config.grid_size(),
            input_size: config.input_size,
        }
    }

    /// Positional encoding of the image-embedding grid: [1, C, h, w].
    pub fn dense_pe(&self) -> Tensor {
        self.pe_layer.dense(self.grid, self.grid).unsqueeze(0)
    }

    /// Point embeddings [B, N(+1), C]; labels 1 positive, 0 negative, -1 padding.
    /// With `pad`, a not-a-point token is appended (done when no box is given).
    fn embed_points(&self, coords: &Tensor, labels: &Tensor, pad: bool) -> Tensor {
        let mut coords = coords.to_kind(Kind::Float) + 0.5; // pixel centres
        let mut labels = labels.to_kind(Kind::Float);
        if pad {
            let b = coords.size()[0];
            let options = (Kind::Float, coords.device());
            coords = Tensor::cat(&[coords, Tensor::zeros([b, 1, 2], options)], 1);
            labels = Tensor::cat(&[labels, Tensor::full([b, 1], -1.0, options)], 1);
        }
        let size = (self.input_size, self.input_size);
        let encoded = self.pe_layer.with_coords(&coords, size);
        let labels = labels.unsqueeze(-1);
        let kind = encoded.kind();
        let is_label = |value: f64| labels.eq(value).to_kind(kind);
        let not_point = labels.eq(-1.0);
        let point = encoded
            + is_label(0.0) * &self.point_embeddings[0]
            + is_label(1.0) * &self.point_embeddings[1];
        point.where_self(&not_point.logical_not(), &self.not_a_point_embed)
    }

    /// Box embeddings [B, 2, C] from boxes [B, 4] (x0, y0, x1, y1).
    fn embed_boxes(&self, boxes: &Tensor) -> Tensor {
        let corners = (boxes.to_kind(Kind::Float) + 0.5).reshape([-1, 2, 2]);
        let size = (self.input_size, self.input_size);
        let encoded = self.pe_layer.with_coords(&corners, size);
        let corner_types = Tensor::cat(&[&self.point_embeddings[2], &self.point_embeddings[3]], 0);
        encoded + corner_types
    }

    /// Dense embedding of mask logits [B, 1, 4h, 4w] → [B, C, h, w].
    pub(crate) fn embed_masks(&self, masks: &Tensor) -> Tensor {
        let xs = self
            .mask_norm1
            .forward(&self.mask_conv1.forward(masks))
            .gelu("none");
        let xs = self
            .mask_norm2
            .forward(&self.mask_conv2.forward(&xs))
            .gelu("none");
        self.mask_conv3.forward(&xs)
    }

    /// Sparse [B, N, C] and dense [B, C, h, w] embeddings of the prompts. Shapes must
    /// have been checked by the caller (see `Sam::decode`). `batch` is used when no
    /// prompt is given.
    pub fn forward(
        &self,
        points: Option<(&Tensor, &Tensor)>,
        boxes: Option<&Tensor>,
        masks: Option<&Tensor>,
        batch: i64,
    ) -> (Tensor, Tensor) {
        let device = self.no_mask_embed.device();
        let kind = self.no_mask_embed.kind();
        let mut sparse = Tensor::zeros([batch, 0, self.embed_dim], (kind, device));
        if let Some((coords, labels)) = points {
            let embedded = self.embed_points(coords, labels, boxes.is_none());
            sparse = Tensor::cat(&[sparse, embedded], 1);
        }
        if let Some(boxes) = boxes {
            sparse = Tensor::cat(&[sparse, self.embed_boxes(boxes)], 1);
        }
        let dense = match masks {
            Some(masks) => self.embed_masks(&masks.to_kind(kind)),
            None => self
                .no_mask_embed
                .view([1, -1, 1, 1])
                .expand([batch, self.embed_dim, self.grid, self.grid], false),
        };
        (sparse, dense)
    }
}

//! The `Sam` model: image encoder + prompt encoder + mask decoder, with the
//! reference's preprocessing (normalise, pad) and postprocessing (upsample, crop).

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use super::config::{SamConfig, INTERACTIVE_PREFIX};
use super::image_encoder::ImageEncoderViT;
use super::mask_decoder::MaskDecoder;
use super::prompt_encoder::PromptEncoder;
use super::recorder::ParamPath;
use crate::error::{Error, Result};

/// Point prompts of a batch: `coords` [B, N, 2] as (x, y) in input-pixel space,
/// `labels` [B, N] with 1 = positive, 0 = negative, -1 = ignored (padding).
#[derive(Debug)]
pub struct PointPrompts {
    /// Point coordinates (x, y) in pixels of the model input, [B, N, 2].
    pub coords: Tensor,
    /// Point labels, [B, N].
    pub labels: Tensor,
}

/// Prompts for one decoder call; every part is optional. With no prompt at all
/// the decoder runs unprompted (automatic segmentation).
#[derive(Debug, Default)]
pub struct Prompts {
    /// Points, if any.
    pub points: Option<PointPrompts>,
    /// Boxes [B, 4] as (x0, y0, x1, y1) in input-pixel space.
    pub boxes: Option<Tensor>,
    /// Mask logits [B, 1, 4h, 4w] (e.g. an earlier low-res output; a fine-output
    /// decoder's [B, 1, 8h, 8w] logits are accepted too and area-averaged).
    pub mask_input: Option<Tensor>,
}

impl Prompts {
    /// No prompt.
    pub fn none() -> Self {
        Self::default()
    }

    /// Point prompts only.
    pub fn from_points(coords: Tensor, labels: Tensor) -> Self {
        Self {
            points: Some(PointPrompts { coords, labels }),
            ..Self::default()
        }
    }

    /// Box prompts only.
    pub fn from_boxes(boxes: Tensor) -> Self {
        Self {
            boxes: Some(boxes),
            ..Self::default()
        }
    }

    /// Batch size implied by the prompts (None when there is no prompt).
    fn batch_size(&self) -> Option<i64> {
        if let Some(points) = &self.points {
            return points.coords.size().first().copied();
        }
        if let Some(boxes) = &self.boxes {
            return boxes.size().first().copied();
        }
        self.mask_input
            .as_ref()
            .and_then(|m| m.size().first().copied())
    }
}

/// Decoder output for B prompts and T mask tokens.
#[derive(Debug)]
pub struct DecoderOutput {
    /// Mask logits at 4x the embedding grid, [B, T, 4h, 4w].
    pub low_res_logits: Tensor,
    /// Predicted IoU of each mask, [B, T].
    pub iou: Tensor,
}

/// The interactive head: its own prompt encoder and mask decoder (shaped like the
/// automatic ones, initialised as their copy and trained on prompts for one structure
/// at a time), beside the automatic head, which it leaves untouched.
#[derive(Debug)]
struct InteractiveHead {
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
}

/// SAM with BrainSAM's options (mask-token count, LoRA, any input size, optional
/// interactive head).
#[derive(Debug)]
pub struct Sam {
    config: SamConfig,
    image_encoder: ImageEncoderViT,
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    interactive: Option<InteractiveHead>,
}

/// Radius (low-res output pixels) of a click in the interactive head's prompt map.
pub(crate) const PROMPT_MAP_CLICK_RADIUS: f64 = 1.5;

/// Copies the automatic prompt encoder's and mask decoder's weights onto the interactive
/// head's (`interactive.*`), with the last layer of its dense branch zeroed so that the
/// prompt map adds nothing yet: the interactive head's starting point before its
/// training (unprompted, it then reproduces the automatic head).
/// `var_store` must hold a model built by [`Sam::new`] with an interactive head.
pub fn copy_automatic_to_interactive(var_store: &nn::VarStore) -> Result<()> {
    let variables = var_store.variables();
    let mut copied = 0;
    tch::no_grad(|| {
        for (name, source) in &variables {
            if !(name.starts_with("prompt_encoder.") || name.starts_with("mask_decoder.")) {
                continue;
            }
            let target_name = format!("{INTERACTIVE_PREFIX}{name}");
            let mut target = variables
                .get(&target_name)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "the model has no interactive head (no tensor {target_name})"
                    ))
                })?;
            target.f_copy_(source)?;
            copied += 1;
        }
        for suffix in ["weight", "bias"] {
            let name = format!("{INTERACTIVE_PREFIX}prompt_encoder.mask_downscaling.6.{suffix}");
            if let Some(tensor) = variables.get(&name) {
                let _ = tensor.shallow_clone().f_zero_()?;
            }
        }
        Ok::<(), Error>(())
    })?;
    if copied == 0 {
        return Err(Error::invalid_argument(
            "the var store holds no prompt encoder or mask decoder to copy",
        ));
    }
    Ok(())
}

/// Shape of checked image embeddings [batch, channels, grid, grid].
struct EmbeddingShape {
    batch: i64,
    channels: i64,
    grid: i64,
}

fn shape_error(what: &str, expected: &str, got: &[i64]) -> Error {
    Error::invalid_argument(format!("{what}: expected shape {expected}, got {got:?}"))
}

/// Converts the image encoder's weights (the model's expensive part) to `kind`, leaving
/// the prompt encoder and mask decoder as they are: mixed precision for inference with a
/// bf16/fp16 encoder and an fp32 decoder, whose masks need the precision. `var_store`
/// must hold a model built by [`Sam::new`] at its root.
pub fn set_image_encoder_kind(var_store: &nn::VarStore, kind: Kind) -> Result<()> {
    if !matches!(
        kind,
        Kind::Float | Kind::Double | Kind::BFloat16 | Kind::Half
    ) {
        return Err(Error::invalid_argument(format!(
            "image encoder weights must be floating point, not {kind:?}"
        )));
    }
    tch::no_grad(|| {
        for (name, mut tensor) in var_store.variables() {
            if name.starts_with("image_encoder.") && tensor.kind() != kind {
                let converted = tensor.f_to_kind(kind)?;
                tensor.set_data(&converted);
            }
        }
        Ok(())
    })
}

impl Sam {
    /// Builds a freshly initialised model under `path` (normally the VarStore root),
    /// with the official tensor names (`image_encoder.*`, `prompt_encoder.*`,
    /// `mask_decoder.*`). Tensors live on the VarStore's device.
    pub fn new(path: &nn::Path, config: &SamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::build(&ParamPath::from(path), config))
    }

    /// Builds the modules on `path` (a VarStore path or a shape recorder) without
    /// validating `config`: [`SamConfig::validate`] records through this, after checking
    /// the fields that the constructors rely on.
    pub(crate) fn build(path: &ParamPath, config: &SamConfig) -> Self {
        Self {
            config: config.clone(),
            image_encoder: ImageEncoderViT::new(&(path / "image_encoder"), config),
            prompt_encoder: PromptEncoder::new(&(path / "prompt_encoder"), config),
            mask_decoder: MaskDecoder::new(&(path / "mask_decoder"), &config.mask_decoder),
            // Built last so that the automatic head's initialisation is the same with
            // and without it.
            interactive: config.interactive.then(|| {
                let head = path / "interactive";
                InteractiveHead {
                    prompt_encoder: PromptEncoder::new(&(&head / "prompt_encoder"), config),
                    mask_decoder: MaskDecoder::new(&(&head / "mask_decoder"), &config.mask_decoder),
                }
            }),
        }
    }

    /// Whether the model has an interactive head (see [`Sam::decode_interactive`]).
    pub fn has_interactive_head(&self) -> bool {
        self.interactive.is_some()
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &SamConfig {
        &self.config
    }

    /// The floating-point kind of the image encoder's weights (follows
    /// `VarStore::set_kind` and [`set_image_encoder_kind`]); image embeddings come out
    /// in this kind.
    pub fn kind(&self) -> Kind {
        self.image_encoder.kind()
    }

    /// The floating-point kind of the prompt encoder's and mask decoder's weights: the
    /// kind masks are computed in. Fp32 unless the whole VarStore was converted.
    pub fn decoder_kind(&self) -> Kind {
        self.mask_decoder.kind()
    }

    /// The device of the model's tensors (follows `VarStore::set_device`).
    pub fn device(&self) -> Device {
        self.image_encoder.device()
    }

    /// Normalises `image` ([3, H, W] or [B, 3, H, W], pixel values) with the
    /// configured mean/std and zero-pads it at the bottom and right to the input
    /// size. Returns [B, 3, S, S] float on the model's device.
    pub fn preprocess(&self, image: &Tensor) -> Result<Tensor> {
        let size = image.size();
        let image = match size.len() {
            3 => image.unsqueeze(0),
            4 => image.shallow_clone(),
            _ => return Err(shape_error("image", "[3, H, W] or [B, 3, H, W]", &size)),
        };
        let size = image.size();
        let s = self.config.input_size;
        if size[1] != 3 || size[2] > s || size[3] > s || size[2] == 0 || size[3] == 0 {
            return Err(shape_error(
                "image",
                &format!("[B, 3, H, W] with 0 < H, W <= input size {s}"),
                &size,
            ));
        }
        let image = image.to_device(self.device()).to_kind(Kind::Float);
        let mean = Tensor::from_slice(&self.config.pixel_mean)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(self.device());
        let std = Tensor::from_slice(&self.config.pixel_std)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1])
            .to_device(self.device());
        let normalised = (image - mean) / std;
        Ok(normalised.constant_pad_nd([0, s - size[3], 0, s - size[2]]))
    }

    /// Image embeddings [B, C, h, w] of preprocessed images [B, 3, S, S].
    /// Call under `tch::no_grad` unless training.
    pub fn encode_images(&self, images: &Tensor) -> Result<Tensor> {
        let size = images.size();
        let s = self.config.input_size;
        if size.len() != 4 || size[1] != 3 || size[2] != s || size[3] != s {
            return Err(shape_error("images", &format!("[B, 3, {s}, {s}]"), &size));
        }
        let images = images.to_device(self.device()).to_kind(self.kind());
        Ok(self.image_encoder.forward(&images))
    }

    /// Encodes the prompts: sparse [B, N, C] and dense [B, C, h, w] embeddings.
    pub fn encode_prompts(&self, prompts: &Prompts) -> Result<(Tensor, Tensor)> {
        self.encode_prompts_with(&self.prompt_encoder, prompts)
    }

    fn encode_prompts_with(
        &self,
        encoder: &PromptEncoder,
        prompts: &Prompts,
    ) -> Result<(Tensor, Tensor)> {
        let batch = self.check_prompts(prompts)?.unwrap_or(1);
        let dev = |t: &Tensor| t.to_device(self.device());
        let points = prompts
            .points
            .as_ref()
            .map(|p| (dev(&p.coords), dev(&p.labels)));
        let boxes = prompts.boxes.as_ref().map(dev);
        let side = self.config.mask_input_size();
        let masks = prompts.mask_input.as_ref().map(|m| {
            let m = dev(m).to_kind(Kind::Float);
            if m.size()[2] == side {
                m
            } else {
                m.adaptive_avg_pool2d([side, side])
            }
        });
        Ok(encoder.forward(
            points.as_ref().map(|(c, l)| (c, l)),
            boxes.as_ref(),
            masks.as_ref(),
            batch,
        ))
    }

    /// Checks the prompt shapes and returns their common batch size.
    fn check_prompts(&self, prompts: &Prompts) -> Result<Option<i64>> {
        let batch = prompts.batch_size();
        let b = batch.unwrap_or(1);
        if let Some(points) = &prompts.points {
            let c = points.coords.size();
            let l = points.labels.size();
            if c.len() != 3 || c[2] != 2 || c[0] != b {
                return Err(shape_error("point coords", "[B, N, 2]", &c));
            }
            if l != [c[0], c[1]] {
                return Err(shape_error(
                    "point labels",
                    &format!("[{}, {}]", c[0], c[1]),
                    &l,
                ));
            }
        }
        if let Some(boxes) = &prompts.boxes {
            let s = boxes.size();
            if s != [b, 4] {
                return Err(shape_error("boxes", &format!("[{b}, 4]"), &s));
            }
        }
        if let Some(mask) = &prompts.mask_input {
            let s = mask.size();
            // The prompt encoder's size, or the decoder's output size (a fine-output
            // decoder's own logits fed back; area-averaged in `encode_prompts_with`).
            let side = self.config.mask_input_size();
            let output = self.config.low_res_size();
            if s != [b, 1, side, side] && s != [b, 1, output, output] {
                return Err(shape_error(
                    "mask input",
                    &format!("[{b}, 1, {side}, {side}]"),
                    &s,
                ));
            }
        }
        Ok(batch)
    }

    /// Positional encoding of the embedding grid [1, C, h, w].
    pub fn dense_pe(&self) -> Tensor {
        self.prompt_encoder.dense_pe()
    }

    /// The batch, channels and grid of image `embeddings`, which must be
    /// [B, C, h, w] with this model's channels and grid.
    fn embedding_shape(&self, embeddings: &Tensor) -> Result<EmbeddingShape> {
        let size = embeddings.size();
        let grid = self.config.grid_size();
        let channels = self.config.mask_decoder.transformer_dim;
        if size.len() != 4 || size[1] != channels || size[2] != grid || size[3] != grid {
            return Err(shape_error(
                "image embeddings",
                &format!("[B, {channels}, {grid}, {grid}]"),
                &size,
            ));
        }
        Ok(EmbeddingShape {
            batch: size[0],
            channels,
            grid,
        })
    }

    /// Decodes masks for B prompts from image `embeddings` [B, C, h, w] (or [1, C, h, w]
    /// shared by all prompts). Returns all mask tokens' logits and IoU predictions.
    pub fn decode(&self, embeddings: &Tensor, prompts: &Prompts) -> Result<DecoderOutput> {
        let EmbeddingShape {
            batch: images,
            channels: c,
            grid,
        } = self.embedding_shape(embeddings)?;
        let (sparse, dense) = self.encode_prompts(prompts)?;
        let batch = sparse.size()[0];
        let embeddings = embeddings
            .to_device(self.device())
            .to_kind(self.decoder_kind());
        let embeddings = if images == batch {
            embeddings
        } else if images == 1 {
            embeddings.expand([batch, c, grid, grid], false)
        } else if prompts.batch_size().is_none() {
            // No prompt: one unprompted decode per image.
            let (sparse, dense) = (
                sparse.expand([images, 0, c], false),
                dense.expand([images, c, grid, grid], false),
            );
            let (low_res_logits, iou) =
                self.mask_decoder
                    .predict_masks(&embeddings, &self.dense_pe(), &sparse, &dense);
            return Ok(DecoderOutput {
                low_res_logits,
                iou,
            });
        } else {
            return Err(Error::invalid_argument(format!(
                "image embeddings hold {} images but the prompts a batch of {batch}; \
                 give one embedding per prompt or a single shared one",
                images
            )));
        };
        let (low_res_logits, iou) =
            self.mask_decoder
                .predict_masks(&embeddings, &self.dense_pe(), &sparse, &dense);
        Ok(DecoderOutput {
            low_res_logits,
            iou,
        })
    }

    /// Interactive path: the mask of structure `structures[b]` (a mask-token index, 1..T)
    /// that prompt `b` asks for, from image `embeddings` [B, C, h, w] (or one shared
    /// [1, C, h, w]) through the interactive head. Returns binary logits [B, 1, 4h, 4w]
    /// ([B, 1, 8h, 8w] with the decoder's fine output stage):
    /// the structure's token logit against the log-sum-exp of all other tokens, i.e. the
    /// log-odds of the structure under the head's softmax over all classes. Errors when
    /// the model has no interactive head.
    pub fn decode_interactive(
        &self,
        embeddings: &Tensor,
        prompts: &Prompts,
        structures: &[i64],
    ) -> Result<Tensor> {
        let head = self.interactive.as_ref().ok_or_else(|| {
            Error::Unsupported(
                "this model has no interactive head (config `interactive` is false)".into(),
            )
        })?;
        let tokens = self.config.mask_decoder.num_mask_tokens;
        if let Some(&bad) = structures.iter().find(|&&s| s < 1 || s >= tokens) {
            return Err(Error::invalid_argument(format!(
                "structure {bad} is not a mask token of this model: use 1..={}",
                tokens - 1
            )));
        }
        let images = self.embedding_shape(embeddings)?.batch;
        // The interactive head reads the points and box twice: as sparse tokens, and
        // rendered into a prompt map through its dense (mask) branch, which is spatially
        // aligned with the image embedding and learns far faster than the tokens alone.
        let sparse_only = Prompts {
            points: prompts.points.as_ref().map(|p| PointPrompts {
                coords: p.coords.shallow_clone(),
                labels: p.labels.shallow_clone(),
            }),
            boxes: prompts.boxes.as_ref().map(Tensor::shallow_clone),
            mask_input: None,
        };
        let (sparse, dense) = self.encode_prompts_with(&head.prompt_encoder, &sparse_only)?;
        let map = self.prompt_map(&sparse_only, sparse.size()[0])?;
        let map = map.to_kind(dense.kind());
        let dense = dense + head.prompt_encoder.embed_masks(&map);
        let batch = sparse.size()[0].max(images);
        let embeddings = embeddings
            .to_device(self.device())
            .to_kind(head.mask_decoder.kind());
        let expand = |t: &Tensor, b: i64| {
            if t.size()[0] == b {
                t.shallow_clone()
            } else if t.size()[0] == 1 {
                let mut shape = t.size();
                shape[0] = b;
                t.expand(shape, false)
            } else {
                Tensor::new()
            }
        };
        let (embeddings, sparse, dense) = (
            expand(&embeddings, batch),
            expand(&sparse, batch),
            expand(&dense, batch),
        );
        if !embeddings.defined() || !sparse.defined() || !dense.defined() {
            return Err(Error::invalid_argument(format!(
                "image embeddings hold {} images but the prompts a batch of {}; \
                 give one embedding per prompt or a single shared one",
                images,
                prompts.batch_size().unwrap_or(1)
            )));
        }
        let (logits, _) = head.mask_decoder.predict_masks(
            &embeddings,
            &head.prompt_encoder.dense_pe(),
            &sparse,
            &dense,
        );
        let index = Tensor::from_slice(structures).to_device(logits.device());
        let chosen = index
            .view([batch, 1, 1, 1])
            .expand([batch, 1, logits.size()[2], logits.size()[3]], false);
        let own = logits.f_gather(1, &chosen, false)?;
        let is_own = index
            .f_one_hot(tokens)?
            .to_kind(Kind::Bool)
            .view([batch, tokens, 1, 1]);
        let others = logits
            .f_masked_fill(&is_own, f64::NEG_INFINITY)?
            .f_logsumexp([1], true)?;
        Ok(own - others)
    }

    /// The prompt map the interactive head's dense branch reads, [B, 1, 4h, 4w]: 1 inside
    /// the box, plus 1 within [`PROMPT_MAP_CLICK_RADIUS`] low-res pixels of a positive
    /// point, minus 1 near a negative one (padding points, label -1, count nothing).
    fn prompt_map(&self, prompts: &Prompts, batch: i64) -> Result<Tensor> {
        let m = self.config.mask_input_size();
        let scale = self.config.input_size as f64 / m as f64;
        let options = (Kind::Float, self.device());
        let centres = (Tensor::arange(m, options) + 0.5) * scale;
        let xs = centres.view([1, 1, m]);
        let ys = centres.view([1, m, 1]);
        let mut map = Tensor::zeros([batch, m, m], options);
        if let Some(boxes) = &prompts.boxes {
            let b = boxes.to_device(self.device()).to_kind(Kind::Float) + 0.5;
            let side = |i: i64| b.select(1, i).view([-1, 1, 1]);
            let inside = xs
                .f_ge_tensor(&side(0))?
                .f_logical_and(&xs.f_le_tensor(&side(2))?)?
                .f_logical_and(&ys.f_ge_tensor(&side(1))?)?
                .f_logical_and(&ys.f_le_tensor(&side(3))?)?;
            map += inside.to_kind(Kind::Float);
        }
        if let Some(points) = &prompts.points {
            let coords = points.coords.to_device(self.device()).to_kind(Kind::Float) + 0.5;
            let size = coords.size();
            let (b, n) = (size[0], size[1]);
            let cx = coords.select(2, 0).view([b, n, 1, 1]);
            let cy = coords.select(2, 1).view([b, n, 1, 1]);
            let d2 = (xs.unsqueeze(0) - cx).square() + (ys.unsqueeze(0) - cy).square();
            let radius = PROMPT_MAP_CLICK_RADIUS * scale;
            let disk = d2.le(radius * radius).to_kind(Kind::Float);
            let labels = points
                .labels
                .to_device(self.device())
                .to_kind(Kind::Float)
                .view([b, n, 1, 1]);
            let weight = labels.eq(1.0).to_kind(Kind::Float) - labels.eq(0.0).to_kind(Kind::Float);
            map += (disk * weight).sum_dim_intlist([1].as_slice(), false, Kind::Float);
        }
        Ok(map.unsqueeze(1))
    }

    /// Upsamples low-res logits [B, T, 4h, 4w] to the input size, removes the padding
    /// (keeps the top-left `input_size` = (h, w) of the un-padded image) and resizes
    /// to `original_size` (h, w), bilinearly as the reference does.
    pub fn postprocess_masks(
        &self,
        low_res: &Tensor,
        input_size: (i64, i64),
        original_size: (i64, i64),
    ) -> Result<Tensor> {
        let size = low_res.size();
        let s = self.config.input_size;
        if size.len() != 4 {
            return Err(shape_error("low-res masks", "[B, T, h, w]", &size));
        }
        if input_size.0 <= 0 || input_size.1 <= 0 || input_size.0 > s || input_size.1 > s {
            return Err(Error::invalid_argument(format!(
                "input size {input_size:?} must be within 1..={s}"
            )));
        }
        if original_size.0 <= 0 || original_size.1 <= 0 {
            return Err(Error::invalid_argument(format!(
                "original size {original_size:?} must be positive"
            )));
        }
        let full = low_res.f_upsample_bilinear2d([s, s], false, None, None)?;
        let cropped = full.narrow(2, 0, input_size.0).narrow(3, 0, input_size.1);
        Ok(cropped.f_upsample_bilinear2d([original_size.0, original_size.1], false, None, None)?)
    }
}

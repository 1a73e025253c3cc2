//! Training the interactive head (see [`crate::model::Sam::decode_interactive`]) on a
//! frozen model: the image encoder, the automatic prompt encoder and the automatic
//! 13-class mask decoder are not touched, so the automatic result stays exactly what it
//! was. Only `interactive.*` tensors learn.
//!
//! The slices of the training subjects (with their through-plane context, and
//! left-right mirrored with left and right classes swapped) are encoded once and cached
//! on disk with the automatic head's single-view result; training then runs the small
//! interactive head alone, which is cheap on a CPU. Every sample is one structure on
//! one slice with prompts simulated from the ground truth as a user gives them:
//! - a box around the structure, each side jittered by a few pixels;
//! - a propagated box: the structure's box on a neighbouring slice grown by
//!   a few pixels (what [`crate::session::Session::segment_structure_3d`]
//!   gives), where the structure may be smaller, or absent (the mask must vanish);
//! - clicks: starting from the automatic result, a click at the centre of the largest
//!   error region (positive in missed tissue, negative in false tissue), the head run,
//!   and again, 1 to `max_clicks` times, as in the interactive-segmentation literature.
//!
//! The loss is binary cross-entropy plus soft Dice of the structure's binary logits
//! against its area fraction per low-resolution pixel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::config::TrainConfig;
use super::dataset::{read_subjects, Dataset, DatasetOptions};
use super::optim::{learning_rate, AdamW, IterationBudget};
use super::prompts::{largest_error_click, structure_box};
use crate::error::{Error, Result};
use crate::labels::{MIRRORED_CLASSES, NUM_CLASSES};
use crate::model::load::{split_view_models, stored_config};
use crate::model::{copy_automatic_to_interactive, Prompts, Sam, SamConfig};
use crate::session::{
    context_step, gather_with_context, model_input, save_model, DeviceChoice, PointPrompt,
    SlicePrompts, PROPAGATION_MARGIN_PX,
};
use crate::weights::{self, LoadOptions};

/// Settings of an interactive-head training run (`[interactive]` in a training
/// configuration; its presence makes `brainsam fine-tune` train the interactive head
/// of `model.checkpoint` instead of the whole model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InteractiveSection {
    /// Where the encoded training slices are cached (relative paths: to the
    /// configuration file's folder); reused when made from the same checkpoint and
    /// subjects. None: `<run.output_dir>/embeddings.safetensors`.
    pub embedding_cache: Option<PathBuf>,
    /// Probability of a box sample.
    pub box_probability: f64,
    /// Probability of a propagated-box sample (box from a neighbouring slice).
    pub propagation_probability: f64,
    /// The rest are click samples with 1 to `max_clicks` clicks.
    pub max_clicks: usize,
    /// Each side of a box moves by up to this many model-input pixels.
    pub box_jitter_px: f64,
    /// Also train on the left-right mirrored slices (classes swapped).
    pub mirror: bool,
}

impl Default for InteractiveSection {
    fn default() -> Self {
        InteractiveSection {
            embedding_cache: None,
            box_probability: 0.4,
            propagation_probability: 0.2,
            max_clicks: 5,
            box_jitter_px: 4.0,
            mirror: true,
        }
    }
}

impl InteractiveSection {
    /// Checks value ranges.
    pub fn validate(&self) -> Result<()> {
        let p = [self.box_probability, self.propagation_probability];
        if p.iter().any(|p| !(0.0..=1.0).contains(p)) || p[0] + p[1] > 1.0 {
            return Err(Error::invalid_argument(format!(
                "interactive.box_probability {} and propagation_probability {} must be in \
                 [0, 1] with a sum of at most 1",
                p[0], p[1]
            )));
        }
        if self.max_clicks == 0 {
            return Err(Error::invalid_argument(
                "interactive.max_clicks must be at least 1",
            ));
        }
        if !(self.box_jitter_px >= 0.0 && self.box_jitter_px.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "interactive.box_jitter_px {} must be a non-negative number",
                self.box_jitter_px
            )));
        }
        Ok(())
    }
}

/// The encoded training slices.
struct SliceCache {
    /// Image embeddings `[N, C, h, w]`.
    embeddings: Tensor,
    /// Class ids at model-input resolution `[N, S, S]` uint8.
    classes: Tensor,
    /// The automatic head's single-view class ids `[N, S, S]` uint8.
    automatic: Tensor,
    /// Per slice: (subject-and-mirroring group, stack position).
    positions: Vec<(usize, usize)>,
}

/// Progress of an interactive training run.
#[derive(Debug, Clone)]
pub struct InteractiveProgress {
    /// Iterations done.
    pub iteration: u64,
    /// Total iterations.
    pub total: u64,
    /// Mean loss over the last logging interval.
    pub loss: f64,
    /// Learning rate of the last iteration.
    pub lr: f64,
}

/// Loads `checkpoint` (a BrainSAM model file) with an interactive head: the file's own
/// head if it has one, else a copy of its automatic prompt encoder and mask decoder.
pub fn load_with_interactive_head(checkpoint: &Path) -> Result<(Sam, VarStore, SamConfig)> {
    load_with_interactive_head_and_output(checkpoint, None, Device::Cpu)
}

/// [`load_with_interactive_head`], with the decoders' fine output stage (see
/// `MaskDecoderConfig::fine_output`) added (`Some(true)`; it starts as bilinear
/// upsampling) or as the file has it (`None`), on `device`.
pub fn load_with_interactive_head_and_output(
    checkpoint: &Path,
    fine_output: Option<bool>,
    device: Device,
) -> Result<(Sam, VarStore, SamConfig)> {
    let (tensors, metadata) = weights::read_safetensors(checkpoint)?;
    let (tensors, _views) = split_view_models(tensors, &metadata)
        .map_err(|e| Error::invalid_file(checkpoint, e.to_string()))?;
    let base = stored_config(checkpoint, &metadata)?;
    let had_head = base.interactive;
    let had_fine_output = base.mask_decoder.fine_output;
    let mut config = base.with_interactive(true);
    if let Some(fine) = fine_output {
        config = config.with_fine_output(fine);
    }
    let var_store = VarStore::new(device);
    let sam = Sam::new(&var_store.root(), &config)?;
    let mut missing = vec!["interactive.*"];
    if config.mask_decoder.fine_output && !had_fine_output {
        missing.push("*mask_decoder.fine_upscaling.*");
    }
    weights::load_into_var_store(
        &var_store,
        &tensors,
        &LoadOptions::strict().allowing_missing(missing),
    )
    .map_err(|e| Error::WeightMismatch(format!("{}: {e}", checkpoint.display())))?;
    if !had_head {
        copy_automatic_to_interactive(&var_store)?;
    }
    Ok((sam, var_store, config))
}

/// The encoded slices of the training subjects, from the cache file when it was made
/// from the same checkpoint and subjects, else encoded now and cached.
fn slice_cache(
    config: &TrainConfig,
    sam: &Sam,
    checkpoint: &Path,
    cache_path: &Path,
    mirror: bool,
) -> Result<SliceCache> {
    let mut key = weights::sha256_file(checkpoint)?;
    for subject in &config.subjects {
        key.push_str(&format!(";{}", subject.image.display()));
    }
    key.push_str(&format!(";mirror={mirror}"));
    if cache_path.is_file() {
        let (tensors, metadata) = weights::read_safetensors(cache_path)?;
        if metadata.get("key") == Some(&key) {
            let get = |name: &str| {
                tensors
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t.shallow_clone())
                    .ok_or_else(|| Error::invalid_file(cache_path, format!("no tensor {name}")))
            };
            let positions = Vec::<i64>::try_from(get("positions")?.flatten(0, -1))?;
            log::info!("reusing the encoded slices in {}", cache_path.display());
            return Ok(SliceCache {
                embeddings: get("embeddings")?,
                classes: get("classes")?,
                automatic: get("automatic")?,
                positions: positions
                    .chunks(2)
                    .map(|p| (p[0] as usize, p[1] as usize))
                    .collect(),
            });
        }
        log::info!(
            "{} was made from another checkpoint or subjects: encoding again",
            cache_path.display()
        );
    }
    let options = DatasetOptions {
        validation: config.validation.clone(),
        orientation: sam.config().slice_orientation,
        ..DatasetOptions::from_config(config, sam.config().input_size)
    };
    let mut training_config = config.clone();
    training_config.label_only.clear();
    let dataset = Dataset::prepare(read_subjects(&training_config)?, &options)?;
    let swap = Tensor::from_slice(&MIRRORED_CLASSES);
    let side = sam.config().input_size;
    let device = sam.device();
    let (mut embeddings, mut classes, mut automatic, mut positions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut group = 0;
    let started = Instant::now();
    for subject in &dataset.training {
        let Some(images) = &subject.images else {
            continue;
        };
        let step = context_step(sam.config().slice_context_mm, subject.slice_spacing_mm);
        let mirrors: &[bool] = if mirror { &[false, true] } else { &[false] };
        for &mirrored in mirrors {
            let all: Vec<usize> = (0..subject.len()).collect();
            for batch in all.chunks(8) {
                let mut input = gather_with_context(images, batch, step).to_device(device);
                let index =
                    Tensor::from_slice(&batch.iter().map(|&i| i as i64).collect::<Vec<_>>());
                let mut batch_classes = subject.classes.index_select(0, &index);
                if mirrored {
                    input = input.flip([3]);
                    let flipped = batch_classes.flip([2]).to_kind(Kind::Int64);
                    batch_classes = swap
                        .index_select(0, &flipped.flatten(0, -1))
                        .view_as(&flipped)
                        .to_kind(Kind::Uint8);
                }
                let (embedding, auto) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
                    let embedding = sam.encode_images(&model_input(sam, &input)?)?;
                    let logits = sam.decode(&embedding, &Prompts::none())?.low_res_logits;
                    let auto = logits
                        .upsample_bilinear2d([side, side], false, None, None)
                        .argmax(1, false)
                        .to_kind(Kind::Uint8);
                    // The cache lives in CPU memory (and on disk) whatever the device.
                    Ok((
                        embedding.to_device(Device::Cpu),
                        auto.to_device(Device::Cpu),
                    ))
                })?;
                embeddings.push(embedding);
                automatic.push(auto);
                classes.push(batch_classes);
                positions.extend(batch.iter().map(|&i| (group, i)));
            }
            group += 1;
        }
        log::info!(
            "encoded {} ({} slices) after {:.0} s",
            subject.name,
            subject.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if positions.is_empty() {
        return Err(Error::invalid_argument(
            "no training subject with an image: the interactive head trains on real images",
        ));
    }
    let cache = SliceCache {
        embeddings: Tensor::cat(&embeddings, 0),
        classes: Tensor::cat(&classes, 0),
        automatic: Tensor::cat(&automatic, 0),
        positions,
    };
    let flat: Vec<i64> = cache
        .positions
        .iter()
        .flat_map(|&(g, i)| [g as i64, i as i64])
        .collect();
    let mut metadata = BTreeMap::new();
    metadata.insert("key".to_string(), key);
    if let Some(parent) = cache_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    weights::save_safetensors(
        cache_path,
        &[
            ("embeddings".to_string(), cache.embeddings.shallow_clone()),
            ("classes".to_string(), cache.classes.shallow_clone()),
            ("automatic".to_string(), cache.automatic.shallow_clone()),
            ("positions".to_string(), Tensor::from_slice(&flat)),
        ],
        &metadata,
    )?;
    Ok(cache)
}

/// A binary `[S, S]` map of one slice: `map == class`.
fn binary(map: &Tensor, class: u8) -> Vec<bool> {
    Vec::<bool>::try_from(map.eq(class as i64).flatten(0, -1)).unwrap_or_default()
}

/// A box around `tight` with each side moved by up to `jitter` pixels (and grown by
/// `margin`), clamped to the image.
fn jittered_box(
    tight: [f32; 4],
    margin: f32,
    jitter: f32,
    side: f32,
    rng: &mut impl Rng,
) -> [f32; 4] {
    let mut j = || {
        if jitter > 0.0 {
            rng.gen_range(-jitter..=jitter)
        } else {
            0.0
        }
    };
    let b = [
        (tight[0] - margin + j()).clamp(0.0, side),
        (tight[1] - margin + j()).clamp(0.0, side),
        (tight[2] + margin + j()).clamp(0.0, side),
        (tight[3] + margin + j()).clamp(0.0, side),
    ];
    [
        b[0].min(b[2]),
        b[1].min(b[3]),
        b[0].max(b[2]),
        b[1].max(b[3]),
    ]
}

/// Binary logits `[B, 1, m, m]` of the interactive head for samples whose prompts are
/// all boxes or all points (points padded with label -1).
fn decode_group(
    sam: &Sam,
    embeddings: &Tensor,
    prompts: &[&SlicePrompts],
    structures: &[i64],
) -> Result<Tensor> {
    let model_prompts = SlicePrompts::batch(prompts, embeddings.device());
    sam.decode_interactive(embeddings, &model_prompts, structures)
}

/// Simulated clicks on one sample: from the automatic result, `count` clicks each at
/// the centre of the largest error region of the head's result with the clicks before.
fn simulate_clicks(
    sam: &Sam,
    embedding: &Tensor,
    reference: &[bool],
    automatic: &[bool],
    structure: u8,
    count: usize,
    side: i64,
) -> Result<SlicePrompts> {
    let mut predicted = automatic.to_vec();
    let mut clicks = SlicePrompts::default();
    let width = side as usize;
    for i in 0..count {
        let Some((x, y, positive)) = largest_error_click(&predicted, reference, width, width)
        else {
            break;
        };
        clicks.points.push(PointPrompt {
            x: x as f64 + 0.5,
            y: y as f64 + 0.5,
            positive,
        });
        if i + 1 < count {
            let logits =
                tch::no_grad(|| decode_group(sam, embedding, &[&clicks], &[structure as i64]))?;
            let full = logits.upsample_bilinear2d([side, side], false, None, None);
            predicted = Vec::<bool>::try_from(full.gt(0.0).flatten(0, -1))?;
        }
    }
    Ok(clicks)
}

/// BCE + soft Dice of binary logits `[B, 1, m, m]` against area fractions `[B, 1, m, m]`.
fn binary_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    let bce =
        logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, tch::Reduction::Mean);
    let p = logits.sigmoid();
    let dims: &[i64] = &[1, 2, 3];
    let intersection = (&p * target).sum_dim_intlist(dims, false, Kind::Float);
    let total = p.sum_dim_intlist(dims, false, Kind::Float)
        + target.sum_dim_intlist(dims, false, Kind::Float);
    let dice = (intersection * 2.0 + 1.0) / (total + 1.0);
    bce + (dice.neg() + 1.0).mean(Kind::Float)
}

/// Trains the interactive head of `config.model.checkpoint` as `config.interactive`
/// describes; writes `<run.output_dir>/model.safetensors` (the whole model: the
/// checkpoint's tensors unchanged plus the trained `interactive.*` ones) every
/// `run.checkpoint_every` iterations and at the end. Returns that path.
pub fn train_interactive(
    config: &TrainConfig,
    progress: &mut dyn FnMut(&InteractiveProgress) -> bool,
) -> Result<PathBuf> {
    config.validate()?;
    let settings = config.interactive.clone().unwrap_or_default();
    settings.validate()?;
    let checkpoint = config.model.checkpoint.clone().ok_or_else(|| {
        Error::invalid_argument(
            "interactive training needs model.checkpoint: the model whose head it trains",
        )
    })?;
    let device = DeviceChoice::parse(&config.run.device)?.resolve()?;
    let (sam, var_store, model_config) =
        load_with_interactive_head_and_output(&checkpoint, config.model.fine_output, device)?;
    // Only the interactive head learns.
    let mut parameters = Vec::new();
    for (name, tensor) in var_store.variables() {
        if name.starts_with(crate::model::INTERACTIVE_PREFIX) && tensor.requires_grad() {
            parameters.push((name, tensor));
        } else {
            let _ = tensor.set_requires_grad(false);
        }
    }
    let output_dir = config.run.output_dir.clone();
    std::fs::create_dir_all(&output_dir).map_err(|e| Error::io(&output_dir, e))?;
    let cache_path = settings
        .embedding_cache
        .clone()
        .unwrap_or_else(|| output_dir.join("embeddings.safetensors"));
    let cache = slice_cache(config, &sam, &checkpoint, &cache_path, settings.mirror)?;
    // Training reads the cache on the model's device (a no-op on the CPU).
    let (embeddings, cached_classes) = (
        cache.embeddings.to_device(device),
        cache.classes.to_device(device),
    );
    let side = model_config.input_size;
    let low = model_config.low_res_size();
    // (slice, structure) pairs, and each slice's neighbours in its stack.
    let mut pairs = Vec::new();
    let count = cache.positions.len();
    let class_maps: Vec<Tensor> = (0..count).map(|n| cache.classes.get(n as i64)).collect();
    let mut present = vec![[false; NUM_CLASSES]; count];
    for (n, map) in class_maps.iter().enumerate() {
        let values = Vec::<u8>::try_from(map.flatten(0, -1))?;
        for v in values {
            present[n][v as usize] = true;
        }
        for c in 1..NUM_CLASSES as u8 {
            if present[n][c as usize] {
                pairs.push((n, c));
            }
        }
    }
    let neighbour = |n: usize, direction: i64| -> Option<usize> {
        let m = n as i64 + direction;
        (m >= 0 && (m as usize) < count && cache.positions[m as usize].0 == cache.positions[n].0)
            .then_some(m as usize)
    };
    log::info!(
        "interactive training: {} slices, {} (slice, structure) pairs, {} iterations",
        count,
        pairs.len(),
        config.run.iterations
    );
    let mut optimizer = AdamW::new(parameters, &config.optim);
    let mut total = config.run.iterations;
    let mut budget = IterationBudget::new(config.run.minutes, 0);
    let model_path = output_dir.join("model.safetensors");
    let (mut loss_sum, mut loss_count) = (0.0, 0usize);
    let mut next = 0;
    while next < total {
        let iteration = next;
        next += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(
            config.run.seed ^ (iteration + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        tch::manual_seed((config.run.seed + iteration) as i64);
        let (mut boxes, mut points) = (Vec::new(), Vec::new());
        for _ in 0..config.run.batch_size {
            let &(n, c) = pairs.choose(&mut rng).expect("pairs");
            let draw: f64 = rng.gen();
            if draw < settings.box_probability + settings.propagation_probability {
                let (target, source) = if draw < settings.box_probability {
                    (n, n)
                } else {
                    let direction = if rng.gen_bool(0.5) { 1 } else { -1 };
                    match neighbour(n, direction) {
                        Some(m) => (m, n),
                        None => (n, n),
                    }
                };
                let values = Vec::<u8>::try_from(class_maps[source].flatten(0, -1))?;
                let Some(tight) = structure_box(&values, side as usize, c) else {
                    continue;
                };
                let margin = if target == source {
                    0.0
                } else {
                    PROPAGATION_MARGIN_PX as f32
                };
                let b = jittered_box(
                    tight,
                    margin,
                    settings.box_jitter_px as f32,
                    side as f32,
                    &mut rng,
                );
                let prompts = SlicePrompts {
                    points: Vec::new(),
                    bounding_box: Some(b.map(f64::from)),
                };
                boxes.push((target, c, prompts));
            } else {
                let clicks = rng.gen_range(1..=settings.max_clicks);
                let reference = binary(&class_maps[n], c);
                let automatic = binary(&cache.automatic.get(n as i64), c);
                let embedding = embeddings.get(n as i64).unsqueeze(0);
                let simulated =
                    simulate_clicks(&sam, &embedding, &reference, &automatic, c, clicks, side)?;
                if simulated.points.is_empty() {
                    continue;
                }
                points.push((n, c, simulated));
            }
        }
        let mut losses = Vec::new();
        let mut weights = Vec::new();
        for group in [&boxes, &points] {
            if group.is_empty() {
                continue;
            }
            let index: Vec<i64> = group.iter().map(|(n, _, _)| *n as i64).collect();
            let index = Tensor::from_slice(&index).to_device(device);
            let group_embeddings = embeddings.index_select(0, &index);
            let structures: Vec<i64> = group.iter().map(|(_, c, _)| *c as i64).collect();
            let prompts: Vec<&SlicePrompts> = group.iter().map(|(_, _, p)| p).collect();
            let logits = decode_group(&sam, &group_embeddings, &prompts, &structures)?;
            let target = cached_classes
                .index_select(0, &index)
                .to_kind(Kind::Int64)
                .eq_tensor(
                    &Tensor::from_slice(&structures)
                        .to_device(device)
                        .view([-1, 1, 1]),
                )
                .to_kind(Kind::Float)
                .unsqueeze(1)
                .adaptive_avg_pool2d([low, low]);
            losses.push(binary_loss(&logits, &target));
            weights.push(group.len() as f64);
        }
        if losses.is_empty() {
            continue;
        }
        let sum: f64 = weights.iter().sum();
        let loss = losses
            .iter()
            .zip(&weights)
            .map(|(l, w)| l * (w / sum))
            .reduce(|a, b| a + b)
            .expect("losses");
        optimizer.zero_grad();
        loss.backward();
        if let Some(max) = config.optim.clip_grad_norm {
            optimizer.clip_grad_norm(max);
        }
        let lr = learning_rate(&config.optim, iteration, total);
        optimizer.step(lr);
        loss_sum += loss.double_value(&[]);
        loss_count += 1;
        let done = iteration + 1;
        if let Some(budget) = &mut budget {
            total = budget.total(done, total);
        }
        let log_every = config.run.log_every.max(1);
        if done % log_every == 0 || done == total {
            let report = InteractiveProgress {
                iteration: done,
                total,
                loss: loss_sum / loss_count.max(1) as f64,
                lr,
            };
            (loss_sum, loss_count) = (0.0, 0);
            if !progress(&report) {
                save_model(&model_path, &var_store, &model_config)?;
                return Err(Error::Cancelled);
            }
        }
        if config.run.checkpoint_every > 0 && done % config.run.checkpoint_every == 0 {
            save_model(&model_path, &var_store, &model_config)?;
        }
    }
    save_model(&model_path, &var_store, &model_config)?;
    Ok(model_path)
}

//! Validation: per-structure Dice in 3D through the inference session (same ROI,
//! normalisation, slicing, decoding, mapping back and clean-up as `segment_all`), or
//! per slice stack for subjects without an image; plus prompted evaluation.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use super::augment::synthesize;
use super::config::SynthSection;
use super::dataset::{gather_slices, present_structures, SubjectSlices, ValidationSubject};
use super::prompts::{decode_with_prompts, structure_box};
use crate::error::{Error, Result};
use crate::labels::NUM_CLASSES;
use crate::metrics::evaluate;
use crate::model::Sam;
use crate::session::{
    context_step, gather_with_context, model_input, Model, PointPrompt, Session, SessionOptions,
    SlicePrompts,
};

const STRUCTURES: usize = NUM_CLASSES - 1;

/// Validation result at one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// Iteration (number of optimiser steps done).
    pub iteration: u64,
    /// Mean Dice over structures present in the references (0 when none).
    pub mean_dice: f64,
    /// Dice per structure 1..=12 averaged over subjects (None: absent everywhere).
    pub structure_dice: Vec<Option<f64>>,
}

/// A copy of the training model wrapped for inference (shares nothing with it).
pub fn inference_model(sam: &Sam, var_store: &VarStore) -> Result<Arc<Model>> {
    let mut copy = VarStore::new(var_store.device());
    let copied_sam = Sam::new(&copy.root(), sam.config())?;
    copy.copy(var_store)?;
    copy.freeze();
    Ok(Model::from_parts(copied_sam, copy))
}

fn mean_dice(structure_dice: &[Option<f64>]) -> f64 {
    let values: Vec<f64> = structure_dice.iter().flatten().copied().collect();
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Averages per-subject Dice lists (None entries ignored).
fn average(per_subject: &[Vec<Option<f64>>]) -> Vec<Option<f64>> {
    (0..STRUCTURES)
        .map(|k| {
            let values: Vec<f64> = per_subject.iter().filter_map(|d| d[k]).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        })
        .collect()
}

/// Model-input images `[n, C, S, S]` of a validation stack (with the context slices
/// `sam` takes): the real ones, or images synthesised with a fixed seed (the same at
/// every validation) for label-only subjects.
fn stack_images(sam: &Sam, slices: &SubjectSlices, synth: &SynthSection) -> Result<Tensor> {
    let step = context_step(sam.config().slice_context_mm, slices.slice_spacing_mm);
    let all: Vec<usize> = (0..slices.len()).collect();
    match &slices.images {
        Some(images) => Ok(gather_with_context(images, &all, step)),
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
            tch::manual_seed(0x5eed);
            synthesize(
                &gather_with_context(&slices.codes, &all, step),
                &mut rng,
                synth,
            )
        }
    }
}

/// Predicted classes `[n, m, m]` of a slice stack without prompts, and the reference
/// classes downsampled to the same grid.
fn predict_stack(
    sam: &Sam,
    slices: &SubjectSlices,
    synth: &SynthSection,
    batch: usize,
) -> Result<(Tensor, Tensor)> {
    let images = stack_images(sam, slices, synth)?;
    let n = slices.len();
    let mut predictions = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let count = batch.min(n - start) as i64;
        let input = model_input(sam, &images.narrow(0, start as i64, count))?;
        let logits = tch::no_grad(|| -> Result<Tensor> {
            let embeddings = sam.encode_images(&input)?;
            decode_with_prompts(
                sam,
                &embeddings,
                &vec![SlicePrompts::default(); count as usize],
            )
        })?;
        predictions.push(logits.argmax(1, false).to_device(tch::Device::Cpu));
    }
    let predicted = Tensor::cat(&predictions, 0);
    let side = predicted.size()[1];
    let reference = super::loss::downsample_labels(&slices.classes, side)?;
    Ok((predicted, reference))
}

fn dice_of(predicted: &Tensor, reference: &Tensor, class: i64) -> Option<f64> {
    let p = predicted.eq(class);
    let r = reference.eq(class);
    let sizes = p.sum(Kind::Int64).int64_value(&[]) + r.sum(Kind::Int64).int64_value(&[]);
    if r.sum(Kind::Int64).int64_value(&[]) == 0 {
        return None;
    }
    let overlap = p.logical_and(&r).sum(Kind::Int64).int64_value(&[]);
    Some(2.0 * overlap as f64 / sizes as f64)
}

/// Per-structure Dice of one slice stack (no prompts), on the low-res grid.
pub fn slice_stack_dice(
    sam: &Sam,
    slices: &SubjectSlices,
    synth: &SynthSection,
) -> Result<Vec<Option<f64>>> {
    let (mut predicted, mut reference) = predict_stack(sam, slices, synth, 8)?;
    // Subjects with held-out slices are scored on those only.
    if slices.held_out.iter().any(|&h| h) {
        let kept: Vec<i64> = (0..slices.len() as i64)
            .filter(|&i| slices.held_out[i as usize])
            .collect();
        let kept = Tensor::from_slice(&kept);
        predicted = predicted.index_select(0, &kept);
        reference = reference.index_select(0, &kept);
    }
    Ok((1..=STRUCTURES as i64)
        .map(|k| dice_of(&predicted, &reference, k))
        .collect())
}

/// Validates the model on `subjects`: 3D through a session when the subject has an
/// image and `three_d` is set, else per slice stack.
pub fn validate(
    sam: &Sam,
    var_store: &VarStore,
    subjects: &[ValidationSubject],
    three_d: bool,
    synth: &SynthSection,
    iteration: u64,
) -> Result<ValidationRecord> {
    if subjects.is_empty() {
        return Err(Error::InvalidState(
            "validation needs at least one validation subject".into(),
        ));
    }
    let mut per_subject = Vec::new();
    let model = if three_d {
        Some(inference_model(sam, var_store)?)
    } else {
        None
    };
    for subject in subjects {
        let dice = match (&model, &subject.image) {
            (Some(model), Some(image)) => {
                let mut session = Session::new(model.clone(), SessionOptions::default())?;
                session.set_volume(image.clone())?;
                let labels = session.segment_all(&mut |_, _| true)?;
                let evaluation = match &subject.scored_planes {
                    Some(planes) => evaluate(
                        &planes.restrict(labels)?,
                        &planes.restrict(&subject.reference)?,
                    )?,
                    None => evaluate(labels, &subject.reference)?,
                };
                evaluation
                    .structures
                    .iter()
                    .map(|s| {
                        if s.reference_voxels > 0 {
                            s.dice.or(Some(0.0))
                        } else {
                            None
                        }
                    })
                    .collect()
            }
            _ => tch::no_grad(|| slice_stack_dice(sam, &subject.slices, synth))?,
        };
        per_subject.push(dice);
    }
    let structure_dice = average(&per_subject);
    Ok(ValidationRecord {
        iteration,
        mean_dice: mean_dice(&structure_dice),
        structure_dice,
    })
}

/// How a prompted evaluation prompts each (slice, structure) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalPrompt {
    /// No prompt (automatic segmentation).
    None,
    /// The structure's tight bounding box.
    Box,
    /// One positive point at the structure pixel nearest its centroid.
    CentrePoint,
}

/// Dice of each prompted structure's mask (argmax over the classes == structure),
/// pooled over every (slice, present structure) pair of the stacks; the same pairs
/// are scored with or without prompts, so the values compare directly.
pub fn prompted_dice(
    sam: &Sam,
    stacks: &[&SubjectSlices],
    prompt: EvalPrompt,
    synth: &SynthSection,
) -> Result<f64> {
    let (mut overlap, mut total) = (0i64, 0i64);
    for slices in stacks {
        let images = stack_images(sam, slices, synth)?;
        let side = slices.classes.size()[1] as usize;
        for index in 0..slices.len() {
            let classes_tensor = gather_slices(&slices.classes, &[index]).squeeze_dim(0);
            let classes: Vec<u8> = Vec::try_from(&classes_tensor.flatten(0, -1))?;
            let present = present_structures(&classes);
            if present.is_empty() {
                continue;
            }
            let input = model_input(sam, &images.narrow(0, index as i64, 1))?;
            let embedding = tch::no_grad(|| sam.encode_images(&input))?;
            let prompts: Vec<SlicePrompts> = present
                .iter()
                .map(|&structure| match prompt {
                    EvalPrompt::None => SlicePrompts::default(),
                    EvalPrompt::Box => SlicePrompts {
                        points: Vec::new(),
                        bounding_box: structure_box(&classes, side, structure)
                            .map(|b| b.map(f64::from)),
                    },
                    EvalPrompt::CentrePoint => SlicePrompts {
                        points: vec![centre_point(&classes, side, structure)],
                        bounding_box: None,
                    },
                })
                .collect();
            let embeddings = embedding.expand([present.len() as i64, -1, -1, -1], false);
            let logits =
                tch::no_grad(|| decode_with_prompts(sam, &embeddings.contiguous(), &prompts))?;
            let predicted = logits.argmax(1, false).to_device(tch::Device::Cpu);
            let reference =
                super::loss::downsample_labels(&classes_tensor.unsqueeze(0), predicted.size()[1])?
                    .squeeze_dim(0);
            for (row, &structure) in present.iter().enumerate() {
                let p = predicted.get(row as i64).eq(i64::from(structure));
                let r = reference.eq(i64::from(structure));
                overlap += 2 * p.logical_and(&r).sum(Kind::Int64).int64_value(&[]);
                total += p.sum(Kind::Int64).int64_value(&[]) + r.sum(Kind::Int64).int64_value(&[]);
            }
        }
    }
    Ok(if total == 0 {
        0.0
    } else {
        overlap as f64 / total as f64
    })
}

/// The structure pixel nearest the structure's centroid, as a positive point.
fn centre_point(classes: &[u8], side: usize, structure: u8) -> PointPrompt {
    let pixels: Vec<(f32, f32)> = classes
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == structure)
        .map(|(i, _)| ((i % side) as f32 + 0.5, (i / side) as f32 + 0.5))
        .collect();
    let n = pixels.len().max(1) as f32;
    let (cx, cy) = pixels
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let nearest = pixels
        .iter()
        .copied()
        .min_by(|a, b| {
            let da = (a.0 - cx).powi(2) + (a.1 - cy).powi(2);
            let db = (b.0 - cx).powi(2) + (b.1 - cy).powi(2);
            da.total_cmp(&db)
        })
        .unwrap_or((cx, cy));
    PointPrompt {
        x: f64::from(nearest.0),
        y: f64::from(nearest.1),
        positive: true,
    }
}

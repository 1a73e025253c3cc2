//! Segmentation sessions: one volume, its cached image embeddings, the automatic
//! 13-class result, and the user's prompts per structure and slice.
//!
//! A [`Session`] works on the stack of canonical coronal slices that
//! [`SliceGeometry`] defines over the automatically found region of interest:
//! only those slices are encoded (the expensive step, done once and cached);
//! prompts then re-run only the prompt encoder and mask decoder.
//!
//! Rooms: [`input`] (slice stack and model input, shared with training), `views`
//! (test-time views), `memory` (encoder batch sizing, embedding cache, retry on
//! out-of-memory), `prompts` (points and boxes); this file holds the session itself:
//! its volume state, automatic and interactive segmentation, and the results.

pub mod input;
mod memory;
mod options;
mod orientations;
mod prompts;
mod propagate;
pub mod qc;
pub mod simulate;
mod views;

pub use input::{context_step, gather_with_context, model_input, SliceStack};
pub use memory::{EmbeddingCache, DEVICE_MEMORY_RESERVE_BYTES};
pub use prompts::{PointPrompt, SlicePrompts, MAX_POINTS_PER_SLICE};
pub use propagate::{covered_slices, PropagationDirection, PropagationOptions};

pub(crate) use input::array3_to_tensor;
use orientations::OrientationAverage;
pub(crate) use prompts::four_neighbours;
use prompts::{box_confirms, constrain_to_prompts, correct_with_click, fit_to_box, locate};
use views::{shift_content, View};

// Model loading lives in `model::load`; re-exported here for the layers that open a
// model and a session together.
pub use crate::model::load::{
    default_model_path, init_model, save_model, DeviceChoice, Model, ModelOptions, Precision,
    CONFIG_METADATA_KEY,
};
pub use options::SessionSwitches;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tch::{Kind, Tensor};

use crate::cleanup::{clean_labels, CleanupOptions};
use crate::error::{Error, Result};
use crate::labels::{MIRRORED_CLASSES, NUM_CLASSES};
use crate::model::Prompts;
use crate::volume::normalize::NormalizeConfig;
use crate::volume::slicing::SliceGeometry;
use crate::volume::{LabelVolume, Volume};

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Slices encoded per forward pass; 0 (the default) sizes batches automatically:
    /// 4 on the CPU, and on a CUDA device as many (up to 32) as its free memory holds.
    /// A batch that runs out of device memory is retried in halves.
    pub batch_size: usize,
    /// Where embeddings are cached.
    pub embedding_cache: EmbeddingCache,
    /// Automatic segmentation also segments the left-right mirrored slices and averages
    /// the two (left and right classes swapped back): about twice the encoder time for
    /// a more accurate and more symmetric result. Prompts are not affected.
    pub mirror_averaging: bool,
    /// Automatic segmentation also segments each slice with its content shifted by half
    /// an encoder patch right, down, and both (4 mm for the default model) and averages
    /// the four results, shifted back (with mirror averaging, each shifted
    /// grid is mirrored too): about four times the encoder time for a more accurate
    /// result, since the patch grid of the encoder then falls differently on the anatomy.
    pub shift_averaging: bool,
    /// Automatic segmentation also runs the model's models of other slice orientations
    /// ([`Model::other_views`]: the default model's axial and sagittal models), each with
    /// the views it takes (see `View::averaged`), and averages their class probabilities
    /// with this model's in 3D (FastSurfer's view aggregation): about twice the time with
    /// the default model. Prompts are not affected.
    pub view_averaging: bool,
    /// 3D clean-up applied to the automatic result.
    pub cleanup: CleanupOptions,
    /// Intensity normalisation.
    pub normalize: NormalizeConfig,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            batch_size: 0,
            embedding_cache: EmbeddingCache::Auto,
            mirror_averaging: true,
            shift_averaging: true,
            view_averaging: true,
            cleanup: CleanupOptions::default(),
            normalize: NormalizeConfig::default(),
        }
    }
}

/// Progress of a long operation: called with (done, total); return `false` to cancel.
pub type ProgressFn<'a> = dyn FnMut(usize, usize) -> bool + 'a;

/// Volume and statistics of one structure in the current label volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StructureStats {
    /// Number of voxels labelled with the structure.
    pub voxels: usize,
    /// Volume in mm³.
    pub volume_mm3: f64,
    /// Mean model probability of the structure over the pixels it won, in [0, 1]
    /// (0 when absent).
    pub confidence: f64,
}

struct VolumeState {
    volume: Volume,
    geometry: SliceGeometry,
    /// Normalised slice images `[n, size, size]` in [0, 1], on the CPU.
    images: Tensor,
    /// Cached image embeddings per slice, `[1, C, h, w]` on the model's device.
    embeddings: Vec<Option<Tensor>>,
    /// Latest class logits per slice, `[classes, m, m]` on the CPU.
    logits: Vec<Option<Tensor>>,
    labels: LabelVolume,
    prompts: BTreeMap<(u8, usize), SlicePrompts>,
    /// The (structure, slice) boxes that propagation set: grown by a margin on purpose,
    /// so they are not fitted to (see [`prompts::fit_to_box`]).
    propagated_boxes: BTreeSet<(u8, usize)>,
    /// Class logits per slice of the automatic result (`[classes, m, m]`, CPU), the base
    /// the interactive masks are laid over; a slice never segmented automatically gets
    /// its single-view unprompted decode when first prompted.
    automatic_logits: Vec<Option<Tensor>>,
    /// The label volume as the last automatic segmentation left it (all background
    /// before): what a slice returns to when its prompts are cleared.
    automatic_labels: LabelVolume,
    /// Interactive masks per (structure, slice): binary logits `[m, m]` (CPU) of the
    /// interactive head for that structure's prompts on that slice.
    interactive_masks: BTreeMap<(u8, usize), Tensor>,
    /// For the interactive masks of clicks alone: the clicks each was built from, so the
    /// next click continues from that mask instead of starting again (see
    /// [`Session::decode_clicks`]).
    mask_clicks: BTreeMap<(u8, usize), Vec<PointPrompt>>,
}

/// One volume being segmented with one model.
pub struct Session {
    model: Arc<Model>,
    options: SessionOptions,
    state: Option<VolumeState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("model", &self.model)
            .field("has_volume", &self.state.is_some())
            .finish()
    }
}

/// Number of structures (class ids 1..=12).
const NUM_STRUCTURES: u8 = (NUM_CLASSES - 1) as u8;

fn check_structure(structure: u8) -> Result<()> {
    if (1..=NUM_STRUCTURES).contains(&structure) {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "structure {structure} is not a class id: use 1..={NUM_STRUCTURES}"
        )))
    }
}

impl Session {
    /// A session on `model` (shared; the session keeps it alive).
    pub fn new(model: Arc<Model>, options: SessionOptions) -> Result<Self> {
        Ok(Session {
            model,
            options,
            state: None,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn state(&self) -> Result<&VolumeState> {
        self.state
            .as_ref()
            .ok_or_else(|| Error::InvalidState("no volume set: call set_volume first".into()))
    }

    fn state_mut(&mut self) -> Result<&mut VolumeState> {
        self.state
            .as_mut()
            .ok_or_else(|| Error::InvalidState("no volume set: call set_volume first".into()))
    }

    /// Forgets the volume with its prompts and results (later calls that need one say
    /// "no volume set").
    pub fn clear_volume(&mut self) {
        self.state = None;
    }

    /// Sets the volume to segment (replacing any earlier one with its prompts and
    /// results): finds the region of interest and prepares its slices. Nothing is
    /// encoded yet.
    pub fn set_volume(&mut self, volume: Volume) -> Result<()> {
        // The previous volume goes first: if this one is refused, later calls must say
        // "no volume", not answer with the old volume's labels.
        self.state = None;
        let input_size = self.model.config().input_size as usize;
        let SliceStack { geometry, images } = SliceStack::build(
            &volume,
            input_size,
            self.model.config().slice_orientation,
            &self.options.normalize,
        )?;
        let n = geometry.n_slices();
        let labels = LabelVolume::zeros(volume.grid().clone());
        self.state = Some(VolumeState {
            volume,
            geometry,
            images,
            embeddings: (0..n).map(|_| None).collect(),
            logits: (0..n).map(|_| None).collect(),
            automatic_logits: (0..n).map(|_| None).collect(),
            automatic_labels: labels.clone(),
            labels,
            prompts: BTreeMap::new(),
            propagated_boxes: BTreeSet::new(),
            interactive_masks: BTreeMap::new(),
            mask_clicks: BTreeMap::new(),
        });
        Ok(())
    }

    /// The volume, if set.
    pub fn volume(&self) -> Option<&Volume> {
        self.state.as_ref().map(|s| &s.volume)
    }

    /// The slice geometry (coronal axis, slices, field of view), if a volume is set.
    pub fn geometry(&self) -> Option<&SliceGeometry> {
        self.state.as_ref().map(|s| &s.geometry)
    }

    /// Class logits `[b, classes, m, m]` (on the model's device) of `embeddings` decoded
    /// without prompts: every mask token at once.
    fn decode_unprompted(&self, embeddings: &Tensor) -> Result<Tensor> {
        let output = tch::no_grad(|| self.model.sam().decode(embeddings, &Prompts::none()))?;
        Ok(output.low_res_logits)
    }

    /// Automatic segmentation of the whole region of interest: encodes every slice
    /// (cached), decodes all 13 classes without prompts (averaging the mirrored and
    /// shifted views the options ask for), maps the result back to the volume's grid and
    /// applies the session's 3D clean-up. Prompts given earlier are kept but not applied
    /// (use [`Session::segment_structure`]).
    pub fn segment_all(&mut self, progress: &mut ProgressFn<'_>) -> Result<&LabelVolume> {
        let model = Arc::clone(&self.model);
        // The base model of an adapter (for the structures it keeps) and the models of
        // other slice orientations run on the same volume in sessions of their own (with
        // this session's views, and no orientations of their own: with an adapter the
        // file's other orientations, made for the unadapted model, are not used).
        let companion_session = |companion: &Arc<Model>| -> Result<Session> {
            let options = SessionOptions {
                view_averaging: false,
                ..self.options.clone()
            };
            let mut session = Session::new(Arc::clone(companion), options)?;
            session.set_volume(self.state()?.volume.clone())?;
            Ok(session)
        };
        let mut base = match model.base_fallback() {
            Some(fallback) => Some((companion_session(&fallback.base)?, fallback)),
            None => None,
        };
        let mut other_views = if self.options.view_averaging {
            model
                .other_views()
                .iter()
                .map(companion_session)
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        // Progress counts the slices every session encodes.
        let total = self.automatic_encodings()?
            + base
                .as_ref()
                .map_or(Ok(0), |(session, _)| session.automatic_encodings())?
            + other_views
                .iter()
                .map(Session::automatic_encodings)
                .sum::<Result<usize>>()?;
        let mut done = 0;
        let mut decoded = self.automatic_logits(progress, done, total)?;
        done += self.automatic_encodings()?;
        if let Some((session, fallback)) = &mut base {
            let from_base = session.automatic_logits(progress, done, total)?;
            done += session.automatic_encodings()?;
            decoded = decoded
                .iter()
                .zip(&from_base)
                .map(|(a, b)| keep_base_structures(a, b, &fallback.structures))
                .collect::<Result<Vec<_>>>()?;
        }
        if !other_views.is_empty() {
            decoded =
                self.average_other_views(&decoded, &mut other_views, progress, done, total)?;
        }
        let cleanup = self.options.cleanup;
        let state = self.state_mut()?;
        let probabilities = stack_probabilities(&decoded)?;
        state.logits = decoded.into_iter().map(Some).collect();
        let mut labels = state
            .geometry
            .map_scores_back(state.volume.grid(), probabilities.view())?;
        clean_labels(
            labels.data_mut(),
            state.volume.grid().dims(),
            NUM_STRUCTURES,
            cleanup,
        );
        state.automatic_logits = state
            .logits
            .iter()
            .map(|l| l.as_ref().map(Tensor::shallow_clone))
            .collect();
        state.automatic_labels = labels.clone();
        state.interactive_masks.clear();
        state.mask_clicks.clear();
        state.labels = labels;
        Ok(&state.labels)
    }

    /// The automatic logits `[classes, m, m]` (CPU) of every slice, averaged over the
    /// session's views. Progress counts encoded slices, as part `part` of `parts` equal
    /// parts of the caller's work.
    fn automatic_logits(
        &mut self,
        progress: &mut ProgressFn<'_>,
        done_before: usize,
        total: usize,
    ) -> Result<Vec<Tensor>> {
        let n = self.state()?.geometry.n_slices();
        let all: Vec<usize> = (0..n).collect();
        let views = View::averaged(&self.options, self.model.config());
        self.ensure_embeddings(&all, progress, done_before, total)?;
        // Every other view's logits are brought back to the plain view (mirrored back with
        // left and right classes swapped, shifted back) and averaged with it (test-time
        // augmentation) on the device, batch by batch.
        let swap = Tensor::from_slice(&MIRRORED_CLASSES).to_device(self.model.device());
        let mut decoded = Vec::with_capacity(n);
        let mut done = done_before + n;
        for batch in all.chunks(self.batch_size()) {
            let state = self.state()?;
            let embeddings = Tensor::cat(
                &batch
                    .iter()
                    .map(|&i| state.embeddings[i].as_ref().expect("encoded above"))
                    .collect::<Vec<_>>(),
                0,
            );
            let mut sum = self.decode_unprompted(&embeddings)?;
            for &view in views.iter().filter(|&&view| view != View::default()) {
                let embeddings = self.encode_batch(state, batch, view)?;
                let mut logits = self.decode_unprompted(&embeddings)?;
                if view.mirrored {
                    logits = logits.f_flip([3])?.f_index_select(1, &swap)?;
                }
                // Edge pixels stand in for the row and column shifted out.
                logits = shift_content(&logits, 3, -view.shift.0, true)?;
                logits = shift_content(&logits, 2, -view.shift.1, true)?;
                sum += logits;
                done += batch.len();
                if !progress(done, total) {
                    return Err(Error::Cancelled);
                }
            }
            let logits = (sum / views.len() as f64).to_device(tch::Device::Cpu);
            for (position, &slice) in batch.iter().enumerate() {
                decoded.push(self.on_its_side(slice, logits.get(position as i64))?);
            }
        }
        Ok(decoded)
    }

    /// `logits` (`[classes, m, m]`, CPU) of stack slice `slice` with left and right
    /// classes on the slice's side: a model that cannot tell left from right (sagittal)
    /// gives every structure as its left class, so on slices right of the midline (the
    /// region of interest's centre) the left and right classes trade places. Other
    /// models' logits are returned as they are.
    fn on_its_side(&self, slice: usize, logits: Tensor) -> Result<Tensor> {
        if self
            .model
            .config()
            .slice_orientation
            .tells_left_from_right()
        {
            return Ok(logits);
        }
        let right = self
            .state()?
            .geometry
            .slice_before_centre(slice)
            .ok_or_else(|| Error::Internal(format!("slice {slice} is not in the stack")))?;
        if !right {
            return Ok(logits);
        }
        Ok(logits.f_index_select(0, &Tensor::from_slice(&MIRRORED_CLASSES))?)
    }

    /// Slices automatic segmentation encodes in this session (every slice once per
    /// averaged view): the unit of its progress.
    fn automatic_encodings(&self) -> Result<usize> {
        let views = View::averaged(&self.options, self.model.config());
        Ok(views.len() * self.state()?.geometry.n_slices())
    }

    /// `logits` (this model's automatic logits per slice) averaged in probability with
    /// the automatic results of `views` (sessions of models of other slice orientations
    /// on the same volume), each resampled onto this session's slices and weighted as
    /// FastSurfer weighs its orientations ([`orientations::OrientationAverage`]: a
    /// sagittal model's structures take their side from the others); returned as
    /// log-probabilities (they softmax back to the average). Pixels a view does not cover
    /// keep the other views' average. Progress continues from `done` towards `total`.
    fn average_other_views(
        &self,
        logits: &[Tensor],
        views: &mut [Session],
        progress: &mut ProgressFn<'_>,
        mut done: usize,
        total: usize,
    ) -> Result<Vec<Tensor>> {
        let state = self.state()?;
        let probabilities = stack_probabilities(logits)?;
        let m = probabilities.dim().2;
        let mut average =
            OrientationAverage::new(probabilities, self.model.config().slice_orientation);
        // Orientations that cannot tell left from right come last, so that the average
        // they take their sides from is complete.
        views.sort_by_key(|view| {
            !view
                .model
                .config()
                .slice_orientation
                .tells_left_from_right()
        });
        for other in views.iter_mut() {
            let other_logits = other.automatic_logits(progress, done, total)?;
            done += other.automatic_encodings()?;
            let probabilities = stack_probabilities(&other_logits)?;
            let other_geometry = &other.state()?.geometry;
            let resampled =
                state
                    .geometry
                    .resample_scores_from(other_geometry, probabilities.view(), m)?;
            average.add(resampled.view(), other.model.config().slice_orientation)?;
        }
        Ok(average.log_probabilities())
    }

    /// Interactive path: applies the prompts of `structure` on coronal slice `plane`
    /// (voxel index along the slicing axis) and updates that slice of the label volume.
    /// Returns the number of voxels changed. The slice's embedding is computed once if
    /// needed.
    ///
    /// With a model that has an interactive head (the default model), the head turns
    /// the slice's box and clicks for `structure` into that structure's mask (with a
    /// box, blended with the automatic result's log-odds; a box alone drawn around the
    /// automatic result, each side within 3 mm of it, confirms that result where the
    /// head's mask overlaps it with an IoU of at least 0.5; clicks alone correct, one
    /// after the other in the order given, only the error each lies in, so a later click
    /// never undoes an earlier one's correction elsewhere), which
    /// replaces the structure on that slice of the automatic result: voxels inside the
    /// mask become `structure`, voxels of `structure` outside it go to the class the
    /// automatic result ranks next, other structures are untouched elsewhere. Without
    /// prompts (e.g. after [`Session::clear_prompts`]) the slice returns to the
    /// automatic result. Other models (official SAM checkpoints) run their own prompt
    /// encoder and mask decoder on the prompts, feeding the structure's previous logits
    /// as mask prompt, as before.
    pub fn segment_structure(&mut self, structure: u8, plane: usize) -> Result<usize> {
        check_structure(structure)?;
        let slice = stack_index(self.state()?, plane)?;
        self.ensure_embeddings(&[slice], &mut |_, _| true, 0, 1)?;
        if self.model.sam().has_interactive_head() {
            self.segment_structure_interactive(structure, slice)
        } else {
            self.segment_structure_all_tokens(structure, slice)
        }
    }

    /// The path of models without an interactive head: all mask tokens decoded with the
    /// prompts and the structure's previous logits as mask prompt.
    fn segment_structure_all_tokens(&mut self, structure: u8, slice: usize) -> Result<usize> {
        let state = self.state()?;
        let prompts = state
            .prompts
            .get(&(structure, slice))
            .cloned()
            .unwrap_or_default();
        let previous = state.logits[slice].as_ref().map(|l| {
            l.get(structure as i64)
                .view([1, 1, l.size()[1], l.size()[2]])
        });
        let mut model_prompts = self.model_prompts(&prompts);
        model_prompts.mask_input = previous.map(|p| p.to_device(self.model.device()));
        let embedding = state.embeddings[slice].as_ref().expect("encoded above");
        let output = tch::no_grad(|| self.model.sam().decode(embedding, &model_prompts))?;
        let logits = self.on_its_side(
            slice,
            output.low_res_logits.get(0).to_device(tch::Device::Cpu),
        )?;
        let state = self.state_mut()?;
        let probabilities = softmax_array(&logits)?;
        let changed = state.geometry.update_structure_on_slice(
            &mut state.labels,
            slice,
            probabilities.view(),
            structure,
        )?;
        state.logits[slice] = Some(logits);
        Ok(changed)
    }

    /// The interactive head's path (see [`Session::segment_structure`]).
    fn segment_structure_interactive(&mut self, structure: u8, slice: usize) -> Result<usize> {
        self.ensure_automatic_logits(slice)?;
        let state = self.state()?;
        let prompts = state
            .prompts
            .get(&(structure, slice))
            .filter(|p| !p.points.is_empty() || p.bounding_box.is_some())
            .cloned();
        let key = (structure, slice);
        let mut clicks = None;
        let mask = match prompts {
            Some(prompts) if prompts.bounding_box.is_none() => {
                let mask = self.decode_clicks(structure, slice, &prompts.points)?;
                clicks = Some(prompts.points);
                Some(mask)
            }
            Some(prompts) => Some(self.decode_box(structure, slice, &prompts)?),
            None => None,
        };
        let state = self.state_mut()?;
        match mask {
            Some(mask) => state.interactive_masks.insert(key, mask),
            None => state.interactive_masks.remove(&key),
        };
        match clicks {
            Some(clicks) => state.mask_clicks.insert(key, clicks),
            None => state.mask_clicks.remove(&key),
        };
        self.compose_slice(slice)
    }

    /// The interactive mask of `structure` on `slice` for clicks alone, built click by
    /// click as a user gives them: click k is decoded together with the clicks before it
    /// and corrects the mask the clicks before it left, only in the error it lies in
    /// ([`correct_with_click`]); the first corrects the automatic result. So a later click
    /// cannot undo what an earlier one corrected when the head changes its mind
    /// elsewhere (FocalClick's progressive merge). When the clicks extend those the
    /// stored mask was built from, only the new ones are decoded (one decode per click
    /// as a user works); otherwise the mask is built again from the first click, with
    /// the same result.
    fn decode_clicks(&self, structure: u8, slice: usize, points: &[PointPrompt]) -> Result<Tensor> {
        let state = self.state()?;
        let key = (structure, slice);
        let built = state
            .mask_clicks
            .get(&key)
            .filter(|built_from| points.starts_with(built_from))
            .zip(state.interactive_masks.get(&key));
        let (done, mut mask) = match built {
            Some((built_from, mask)) => (built_from.len(), mask.shallow_clone()),
            None => (0, self.automatic_odds(structure, slice)?),
        };
        for given in done + 1..=points.len() {
            let so_far = SlicePrompts {
                points: points[..given].to_vec(),
                bounding_box: None,
            };
            let head = self.decode_head(structure, slice, &so_far)?;
            mask = correct_with_click(&head, &mask, &points[given - 1], self.mask_scale())?;
        }
        Ok(mask)
    }

    /// The interactive head's mask of `structure` on `slice` for `prompts`: binary logits
    /// `[m, m]`, CPU.
    fn decode_head(&self, structure: u8, slice: usize, prompts: &SlicePrompts) -> Result<Tensor> {
        let embedding = self.state()?.embeddings[slice]
            .as_ref()
            .expect("encoded before");
        let logits = tch::no_grad(|| {
            self.model.sam().decode_interactive(
                embedding,
                &self.model_prompts(prompts),
                &[structure as i64],
            )
        })?;
        Ok(logits.get(0).get(0).to_device(tch::Device::Cpu))
    }

    /// The automatic result's log-odds of `structure` on `slice` (decoded before).
    fn automatic_odds(&self, structure: u8, slice: usize) -> Result<Tensor> {
        let automatic = self.state()?.automatic_logits[slice]
            .as_ref()
            .expect("decoded before");
        automatic_log_odds(automatic, structure)
    }

    /// Model-input pixels per pixel of the masks the decoders give.
    fn mask_scale(&self) -> f64 {
        self.model.config().input_size as f64 / self.model.config().low_res_size() as f64
    }

    /// The interactive mask of `structure` on `slice` for prompts with a box (and any
    /// clicks): binary logits `[m, m]`, CPU.
    fn decode_box(&self, structure: u8, slice: usize, prompts: &SlicePrompts) -> Result<Tensor> {
        let state = self.state()?;
        let scale = self.mask_scale();
        let automatic_odds = self.automatic_odds(structure, slice)?;
        // Propagated boxes are grown by a margin on purpose: not fitted.
        let propagated = state.propagated_boxes.contains(&(structure, slice));
        // A drawn box's sides are uncertain by about a voxel of the image in-plane.
        let voxel_px = state.geometry.in_plane_voxel_mm() / state.geometry.pixel_mm();
        let fits_automatic =
            !propagated && box_confirms(&automatic_odds, prompts, scale, voxel_px)?;
        let weight = if propagated {
            PROPAGATED_BOX_AUTOMATIC_WEIGHT
        } else {
            BOX_AUTOMATIC_WEIGHT
        };
        let mask = self.decode_head(structure, slice, prompts)? * (1.0 - weight)
            + &automatic_odds * weight;
        let mask = if propagated {
            mask
        } else {
            fit_to_box(&mask, prompts, scale, state.geometry.pixel_mm(), voxel_px)?
        };
        if fits_automatic {
            let agreement = overlap(&mask, &automatic_odds)?;
            log::debug!(
                "box around the automatic result: the head's mask overlaps it {agreement:.3}"
            );
            if agreement >= BOX_CONFIRM_MIN_IOU {
                return constrain_to_prompts(&automatic_odds, prompts, scale, voxel_px);
            }
        }
        constrain_to_prompts(&mask, prompts, scale, voxel_px)
    }

    /// Decodes slice `slice` without prompts (one view) when it has no automatic result
    /// yet, as the base for interactive masks.
    fn ensure_automatic_logits(&mut self, slice: usize) -> Result<()> {
        let state = self.state()?;
        if state.automatic_logits[slice].is_some() {
            return Ok(());
        }
        let embedding = state.embeddings[slice].as_ref().expect("encoded before");
        let logits = self.on_its_side(
            slice,
            self.decode_unprompted(embedding)?
                .get(0)
                .to_device(tch::Device::Cpu),
        )?;
        let state = self.state_mut()?;
        if state.logits[slice].is_none() {
            state.logits[slice] = Some(logits.shallow_clone());
        }
        state.automatic_logits[slice] = Some(logits);
        Ok(())
    }

    /// Rebuilds slice `slice` of the label volume: the automatic result, with the
    /// interactive masks of every structure prompted on that slice laid over it.
    /// Returns the number of voxels that changed.
    fn compose_slice(&mut self, slice: usize) -> Result<usize> {
        let state = self.state_mut()?;
        let automatic = state.automatic_logits[slice]
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("slice {slice} has no automatic logits")))?;
        let mut logits = automatic.shallow_clone();
        let structures: Vec<u8> = state
            .interactive_masks
            .keys()
            .filter(|&&(_, sl)| sl == slice)
            .map(|&(st, _)| st)
            .collect();
        for &structure in &structures {
            logits = with_structure_mask(
                &logits,
                structure,
                &state.interactive_masks[&(structure, slice)],
            )?;
        }
        let plane = state.geometry.slice_voxel_indices()[slice];
        let axis = state.geometry.frame().coronal_axis;
        let indices = plane_indices(state.labels.grid().dims(), axis, plane);
        let before: Vec<u8> = indices.iter().map(|&i| state.labels.data()[i]).collect();
        {
            let automatic_labels = state.automatic_labels.data();
            let labels = state.labels.data_mut();
            for &i in &indices {
                labels[i] = automatic_labels[i];
            }
        }
        if !structures.is_empty() {
            let probabilities = softmax_array(&logits)?;
            for &structure in &structures {
                state.geometry.update_structure_on_slice(
                    &mut state.labels,
                    slice,
                    probabilities.view(),
                    structure,
                )?;
            }
        }
        state.logits[slice] = Some(logits);
        let data = state.labels.data();
        Ok(indices
            .iter()
            .zip(&before)
            .filter(|(&i, &old)| data[i] != old)
            .count())
    }

    /// The interactive mask (binary logits `[m, m]`, CPU) of `structure` on coronal
    /// slice `plane`, if its prompts there were applied by the interactive head.
    pub fn interactive_mask(&self, structure: u8, plane: usize) -> Result<Option<Tensor>> {
        check_structure(structure)?;
        let state = self.state()?;
        let slice = stack_index(state, plane)?;
        Ok(state
            .interactive_masks
            .get(&(structure, slice))
            .map(Tensor::shallow_clone))
    }

    /// 3D interactive segmentation of `structure` from one box: the box (two opposite
    /// corners in voxel coordinates on one coronal slice, normally the structure's
    /// middle slice) is applied on its slice, then propagated slice by slice in both
    /// directions: each neighbouring slice gets as box the previous slice's mask's
    /// bounding box grown by 4 model-input pixels (2 mm for the default model), until the mask
    /// vanishes or the region of interest ends (see [`Session::propagate_structure`]). Earlier prompts of `structure` are
    /// cleared first. Needs a model with an interactive head. Returns the coronal slices
    /// (voxel indices along the slicing axis) that received a box, in ascending order.
    pub fn segment_structure_3d(
        &mut self,
        structure: u8,
        corner_a: [f64; 3],
        corner_b: [f64; 3],
    ) -> Result<Vec<usize>> {
        check_structure(structure)?;
        if !self.model.sam().has_interactive_head() {
            return Err(Error::Unsupported(
                "box propagation needs a model with an interactive head (the default model \
                 has one; official SAM checkpoints do not)"
                    .into(),
            ));
        }
        // Checked before anything is cleared.
        let state = self.state()?;
        let a = locate(state, corner_a)?;
        let b = locate(state, corner_b)?;
        if a.slice != b.slice {
            return Err(Error::invalid_argument(format!(
                "box corners {corner_a:?} and {corner_b:?} lie on different coronal slices"
            )));
        }
        self.clear_prompts(structure, None)?;
        let middle = self.add_box(structure, corner_a, corner_b)?;
        self.segment_structure(structure, middle)?;
        // An empty mask on the box's slice propagates nowhere.
        if self.mask_box(structure, a.slice)?.is_none() {
            return Ok(vec![middle]);
        }
        let mut touched = self.propagate_structure(
            structure,
            middle,
            PropagationOptions::default(),
            &mut |_, _| true,
        )?;
        touched.push(middle);
        touched.sort_unstable();
        Ok(touched)
    }

    /// The box for the slice after `slice` in a propagation: the bounding box of the
    /// interactive mask of `structure` on `slice` (in model-input pixels), grown by
    /// `PROPAGATION_MARGIN_PX`; None when that mask is empty.
    fn propagated_box(&self, structure: u8, slice: usize) -> Result<Option<[f64; 4]>> {
        let state = self.state()?;
        let Some(mask) = state.interactive_masks.get(&(structure, slice)) else {
            return Ok(None);
        };
        let side = mask.size()[1];
        let inside = Vec::<bool>::try_from(mask.gt(0.0).flatten(0, -1))?;
        let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
        for (index, _) in inside.iter().enumerate().filter(|(_, &v)| v) {
            let (x, y) = (index as i64 % side, index as i64 / side);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if x0 == i64::MAX {
            return Ok(None);
        }
        let scale = self.model.config().input_size as f64 / side as f64;
        let limit = self.model.config().input_size as f64;
        let m = PROPAGATION_MARGIN_PX;
        Ok(Some([
            (x0 as f64 * scale - m).clamp(0.0, limit),
            (y0 as f64 * scale - m).clamp(0.0, limit),
            ((x1 + 1) as f64 * scale + m).clamp(0.0, limit),
            ((y1 + 1) as f64 * scale + m).clamp(0.0, limit),
        ]))
    }

    /// The voxel axis (0, 1 or 2) the session slices along (closest to anterior-posterior).
    pub fn slicing_axis(&self) -> Result<usize> {
        Ok(self.state()?.geometry.frame().coronal_axis)
    }

    /// The current label volume (all background until a segmentation ran).
    pub fn labels(&self) -> Result<&LabelVolume> {
        Ok(&self.state()?.labels)
    }

    /// Input QC of the current label volume (see [`qc`]): which structures have an
    /// implausible volume or a low model confidence.
    pub fn quality(&self) -> Result<qc::QualityReport> {
        let stats = (1..=12u8)
            .map(|class| self.structure_stats(class).map(|s| (class, s)))
            .collect::<Result<Vec<_>>>()?;
        Ok(qc::QualityReport::from_stats(&stats))
    }

    /// The QC flags (`qc::QC_*` bits) of `structure` 1..=12, or of every structure
    /// together for 0.
    pub fn structure_qc(&self, structure: u8) -> Result<u32> {
        if structure == 0 {
            return Ok(self.quality()?.any_flags());
        }
        Ok(qc::structure_flags(
            structure,
            &self.structure_stats(structure)?,
        ))
    }

    /// Volume and confidence of `structure` in the current label volume.
    pub fn structure_stats(&self, structure: u8) -> Result<StructureStats> {
        check_structure(structure)?;
        let state = self.state()?;
        let voxels = state
            .labels
            .data()
            .iter()
            .filter(|&&l| l == structure)
            .count();
        let spacing = state.volume.grid().spacing();
        let voxel_mm3 = spacing[0] * spacing[1] * spacing[2];
        let (mut sum, mut count) = (0.0f64, 0usize);
        for logits in state.logits.iter().flatten() {
            let probabilities = logits.softmax(0, Kind::Float);
            let (best, winner) = probabilities.max_dim(0, false);
            let won = winner.eq(structure as i64);
            let won_count = won.sum(Kind::Int64).int64_value(&[]) as usize;
            if won_count > 0 {
                sum += best.masked_select(&won).sum(Kind::Double).double_value(&[]);
                count += won_count;
            }
        }
        Ok(StructureStats {
            voxels,
            volume_mm3: voxels as f64 * voxel_mm3,
            confidence: if count == 0 { 0.0 } else { sum / count as f64 },
        })
    }
}

/// How far (model-input pixels) [`Session::segment_structure_3d`] grows the previous
/// slice's mask's bounding box to make the next slice's box.
pub(crate) const PROPAGATION_MARGIN_PX: f64 = 4.0;

/// Weight of the automatic result's log-odds in a box-prompted mask (the interactive
/// head's has the rest) before the box constrains it: the automatic result averages
/// eight views of a longer-trained decoder, the head knows the box. Chosen on the
/// validation subjects (models/README.md, interactive head): 0.75 keeps the box plane
/// Dice and lifts a box propagated in 3D to about the automatic result; 1.0 (the
/// automatic result cut to the box) loses box Dice.
const BOX_AUTOMATIC_WEIGHT: f64 = 0.75;

/// Least overlap (intersection over union) of the head's mask for a box with the
/// automatic result for the box to confirm that result (see [`box_confirms`]): a box
/// that fits the automatic result's extent while the head finds a different shape inside
/// it says the automatic result is wrong there (a fragment or a thin rim spanning the
/// structure), and the head's mask is used.
const BOX_CONFIRM_MIN_IOU: f64 = 0.5;

/// Intersection over union of the pixels two logit maps (`[m, m]`) put above zero; 0 when
/// both are empty.
fn overlap(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.f_gt(0.0)?, b.f_gt(0.0)?);
    let intersection = f64::try_from(a.logical_and(&b).sum(Kind::Float))?;
    let union = f64::try_from(a.logical_or(&b).sum(Kind::Float))?;
    Ok(if union > 0.0 {
        intersection / union
    } else {
        0.0
    })
}

/// [`BOX_AUTOMATIC_WEIGHT`] for the boxes [`Session::segment_structure_3d`] propagates:
/// the previous slice's mask's box grown by [`PROPAGATION_MARGIN_PX`] says less than a
/// drawn box, so the automatic result counts more. Chosen on the validation subjects
/// (models/README.md, interactive head): one box propagated in 3D 0.820 / 0.827 / 0.829
/// with 0.75 / 0.9 / 1.0 (automatic 0.830); 0.9 keeps some of what the head makes of the
/// box (the amygdalae 0.806 / 0.792 against 0.787 / 0.784 automatic).
const PROPAGATED_BOX_AUTOMATIC_WEIGHT: f64 = 0.9;

/// Log-odds `[m, m]` of `structure` under the softmax of class logits `[classes, m, m]`.
fn automatic_log_odds(logits: &Tensor, structure: u8) -> Result<Tensor> {
    let own = Tensor::from_slice(&[structure as i64]);
    let others = logits
        .f_index_fill(0, &own, f64::NEG_INFINITY)?
        .f_logsumexp([0], false)?;
    Ok(logits.get(structure as i64) - others)
}

/// `logits` (`[classes, m, m]`) with class `structure`'s channel set so that its softmax
/// probability is the sigmoid of `mask` (binary logits `[m, m]`) while the other classes
/// keep their ratios: where the mask is off, the structure's pixels go to the class the
/// logits rank next.
fn with_structure_mask(logits: &Tensor, structure: u8, mask: &Tensor) -> Result<Tensor> {
    let classes = logits.size()[0];
    let own = Tensor::from_slice(&[structure as i64]);
    let others = logits
        .f_index_fill(0, &own, f64::NEG_INFINITY)?
        .f_logsumexp([0], false)?;
    let channels: Vec<Tensor> = (0..classes)
        .map(|k| {
            if k == structure as i64 {
                mask + &others
            } else {
                logits.get(k)
            }
        })
        .collect();
    Ok(Tensor::stack(&channels, 0))
}

/// Linear indices (x fastest) of the voxels of a `dims` grid whose coordinate along
/// `axis` is `plane`.
pub(crate) fn plane_indices(dims: [usize; 3], axis: usize, plane: usize) -> Vec<usize> {
    let [nx, ny, _] = dims;
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let mut indices = Vec::with_capacity(dims[a] * dims[b]);
    for v in 0..dims[b] {
        for u in 0..dims[a] {
            let mut ijk = [0; 3];
            ijk[axis] = plane;
            ijk[a] = u;
            ijk[b] = v;
            indices.push(ijk[0] + nx * (ijk[1] + ny * ijk[2]));
        }
    }
    indices
}

/// The stack index of coronal plane `plane`, or an error naming the ROI's planes.
fn stack_index(state: &VolumeState, plane: usize) -> Result<usize> {
    let planes = state.geometry.slice_voxel_indices();
    planes.iter().position(|&p| p == plane).ok_or_else(|| {
        let (low, high) = (planes.iter().min(), planes.iter().max());
        Error::invalid_argument(format!(
            "slice {plane} is outside the region of interest (slices {}..={} along voxel axis {})",
            low.copied().unwrap_or(0),
            high.copied().unwrap_or(0),
            state.geometry.frame().coronal_axis
        ))
    })
}

fn softmax_array(logits: &Tensor) -> Result<ndarray::Array3<f32>> {
    let probabilities = logits.f_softmax(0, Kind::Float)?.contiguous();
    let size = probabilities.size();
    let count = probabilities.numel();
    let mut values = vec![0f32; count];
    probabilities.f_copy_data(&mut values, count)?;
    ndarray::Array3::from_shape_vec(
        (size[0] as usize, size[1] as usize, size[2] as usize),
        values,
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

/// Mixes the automatic logits `[classes, m, m]` of an adapted model and of its base so
/// that each structure of `structures` lies where the base model puts it: pixels whose
/// most likely class under the base model is one of `structures`, and their neighbours,
/// take the base model's probabilities; on the other pixels the structures of `structures` keep the base
/// model's probabilities and the other classes share the rest as the adapted model
/// ranks them (unless that would make a handed-back structure the top class: then the
/// base model's probabilities again), so a handed-back structure is the top class of
/// exactly the pixels where the base model puts it. Returns log-probabilities (they softmax back to the mix). With every
/// structure handed back, the mix is the base model's output.
fn keep_base_structures(adapted: &Tensor, base: &Tensor, structures: &[u8]) -> Result<Tensor> {
    let adapted = adapted.f_softmax(0, Kind::Float)?;
    let base = base.f_softmax(0, Kind::Float)?;
    let classes = adapted.size()[0];
    let handed_back: Vec<f32> = (0..classes)
        .map(|c| {
            if structures.iter().any(|&s| i64::from(s) == c) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let handed_back = Tensor::from_slice(&handed_back);
    let side = adapted.size()[1..].to_vec();
    // 1 where the base model's top class is handed back, else 0: [1, m, m].
    let base_decides = handed_back
        .f_index_select(0, &base.argmax(0, false).flatten(0, -1))?
        .view([1, side[0], side[1]]);
    let handed_back = handed_back.view([classes, 1, 1]);
    let kept: Tensor = 1.0 - &handed_back;
    let sum = |t: &Tensor| t.sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
    let adapted_rest: Tensor = &adapted * &kept;
    let adapted_rest = &adapted_rest / sum(&adapted_rest).clamp_min(1e-12);
    let base_handed_back: Tensor = &base * &handed_back;
    let left: Tensor = 1.0 - sum(&base_handed_back);
    let shared = &base_handed_back + adapted_rest * left;
    // Where the shared mix would make a handed-back structure the top class although the
    // base model did not, the base model's probabilities are used as well.
    let top = |t: &Tensor| t.amax([0i64].as_slice(), true);
    let would_take = top(&(&shared * &handed_back))
        .ge_tensor(&top(&(&shared * &kept)))
        .to_kind(Kind::Float);
    // Grown by one pixel: slices are interpolated to voxels, and a structure's border
    // voxels then blend the base model's probabilities only, as in the base's output.
    let base_decides = base_decides
        .unsqueeze(0)
        .f_max_pool2d([3, 3], [1, 1], [1, 1], [1, 1], false)?
        .squeeze_dim(0);
    let from_base = base_decides.maximum(&would_take);
    let from_shared: Tensor = 1.0 - &from_base;
    let mixed = &base * &from_base + shared * from_shared;
    Ok(mixed.clamp_min(1e-12).log())
}

/// Class probabilities `[slices, classes, m, m]` of per-slice logits `[classes, m, m]`.
fn stack_probabilities(logits: &[Tensor]) -> Result<ndarray::Array4<f32>> {
    let slices: Vec<ndarray::Array3<f32>> =
        logits.iter().map(softmax_array).collect::<Result<_>>()?;
    let views: Vec<_> = slices.iter().map(|s| s.view()).collect();
    ndarray::stack(ndarray::Axis(0), &views).map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::STRUCTURES;
    use crate::model::{Sam, SamConfig};
    use crate::volume::frame::SliceOrientation;
    use prompts::{CLICK_FOCUS_RADIUS_PX, CLICK_REACH_PER_BORDER_DISTANCE};
    use views::half_patch_shift;

    #[test]
    fn overlap_is_intersection_over_union_of_positive_pixels() {
        let a = Tensor::from_slice(&[1.0f32, 1.0, -1.0, -1.0]).view([2, 2]);
        let b = Tensor::from_slice(&[1.0f32, -1.0, 1.0, -1.0]).view([2, 2]);
        assert!((overlap(&a, &b).unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(overlap(&a, &a).unwrap(), 1.0);
        let empty = Tensor::from_slice(&[-1.0f32; 4]).view([2, 2]);
        assert_eq!(overlap(&empty, &empty).unwrap(), 0.0);
    }

    #[test]
    fn handed_back_structures_are_top_exactly_where_the_base_puts_them() {
        tch::manual_seed(11);
        let options = (Kind::Float, tch::Device::Cpu);
        let adapted = Tensor::randn([13, 16, 16], options) * 3.0;
        let base = Tensor::randn([13, 16, 16], options) * 3.0;
        let top = |t: &Tensor| Vec::<i64>::try_from(t.argmax(0, false).flatten(0, -1)).unwrap();
        let mixed = keep_base_structures(&adapted, &base, &[1, 7]).unwrap();
        let (mixed_top, base_top, adapted_top) = (top(&mixed), top(&base), top(&adapted));
        for pixel in 0..mixed_top.len() {
            for class in [1, 7] {
                assert_eq!(
                    mixed_top[pixel] == class,
                    base_top[pixel] == class,
                    "pixel {pixel}, class {class}"
                );
            }
        }
        // Elsewhere the adapted model decides wherever the base's neighbourhood is not
        // involved: some pixels follow it against the base (the check can fail).
        assert!((0..mixed_top.len()).any(|p| mixed_top[p] == adapted_top[p]
            && adapted_top[p] != base_top[p]
            && ![1, 7].contains(&adapted_top[p])));
        // Every structure handed back: the base model's output.
        let all: Vec<u8> = (1..=12).collect();
        let mixed = keep_base_structures(&adapted, &base, &all).unwrap();
        let expected = base.softmax(0, Kind::Float);
        assert!(mixed.exp().allclose(&expected, 1e-5, 1e-6, false));
    }

    #[test]
    fn a_box_prompt_fits_the_mask_to_the_box_within_the_offset_range() {
        // A soft disc of radius 3 around (8, 8): logits 1.5 - d / 2 (scale 1).
        let side = 17i64;
        let disc: Vec<f32> = (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32 - 8.0, (i / side) as f32 - 8.0);
                1.5 - (x * x + y * y).sqrt() / 2.0
            })
            .collect();
        let mask = Tensor::from_slice(&disc).view([side, side]);
        let extent = |t: &Tensor| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
            let xs: Vec<i64> = (0..v.len() as i64)
                .filter(|&i| v[i as usize] > 0.0)
                .collect();
            let x0 = xs.iter().map(|i| i % side).min().unwrap();
            let x1 = xs.iter().map(|i| i % side).max().unwrap();
            (x0, x1)
        };
        assert_eq!(extent(&mask), (6, 10));
        let boxed = |b: [f64; 4]| SlicePrompts {
            points: Vec::new(),
            bounding_box: Some(b),
        };
        // A box of radius 5 (pixel centres 3.5 .. 13.5): the disc grows to fill it.
        let grown = fit_to_box(&mask, &boxed([3.0, 3.0, 13.0, 13.0]), 1.0, 1.0, 0.0).unwrap();
        assert_eq!(extent(&grown), (3, 13));
        // A box of radius 1: it shrinks.
        let tighter = fit_to_box(&mask, &boxed([7.0, 7.0, 9.0, 9.0]), 1.0, 1.0, 0.0).unwrap();
        assert_eq!(extent(&tighter), (7, 9));
        // A box that fits already, and points only: unchanged.
        let same = fit_to_box(&mask, &boxed([6.0, 6.0, 10.0, 10.0]), 1.0, 1.0, 0.0).unwrap();
        assert!(same.equal(&mask));
        let points = fit_to_box(&mask, &SlicePrompts::default(), 1.0, 1.0, 0.0).unwrap();
        assert!(points.equal(&mask));
        // A loose box gains at most the largest offset (2 logits): radius below 3 + 4.
        let loose = fit_to_box(&mask, &boxed([-4.0, -4.0, 20.0, 20.0]), 1.0, 1.0, 0.0).unwrap();
        assert_eq!(extent(&loose), (2, 14));
        // With a voxel (1 pixel) of slack, a box whose sides each lie within a voxel of
        // the mask says nothing the mask does not: unchanged; farther, it still fits.
        let drawn = fit_to_box(&mask, &boxed([7.0, 5.0, 11.0, 9.0]), 1.0, 1.0, 1.0).unwrap();
        assert!(drawn.equal(&mask));
        let grown = fit_to_box(&mask, &boxed([3.0, 3.0, 13.0, 13.0]), 1.0, 1.0, 1.0).unwrap();
        assert_eq!(extent(&grown), (4, 12));
    }

    #[test]
    fn a_box_on_coarse_voxels_may_be_drawn_a_voxel_inside_the_structure() {
        use prompts::BOX_CONSTRAINT_MARGIN_PX;
        // 32 x 32 pixels, scale 1, everything the structure; a box over pixels 10..=20.
        let mask = Tensor::full([32, 32], 3.0, (Kind::Float, tch::Device::Cpu));
        let prompts = SlicePrompts {
            points: Vec::new(),
            bounding_box: Some([10.0, 10.0, 20.0, 20.0]),
        };
        let kept_columns = |voxel_px: f64| {
            let constrained = constrain_to_prompts(&mask, &prompts, 1.0, voxel_px).unwrap();
            let values = Vec::<f32>::try_from(constrained.get(15)).unwrap();
            values.iter().filter(|&&v| v > 0.0).count()
        };
        // Fine voxels: the box's own 11 columns and the margin each side.
        let margin = BOX_CONSTRAINT_MARGIN_PX as usize;
        assert_eq!(kept_columns(1.0), 11 + 2 * margin);
        // Voxels 6 pixels wide (3 mm at 0.5 mm pixels): a voxel and a pixel each side.
        assert_eq!(kept_columns(6.0), 11 + 2 * 7);
    }

    #[test]
    fn a_small_box_where_the_model_sees_nothing_is_half_filled() {
        let side = 32i64;
        // The model finds nothing (log-odds -6 to -5), likeliest towards pixel (20, 20).
        let logits: Vec<f32> = (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32 - 20.0, (i / side) as f32 - 20.0);
                -5.0 - (x * x + y * y).sqrt() / 50.0
            })
            .collect();
        let mask = Tensor::from_slice(&logits).view([side, side]);
        let positive_in = |t: &Tensor, [x0, y0, x1, y1]: [usize; 4]| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
            let (mut inside, mut outside) = (0, 0);
            for (i, &value) in v.iter().enumerate() {
                let (x, y) = (i % side as usize, i / side as usize);
                let within = (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
                match (value > 0.0, within) {
                    (true, true) => inside += 1,
                    (true, false) => outside += 1,
                    _ => {}
                }
            }
            (inside, outside)
        };
        let boxed = |b: [f64; 4]| SlicePrompts {
            points: Vec::new(),
            bounding_box: Some(b),
        };
        // 6 x 6 pixels of 2 mm (144 mm²): at least 18 of its 36 pixels, the ones nearest
        // (20, 20) (ties aside; what lies outside the box is cut by constrain_to_prompts).
        let small = fit_to_box(&mask, &boxed([16.0, 16.0, 21.0, 21.0]), 1.0, 2.0, 1.0).unwrap();
        let (inside, _) = positive_in(&small, [16, 16, 21, 21]);
        assert!((18..=20).contains(&inside), "{inside} of 36 filled");
        let filled = Vec::<f32>::try_from(small.flatten(0, -1)).unwrap();
        assert!(
            filled[(20 * side + 20) as usize] > 0.0,
            "the likeliest pixel"
        );
        assert!(
            filled[(16 * side + 16) as usize] < 0.0,
            "the least likely corner"
        );
        // The same box in 3 mm pixels (324 mm²) is no longer small: the model decides.
        let large = fit_to_box(&mask, &boxed([16.0, 16.0, 21.0, 21.0]), 1.0, 3.0, 1.0).unwrap();
        assert_eq!(positive_in(&large, [16, 16, 21, 21]), (0, 0));
    }

    #[test]
    fn a_click_corrects_only_the_disagreement_it_is_placed_in() {
        // 32 x 32 output pixels, scale 1. The automatic result holds the structure at
        // x < 10; the head adds a blob at x 14..=17 (where the click is) and, apart
        // from it but within the focus radius, a second one at x 24..=25.
        let side = 32i64;
        let at = |i: i64| (i % side, i / side);
        let automatic: Vec<f32> = (0..side * side)
            .map(|i| if at(i).0 < 10 { 3.0 } else { -3.0 })
            .collect();
        let head: Vec<f32> = (0..side * side)
            .map(|i| match at(i) {
                (x, _) if x < 10 => 2.0,
                (x, y) if (14..=17).contains(&x) && (12..=19).contains(&y) => 1.0,
                (x, y) if (24..=25).contains(&x) && (12..=19).contains(&y) => 1.0,
                _ => -2.0,
            })
            .collect();
        let to_map = |v: &[f32]| Tensor::from_slice(v).view([side, side]);
        let click = PointPrompt {
            x: 15.0,
            y: 15.0,
            positive: true,
        };
        let focused = correct_with_click(&to_map(&head), &to_map(&automatic), &click, 1.0).unwrap();
        let values = Vec::<f32>::try_from(focused.flatten(0, -1)).unwrap();
        for (i, &value) in values.iter().enumerate() {
            let (x, y) = at(i as i64);
            let clicked_blob = (14..=17).contains(&x) && (12..=19).contains(&y);
            // The click's pixel centre (15.5, 15.5) lies 6 pixels from the automatic
            // result (x < 10): it decides the full 4 pixels around it.
            let decided = (x as f64 - 15.0).hypot(y as f64 - 15.0) <= 4.0;
            // Those decided; the clicked blob from the head; everything else (the other
            // blob, the border the two draw alike) from the automatic result.
            let expected = if decided {
                8.0
            } else if clicked_blob {
                head[i]
            } else {
                automatic[i]
            };
            assert_eq!(value, expected, "pixel ({x}, {y})");
        }
    }

    #[test]
    fn a_positive_click_only_adds_and_a_negative_one_only_removes() {
        // 32 x 32 output pixels, scale 1. Side by side on rows 12..=19: x 14..=17 the head
        // calls the structure and the automatic result does not; x 18..=21 the reverse.
        let side = 32i64;
        let at = |i: i64| (i % side, i / side);
        let rows = |y: i64| (12..=19).contains(&y);
        let missed = |x: i64, y: i64| (14..=17).contains(&x) && rows(y);
        let extra = |x: i64, y: i64| (18..=21).contains(&x) && rows(y);
        let automatic: Vec<f32> = (0..side * side)
            .map(|i| if extra(at(i).0, at(i).1) { 3.0 } else { -3.0 })
            .collect();
        let head: Vec<f32> = (0..side * side)
            .map(|i| if missed(at(i).0, at(i).1) { 2.0 } else { -2.0 })
            .collect();
        let to_map = |v: &[f32]| Tensor::from_slice(v).view([side, side]);
        let focused = |x: f64, positive: bool| {
            let click = PointPrompt {
                x,
                y: 15.0,
                positive,
            };
            let map = correct_with_click(&to_map(&head), &to_map(&automatic), &click, 1.0).unwrap();
            Vec::<f32>::try_from(map.flatten(0, -1)).unwrap()
        };
        let from = |x: i64, y: i64, cx: f64| (x as f64 + 0.5 - cx).hypot(y as f64 + 0.5 - 15.5);
        // A positive click in the missed tissue adds it and keeps the tissue beside it;
        // 3 pixels from the automatic result, it decides the pixels nearer than that.
        let added = focused(15.0, true);
        // A negative click in the extra tissue, 2 pixels from the automatic result's
        // border, removes what of it lies within its reach (twice that) and adds nothing.
        let removed = focused(20.0, false);
        for i in 0..(side * side) as usize {
            let (x, y) = at(i as i64);
            let (a, r) = (added[i] > 0.0, removed[i] > 0.0);
            assert_eq!(
                a,
                missed(x, y) || extra(x, y) || from(x, y, 15.5) < 3.0,
                "positive click, pixel ({x}, {y})"
            );
            assert_eq!(
                r,
                extra(x, y) && from(x, y, 20.5) > 4.0,
                "negative click, pixel ({x}, {y})"
            );
        }
    }

    #[test]
    fn a_click_near_the_border_of_a_small_structure_corrects_only_near_itself() {
        // 32 x 32 output pixels, scale 1: the automatic result is a disc of radius 7 around
        // (16, 16); the head, after a negative click, calls nothing the structure.
        let side = 32i64;
        let centre = |i: i64| ((i % side) as f64 + 0.5, (i / side) as f64 + 0.5);
        let distance = |i: i64, x: f64, y: f64| {
            let (px, py) = centre(i);
            (px - x).hypot(py - y)
        };
        let automatic: Vec<f32> = (0..side * side)
            .map(|i| {
                if distance(i, 16.0, 16.0) <= 7.0 {
                    3.0
                } else {
                    -3.0
                }
            })
            .collect();
        let head = vec![-2.0f32; (side * side) as usize];
        let to_map = |v: &[f32]| Tensor::from_slice(v).view([side, side]);
        // The click's pixel centre (21.5, 16.5) is 2 pixels from the disc's border.
        let click = PointPrompt {
            x: 21.0,
            y: 16.0,
            positive: false,
        };
        let map = correct_with_click(&to_map(&head), &to_map(&automatic), &click, 1.0).unwrap();
        let focused = Vec::<f32>::try_from(map.flatten(0, -1)).unwrap();
        // Twice the distance to the border, at least the seeds' reach (the pixels nearer
        // than the border, and one more).
        let reach = (CLICK_REACH_PER_BORDER_DISTANCE * 2.0).clamp(2.0 + 1.0, CLICK_FOCUS_RADIUS_PX);
        assert!(reach < CLICK_FOCUS_RADIUS_PX, "the reach is bounded here");
        let (mut removed, mut kept) = (0, 0);
        for i in 0..side * side {
            if automatic[i as usize] <= 0.0 {
                assert!(focused[i as usize] <= 0.0, "nothing is added");
                continue;
            }
            let from_click = distance(i, 21.5, 16.5);
            if from_click > reach {
                assert!(
                    focused[i as usize] > 0.0,
                    "pixel {i} beyond the reach removed"
                );
                kept += 1;
            } else {
                assert!(
                    focused[i as usize] <= 0.0,
                    "pixel {i} within the reach kept"
                );
                removed += 1;
            }
        }
        assert!(removed > 10 && kept > 60, "removed {removed}, kept {kept}");
    }

    #[test]
    fn a_drawn_box_confirms_an_automatic_result_that_fills_it() {
        use prompts::box_confirms;
        // 32 x 32 output pixels, scale 2 (64 x 64 input pixels): the automatic result is
        // the square of output pixels 10..=19, input pixels 20..=39.
        let side = 32i64;
        let odds: Vec<f32> = (0..side * side)
            .map(|i| {
                let (x, y) = (i % side, i / side);
                if (10..=19).contains(&x) && (10..=19).contains(&y) {
                    3.0
                } else {
                    -3.0
                }
            })
            .collect();
        let automatic = Tensor::from_slice(&odds).view([side, side]);
        let confirms = |bbox: [f64; 4], clicks: usize| {
            let prompts = SlicePrompts {
                points: (0..clicks)
                    .map(|_| PointPrompt {
                        x: 30.0,
                        y: 30.0,
                        positive: true,
                    })
                    .collect(),
                bounding_box: Some(bbox),
            };
            box_confirms(&automatic, &prompts, 2.0, 2.0).unwrap()
        };
        assert!(confirms([20.0, 20.0, 39.0, 39.0], 0), "the exact box");
        assert!(
            confirms([18.0, 19.0, 41.0, 40.0], 0),
            "a box drawn a little loose"
        );
        assert!(!confirms([35.0, 20.0, 54.0, 39.0], 0), "a box beside it");
        assert!(!confirms([4.0, 4.0, 60.0, 60.0], 0), "a box much larger");
        assert!(!confirms([26.0, 26.0, 33.0, 33.0], 0), "a box much smaller");
        assert!(!confirms([20.0, 20.0, 39.0, 39.0], 1), "a box with a click");
    }

    #[test]
    fn shifting_moves_content_and_fills_the_edge() {
        let image = Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([1, 1, 2, 3]);
        let values = |t: &Tensor| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        // Right by one, zeros entering on the left.
        let right = shift_content(&image, 3, 1, false).unwrap();
        assert_eq!(values(&right), [0.0, 0.0, 1.0, 0.0, 3.0, 4.0]);
        // Back left by one, the edge column repeated: the original except that column.
        let back = shift_content(&right, 3, -1, true).unwrap();
        assert_eq!(values(&back), [0.0, 1.0, 1.0, 3.0, 4.0, 4.0]);
        // Down by one.
        let down = shift_content(&image, 2, 1, false).unwrap();
        assert_eq!(values(&down), [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(
            values(&shift_content(&image, 2, 0, false).unwrap()),
            values(&image)
        );
    }

    #[test]
    fn the_averaged_views_follow_the_options() {
        // Fine output: shifts of 4 low-resolution pixels.
        let config = SamConfig::small().with_fine_output(true);
        let views = |mirror_averaging, shift_averaging| {
            View::averaged(
                &SessionOptions {
                    mirror_averaging,
                    shift_averaging,
                    ..SessionOptions::default()
                },
                &config,
            )
        };
        assert_eq!(views(false, false), [View::default()]);
        assert_eq!(views(true, false).len(), 2);
        let all = views(true, true);
        assert_eq!(all.len(), 8);
        assert_eq!(all[0], View::default(), "the plain view comes first");
        for shift in [(0, 0), (4, 0), (0, 4), (4, 4)] {
            for mirrored in [false, true] {
                assert!(all.contains(&View { mirrored, shift }));
            }
        }
        // A sagittal model reads its slices as they are (mirroring them would flip
        // anterior and posterior).
        let sagittal = View::averaged(
            &SessionOptions::default(),
            &config.with_slice_orientation(SliceOrientation::Sagittal),
        );
        assert_eq!(sagittal, [View::default()]);
    }

    #[test]
    fn shifted_views_move_by_half_an_encoder_patch() {
        use crate::model::SamConfig;
        // small: 16 x 16 tokens; 128 x 128 logits with the fine output, 64 x 64 without.
        assert_eq!(
            half_patch_shift(&SamConfig::small().with_fine_output(true)),
            4
        );
        assert_eq!(half_patch_shift(&SamConfig::small()), 2);
        // vit_b: 64 x 64 tokens, 256 x 256 logits.
        assert_eq!(half_patch_shift(&SamConfig::vit_b()), 2);
    }

    #[test]
    fn context_step_rounds_the_distance_to_whole_slices() {
        assert_eq!(context_step(0.0, 1.0), 0, "no context");
        assert_eq!(context_step(2.0, 1.0), 2);
        assert_eq!(context_step(2.0, 0.8), 3);
        assert_eq!(context_step(2.0, 3.0), 1, "at least the next slice");
        assert_eq!(context_step(1.0, 1.0), 1);
    }

    #[test]
    fn gather_with_context_takes_the_neighbours_clamped_to_the_stack() {
        // Slice i is filled with the value i.
        let stack = Tensor::arange(5, (Kind::Float, tch::Device::Cpu))
            .view([5, 1, 1])
            .expand([5, 2, 2], false)
            .contiguous();
        let planes = |images: &Tensor| -> Vec<Vec<f64>> {
            (0..images.size()[0])
                .map(|b| {
                    (0..images.size()[1])
                        .map(|c| images.double_value(&[b, c, 1, 0]))
                        .collect()
                })
                .collect()
        };
        let alone = gather_with_context(&stack, &[0, 3], 0);
        assert_eq!(alone.size(), [2, 1, 2, 2]);
        assert_eq!(planes(&alone), [[0.0], [3.0]]);
        let context = gather_with_context(&stack, &[0, 2, 4], 2);
        assert_eq!(context.size(), [3, 3, 2, 2]);
        assert_eq!(
            planes(&context),
            [[0.0, 0.0, 2.0], [0.0, 2.0, 4.0], [2.0, 4.0, 4.0]]
        );
    }

    #[test]
    fn model_input_wants_the_channels_the_model_was_trained_on() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let grey = Tensor::zeros([2, 1, 64, 64], (Kind::Float, tch::Device::Cpu));
        let three = Tensor::zeros([2, 3, 64, 64], (Kind::Float, tch::Device::Cpu));
        let plain = Sam::new(&(vs.root() / "plain"), &SamConfig::tiny()).unwrap();
        assert_eq!(model_input(&plain, &grey).unwrap().size(), [2, 3, 64, 64]);
        let err = model_input(&plain, &three).unwrap_err();
        assert!(err.to_string().contains("[B, 1, S, S]"), "{err}");
        let context_config = SamConfig::tiny().with_slice_context_mm(2.0);
        let context = Sam::new(&(vs.root() / "context"), &context_config).unwrap();
        assert_eq!(
            model_input(&context, &three).unwrap().size(),
            [2, 3, 64, 64]
        );
        let err = model_input(&context, &grey).unwrap_err();
        assert!(err.to_string().contains("context slices"), "{err}");
    }

    #[test]
    fn mirrored_classes_swap_each_structure_with_its_other_side() {
        assert_eq!(MIRRORED_CLASSES[0], 0, "background stays");
        for (class, &mirrored) in MIRRORED_CLASSES.iter().enumerate().skip(1) {
            assert_eq!(
                MIRRORED_CLASSES[mirrored as usize], class as i64,
                "an involution"
            );
            let name = STRUCTURES[class - 1].short_name;
            let other = STRUCTURES[mirrored as usize - 1].short_name;
            let expected = match name.split_at(1) {
                ("L", rest) => format!("R{rest}"),
                ("R", rest) => format!("L{rest}"),
                _ => panic!("{name} has no side"),
            };
            assert_eq!(other, expected);
        }
    }

    #[test]
    fn merged_classes_put_each_structure_on_its_left_class() {
        use crate::labels::HEMISPHERE_MERGED_CLASSES;
        assert_eq!(HEMISPHERE_MERGED_CLASSES[0], 0, "background stays");
        for (class, &merged) in HEMISPHERE_MERGED_CLASSES.iter().enumerate().skip(1) {
            let name = STRUCTURES[class - 1].short_name;
            let left = STRUCTURES[merged as usize - 1].short_name;
            assert_eq!(left, format!("L{}", &name[1..]), "{name}");
        }
    }
}

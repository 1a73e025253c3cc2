//! Training data: subjects read from NIfTI pairs (or label maps alone), turned into
//! the inference pipeline's coronal slices (same ROI, normalisation and resampling as
//! [`crate::session::Session::set_volume`]), split into training and validation by
//! subject, and sampled with a preference for slices that contain structures.

use std::collections::BTreeMap;
use std::path::Path;

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use tch::Tensor;

use super::config::{LabelOnlyEntry, SubjectEntry, TrainConfig};
use crate::error::{Error, Result};
use crate::labels::{LabelScheme, NUM_CLASSES};
use crate::session::{array3_to_tensor, SliceStack};
use crate::volume::frame::SliceOrientation;
use crate::volume::normalize::NormalizeConfig;
use crate::volume::{LabelVolume, Volume};

/// One subject in memory, before slicing.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Name used for the split and in reports.
    pub name: String,
    /// Where it came from (file names), for error messages.
    pub source: String,
    /// T1 image; None for label-only subjects (images are synthesised).
    pub image: Option<Volume>,
    /// Label codes as read from the label file.
    pub label_codes: Volume,
    /// How the codes map to the 12 classes.
    pub scheme: LabelScheme,
    /// Slices set aside (None: none): a training subject does not train on them, a
    /// validation subject is scored only on them.
    pub held_out: Option<HeldOutSlices>,
}

/// Blocks of consecutive slices of a subject's stack set aside for validation: block
/// `phase` of every `every` blocks of `block` slices, counting only the slices that hold
/// a structure. Blocks rather than single slices, so that a held-out slice's neighbours
/// (which the model sees as context and which look alike) are partly held out too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldOutSlices {
    /// Consecutive slices per block (at least 1).
    pub block: usize,
    /// One block in `every` is held out (at least 2).
    pub every: usize,
    /// Which block of each `every` (0..every).
    pub phase: usize,
}

impl HeldOutSlices {
    /// Whether the `slice`-th slice (counted among those holding a structure) is held out.
    pub fn holds(&self, slice: usize) -> bool {
        (slice / self.block.max(1)) % self.every.max(2) == self.phase % self.every.max(2)
    }
}

/// The voxel planes a validation subject is scored on (its held-out slices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoredPlanes {
    /// Voxel axis the planes are perpendicular to (the slicing axis).
    pub axis: usize,
    /// Voxel indices along `axis`.
    pub planes: Vec<usize>,
}

impl ScoredPlanes {
    /// `labels` with every voxel outside the scored planes set to background.
    pub fn restrict(&self, labels: &LabelVolume) -> Result<LabelVolume> {
        let dims = labels.grid().dims();
        let mut data = vec![0u8; labels.data().len()];
        for &plane in self.planes.iter().filter(|&&p| p < dims[self.axis]) {
            for index in crate::session::plane_indices(dims, self.axis, plane) {
                data[index] = labels.data()[index];
            }
        }
        LabelVolume::new(labels.grid().clone(), data)
    }
}

fn default_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem
        .trim_end_matches(".gz")
        .trim_end_matches(".nii")
        .to_string();
    // FreeSurfer-style trees name the subject folder, not the file (sub-01/T1.nii.gz).
    let generic = ["t1", "image", "brain", "brainmask", "orig", "norm", "aseg"];
    if generic.contains(&stem.to_ascii_lowercase().as_str()) {
        if let Some(parent) = path.parent().and_then(|p| p.file_name()) {
            let parent = parent.to_string_lossy().to_string();
            if parent != "mri" {
                return parent;
            }
            if let Some(grand) = path.parent().and_then(|p| p.parent()?.file_name()) {
                return grand.to_string_lossy().to_string();
            }
        }
    }
    stem
}

impl Subject {
    /// Reads an image + label subject.
    pub fn read(entry: &SubjectEntry) -> Result<Self> {
        Ok(Subject {
            name: entry
                .name
                .clone()
                .unwrap_or_else(|| default_name(&entry.image)),
            source: format!("{} + {}", entry.image.display(), entry.label.display()),
            image: Some(Volume::read(&entry.image)?),
            label_codes: Volume::read(&entry.label)?,
            scheme: LabelScheme::from_name_or_file(&entry.scheme)?,
            held_out: None,
        })
    }

    /// Reads a label-only subject.
    pub fn read_label_only(entry: &LabelOnlyEntry) -> Result<Self> {
        Ok(Subject {
            name: entry
                .name
                .clone()
                .unwrap_or_else(|| default_name(&entry.label)),
            source: entry.label.display().to_string(),
            image: None,
            label_codes: Volume::read(&entry.label)?,
            scheme: LabelScheme::from_name_or_file(&entry.scheme)?,
            held_out: None,
        })
    }
}

/// The coronal slices of one subject at the model input size, as CPU tensors.
#[derive(Debug)]
pub struct SubjectSlices {
    /// Subject name.
    pub name: String,
    /// Normalised images `[n, S, S]` float in about [0, 1]; None for label-only subjects.
    pub images: Option<Tensor>,
    /// Class ids `[n, S, S]` uint8.
    pub classes: Tensor,
    /// Compact label-code indices `[n, S, S]` uint8 for synthesis.
    pub codes: Tensor,
    /// Class id of each compact code index, `[K]` int64.
    pub code_classes: Tensor,
    /// Whether each slice contains at least one structure.
    pub has_structure: Vec<bool>,
    /// Whether each slice contains one of the small structures
    /// ([`SMALL_STRUCTURE_CLASSES`]).
    pub has_small_structure: Vec<bool>,
    /// Whether each slice is held out ([`Subject::held_out`]).
    pub held_out: Vec<bool>,
    /// Distance between neighbouring slices, in mm.
    pub slice_spacing_mm: f64,
}

impl SubjectSlices {
    /// Number of slices.
    pub fn len(&self) -> usize {
        self.has_structure.len()
    }

    /// Whether there is no slice.
    pub fn is_empty(&self) -> bool {
        self.has_structure.is_empty()
    }
}

/// A validation subject: the volumes for 3D evaluation and its slices.
#[derive(Debug)]
pub struct ValidationSubject {
    /// The image (None for label-only subjects, which are validated per slice on
    /// synthesised images).
    pub image: Option<Volume>,
    /// Reference classes on the image grid.
    pub reference: LabelVolume,
    /// Its slices (for per-slice validation).
    pub slices: SubjectSlices,
    /// Scored only on these planes (subjects with held-out slices); None: everywhere.
    pub scored_planes: Option<ScoredPlanes>,
}

/// Prepared training and validation data.
#[derive(Debug)]
pub struct Dataset {
    /// Training subjects.
    pub training: Vec<SubjectSlices>,
    /// Validation subjects.
    pub validation: Vec<ValidationSubject>,
    /// Slice side in pixels.
    pub input_size: i64,
    sampler: WeightedIndex<f64>,
    index: Vec<(usize, usize)>,
}

/// Settings of [`Dataset::prepare`].
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Model input size (slice side, pixels).
    pub input_size: i64,
    /// The plane the model reads (coronal unless the model says otherwise).
    pub orientation: SliceOrientation,
    /// Subject names held out for validation.
    pub validation: Vec<String>,
    /// When `validation` is empty: hold out this many image subjects (last by name).
    pub validation_count: usize,
    /// Sampling weight of slices without structures (slices with structures: 1).
    pub empty_slice_weight: f64,
    /// Sampling weight of slices holding a small structure ([`SMALL_STRUCTURE_CLASSES`];
    /// other slices with structures: 1).
    pub small_structure_weight: f64,
    /// Normalisation (the inference default unless changed).
    pub normalize: NormalizeConfig,
}

impl DatasetOptions {
    /// The options a training configuration implies for a coronal model of `input_size`
    /// (set `orientation` for another).
    pub fn from_config(config: &TrainConfig, input_size: i64) -> Self {
        DatasetOptions {
            input_size,
            orientation: SliceOrientation::Coronal,
            validation: config.validation.clone(),
            validation_count: config.validation_count,
            empty_slice_weight: config.run.empty_slice_weight,
            small_structure_weight: config.run.small_structure_weight,
            normalize: NormalizeConfig::default(),
        }
    }
}

/// The small structures (pallidum, hippocampus, amygdala, left and right: the least
/// accurate), whose slices `run.small_structure_weight` can sample more often.
pub const SMALL_STRUCTURE_CLASSES: [u8; 6] = [7, 8, 9, 10, 11, 12];

/// Reads every subject listed in `config` (all read errors are reported before
/// training starts).
pub fn read_subjects(config: &TrainConfig) -> Result<Vec<Subject>> {
    let mut subjects = Vec::new();
    for entry in &config.subjects {
        subjects.push(Subject::read(entry)?);
    }
    for entry in &config.label_only {
        subjects.push(Subject::read_label_only(entry)?);
    }
    Ok(subjects)
}

/// Slices one subject: returns its slices and its reference classes.
fn slice_subject(
    subject: &Subject,
    options: &DatasetOptions,
) -> Result<(SubjectSlices, LabelVolume, Option<ScoredPlanes>)> {
    let grid = subject.label_codes.grid();
    if let Some(image) = &subject.image {
        image
            .grid()
            .ensure_same_grid(grid, "the image", "the label map")
            .map_err(|e| {
                Error::invalid_argument(format!(
                    "subject {} ({}): {e}",
                    subject.name, subject.source
                ))
            })?;
    }
    let classes = subject
        .scheme
        .to_classes(&subject.label_codes)
        .map_err(|e| {
            Error::invalid_argument(format!(
                "subject {} ({}): {e}",
                subject.name, subject.source
            ))
        })?;
    if !classes.data().iter().any(|&c| c != 0) {
        return Err(Error::invalid_argument(format!(
            "subject {} ({}): the label map contains none of the 12 structures under the \
             {:?} label scheme",
            subject.name, subject.source, subject.scheme
        )));
    }
    // Compact code indices for synthesis (codes such as 502..530 exceed u8).
    let mut compact: BTreeMap<i64, u8> = BTreeMap::new();
    compact.insert(0, 0);
    let mut code_data = Vec::with_capacity(classes.data().len());
    for &value in subject.label_codes.data() {
        let code = value as i64;
        let next = compact.len();
        let index = match compact.get(&code) {
            Some(&i) => i,
            None => {
                if next > 255 {
                    return Err(Error::invalid_argument(format!(
                        "subject {} ({}): more than 256 distinct label codes",
                        subject.name, subject.source
                    )));
                }
                compact.insert(code, next as u8);
                next as u8
            }
        };
        code_data.push(index);
    }
    let mut code_classes = vec![0i64; compact.len()];
    for (&code, &index) in &compact {
        code_classes[index as usize] = i64::from(subject.scheme.class_of(code as i32));
    }
    let codes = LabelVolume::new(grid.clone(), code_data)?;
    // The ROI is found on the image, as at inference; label-only subjects use the
    // labelled head (every non-zero code) as the image.
    let roi_image = match &subject.image {
        Some(image) => image.clone(),
        None => {
            let mask: Vec<f32> = subject
                .label_codes
                .data()
                .iter()
                .map(|&v| if v != 0.0 { 1.0 } else { 0.0 })
                .collect();
            Volume::new(grid.clone(), mask)?
        }
    };
    let context = |e: Error| {
        Error::invalid_argument(format!(
            "subject {} ({}): {e}",
            subject.name, subject.source
        ))
    };
    let geometry =
        SliceStack::geometry(&roi_image, options.input_size as usize, options.orientation)
            .map_err(context)?;
    let images = subject
        .image
        .as_ref()
        .map(|image| SliceStack::images(&geometry, image, &options.normalize))
        .transpose()
        .map_err(context)?;
    let class_slices = geometry.extract_labels(&classes)?;
    let has_structure: Vec<bool> = class_slices
        .outer_iter()
        .map(|slice| slice.iter().any(|&c| c != 0))
        .collect();
    let has_small_structure: Vec<bool> = class_slices
        .outer_iter()
        .map(|slice| slice.iter().any(|c| SMALL_STRUCTURE_CLASSES.contains(c)))
        .collect();
    if !has_structure.iter().any(|&h| h) {
        return Err(Error::invalid_argument(format!(
            "subject {} ({}): no structure lies inside the automatically found region of \
             interest: is the label map aligned with the image?",
            subject.name, subject.source
        )));
    }
    // Blocks count the slices that hold a structure, so that held-out blocks always
    // hold some (slices without structures always train).
    let mut rank = 0;
    let held_out: Vec<bool> = has_structure
        .iter()
        .map(|&has| {
            if !has {
                return false;
            }
            rank += 1;
            subject.held_out.is_some_and(|h| h.holds(rank - 1))
        })
        .collect();
    let scored_planes = subject.held_out.map(|_| ScoredPlanes {
        axis: geometry.frame().coronal_axis,
        planes: geometry
            .slice_voxel_indices()
            .iter()
            .zip(&held_out)
            .filter(|(_, &held)| held)
            .map(|(&plane, _)| plane)
            .collect(),
    });
    let slices = SubjectSlices {
        name: subject.name.clone(),
        images,
        classes: array3_to_tensor(&class_slices),
        codes: array3_to_tensor(&geometry.extract_labels(&codes)?),
        code_classes: Tensor::from_slice(&code_classes),
        has_structure,
        has_small_structure,
        held_out,
        slice_spacing_mm: geometry.slice_spacing_mm(),
    };
    Ok((slices, classes, scored_planes))
}

impl Dataset {
    /// Checks and slices every subject, then splits by subject. Errors (before any
    /// training) on an empty dataset, mismatched image/label grids, label maps without
    /// any of the 12 structures, duplicate names and unknown validation names.
    pub fn prepare(subjects: Vec<Subject>, options: &DatasetOptions) -> Result<Self> {
        if subjects.is_empty() {
            return Err(Error::invalid_argument(
                "the dataset is empty: list at least one subject or label-only entry",
            ));
        }
        let mut names: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid_argument(format!(
                "two subjects are called {:?}: give them distinct names",
                pair[0]
            )));
        }
        for name in &options.validation {
            if !names.contains(&name.as_str()) {
                return Err(Error::invalid_argument(format!(
                    "validation subject {name:?} is not in the dataset (subjects: {})",
                    names.join(", ")
                )));
            }
        }
        let held_out: Vec<String> = if options.validation.is_empty() {
            let mut image_names: Vec<&str> = subjects
                .iter()
                .filter(|s| s.image.is_some())
                .map(|s| s.name.as_str())
                .collect();
            image_names.sort_unstable();
            let n = options.validation_count.min(image_names.len());
            image_names[image_names.len() - n..]
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            options.validation.clone()
        };
        let mut training = Vec::new();
        let mut validation = Vec::new();
        for subject in subjects {
            let (slices, reference, scored_planes) = slice_subject(&subject, options)?;
            if held_out.contains(&subject.name) {
                validation.push(ValidationSubject {
                    image: subject.image,
                    reference,
                    slices,
                    scored_planes,
                });
            } else {
                training.push(slices);
            }
        }
        if training.is_empty() {
            return Err(Error::invalid_argument(
                "no training subject is left after holding out the validation subjects",
            ));
        }
        let mut index = Vec::new();
        let mut weights = Vec::new();
        for (s, subject) in training.iter().enumerate() {
            for (i, &has) in subject.has_structure.iter().enumerate() {
                if subject.held_out[i] {
                    continue;
                }
                index.push((s, i));
                weights.push(if subject.has_small_structure[i] {
                    options.small_structure_weight
                } else if has {
                    1.0
                } else {
                    options.empty_slice_weight
                });
            }
        }
        let sampler = WeightedIndex::new(&weights)
            .map_err(|e| Error::invalid_argument(format!("slice sampling weights: {e}")))?;
        Ok(Dataset {
            training,
            validation,
            input_size: options.input_size,
            sampler,
            index,
        })
    }

    /// Number of training slices.
    pub fn training_slices(&self) -> usize {
        self.index.len()
    }

    /// Draws `count` (subject, slice) pairs, weighted toward slices with structures.
    pub fn sample(&self, rng: &mut impl Rng, count: usize) -> Vec<(usize, usize)> {
        (0..count)
            .map(|_| self.index[self.sampler.sample(rng)])
            .collect()
    }
}

/// Whether a class map `[S, S]` (flattened) holds class `class`.
pub(crate) fn present_structures(classes: &[u8]) -> Vec<u8> {
    let mut seen = [false; NUM_CLASSES];
    for &c in classes {
        if (c as usize) < NUM_CLASSES {
            seen[c as usize] = true;
        }
    }
    (1..NUM_CLASSES as u8)
        .filter(|&c| seen[c as usize])
        .collect()
}

/// Stacks selected slices of a `[n, S, S]` tensor into `[B, S, S]`.
pub(crate) fn gather_slices(stack: &Tensor, indices: &[usize]) -> Tensor {
    let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    stack.index_select(0, &Tensor::from_slice(&index))
}

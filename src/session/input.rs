//! Model-input preparation: slice images gathered with their through-plane context,
//! scaled and padded for the model. Sessions and training both use these.

use tch::Tensor;

use crate::error::{Error, Result};
use crate::model::Sam;
use crate::volume::frame::SliceOrientation;
use crate::volume::normalize::{normalize, NormalizeConfig};
use crate::volume::roi::{find_roi_oriented, RoiConfig};
use crate::volume::slicing::SliceGeometry;
use crate::volume::Volume;

/// The canonical slices (coronal, or the model's [`SliceOrientation`]) of a volume's
/// region of interest, normalised, as the model sees them: the one chain (ROI, geometry,
/// normalisation, extraction, tensor) that sessions and training both build their
/// slices with.
#[derive(Debug)]
pub struct SliceStack {
    /// Where the slices lie in the volume and how they map to model-input pixels.
    pub geometry: SliceGeometry,
    /// Normalised slice images `[n, size, size]` in [0, 1], on the CPU.
    pub images: Tensor,
}

impl SliceStack {
    /// Finds the region of interest of `volume`, lays `input_size`-pixel slices over it,
    /// normalises the volume with `normalize` and extracts the slices.
    pub fn build(
        volume: &Volume,
        input_size: usize,
        orientation: SliceOrientation,
        normalize: &NormalizeConfig,
    ) -> Result<Self> {
        let geometry = Self::geometry(volume, input_size, orientation)?;
        let images = Self::images(&geometry, volume, normalize)?;
        Ok(Self { geometry, images })
    }

    /// The slice geometry of `orientation` over the region of interest found on
    /// `roi_image` (training finds it on a label-only subject's head mask). Its voxel
    /// indices are the volume's own, whatever the orientation.
    pub fn geometry(
        roi_image: &Volume,
        input_size: usize,
        orientation: SliceOrientation,
    ) -> Result<SliceGeometry> {
        let (view_grid, roi) = find_roi_oriented(roi_image, &RoiConfig::default(), orientation)?;
        SliceGeometry::from_roi(&view_grid, &roi, input_size)
    }

    /// The normalised slice images `[n, size, size]` of `volume` on `geometry`.
    pub fn images(
        geometry: &SliceGeometry,
        volume: &Volume,
        normalize_config: &NormalizeConfig,
    ) -> Result<Tensor> {
        let normalised = normalize(volume, normalize_config)?;
        Ok(array3_to_tensor(&geometry.extract(&normalised)?))
    }
}

/// The model input `[B, 3, S, S]` for slice images `[B, C, S, S]` in [0, 1]: one grey
/// channel (repeated on the three input channels) or three channels of through-plane
/// context (see [`gather_with_context`]), in the value range the model's pixel
/// statistics expect, normalised and padded. Inference and training both use this.
pub fn model_input(sam: &Sam, images: &Tensor) -> Result<Tensor> {
    let size = images.size();
    let context = sam.config().slice_context_mm > 0.0;
    let expected = if context { 3 } else { 1 };
    if size.len() != 4 || size[1] != expected {
        return Err(Error::invalid_argument(format!(
            "slice images for this model must be [B, {expected}, S, S] ({}), got {size:?}",
            if context {
                "the slice between its two context slices"
            } else {
                "one grey channel"
            }
        )));
    }
    // Our models are trained on [0, 1] images with mean 0 / std 1 (as SAMed);
    // official SAM statistics are in 0..255 units.
    let scale = if sam.config().pixel_std.iter().any(|&s| s > 1.0) {
        255.0
    } else {
        1.0
    };
    let rgb = (images * scale).expand([size[0], 3, size[2], size[3]], false);
    sam.preprocess(&rgb)
}

/// Stack step (in slices) between a slice and its context slices, for `context_mm` of
/// through-plane context (see [`SamConfig::slice_context_mm`]) on slices `spacing_mm`
/// apart: 0 without context, else the nearest whole number of slices, at least 1.
///
/// [`SamConfig::slice_context_mm`]: crate::model::SamConfig::slice_context_mm
pub fn context_step(context_mm: f64, spacing_mm: f64) -> usize {
    if context_mm <= 0.0 {
        return 0;
    }
    ((context_mm / spacing_mm).round() as usize).max(1)
}

/// Slice images `[B, C, S, S]` for stack positions `indices` of a slice stack
/// `[n, S, S]`: with `step` 0 the slice alone (`C = 1`); otherwise the slice `step`
/// positions before it, the slice, and the one `step` after it (`C = 3`), clamped to the
/// stack's ends. Training and inference both gather through this.
pub fn gather_with_context(stack: &Tensor, indices: &[usize], step: usize) -> Tensor {
    let last = stack.size()[0].max(1) as usize - 1;
    let planes: Vec<i64> = indices
        .iter()
        .flat_map(|&index| {
            if step == 0 {
                vec![index as i64]
            } else {
                vec![
                    index.saturating_sub(step) as i64,
                    index as i64,
                    (index + step).min(last) as i64,
                ]
            }
        })
        .collect();
    let size = stack.size();
    let channels = if step == 0 { 1 } else { 3 };
    stack
        .index_select(0, &Tensor::from_slice(&planes).to_device(stack.device()))
        .view([indices.len() as i64, channels, size[1], size[2]])
}

/// A `[n, h, w]` array as a CPU tensor of the same shape (one copy).
pub(crate) fn array3_to_tensor<T: tch::kind::Element + Copy>(array: &ndarray::Array3<T>) -> Tensor {
    let (n, h, w) = array.dim();
    let standard = array.as_standard_layout();
    Tensor::from_slice(standard.as_slice().expect("standard layout"))
        .view([n as i64, h as i64, w as i64])
}

//! Test-time views: the slices as they are, left-right mirrored, and with their content
//! moved by half an encoder patch, averaged by automatic segmentation.

use tch::Tensor;

use super::input::{context_step, gather_with_context, model_input};
use super::{Session, SessionOptions, VolumeState};
use crate::error::Result;
use crate::model::SamConfig;

/// How the slices are presented to the encoder: as they are, or left-right mirrored and
/// with their content moved by half an encoder patch (test-time augmentation of
/// [`Session::segment_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct View {
    pub(super) mirrored: bool,
    /// Content moved right and down, in low-resolution output pixels.
    pub(super) shift: (i64, i64),
}

/// Half an encoder patch in low-resolution output pixels (at least one): how far the
/// shifted views move the content. Half a patch puts the patch borders where the plain
/// view has patch centres, the most different token grid; on the validation subjects
/// (stage-7 model, 8 mm patches) moving by 1, 2, 3, 4, 6 and 8 mm scored 0.825, 0.828,
/// 0.830, 0.830, 0.825 and 0.818 mean Dice.
pub(super) fn half_patch_shift(config: &SamConfig) -> i64 {
    (config.low_res_size() / config.grid_size() / 2).max(1)
}

impl View {
    /// The views automatic segmentation averages under `options` for a model of
    /// `config`, shifted views moved by half an encoder patch. A model that cannot tell
    /// left from right (sagittal) reads its slices as they are only: mirroring them would
    /// flip anterior and posterior, and in the default model's average, where it weighs
    /// half, its shifted views changed nothing (mean Dice 0.848 with four, 0.847 with one)
    /// for four times its time.
    pub(super) fn averaged(options: &SessionOptions, config: &SamConfig) -> Vec<View> {
        if !config.slice_orientation.tells_left_from_right() {
            return vec![View::default()];
        }
        let shift = half_patch_shift(config);
        let shifts: &[(i64, i64)] = if options.shift_averaging {
            &[(0, 0), (1, 0), (0, 1), (1, 1)]
        } else {
            &[(0, 0)]
        };
        let mirrors: &[bool] = if options.mirror_averaging {
            &[false, true]
        } else {
            &[false]
        };
        shifts
            .iter()
            .flat_map(|&(right, down)| {
                mirrors.iter().map(move |&mirrored| View {
                    mirrored,
                    shift: (right * shift, down * shift),
                })
            })
            .collect()
    }
}

/// `images [B, C, H, W]` with their content moved `by` pixels along `dim` (2: down,
/// 3: right); the uncovered edge is zero (`replicate` false) or repeats the edge pixels.
pub(super) fn shift_content(images: &Tensor, dim: i64, by: i64, replicate: bool) -> Result<Tensor> {
    if by == 0 {
        return Ok(images.shallow_clone());
    }
    let side = images.size()[dim as usize];
    let (before, after) = if by > 0 { (by, 0) } else { (0, -by) };
    let pad = if dim == 3 {
        [before, after, 0, 0]
    } else {
        [0, 0, before, after]
    };
    let padded = if replicate {
        images.f_pad(pad, "replicate", None)?
    } else {
        images.f_constant_pad_nd(pad)?
    };
    Ok(padded.f_narrow(dim, after, side)?)
}

impl Session {
    /// Model input tensor `[b, 3, S, S]` for slices `indices` (with their context slices
    /// when the model takes them) seen as `view`, in the value range the model's pixel
    /// statistics expect.
    pub(super) fn input_batch(
        &self,
        state: &VolumeState,
        indices: &[usize],
        view: View,
    ) -> Result<Tensor> {
        let step = context_step(
            self.model.config().slice_context_mm,
            state.geometry.slice_spacing_mm(),
        );
        let mut images =
            gather_with_context(&state.images, indices, step).to_device(self.model.device());
        let pixels = self.model.config().input_size / self.model.config().low_res_size();
        images = shift_content(&images, 3, view.shift.0 * pixels, false)?;
        images = shift_content(&images, 2, view.shift.1 * pixels, false)?;
        if view.mirrored {
            images = images.f_flip([3])?;
        }
        model_input(self.model.sam(), &images)
    }
}

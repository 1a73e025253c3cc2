//! Propagation of a structure's mask from one coronal slice to its neighbours: each
//! next slice gets as box prompt the previous slice's mask's bounding box, slightly
//! grown, until the mask vanishes, the region of interest ends or a slice limit is met.

use super::{
    check_structure, plane_indices, stack_index, ProgressFn, Session, SlicePrompts,
    PROPAGATION_MARGIN_PX,
};
use crate::error::{Error, Result};

/// Which way [`Session::propagate_structure`] goes from its start slice, in voxel
/// indices along the slicing axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PropagationDirection {
    /// Both ways (increasing indices first).
    #[default]
    Both,
    /// Towards increasing voxel indices.
    Forward,
    /// Towards decreasing voxel indices.
    Backward,
}

/// Options of [`Session::propagate_structure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PropagationOptions {
    /// Which way to go.
    pub direction: PropagationDirection,
    /// At most this many slices per direction (None: until the mask vanishes or the
    /// region of interest ends). `Some(0)` is refused.
    pub max_slices: Option<usize>,
}

impl PropagationOptions {
    /// The options from the numbers the C ABI and the C++ API take: `direction` 0 both,
    /// 1 forward, 2 backward; `max_slices` 0 for no limit.
    pub fn from_codes(direction: u32, max_slices: u32) -> Result<Self> {
        let direction = match direction {
            0 => PropagationDirection::Both,
            1 => PropagationDirection::Forward,
            2 => PropagationDirection::Backward,
            other => {
                return Err(Error::invalid_argument(format!(
                    "propagation direction {other} is unknown: use 0 (both), 1 (forward: \
                     increasing slice indices) or 2 (backward)"
                )))
            }
        };
        Ok(PropagationOptions {
            direction,
            max_slices: (max_slices != 0).then_some(max_slices as usize),
        })
    }
}

/// The slices a propagation from `from_plane` covered, `(first, last)` (the start slice
/// included), given the slices it segmented.
pub fn covered_slices(from_plane: usize, done: &[usize]) -> (usize, usize) {
    let all = || done.iter().copied().chain([from_plane]);
    (
        all().min().unwrap_or(from_plane),
        all().max().unwrap_or(from_plane),
    )
}

impl Session {
    /// Propagates `structure` from coronal slice `from_plane` (voxel index along the
    /// slicing axis) to its neighbours: starting from the structure's current mask on
    /// that slice (its interactive mask when its prompts there were applied by the
    /// interactive head, else its voxels in the label volume), each next slice gets as
    /// only prompt of `structure` a box, the bounding box of the previous slice's mask
    /// grown by 4 model-input pixels, and is segmented
    /// ([`Session::segment_structure`]). A direction stops at the first slice whose
    /// mask comes out empty, at the edge of the region of interest, or after
    /// `options.max_slices` slices. `progress(done, total)` counts slices against the
    /// most possible; returning false stops with [`Error::Cancelled`] (the slices done
    /// so far keep their result). Returns the slices segmented (voxel indices, in the
    /// order visited; `from_plane` itself is not re-segmented). Errors when the
    /// structure is absent on `from_plane`.
    pub fn propagate_structure(
        &mut self,
        structure: u8,
        from_plane: usize,
        options: PropagationOptions,
        progress: &mut ProgressFn<'_>,
    ) -> Result<Vec<usize>> {
        check_structure(structure)?;
        if options.max_slices == Some(0) {
            return Err(Error::invalid_argument(
                "max_slices is 0: propagate at least one slice (or give no limit)",
            ));
        }
        let state = self.state()?;
        let start = stack_index(state, from_plane)?;
        if self.mask_box(structure, start)?.is_none() {
            return Err(Error::invalid_argument(format!(
                "structure {structure} is absent on slice {from_plane}: segment or prompt it \
                 there before propagating"
            )));
        }
        let planes = state.geometry.slice_voxel_indices().to_vec();
        let n = planes.len() as i64;
        // The stack runs posterior to anterior, which may be decreasing voxel indices.
        let ascending = planes.first() <= planes.last();
        let forward: i64 = if ascending { 1 } else { -1 };
        let steps: Vec<i64> = match options.direction {
            PropagationDirection::Both => vec![forward, -forward],
            PropagationDirection::Forward => vec![forward],
            PropagationDirection::Backward => vec![-forward],
        };
        let limit = options.max_slices.unwrap_or(usize::MAX);
        let available = |step: i64| -> usize {
            let room = if step > 0 {
                n - 1 - start as i64
            } else {
                start as i64
            };
            (room as usize).min(limit)
        };
        let total: usize = steps.iter().map(|&step| available(step)).sum();
        let mut done = Vec::new();
        if !progress(0, total) {
            return Err(Error::Cancelled);
        }
        for &step in &steps {
            let mut previous = start;
            for _ in 0..available(step) {
                let Some(bounding_box) = self.mask_box(structure, previous)? else {
                    break;
                };
                let next = (previous as i64 + step) as usize;
                let state = self.state_mut()?;
                state.prompts.insert(
                    (structure, next),
                    SlicePrompts {
                        points: Vec::new(),
                        bounding_box: Some(bounding_box),
                    },
                );
                state.propagated_boxes.insert((structure, next));
                self.segment_structure(structure, planes[next])?;
                done.push(planes[next]);
                previous = next;
                if !progress(done.len(), total) {
                    return Err(Error::Cancelled);
                }
            }
        }
        Ok(done)
    }

    /// The box for the slice after stack slice `slice` in a propagation: from the
    /// interactive mask of `structure` there when it has one, else from its voxels in
    /// the label volume; None when that mask is empty.
    pub(super) fn mask_box(&self, structure: u8, slice: usize) -> Result<Option<[f64; 4]>> {
        if self
            .state()?
            .interactive_masks
            .contains_key(&(structure, slice))
        {
            self.propagated_box(structure, slice)
        } else {
            self.label_box(structure, slice)
        }
    }

    /// The bounding box (model-input pixels) of the voxels of `structure` on stack slice
    /// `slice` of the label volume, grown by `PROPAGATION_MARGIN_PX`; None when there
    /// are none.
    fn label_box(&self, structure: u8, slice: usize) -> Result<Option<[f64; 4]>> {
        let state = self.state()?;
        let geometry = &state.geometry;
        let frame = geometry.frame();
        let dims = state.labels.grid().dims();
        let plane = geometry.slice_voxel_indices()[slice];
        let data = state.labels.data();
        let (mut u0, mut v0, mut u1, mut v1) = (usize::MAX, usize::MAX, 0, 0);
        let mut found = false;
        for index in plane_indices(dims, frame.coronal_axis, plane) {
            if data[index] != structure {
                continue;
            }
            // Fortran order: i fastest.
            let ijk = [
                index % dims[0],
                (index / dims[0]) % dims[1],
                index / (dims[0] * dims[1]),
            ];
            let (u, v) = (ijk[frame.column_axis], ijk[frame.row_axis]);
            u0 = u0.min(u);
            u1 = u1.max(u);
            v0 = v0.min(v);
            v1 = v1.max(v);
            found = true;
        }
        if !found {
            return Ok(None);
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for u in [u0 as f64 - 0.5, u1 as f64 + 0.5] {
            for v in [v0 as f64 - 0.5, v1 as f64 + 0.5] {
                let mut voxel = [plane as f64; 3];
                voxel[frame.column_axis] = u;
                voxel[frame.row_axis] = v;
                let point = geometry
                    .voxel_to_slice(voxel)
                    .ok_or_else(|| Error::Internal(format!("plane {plane} has no slice point")))?;
                x0 = x0.min(point.x);
                x1 = x1.max(point.x);
                y0 = y0.min(point.y);
                y1 = y1.max(point.y);
            }
        }
        let limit = self.model.config().input_size as f64;
        let m = PROPAGATION_MARGIN_PX;
        let bounding_box = [
            (x0 - m).clamp(0.0, limit),
            (y0 - m).clamp(0.0, limit),
            (x1 + m).clamp(0.0, limit),
            (y1 + m).clamp(0.0, limit),
        ];
        // A structure wholly outside the field of view gives no usable box.
        if bounding_box[0] >= bounding_box[2] || bounding_box[1] >= bounding_box[3] {
            return Ok(None);
        }
        Ok(Some(bounding_box))
    }
}

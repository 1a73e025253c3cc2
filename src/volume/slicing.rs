//! Canonical coronal slices: orientation, resampling to the model input and
//! mapping results back onto the original voxel grid.
//!
//! # Canonical slice orientation
//!
//! Whatever the storage order (RAS, LIA, LAS, oblique...), every slice handed to
//! the model is shown the same way, as a **radiological coronal view**:
//!
//! * image **rows** (`y`) go from patient **superior** (row 0) to **inferior**;
//! * image **columns** (`x`) go from patient **right** (column 0) to **left**, so
//!   the patient's left hemisphere is on the right half of the image;
//! * the **stack** of slices goes from **posterior** (stack index 0) to **anterior**.
//!
//! The coronal axis is the voxel axis closest to anterior-posterior; the column
//! and row axes are the remaining axes closest to right-left and
//! superior-inferior (the assignment of the three voxel axes to R/A/S maximises
//! the sum of the absolute direction cosines). Each model slice is one voxel
//! plane of the original grid, so mapping back needs no interpolation across
//! slices and introduces no shift. For an oblique acquisition the image is the
//! voxel plane itself (as scanners and most viewers show it), not a plane
//! re-sampled to true anatomical axes.
//!
//! # Field of view and pixels
//!
//! A slice image is `size × size` pixels covering a square field of view of
//! `fov_mm × fov_mm` centred on a chosen point: the pixel is `fov_mm / size` mm
//! in both directions whatever the voxel size (1 mm, 0.8×0.8×1.5, 3 mm), so
//! the anatomy keeps its physical aspect. Pixel `(x, y)` covers
//! `[x, x+1) × [y, y+1)` in pixel units; its centre is at `(x + 0.5, y + 0.5)`.
//! Continuous pixel coordinates used for prompts follow the same convention as
//! SAM's point prompts: the centre of pixel `(x, y)` is at `(x + 0.5, y + 0.5)`.

use ndarray::{Array3, Array4, ArrayView3, ArrayView4};

pub use super::frame::CoronalFrame;
use super::grid::Grid;
use super::roi::Roi;
use super::{LabelVolume, Volume};
use crate::error::{Error, Result};

/// Where a voxel falls in the slice stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicePoint {
    /// Index in the stack of extracted slices (0 = most posterior).
    pub slice: usize,
    /// Continuous column coordinate in model-input pixels (pixel centres at `n + 0.5`).
    pub x: f64,
    /// Continuous row coordinate in model-input pixels (pixel centres at `n + 0.5`).
    pub y: f64,
}

/// The mapping between a volume's grid and the stack of model-input slices.
#[derive(Debug, Clone)]
pub struct SliceGeometry {
    frame: CoronalFrame,
    dims: [usize; 3],
    spacing: [f64; 3],
    /// Voxel indices along the coronal axis, in stack order (posterior → anterior).
    slices: Vec<usize>,
    /// Continuous voxel coordinates (column axis, row axis) of the FOV centre.
    centre: [f64; 2],
    /// Continuous voxel coordinate of the FOV centre along the slicing axis.
    centre_plane: f64,
    fov_mm: f64,
    size: usize,
}

impl SliceGeometry {
    /// The slices and field of view given by a region of interest, at `size × size`
    /// pixels. The ROI's centre is projected into the slice planes.
    pub fn from_roi(grid: &Grid, roi: &Roi, size: usize) -> Result<Self> {
        let frame = CoronalFrame::from_grid(grid);
        let dims = grid.dims();
        let n_coronal = dims[frame.coronal_axis];
        if roi.first_slice > roi.last_slice || roi.last_slice >= n_coronal {
            return Err(Error::invalid_argument(format!(
                "ROI slice range {}..={} is not within the {} coronal slices",
                roi.first_slice, roi.last_slice, n_coronal
            )));
        }
        let centre_voxel = grid.ras_to_voxel_point(roi.centre_ras);
        let mut slices: Vec<usize> = (roi.first_slice..=roi.last_slice).collect();
        if frame.slice_step < 0 {
            slices.reverse();
        }
        Self::build(
            grid,
            frame,
            slices,
            [
                centre_voxel[frame.column_axis],
                centre_voxel[frame.row_axis],
                centre_voxel[frame.coronal_axis],
            ],
            roi.fov_mm,
            size,
        )
    }

    /// Every coronal slice, with a field of view just covering the whole
    /// in-plane extent of the grid (the larger of its two in-plane sides).
    pub fn whole_volume(grid: &Grid, size: usize) -> Result<Self> {
        let frame = CoronalFrame::from_grid(grid);
        let dims = grid.dims();
        let spacing = grid.spacing();
        let extent = |axis: usize| dims[axis] as f64 * spacing[axis];
        let fov_mm = extent(frame.column_axis).max(extent(frame.row_axis));
        let mut slices: Vec<usize> = (0..dims[frame.coronal_axis]).collect();
        if frame.slice_step < 0 {
            slices.reverse();
        }
        let centre = [
            (dims[frame.column_axis] as f64 - 1.0) / 2.0,
            (dims[frame.row_axis] as f64 - 1.0) / 2.0,
            (dims[frame.coronal_axis] as f64 - 1.0) / 2.0,
        ];
        Self::build(grid, frame, slices, centre, fov_mm, size)
    }

    fn build(
        grid: &Grid,
        frame: CoronalFrame,
        slices: Vec<usize>,
        centre: [f64; 3],
        fov_mm: f64,
        size: usize,
    ) -> Result<Self> {
        if size == 0 || size > 8192 {
            return Err(Error::invalid_argument(format!(
                "slice size {size} pixels is not in 1..=8192"
            )));
        }
        if !(fov_mm.is_finite() && fov_mm > 0.0) {
            return Err(Error::invalid_argument(format!(
                "field of view {fov_mm} mm must be positive and finite"
            )));
        }
        if !centre.iter().all(|c| c.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "field of view centre {centre:?} is not finite"
            )));
        }
        Ok(SliceGeometry {
            frame,
            dims: grid.dims(),
            spacing: grid.spacing(),
            slices,
            centre: [centre[0], centre[1]],
            centre_plane: centre[2],
            fov_mm,
            size,
        })
    }

    /// The orientation frame.
    pub fn frame(&self) -> &CoronalFrame {
        &self.frame
    }

    /// Number of slices in the stack.
    pub fn n_slices(&self) -> usize {
        self.slices.len()
    }

    /// Voxel index along the coronal axis of each stack slice.
    pub fn slice_voxel_indices(&self) -> &[usize] {
        &self.slices
    }

    /// Distance between neighbouring slices of the stack, in mm (the grid's spacing
    /// along the coronal axis).
    pub fn slice_spacing_mm(&self) -> f64 {
        self.spacing[self.frame.coronal_axis]
    }

    /// The larger of the grid's two in-plane spacings (column and row axes), in mm: how
    /// far apart the voxels of a slice lie at most.
    pub fn in_plane_voxel_mm(&self) -> f64 {
        self.spacing[self.frame.column_axis].max(self.spacing[self.frame.row_axis])
    }

    /// Side of the square slice images, in pixels.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Side of the square field of view, in mm.
    pub fn fov_mm(&self) -> f64 {
        self.fov_mm
    }

    /// Pixel size of the model input, in mm.
    pub fn pixel_mm(&self) -> f64 {
        self.fov_mm / self.size as f64
    }

    /// Continuous in-plane voxel coordinates (column axis, row axis) of the FOV centre.
    pub fn centre_voxel(&self) -> [f64; 2] {
        self.centre
    }

    /// Whether stack slice `slice` lies on the slice-stack's "posterior" side of the
    /// field of view's centre (before it in stack order): for sagittal stacks, which go
    /// from right to left around the head's midline, the right hemisphere. `None` for a
    /// slice outside the stack.
    pub fn slice_before_centre(&self, slice: usize) -> Option<bool> {
        let plane = *self.slices.get(slice)? as f64;
        Some((plane - self.centre_plane) * f64::from(self.frame.slice_step) < 0.0)
    }

    /// Voxel coordinate along the column axis of a continuous pixel column
    /// `x` (pixel-centre convention) on an image of `grid_size` pixels.
    fn column_to_voxel(&self, x: f64, grid_size: usize) -> f64 {
        let pixel = self.fov_mm / grid_size as f64;
        let offset_mm = (x - grid_size as f64 / 2.0) * pixel;
        self.centre[0]
            + f64::from(self.frame.column_step) * offset_mm / self.spacing[self.frame.column_axis]
    }

    fn row_to_voxel(&self, y: f64, grid_size: usize) -> f64 {
        let pixel = self.fov_mm / grid_size as f64;
        let offset_mm = (y - grid_size as f64 / 2.0) * pixel;
        self.centre[1]
            + f64::from(self.frame.row_step) * offset_mm / self.spacing[self.frame.row_axis]
    }

    fn voxel_to_column(&self, u: f64, grid_size: usize) -> f64 {
        let pixel = self.fov_mm / grid_size as f64;
        f64::from(self.frame.column_step)
            * (u - self.centre[0])
            * self.spacing[self.frame.column_axis]
            / pixel
            + grid_size as f64 / 2.0
    }

    fn voxel_to_row(&self, v: f64, grid_size: usize) -> f64 {
        let pixel = self.fov_mm / grid_size as f64;
        f64::from(self.frame.row_step) * (v - self.centre[1]) * self.spacing[self.frame.row_axis]
            / pixel
            + grid_size as f64 / 2.0
    }

    /// Where voxel coordinate `voxel` (continuous `(i, j, k)`, voxel centres at
    /// integers) lands: stack slice and pixel coordinates (pixel centres at
    /// `n + 0.5`). `None` when its coronal plane is not in the stack. The pixel
    /// coordinates may lie outside `[0, size)` when the voxel is outside the FOV.
    pub fn voxel_to_slice(&self, voxel: [f64; 3]) -> Option<SlicePoint> {
        let plane = voxel[self.frame.coronal_axis].round();
        if plane.is_nan() || plane < 0.0 {
            return None;
        }
        let slice = self.slices.iter().position(|&s| s as f64 == plane)?;
        Some(SlicePoint {
            slice,
            x: self.voxel_to_column(voxel[self.frame.column_axis], self.size),
            y: self.voxel_to_row(voxel[self.frame.row_axis], self.size),
        })
    }

    /// Continuous voxel coordinate `(i, j, k)` of a pixel position on a stack slice.
    pub fn slice_to_voxel(&self, point: SlicePoint) -> Result<[f64; 3]> {
        let plane = *self.slices.get(point.slice).ok_or_else(|| {
            Error::invalid_argument(format!(
                "slice {} is outside the stack of {} slices",
                point.slice,
                self.slices.len()
            ))
        })?;
        if !(point.x.is_finite() && point.y.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "pixel position ({}, {}) is not finite",
                point.x, point.y
            )));
        }
        let mut voxel = [0.0; 3];
        voxel[self.frame.coronal_axis] = plane as f64;
        voxel[self.frame.column_axis] = self.column_to_voxel(point.x, self.size);
        voxel[self.frame.row_axis] = self.row_to_voxel(point.y, self.size);
        Ok(voxel)
    }

    fn check_grid(&self, grid: &Grid, what: &str) -> Result<()> {
        if grid.dims() != self.dims {
            return Err(Error::invalid_argument(format!(
                "{what} has dimensions {:?}, the slice geometry was made for {:?}",
                grid.dims(),
                self.dims
            )));
        }
        Ok(())
    }

    /// Resamples the stack of slices from `volume` (bilinear in-plane, 0 outside
    /// the volume): an array `[n_slices, size, size]` indexed `[slice, y, x]`.
    pub fn extract(&self, volume: &Volume) -> Result<Array3<f32>> {
        self.check_grid(volume.grid(), "the volume")?;
        let size = self.size;
        let n_column = self.dims[self.frame.column_axis];
        let n_row = self.dims[self.frame.row_axis];
        let columns: Vec<Option<(usize, usize, f32)>> = (0..size)
            .map(|x| edge_weights(self.column_to_voxel(x as f64 + 0.5, size), n_column))
            .collect();
        let rows: Vec<Option<(usize, usize, f32)>> = (0..size)
            .map(|y| edge_weights(self.row_to_voxel(y as f64 + 0.5, size), n_row))
            .collect();
        let strides = strides(self.dims);
        let (column_stride, row_stride) = (
            strides[self.frame.column_axis],
            strides[self.frame.row_axis],
        );
        let data = volume.data();
        let mut out = Array3::<f32>::zeros((self.slices.len(), size, size));
        for (stack_index, &plane) in self.slices.iter().enumerate() {
            let base = plane * strides[self.frame.coronal_axis];
            let mut image = out.index_axis_mut(ndarray::Axis(0), stack_index);
            for (y, row) in rows.iter().enumerate() {
                let Some((v0, v1, wv)) = *row else { continue };
                let (row0, row1) = (base + v0 * row_stride, base + v1 * row_stride);
                for (x, column) in columns.iter().enumerate() {
                    let Some((u0, u1, wu)) = *column else {
                        continue;
                    };
                    let (c0, c1) = (u0 * column_stride, u1 * column_stride);
                    let top = data[row0 + c0] * (1.0 - wu) + data[row0 + c1] * wu;
                    let bottom = data[row1 + c0] * (1.0 - wu) + data[row1 + c1] * wu;
                    image[[y, x]] = top * (1.0 - wv) + bottom * wv;
                }
            }
        }
        Ok(out)
    }

    /// Maps per-slice class scores `[n_slices, classes, m, m]` (probabilities or
    /// logits on an `m × m` grid covering the same field of view; `m` need not
    /// be the input size) back to a label map on `grid`: bilinear interpolation
    /// of the scores at each voxel centre, then argmax. Voxels outside the FOV or
    /// on slices outside the stack are background (0).
    pub fn map_scores_back(&self, grid: &Grid, scores: ArrayView4<'_, f32>) -> Result<LabelVolume> {
        self.check_grid(grid, "the output grid")?;
        let (n, classes, height, width) = scores.dim();
        if n != self.slices.len() || height != width || height == 0 || classes == 0 || classes > 256
        {
            return Err(Error::invalid_argument(format!(
                "class scores have shape [{n}, {classes}, {height}, {width}], expected \
                 [{}, classes (1..=256), m, m]",
                self.slices.len()
            )));
        }
        let mut labels = LabelVolume::zeros(grid.clone());
        let scores = scores.as_standard_layout();
        let flat = scores.as_slice().expect("standard layout");
        let plane_len = classes * height * height;
        let out = labels.data_mut();
        for stack_index in 0..n {
            let plane_scores = &flat[stack_index * plane_len..][..plane_len];
            self.map_plane(
                stack_index,
                plane_scores,
                classes,
                height,
                |index, class| out[index] = class,
            );
        }
        Ok(labels)
    }

    /// Updates one structure on one stack slice of `labels` from that slice's class
    /// scores `[classes, m, m]`: voxels of the plane where `structure` now wins get it;
    /// voxels that had it and where another class now wins get that class. Other voxels
    /// keep their labels. Returns the number of voxels changed.
    pub fn update_structure_on_slice(
        &self,
        labels: &mut LabelVolume,
        stack_index: usize,
        scores: ArrayView3<'_, f32>,
        structure: u8,
    ) -> Result<usize> {
        self.check_grid(labels.grid(), "the label volume")?;
        let (classes, height, width) = scores.dim();
        if stack_index >= self.slices.len()
            || height != width
            || height == 0
            || (structure as usize) >= classes
        {
            return Err(Error::invalid_argument(format!(
                "slice {stack_index} of {} with class scores [{classes}, {height}, {width}] \
                 cannot update structure {structure}",
                self.slices.len()
            )));
        }
        let scores = scores.as_standard_layout();
        let flat = scores.as_slice().expect("standard layout");
        let out = labels.data_mut();
        let mut changed = 0;
        self.map_plane(stack_index, flat, classes, height, |index, class| {
            let old = out[index];
            let new = if class == structure || old == structure {
                class
            } else {
                old
            };
            if new != old {
                out[index] = new;
                changed += 1;
            }
        });
        Ok(changed)
    }

    /// Interpolates one stack slice's class scores (`classes × m × m`, row-major) at
    /// every voxel of its plane inside the field of view and calls
    /// `write(linear voxel index, argmax class)` for each.
    fn map_plane(
        &self,
        stack_index: usize,
        plane_scores: &[f32],
        classes: usize,
        m: usize,
        mut write: impl FnMut(usize, u8),
    ) {
        let n_column = self.dims[self.frame.column_axis];
        let n_row = self.dims[self.frame.row_axis];
        let columns: Vec<Option<(usize, usize, f32)>> = (0..n_column)
            .map(|u| pixel_weights(self.voxel_to_column(u as f64, m), m))
            .collect();
        let rows: Vec<Option<(usize, usize, f32)>> = (0..n_row)
            .map(|v| pixel_weights(self.voxel_to_row(v as f64, m), m))
            .collect();
        let strides = strides(self.dims);
        let (column_stride, row_stride) = (
            strides[self.frame.column_axis],
            strides[self.frame.row_axis],
        );
        // Only the voxels inside the FOV are visited; their positions in the plane.
        let inside_columns: Vec<(usize, usize, usize, f32)> = columns
            .iter()
            .enumerate()
            .filter_map(|(u, c)| c.map(|(x0, x1, w)| (u * column_stride, x0, x1, w)))
            .collect();
        let plane_len = n_row * inside_columns.len();
        let mut best_score = vec![f32::NEG_INFINITY; plane_len];
        let mut best_class = vec![0u8; plane_len];
        let mut row_mix = vec![0.0f32; m];
        let channel_len = m * m;
        for class in 0..classes {
            let channel = &plane_scores[class * channel_len..][..channel_len];
            for (v, row) in rows.iter().enumerate() {
                let Some((y0, y1, wy)) = *row else { continue };
                // Separable bilinear: mix the two pixel rows first, then columns.
                let (top, bottom) = (&channel[y0 * m..][..m], &channel[y1 * m..][..m]);
                for ((mixed, &a), &b) in row_mix.iter_mut().zip(top).zip(bottom) {
                    *mixed = a + (b - a) * wy;
                }
                let base = v * inside_columns.len();
                let scores_row = &mut best_score[base..base + inside_columns.len()];
                let classes_row = &mut best_class[base..base + inside_columns.len()];
                for ((&(_, x0, x1, wx), best), best_id) in
                    inside_columns.iter().zip(scores_row).zip(classes_row)
                {
                    let score = row_mix[x0] + (row_mix[x1] - row_mix[x0]) * wx;
                    if score > *best {
                        *best = score;
                        *best_id = class as u8;
                    }
                }
            }
        }
        let base = self.slices[stack_index] * strides[self.frame.coronal_axis];
        for (v, row) in rows.iter().enumerate() {
            if row.is_none() {
                continue;
            }
            let start = v * inside_columns.len();
            for (&(column_offset, ..), &class) in inside_columns
                .iter()
                .zip(&best_class[start..start + inside_columns.len()])
            {
                write(base + column_offset + v * row_stride, class);
            }
        }
    }

    /// Class scores of another slice geometry on the same grid (`scores`
    /// `[other's slices, classes, m, m]`, e.g. an axial model's probabilities) sampled at
    /// the centres of this geometry's `out × out` pixels on each of its slices:
    /// `[n_slices, classes, out, out]`, bilinear in `other`'s slices and linear between
    /// them. Pixels whose centre lies outside `other`'s stack (beyond half a slice) or
    /// field of view are NaN.
    pub fn resample_scores_from(
        &self,
        other: &SliceGeometry,
        scores: ArrayView4<'_, f32>,
        out: usize,
    ) -> Result<Array4<f32>> {
        if other.dims != self.dims {
            return Err(Error::invalid_argument(format!(
                "the other slice geometry was made for a {:?} grid, this one for {:?}",
                other.dims, self.dims
            )));
        }
        let (n, classes, m, width) = scores.dim();
        if n != other.slices.len() || n == 0 || m != width || m == 0 || out == 0 {
            return Err(Error::invalid_argument(format!(
                "class scores have shape [{n}, {classes}, {m}, {width}], expected [{}, \
                 classes, m, m] with m > 0 (and an output size > 0, got {out})",
                other.slices.len()
            )));
        }
        let scores = scores.as_standard_layout();
        let flat = scores.as_slice().expect("standard layout");
        let first = other.slices[0] as f64;
        let ascending = n < 2 || other.slices[1] > other.slices[0];
        let mut result = Array4::from_elem((self.slices.len(), classes, out, out), f32::NAN);
        for (index, &plane) in self.slices.iter().enumerate() {
            for y in 0..out {
                for x in 0..out {
                    let mut voxel = [0.0; 3];
                    voxel[self.frame.coronal_axis] = plane as f64;
                    voxel[self.frame.column_axis] = self.column_to_voxel(x as f64 + 0.5, out);
                    voxel[self.frame.row_axis] = self.row_to_voxel(y as f64 + 0.5, out);
                    let along = voxel[other.frame.coronal_axis] - first;
                    let stacked = if ascending { along } else { -along };
                    let (Some((s0, s1, ws)), Some((x0, x1, wx)), Some((y0, y1, wy))) = (
                        edge_weights(stacked, n),
                        pixel_weights(other.voxel_to_column(voxel[other.frame.column_axis], m), m),
                        pixel_weights(other.voxel_to_row(voxel[other.frame.row_axis], m), m),
                    ) else {
                        continue;
                    };
                    for class in 0..classes {
                        let plane_value = |s: usize| {
                            let channel = &flat[(s * classes + class) * m * m..][..m * m];
                            let top = channel[y0 * m + x0] * (1.0 - wx) + channel[y0 * m + x1] * wx;
                            let bottom =
                                channel[y1 * m + x0] * (1.0 - wx) + channel[y1 * m + x1] * wx;
                            top * (1.0 - wy) + bottom * wy
                        };
                        result[[index, class, y, x]] =
                            plane_value(s0) * (1.0 - ws) + plane_value(s1) * ws;
                    }
                }
            }
        }
        Ok(result)
    }

    /// Maps per-slice label images `[n_slices, m, m]` (class ids, any square size
    /// covering the field of view) back to `grid` by nearest neighbour.
    pub fn map_labels_back(
        &self,
        grid: &Grid,
        slice_labels: ArrayView3<'_, u8>,
    ) -> Result<LabelVolume> {
        self.check_grid(grid, "the output grid")?;
        let (n, height, width) = slice_labels.dim();
        if n != self.slices.len() || height != width || height == 0 {
            return Err(Error::invalid_argument(format!(
                "slice labels have shape [{n}, {height}, {width}], expected [{}, m, m]",
                self.slices.len()
            )));
        }
        let m = height;
        let nearest = |p: f64| {
            // Pixel n covers [n, n+1) in continuous pixel units.
            let index = p.floor();
            (index >= 0.0 && index < m as f64).then_some(index as usize)
        };
        let columns: Vec<Option<usize>> = (0..self.dims[self.frame.column_axis])
            .map(|u| nearest(self.voxel_to_column(u as f64, m)))
            .collect();
        let rows: Vec<Option<usize>> = (0..self.dims[self.frame.row_axis])
            .map(|v| nearest(self.voxel_to_row(v as f64, m)))
            .collect();
        let strides = strides(self.dims);
        let mut labels = LabelVolume::zeros(grid.clone());
        let out = labels.data_mut();
        for (stack_index, &plane) in self.slices.iter().enumerate() {
            let base = plane * strides[self.frame.coronal_axis];
            for (v, row) in rows.iter().enumerate() {
                let Some(y) = *row else { continue };
                for (u, column) in columns.iter().enumerate() {
                    let Some(x) = *column else { continue };
                    out[base
                        + u * strides[self.frame.column_axis]
                        + v * strides[self.frame.row_axis]] = slice_labels[[stack_index, y, x]];
                }
            }
        }
        Ok(labels)
    }

    /// Resamples a label map into the slice stack by nearest neighbour: class ids
    /// `[n_slices, size, size]` (for training targets and prompt sampling).
    pub fn extract_labels(&self, labels: &LabelVolume) -> Result<Array3<u8>> {
        self.check_grid(labels.grid(), "the label map")?;
        let size = self.size;
        let nearest = |p: f64, n: usize| {
            let index = p.round();
            (index >= 0.0 && index < n as f64).then_some(index as usize)
        };
        let n_column = self.dims[self.frame.column_axis];
        let n_row = self.dims[self.frame.row_axis];
        let columns: Vec<Option<usize>> = (0..size)
            .map(|x| nearest(self.column_to_voxel(x as f64 + 0.5, size), n_column))
            .collect();
        let rows: Vec<Option<usize>> = (0..size)
            .map(|y| nearest(self.row_to_voxel(y as f64 + 0.5, size), n_row))
            .collect();
        let strides = strides(self.dims);
        let data = labels.data();
        let mut out = Array3::<u8>::zeros((self.slices.len(), size, size));
        for (stack_index, &plane) in self.slices.iter().enumerate() {
            let base = plane * strides[self.frame.coronal_axis];
            for (y, row) in rows.iter().enumerate() {
                let Some(v) = *row else { continue };
                for (x, column) in columns.iter().enumerate() {
                    let Some(u) = *column else { continue };
                    out[[stack_index, y, x]] = data[base
                        + u * strides[self.frame.column_axis]
                        + v * strides[self.frame.row_axis]];
                }
            }
        }
        Ok(out)
    }
}

fn strides(dims: [usize; 3]) -> [usize; 3] {
    [1, dims[0], dims[0] * dims[1]]
}

/// Bilinear neighbours of voxel coordinate `p` on an axis of `n` voxels: inside
/// `[-0.5, n - 0.5]` (the voxels' extent) values are clamped to the edge voxel,
/// outside there is no sample.
fn edge_weights(p: f64, n: usize) -> Option<(usize, usize, f32)> {
    if !(p >= -0.5 && p <= n as f64 - 0.5) {
        return None;
    }
    let clamped = p.clamp(0.0, (n - 1) as f64);
    let i0 = clamped.floor() as usize;
    let i1 = (i0 + 1).min(n - 1);
    Some((i0, i1, (clamped - i0 as f64) as f32))
}

/// Bilinear neighbours of continuous pixel coordinate `p` (pixel centres at
/// `n + 0.5`) on an image of `m` pixels; `None` outside the image.
fn pixel_weights(p: f64, m: usize) -> Option<(usize, usize, f32)> {
    if !(p >= 0.0 && p <= m as f64) {
        return None;
    }
    // Convert to "index" coordinates where pixel centres sit at integers.
    edge_weights(p - 0.5, m)
}

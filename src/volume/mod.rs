//! 3D volumes: NIfTI input/output, orientation, coronal slicing, resampling,
//! intensity normalisation and the subcortical region of interest.
//!
//! * [`Volume`]: scalar image (`f32` voxels) on a [`Grid`]; read with
//!   [`Volume::read`] or built from an ITK-style buffer with [`Volume::from_lps_buffer`].
//! * [`LabelVolume`]: class ids (`u8`, 0 = background, 1..=12 the structures) on a
//!   grid; [`LabelVolume::write`] writes it with the grid's original header, so it
//!   overlays the input image in 3D Slicer, ITK-SNAP, FSLeyes...
//! * [`slicing`]: the canonical coronal slice geometry, resampling to the model
//!   input and mapping results back.
//! * [`normalize`]: robust percentile intensity normalisation.
//! * [`roi`]: automatic subcortical region of interest.
//!
//! Coordinate conventions (RAS for NIfTI, LPS for ITK) are documented in [`grid`].
//! The public API uses `ndarray` 0.16 (the version `tch` uses). NIfTI files are read
//! and written by this module's own small header code (NIfTI-1 and NIfTI-2, either byte
//! order, bounded reads); writes are atomic (`weights::atomic_write`).

pub mod descriptor;
pub mod grid;
mod nifti_io;
pub mod normalize;
pub mod roi;
pub mod slicing;

use std::path::Path;

use ndarray::{ArrayView3, ShapeBuilder};

pub use grid::{Affine, Grid};
pub use nifti_io::{nifti_output_kind, MAX_NIFTI_VOXELS};

use crate::error::{Error, Result};

/// A scalar 3-D image: voxel values as `f32` (x fastest) on a [`Grid`].
#[derive(Debug, Clone)]
pub struct Volume {
    grid: Grid,
    data: Vec<f32>,
}

impl Volume {
    /// Reads a `.nii` or `.nii.gz` file (gzip detected from the content).
    ///
    /// Integer and float voxel types are converted to `f32` after applying
    /// `scl_slope`/`scl_inter`. A 4-D file is accepted when it holds a single
    /// volume. Errors name the file and the problem: missing or unreadable file,
    /// not NIfTI, truncated data, 2-D or multi-volume data, zero dimensions,
    /// NaN/inf voxels or transform, voxel sizes outside (0, 20] mm.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let (grid, data) = nifti_io::read_nifti(path.as_ref())?;
        Ok(Volume { grid, data })
    }

    /// Builds a volume from a grid and voxel values (x fastest, `grid.len()` values,
    /// all finite).
    pub fn new(grid: Grid, data: Vec<f32>) -> Result<Self> {
        if data.len() != grid.len() {
            return Err(Error::invalid_argument(format!(
                "voxel buffer holds {} values, the grid {:?} needs {}",
                data.len(),
                grid.dims(),
                grid.len()
            )));
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "voxel {index} (linear index) is {}: voxels must be finite",
                data[index]
            )));
        }
        Ok(Volume { grid, data })
    }

    /// Builds a volume from an ITK-style buffer: `data` x fastest, `dims` voxels,
    /// `spacing` (mm), `origin` (LPS mm of voxel (0,0,0)) and `direction`
    /// (`direction[row][column]`, column = LPS direction of voxel axis), as
    /// `itk::Image` gives them. See [`grid`] for the conventions.
    pub fn from_lps_buffer(
        data: &[f32],
        dims: [usize; 3],
        spacing: [f64; 3],
        origin: [f64; 3],
        direction: [[f64; 3]; 3],
    ) -> Result<Self> {
        let grid = Grid::from_lps(dims, spacing, origin, direction)?;
        Volume::new(grid, data.to_vec())
    }

    /// Writes the volume as `float32` NIfTI (`.nii` or `.nii.gz`) with the grid's header.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let (min, max) = min_max(&self.data);
        nifti_io::write_nifti(path.as_ref(), &self.grid, &self.data, false, (min, max))
    }

    /// The voxel grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Voxel values, x fastest.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Mutable voxel values, x fastest.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Voxel values as an array indexed `[i, j, k]` (Fortran layout, no copy).
    pub fn array(&self) -> ArrayView3<'_, f32> {
        array_view(&self.grid, &self.data)
    }

    /// Value of voxel `(i, j, k)`; panics if out of range (like slice indexing).
    pub fn get(&self, i: usize, j: usize, k: usize) -> f32 {
        self.data[self.grid.linear_index(i, j, k)]
    }

    /// Consumes the volume, returning its grid and voxel values.
    pub fn into_parts(self) -> (Grid, Vec<f32>) {
        (self.grid, self.data)
    }
}

/// A label map of class ids (`u8`; 0 = background) on a [`Grid`].
#[derive(Debug, Clone, PartialEq)]
pub struct LabelVolume {
    grid: Grid,
    data: Vec<u8>,
}

impl LabelVolume {
    /// Builds a label map from a grid and class ids (x fastest, `grid.len()` values).
    pub fn new(grid: Grid, data: Vec<u8>) -> Result<Self> {
        if data.len() != grid.len() {
            return Err(Error::invalid_argument(format!(
                "label buffer holds {} values, the grid {:?} needs {}",
                data.len(),
                grid.dims(),
                grid.len()
            )));
        }
        Ok(LabelVolume { grid, data })
    }

    /// An all-background label map on `grid`.
    pub fn zeros(grid: Grid) -> Self {
        let n = grid.len();
        LabelVolume {
            grid,
            data: vec![0; n],
        }
    }

    /// Writes the label map atomically (a complete new file or the old one, never a
    /// partial file, also on a full disk) as `uint8` NIfTI with the grid's original header
    /// (same dimensions, pixdim, qform/sform codes and parameters), the
    /// `NIFTI_INTENT_LABEL` intent and a display range 0..=max label.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let max = self.data.iter().copied().max().unwrap_or(0);
        nifti_io::write_nifti(
            path.as_ref(),
            &self.grid,
            &self.data,
            true,
            (0.0, f32::from(max)),
        )
    }

    /// The voxel grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Class ids, x fastest.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Mutable class ids, x fastest.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Class ids as an array indexed `[i, j, k]` (Fortran layout, no copy).
    pub fn array(&self) -> ArrayView3<'_, u8> {
        array_view(&self.grid, &self.data)
    }

    /// Class id of voxel `(i, j, k)`; panics if out of range.
    pub fn get(&self, i: usize, j: usize, k: usize) -> u8 {
        self.data[self.grid.linear_index(i, j, k)]
    }

    /// Consumes the label map, returning its grid and class ids.
    pub fn into_parts(self) -> (Grid, Vec<u8>) {
        (self.grid, self.data)
    }
}

fn array_view<'a, T>(grid: &Grid, data: &'a [T]) -> ArrayView3<'a, T> {
    let [nx, ny, nz] = grid.dims();
    ArrayView3::from_shape((nx, ny, nz).f(), data).expect("buffer length checked at construction")
}

fn min_max(data: &[f32]) -> (f32, f32) {
    data.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

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
pub mod frame;
pub mod grid;
mod nifti_io;
pub mod normalize;
pub mod roi;
pub mod slicing;
mod stats;

use std::path::Path;

use ndarray::{ArrayView3, ShapeBuilder};

pub use grid::{Affine, Grid};
pub use nifti_io::{nifti_output_kind, MAX_NIFTI_VOXELS};

use crate::error::{Error, Result};

/// Voxel values of type `T` (x fastest) on a [`Grid`]: what [`Volume`] (`f32`
/// intensities) and [`LabelVolume`] (`u8` class ids) share.
#[derive(Debug, Clone, PartialEq)]
pub struct VoxelImage<T> {
    grid: Grid,
    data: Vec<T>,
}

/// A scalar 3-D image: voxel values as `f32` (x fastest) on a [`Grid`].
pub type Volume = VoxelImage<f32>;

/// A label map of class ids (`u8`; 0 = background) on a [`Grid`].
pub type LabelVolume = VoxelImage<u8>;

impl<T> VoxelImage<T> {
    /// `data` on `grid`, or an error naming `what` when the lengths differ.
    fn on_grid(grid: Grid, data: Vec<T>, what: &str) -> Result<Self> {
        if data.len() != grid.len() {
            return Err(Error::invalid_argument(format!(
                "{what} buffer holds {} values, the grid {:?} needs {}",
                data.len(),
                grid.dims(),
                grid.len()
            )));
        }
        Ok(VoxelImage { grid, data })
    }

    /// The voxel grid.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Voxel values, x fastest.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable voxel values, x fastest.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Voxel values as an array indexed `[i, j, k]` (Fortran layout, no copy).
    pub fn array(&self) -> ArrayView3<'_, T> {
        let [nx, ny, nz] = self.grid.dims();
        ArrayView3::from_shape((nx, ny, nz).f(), &self.data)
            .expect("buffer length checked at construction")
    }

    /// Consumes the image, returning its grid and voxel values.
    pub fn into_parts(self) -> (Grid, Vec<T>) {
        (self.grid, self.data)
    }
}

impl<T: Copy> VoxelImage<T> {
    /// Value of voxel `(i, j, k)`; panics if out of range (like slice indexing).
    pub fn get(&self, i: usize, j: usize, k: usize) -> T {
        self.data[self.grid.linear_index(i, j, k)]
    }
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
        Ok(VoxelImage { grid, data })
    }

    /// Builds a volume from a grid and voxel values (x fastest, `grid.len()` values,
    /// all finite).
    pub fn new(grid: Grid, data: Vec<f32>) -> Result<Self> {
        let volume = Self::on_grid(grid, data, "voxel")?;
        if let Some(index) = volume.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid_argument(format!(
                "voxel {index} (linear index) is {}: voxels must be finite",
                volume.data[index]
            )));
        }
        Ok(volume)
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
}

impl LabelVolume {
    /// Builds a label map from a grid and class ids (x fastest, `grid.len()` values).
    pub fn new(grid: Grid, data: Vec<u8>) -> Result<Self> {
        Self::on_grid(grid, data, "label")
    }

    /// An all-background label map on `grid`.
    pub fn zeros(grid: Grid) -> Self {
        let n = grid.len();
        VoxelImage {
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
}

fn min_max(data: &[f32]) -> (f32, f32) {
    data.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

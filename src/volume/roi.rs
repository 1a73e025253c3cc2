//! Automatic subcortical region of interest.

/// The subcortical region of interest: the coronal slices to encode and the
/// in-plane square field of view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    /// RAS position (mm) of the field-of-view centre.
    pub centre_ras: [f64; 3],
    /// Side of the square in-plane field of view, mm.
    pub fov_mm: f64,
    /// First voxel index along the coronal axis (inclusive).
    pub first_slice: usize,
    /// Last voxel index along the coronal axis (inclusive).
    pub last_slice: usize,
}

//! Volume geometry as C, C++ and Python callers describe a voxel buffer: dims, spacing,
//! origin, direction matrix and the coordinate system these are in. Every layer builds
//! its [`Grid`] here, so all of them accept and refuse exactly the same inputs.

use crate::error::{Error, Result};
use crate::volume::grid::Grid;

/// Most voxels a volume may have (2^31): far above any MRI, and low enough that no byte
/// count derived from it overflows.
const MAX_VOXELS: u64 = 1 << 31;

/// The physical coordinate system of a descriptor's origin and direction. The numbers
/// are those of `brainsam_coordinates` (C) and `brainsam::Coordinates` (C++).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinates {
    /// Left-posterior-superior, as ITK and DICOM.
    Lps = 0,
    /// Right-anterior-superior, as NIfTI and 3D Slicer.
    Ras = 1,
}

impl Coordinates {
    /// The coordinate system numbered `code` (0 LPS, 1 RAS).
    pub fn from_code(code: u32) -> Result<Self> {
        match code {
            0 => Ok(Coordinates::Lps),
            1 => Ok(Coordinates::Ras),
            other => Err(Error::invalid_argument(format!(
                "volume coordinates {other} is not a brainsam_coordinates (0 LPS, 1 RAS)"
            ))),
        }
    }
}

/// The geometry of a voxel buffer: voxel (i, j, k) is `voxels[i + dims[0] * (j + dims[1]
/// * k)]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeGeometry {
    /// Voxels along i, j, k.
    pub dims: [u64; 3],
    /// Voxel size along i, j, k in millimetres.
    pub spacing: [f64; 3],
    /// Physical position (mm) of the centre of voxel (0, 0, 0), in `coordinates`.
    pub origin: [f64; 3],
    /// Row-major 3x3 direction matrix: column c is the direction of voxel axis c (ITK's
    /// `GetDirection()` order), in `coordinates`.
    pub direction: [f64; 9],
    /// The coordinate system of `origin` and `direction`.
    pub coordinates: Coordinates,
}

impl VolumeGeometry {
    /// The validated grid: every dimension at least 1, at most [`MAX_VOXELS`] voxels,
    /// finite positive spacing, finite origin, finite non-singular direction.
    pub fn grid(&self) -> Result<Grid> {
        let dims_text = || format!("{:?}", self.dims);
        if self.dims.contains(&0) {
            return Err(Error::invalid_argument(format!(
                "volume dims {}: every dimension must be at least 1",
                dims_text()
            )));
        }
        let count = self
            .dims
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_VOXELS);
        if count.is_none() {
            return Err(Error::invalid_argument(format!(
                "volume dims {} hold too many voxels (at most 2^31)",
                dims_text()
            )));
        }
        // Each dim is <= 2^31 here, so the conversion cannot fail on 64-bit targets.
        let mut dims = [0usize; 3];
        for (dim, &given) in dims.iter_mut().zip(&self.dims) {
            *dim = usize::try_from(given).map_err(|_| {
                Error::invalid_argument(format!("volume dims {} too large", dims_text()))
            })?;
        }
        for (what, values) in [
            ("spacing", &self.spacing[..]),
            ("origin", &self.origin[..]),
            ("direction", &self.direction[..]),
        ] {
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::invalid_argument(format!(
                    "volume {what}[{index}] is {}: {what} must be finite",
                    values[index]
                )));
            }
        }
        let d = self.direction;
        let mut direction = [[d[0], d[1], d[2]], [d[3], d[4], d[5]], [d[6], d[7], d[8]]];
        let mut origin = self.origin;
        if self.coordinates == Coordinates::Ras {
            // RAS → LPS flips the first two world axes.
            for row in 0..2 {
                origin[row] = -origin[row];
                for value in direction[row].iter_mut() {
                    *value = -*value;
                }
            }
        }
        Grid::from_lps(dims, self.spacing, origin, direction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(coordinates: Coordinates) -> VolumeGeometry {
        VolumeGeometry {
            dims: [4, 5, 6],
            spacing: [1.0, 2.0, 3.0],
            origin: [10.0, 20.0, 30.0],
            direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            coordinates,
        }
    }

    #[test]
    fn ras_and_lps_descriptors_of_one_volume_give_one_grid() {
        let lps = geometry(Coordinates::Lps).grid().unwrap();
        let mut ras = geometry(Coordinates::Ras);
        ras.origin = [-10.0, -20.0, 30.0];
        ras.direction = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(ras.grid().unwrap().voxel_to_ras(), lps.voxel_to_ras());
    }

    #[test]
    fn bad_descriptors_are_refused_naming_the_field() {
        let mut bad = geometry(Coordinates::Lps);
        bad.dims = [4, 0, 6];
        assert!(bad.grid().unwrap_err().to_string().contains("dims"));
        let mut bad = geometry(Coordinates::Lps);
        bad.dims = [1 << 20, 1 << 20, 4];
        assert!(bad
            .grid()
            .unwrap_err()
            .to_string()
            .contains("too many voxels"));
        let mut bad = geometry(Coordinates::Lps);
        bad.spacing[2] = f64::NAN;
        assert!(bad.grid().unwrap_err().to_string().contains("spacing[2]"));
        assert!(Coordinates::from_code(2)
            .unwrap_err()
            .to_string()
            .contains("coordinates 2"));
    }
}

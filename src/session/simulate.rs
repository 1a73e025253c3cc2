//! A simulated user for the interactive benchmark and tests: coronal planes of a label
//! volume, per-plane Dice, boxes around a structure on a plane, and the standard
//! next click (centre of the largest error region), all in voxel coordinates that
//! [`super::Session::add_box`] and [`super::Session::add_point`] take.

use crate::train::prompts::largest_error_click;
use crate::volume::LabelVolume;

/// One plane of a volume grid: the voxels whose coordinate along `axis` is `index`,
/// seen as a `width × height` image over the other two axes (the lower one varying
/// fastest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    /// The axis the plane is perpendicular to.
    pub axis: usize,
    /// Its coordinate along that axis.
    pub index: usize,
    dims: [usize; 3],
    in_plane: (usize, usize),
}

impl Plane {
    /// Plane `index` across `axis` of a grid of `dims`.
    pub fn new(dims: [usize; 3], axis: usize, index: usize) -> Self {
        let in_plane = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        Plane {
            axis,
            index,
            dims,
            in_plane,
        }
    }

    /// Width (extent of the first in-plane axis).
    pub fn width(&self) -> usize {
        self.dims[self.in_plane.0]
    }

    /// Height (extent of the second in-plane axis).
    pub fn height(&self) -> usize {
        self.dims[self.in_plane.1]
    }

    /// Voxel coordinates of plane pixel `(u, v)` (continuous, for prompts).
    pub fn ijk(&self, u: f64, v: f64) -> [f64; 3] {
        let mut ijk = [0.0; 3];
        ijk[self.axis] = self.index as f64;
        ijk[self.in_plane.0] = u;
        ijk[self.in_plane.1] = v;
        ijk
    }

    /// The plane's class ids, row-major (`u` fastest).
    pub fn values(&self, labels: &LabelVolume) -> Vec<u8> {
        let [nx, ny, _] = self.dims;
        let data = labels.data();
        let mut out = Vec::with_capacity(self.width() * self.height());
        for v in 0..self.height() {
            for u in 0..self.width() {
                let mut ijk = [0; 3];
                ijk[self.axis] = self.index;
                ijk[self.in_plane.0] = u;
                ijk[self.in_plane.1] = v;
                out.push(data[ijk[0] + nx * (ijk[1] + ny * ijk[2])]);
            }
        }
        out
    }
}

/// Dice of class `class` between two label images (1 when both lack it).
pub fn dice(predicted: &[u8], reference: &[u8], class: u8) -> f64 {
    let (mut both, mut p, mut r) = (0usize, 0usize, 0usize);
    for (&a, &b) in predicted.iter().zip(reference) {
        let (a, b) = (a == class, b == class);
        both += usize::from(a && b);
        p += usize::from(a);
        r += usize::from(b);
    }
    if p + r == 0 {
        1.0
    } else {
        2.0 * both as f64 / (p + r) as f64
    }
}

/// Bounding box `(u0, v0, u1, v1)` (inclusive pixel indices) of class `class` on a
/// `width`-wide label image; None when absent.
pub fn bounding_box(values: &[u8], width: usize, class: u8) -> Option<[usize; 4]> {
    let mut b = [usize::MAX, usize::MAX, 0, 0];
    for (i, _) in values.iter().enumerate().filter(|(_, &c)| c == class) {
        let (u, v) = (i % width, i / width);
        b = [b[0].min(u), b[1].min(v), b[2].max(u), b[3].max(v)];
    }
    (b[0] != usize::MAX).then_some(b)
}

/// The standard simulated click for class `class` on a plane: at the centre of the
/// largest error region of `predicted` against `reference` (see
/// [`largest_error_click`]). Returns `(u, v, positive)` or None when they agree.
pub fn next_click(
    predicted: &[u8],
    reference: &[u8],
    width: usize,
    height: usize,
    class: u8,
) -> Option<(usize, usize, bool)> {
    let p: Vec<bool> = predicted.iter().map(|&c| c == class).collect();
    let r: Vec<bool> = reference.iter().map(|&c| c == class).collect();
    largest_error_click(&p, &r, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::grid::Grid;

    #[test]
    fn planes_read_the_right_voxels_and_dice_counts_overlap() {
        let dims = [3, 4, 5];
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let grid = Grid::from_lps(dims, [1.0; 3], [0.0; 3], identity).unwrap();
        let data: Vec<u8> = (0..60).map(|i| (i % 7) as u8).collect();
        let labels = LabelVolume::new(grid, data).unwrap();
        for axis in 0..3 {
            let plane = Plane::new(dims, axis, 1);
            let values = plane.values(&labels);
            assert_eq!(values.len(), plane.width() * plane.height());
            for (i, &value) in values.iter().enumerate() {
                let ijk = plane.ijk((i % plane.width()) as f64, (i / plane.width()) as f64);
                let ijk = ijk.map(|x| x as usize);
                assert_eq!(value, labels.get(ijk[0], ijk[1], ijk[2]));
                assert_eq!(ijk[axis], 1);
            }
        }
        assert_eq!(dice(&[1, 1, 0, 0], &[1, 0, 1, 0], 1), 0.5);
        assert_eq!(dice(&[0, 0], &[0, 0], 1), 1.0);
        assert_eq!(bounding_box(&[0, 2, 0, 2, 2, 0], 3, 2), Some([0, 0, 1, 1]));
        assert_eq!(bounding_box(&[0, 0], 2, 2), None);
    }
}

//! A synthetic head for benchmarks: an ellipsoid of a head's size with a little texture,
//! enough for the region-of-interest finder (speed does not depend on the content).

use brainsam::volume::grid::Grid;
use brainsam::volume::Volume;

/// A head on a RAS grid of `spacing_mm` voxels (e.g. 1.0 for a 1 mm scan: 192×224×192).
pub fn synthetic_head(spacing_mm: f64) -> Volume {
    let extent_mm = [192.0, 224.0, 192.0];
    let dims = extent_mm.map(|e: f64| (e / spacing_mm).round() as usize);
    let mut affine = [[0.0; 4]; 4];
    for axis in 0..3 {
        affine[axis][axis] = spacing_mm;
        affine[axis][3] = -(dims[axis] as f64) / 2.0 * spacing_mm;
    }
    affine[3][3] = 1.0;
    let grid = Grid::from_ras_affine(dims, affine).unwrap();
    let mut data = vec![0f32; grid.len()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                let p = [i, j, k].map(|v| v as f64);
                let r: f64 = (0..3)
                    .map(|a| {
                        ((p[a] - dims[a] as f64 / 2.0) * spacing_mm / [70.0, 90.0, 75.0][a]).powi(2)
                    })
                    .sum();
                data[grid.linear_index(i, j, k)] =
                    if r < 1.0 { 100.0 + (i % 7) as f32 } else { 0.0 };
            }
        }
    }
    Volume::new(grid, data).unwrap()
}

//! The canonical coronal frame of a grid: which voxel axes show as slices, columns and
//! rows, and in which direction (the convention is documented in `volume::slicing`). The region
//! of interest, the slice geometry and the overlays all start from it.

use super::grid::Grid;

/// How the voxel axes of a grid map to the canonical coronal view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoronalFrame {
    /// Voxel axis closest to anterior-posterior (the slice axis).
    pub coronal_axis: usize,
    /// Voxel axis closest to right-left (image columns).
    pub column_axis: usize,
    /// Voxel axis closest to superior-inferior (image rows).
    pub row_axis: usize,
    /// +1 if the voxel index along `column_axis` increases towards patient left.
    pub column_step: i8,
    /// +1 if the voxel index along `row_axis` increases towards inferior.
    pub row_step: i8,
    /// +1 if the voxel index along `coronal_axis` increases towards anterior.
    pub slice_step: i8,
}

impl CoronalFrame {
    /// Derives the frame from the grid's voxel → RAS directions.
    pub fn from_grid(grid: &Grid) -> Self {
        let directions = grid.axis_directions_ras();
        // Try all 6 assignments of voxel axes to (R, A, S) world axes.
        const PERMUTATIONS: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let best = PERMUTATIONS
            .iter()
            .max_by(|p, q| {
                let score =
                    |perm: &[usize; 3]| (0..3).map(|w| directions[perm[w]][w].abs()).sum::<f64>();
                score(p).total_cmp(&score(q))
            })
            .expect("six permutations");
        let [rl_axis, ap_axis, si_axis] = *best;
        let sign = |v: f64| if v >= 0.0 { 1 } else { -1 };
        CoronalFrame {
            coronal_axis: ap_axis,
            column_axis: rl_axis,
            row_axis: si_axis,
            // Columns go towards patient left = decreasing R.
            column_step: -sign(directions[rl_axis][0]),
            // Rows go towards inferior = decreasing S.
            row_step: -sign(directions[si_axis][2]),
            slice_step: sign(directions[ap_axis][1]),
        }
    }
}

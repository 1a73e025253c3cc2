//! The canonical coronal frame of a grid: which voxel axes show as slices, columns and
//! rows, and in which direction (the convention is documented in `volume::slicing`). The region
//! of interest, the slice geometry and the overlays all start from it.
//!
//! Models may also read another orientation ([`SliceOrientation`]): the grid is then
//! looked at in a rotated world in which that orientation's slices are coronal, so the
//! whole slicing chain serves every orientation unchanged.

use serde::{Deserialize, Serialize};

use super::grid::Grid;
use crate::error::Result;

/// The anatomical plane a model reads its slices in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SliceOrientation {
    /// Coronal slices (the default, and every model written before this existed).
    #[default]
    Coronal,
    /// Axial slices, inferior to superior; columns go right to left as in coronal
    /// slices and rows from posterior (top) to anterior.
    Axial,
    /// Sagittal slices, right to left; columns go anterior to posterior and rows
    /// superior to inferior. A sagittal slice does not show which hemisphere it is in, so
    /// such a model is trained with left and right classes merged (see
    /// [`SliceOrientation::tells_left_from_right`]).
    Sagittal,
}

impl SliceOrientation {
    /// True for [`SliceOrientation::Coronal`].
    pub fn is_coronal(&self) -> bool {
        *self == SliceOrientation::Coronal
    }

    /// Lowercase name, as in model configurations.
    pub fn name(self) -> &'static str {
        match self {
            SliceOrientation::Coronal => "coronal",
            SliceOrientation::Axial => "axial",
            SliceOrientation::Sagittal => "sagittal",
        }
    }

    /// Whether a slice of this orientation shows left and right structures apart (and
    /// mirroring its columns is a left-right flip). False for sagittal slices: each lies
    /// in one hemisphere and looks alike in both, so a sagittal model learns the left and
    /// right structures as one class (`labels::HEMISPHERE_MERGED_CLASSES`) and the side
    /// comes from where the slice lies.
    pub fn tells_left_from_right(self) -> bool {
        self != SliceOrientation::Sagittal
    }

    /// A RAS point in the view's world: the rotation under which this orientation's
    /// slices are coronal (axial: R stays, S becomes A and A becomes -S, a proper
    /// rotation about the R axis; sagittal: A becomes R and R becomes -A, a proper
    /// rotation about the S axis).
    pub fn to_view(self, ras: [f64; 3]) -> [f64; 3] {
        match self {
            SliceOrientation::Coronal => ras,
            SliceOrientation::Axial => [ras[0], ras[2], -ras[1]],
            SliceOrientation::Sagittal => [ras[1], -ras[0], ras[2]],
        }
    }

    /// `grid` seen in the view's world (same voxels and dimensions, rotated affine), so
    /// that [`CoronalFrame::from_grid`] of the result slices along this orientation.
    pub fn view_grid(self, grid: &Grid) -> Result<Grid> {
        if self.is_coronal() {
            return Ok(grid.clone());
        }
        let affine = grid.voxel_to_ras();
        let mut rotated = *affine;
        for column in 0..4 {
            let moved = self.to_view([affine[0][column], affine[1][column], affine[2][column]]);
            for (row, value) in moved.into_iter().enumerate() {
                rotated[row][column] = value;
            }
        }
        Grid::from_ras_affine(grid.dims(), rotated)
    }
}

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

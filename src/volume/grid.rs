//! The voxel grid of a volume: dimensions and the voxel → world transform.
//!
//! # Conventions
//!
//! * **Voxel indices** `(i, j, k)` follow the storage order of the file: `i` varies
//!   fastest in memory (NIfTI and ITK both store x-fastest).
//! * **NIfTI / RAS** (nibabel, FreeSurfer, FSL): world coordinates in millimetres
//!   with +x = patient Right, +y = Anterior, +z = Superior. [`Grid::voxel_to_ras`]
//!   is the 4×4 matrix mapping `(i, j, k, 1)` to `(R, A, S, 1)`.
//! * **ITK / LPS** (ITK, SimpleITK, 3D Slicer's file I/O, DICOM): +x = patient Left,
//!   +y = Posterior, +z = Superior. An ITK image is described by `spacing`
//!   (mm per axis), `origin` (LPS position of voxel (0,0,0)) and `direction`, a 3×3
//!   matrix whose **column** `a` is the LPS unit vector of voxel axis `a`
//!   (`direction[row][column]`, as `itk::Image::GetDirection()` prints it).
//!   The two are related by `voxel_to_ras = diag(-1,-1,1,1) · [direction·diag(spacing) | origin]`.

use crate::error::{Error, Result};

/// Largest voxel size accepted, in millimetres: anything coarser is not a
/// structural brain MRI and almost always a header error.
pub const MAX_SPACING_MM: f64 = 20.0;

/// Affine transform as a row-major 4×4 matrix (last row `0 0 0 1`).
pub type Affine = [[f64; 4]; 4];

/// Geometry of a 3-D voxel grid, independent of the voxel values.
///
/// It keeps the NIfTI header it was read from (when there is one) so that a
/// label map written on this grid reproduces the input geometry bit for bit
/// (dimensions, `pixdim`, qform/sform codes and parameters).
#[derive(Debug, Clone)]
pub struct Grid {
    dims: [usize; 3],
    voxel_to_ras: Affine,
    ras_to_voxel: Affine,
    /// Header used as the template when writing a volume on this grid.
    pub(crate) header: nifti::NiftiHeader,
}

impl PartialEq for Grid {
    fn eq(&self, other: &Self) -> bool {
        self.dims == other.dims && self.voxel_to_ras == other.voxel_to_ras
    }
}

impl Grid {
    /// Builds a grid from dimensions and a voxel → RAS affine.
    ///
    /// The NIfTI header used when writing gets `sform_code = qform_code = 1`
    /// (scanner anatomical) with the affine stored in both forms.
    ///
    /// Errors when a dimension is zero, the affine holds NaN/inf, is singular,
    /// or a voxel size is outside (0, [`MAX_SPACING_MM`]].
    pub fn from_ras_affine(dims: [usize; 3], voxel_to_ras: Affine) -> Result<Self> {
        let header = header_for_affine(dims, &voxel_to_ras)?;
        Self::with_header(dims, voxel_to_ras, header, "affine")
    }

    /// Builds a grid from ITK-style geometry (LPS): `spacing` in mm per voxel axis,
    /// `origin` = LPS position of voxel (0,0,0), `direction[row][column]` with
    /// column `a` the LPS direction of voxel axis `a`.
    pub fn from_lps(
        dims: [usize; 3],
        spacing: [f64; 3],
        origin: [f64; 3],
        direction: [[f64; 3]; 3],
    ) -> Result<Self> {
        for (axis, s) in spacing.iter().enumerate() {
            check_spacing(*s, axis, "spacing")?;
        }
        let mut affine = identity();
        for row in 0..3 {
            // LPS → RAS flips the first two world axes.
            let flip = if row < 2 { -1.0 } else { 1.0 };
            for col in 0..3 {
                affine[row][col] = flip * direction[row][col] * spacing[col];
            }
            affine[row][3] = flip * origin[row];
        }
        Self::from_ras_affine(dims, affine)
    }

    pub(crate) fn with_header(
        dims: [usize; 3],
        voxel_to_ras: Affine,
        header: nifti::NiftiHeader,
        what: &str,
    ) -> Result<Self> {
        if dims.contains(&0) {
            return Err(Error::invalid_argument(format!(
                "volume dimensions {dims:?} contain a zero"
            )));
        }
        dims.iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 8)
            .ok_or_else(|| {
                Error::invalid_argument(format!("volume dimensions {dims:?} are too large"))
            })?;
        if voxel_to_ras
            .iter()
            .flatten()
            .any(|value| !value.is_finite())
        {
            return Err(Error::invalid_argument(format!(
                "the {what} holds NaN or infinite values: {voxel_to_ras:?}"
            )));
        }
        for axis in 0..3 {
            let spacing = column_norm(&voxel_to_ras, axis);
            check_spacing(spacing, axis, what)?;
        }
        let ras_to_voxel = invert(&voxel_to_ras).ok_or_else(|| {
            Error::invalid_argument(format!("the {what} is singular: {voxel_to_ras:?}"))
        })?;
        Ok(Grid {
            dims,
            voxel_to_ras,
            ras_to_voxel,
            header,
        })
    }

    /// Number of voxels along each voxel axis.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Total number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Always false: a grid has at least one voxel.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Linear index (x fastest) of voxel `(i, j, k)`.
    #[inline]
    pub fn linear_index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// The voxel → RAS (mm) affine.
    pub fn voxel_to_ras(&self) -> &Affine {
        &self.voxel_to_ras
    }

    /// The RAS (mm) → voxel affine.
    pub fn ras_to_voxel(&self) -> &Affine {
        &self.ras_to_voxel
    }

    /// Voxel size in mm along each voxel axis (norms of the affine's columns).
    pub fn spacing(&self) -> [f64; 3] {
        [0, 1, 2].map(|axis| column_norm(&self.voxel_to_ras, axis))
    }

    /// Unit RAS direction of each voxel axis (`result[axis]`).
    pub fn axis_directions_ras(&self) -> [[f64; 3]; 3] {
        let spacing = self.spacing();
        [0, 1, 2].map(|axis| [0, 1, 2].map(|row| self.voxel_to_ras[row][axis] / spacing[axis]))
    }

    /// ITK origin: LPS position (mm) of voxel (0,0,0).
    pub fn origin_lps(&self) -> [f64; 3] {
        let a = &self.voxel_to_ras;
        [-a[0][3], -a[1][3], a[2][3]]
    }

    /// ITK direction matrix (`direction[row][column]`, column = voxel axis, LPS).
    pub fn direction_lps(&self) -> [[f64; 3]; 3] {
        let axes = self.axis_directions_ras();
        let mut direction = [[0.0; 3]; 3];
        for (row, out_row) in direction.iter_mut().enumerate() {
            let flip = if row < 2 { -1.0 } else { 1.0 };
            for (axis, value) in out_row.iter_mut().enumerate() {
                *value = flip * axes[axis][row];
            }
        }
        direction
    }

    /// RAS position (mm) of a continuous voxel coordinate.
    pub fn voxel_to_ras_point(&self, voxel: [f64; 3]) -> [f64; 3] {
        apply(&self.voxel_to_ras, voxel)
    }

    /// Continuous voxel coordinate of a RAS position (mm).
    pub fn ras_to_voxel_point(&self, ras: [f64; 3]) -> [f64; 3] {
        apply(&self.ras_to_voxel, ras)
    }

    /// Orientation code such as `"RAS"`, `"LIA"`: for each voxel axis, the
    /// anatomical direction it points to (closest world axis), as nibabel's
    /// `aff2axcodes`.
    pub fn orientation_code(&self) -> String {
        self.axis_directions_ras()
            .iter()
            .map(|direction| {
                let world = dominant_component(direction);
                let positive = direction[world] > 0.0;
                match (world, positive) {
                    (0, true) => 'R',
                    (0, false) => 'L',
                    (1, true) => 'A',
                    (1, false) => 'P',
                    (2, true) => 'S',
                    _ => 'I',
                }
            })
            .collect()
    }

    /// True when both grids have the same dimensions and their affines agree
    /// within `tolerance_mm` (every voxel centre lands within about that distance).
    pub fn same_grid(&self, other: &Grid, tolerance_mm: f64) -> bool {
        if self.dims != other.dims {
            return false;
        }
        // Compare the positions of the 8 corner voxels: this bounds the error
        // anywhere inside the grid.
        let max = self.dims.map(|d| (d - 1) as f64);
        (0..8).all(|corner| {
            let voxel = [0, 1, 2].map(|a| if corner >> a & 1 == 1 { max[a] } else { 0.0 });
            let p = self.voxel_to_ras_point(voxel);
            let q = other.voxel_to_ras_point(voxel);
            distance(p, q) <= tolerance_mm
        })
    }

    /// Errors (naming both grids) unless [`Grid::same_grid`] holds with a 0.01 mm
    /// tolerance. `what`/`other_what` name the two volumes in the message.
    pub fn ensure_same_grid(&self, other: &Grid, what: &str, other_what: &str) -> Result<()> {
        if self.same_grid(other, 1e-2) {
            return Ok(());
        }
        Err(Error::invalid_argument(format!(
            "{other_what} is not on the grid of {what}: dimensions {:?} vs {:?}, affines {:?} vs {:?}",
            other.dims, self.dims, other.voxel_to_ras, self.voxel_to_ras
        )))
    }

    /// A grid with the same geometry and different dimensions is not allowed;
    /// this returns the NIfTI header that will be used when writing.
    pub fn nifti_header(&self) -> &nifti::NiftiHeader {
        &self.header
    }
}

fn check_spacing(spacing: f64, axis: usize, what: &str) -> Result<()> {
    if !(spacing.is_finite() && spacing > 0.0 && spacing <= MAX_SPACING_MM) {
        return Err(Error::invalid_argument(format!(
            "voxel size {spacing} mm along axis {axis} (from the {what}) is not in (0, {MAX_SPACING_MM}] mm"
        )));
    }
    Ok(())
}

pub(crate) fn identity() -> Affine {
    let mut m = [[0.0; 4]; 4];
    for (i, row) in m.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    m
}

fn column_norm(m: &Affine, axis: usize) -> f64 {
    (0..3).map(|row| m[row][axis].powi(2)).sum::<f64>().sqrt()
}

/// Index of the largest absolute component.
pub(crate) fn dominant_component(v: &[f64; 3]) -> usize {
    let mut best = 0;
    for c in 1..3 {
        if v[c].abs() > v[best].abs() {
            best = c;
        }
    }
    best
}

fn distance(p: [f64; 3], q: [f64; 3]) -> f64 {
    (0..3).map(|c| (p[c] - q[c]).powi(2)).sum::<f64>().sqrt()
}

/// Applies a 4×4 affine to a point.
pub(crate) fn apply(m: &Affine, p: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|row| m[row][0] * p[0] + m[row][1] * p[1] + m[row][2] * p[2] + m[row][3])
}

/// Inverse of an affine (3×3 block inverted by cofactors), `None` if singular.
pub(crate) fn invert(m: &Affine) -> Option<Affine> {
    let a = |r: usize, c: usize| m[r][c];
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| a(r0, c0) * a(r1, c1) - a(r0, c1) * a(r1, c0);
    let det = a(0, 0) * cof(1, 2, 1, 2) - a(0, 1) * cof(1, 2, 0, 2) + a(0, 2) * cof(1, 2, 0, 1);
    let scale = (0..3)
        .map(|c| column_norm(m, c))
        .product::<f64>()
        .max(f64::MIN_POSITIVE);
    if !det.is_finite() || det.abs() <= 1e-9 * scale {
        return None;
    }
    let mut inv = identity();
    inv[0][0] = cof(1, 2, 1, 2) / det;
    inv[0][1] = -cof(0, 2, 1, 2) / det;
    inv[0][2] = cof(0, 1, 1, 2) / det;
    inv[1][0] = -cof(1, 2, 0, 2) / det;
    inv[1][1] = cof(0, 2, 0, 2) / det;
    inv[1][2] = -cof(0, 1, 0, 2) / det;
    inv[2][0] = cof(1, 2, 0, 1) / det;
    inv[2][1] = -cof(0, 2, 0, 1) / det;
    inv[2][2] = cof(0, 1, 0, 1) / det;
    for row in inv.iter_mut().take(3) {
        row[3] = -(0..3).map(|c| row[c] * m[c][3]).sum::<f64>();
    }
    Some(inv)
}

/// A NIfTI header describing `affine` in both the sform and the qform.
pub(crate) fn header_for_affine(dims: [usize; 3], affine: &Affine) -> Result<nifti::NiftiHeader> {
    let mut header = nifti::NiftiHeader::default();
    for (axis, &d) in dims.iter().enumerate() {
        header.dim[axis + 1] = u16::try_from(d).map_err(|_| {
            Error::invalid_argument(format!(
                "dimension {d} along axis {axis} exceeds the NIfTI-1 limit of 32767"
            ))
        })?;
    }
    header.dim[0] = 3;
    header.xyzt_units = 2; // millimetres
    header.magic = *b"n+1\0";
    header.sform_code = 1;
    header.srow_x = affine[0].map(|v| v as f32);
    header.srow_y = affine[1].map(|v| v as f32);
    header.srow_z = affine[2].map(|v| v as f32);
    let spacing = [0, 1, 2].map(|axis| column_norm(affine, axis));
    for (axis, size) in spacing.iter().enumerate() {
        header.pixdim[axis + 1] = *size as f32;
    }
    // The qform can only hold a rotation (+ a flip of the third axis); store it
    // when the matrix is orthogonal, as ITK and Slicer prefer the qform.
    if let Some((quaternion, qfac)) = rotation_to_quaternion(affine, spacing) {
        header.qform_code = 1;
        header.pixdim[0] = qfac as f32;
        header.quatern_b = quaternion[0] as f32;
        header.quatern_c = quaternion[1] as f32;
        header.quatern_d = quaternion[2] as f32;
    } else {
        header.qform_code = 0;
    }
    header.quatern_x = affine[0][3] as f32;
    header.quatern_y = affine[1][3] as f32;
    header.quatern_z = affine[2][3] as f32;
    Ok(header)
}

/// Quaternion (b, c, d) and qfac of the rotation part, as `nifti_mat44_to_quatern`,
/// or `None` when the direction cosines are not orthogonal.
fn rotation_to_quaternion(affine: &Affine, spacing: [f64; 3]) -> Option<([f64; 3], f64)> {
    let mut r = [[0.0; 3]; 3];
    for row in 0..3 {
        for col in 0..3 {
            r[row][col] = affine[row][col] / spacing[col];
        }
    }
    for a in 0..3 {
        for b in (a + 1)..3 {
            let dot: f64 = (0..3).map(|row| r[row][a] * r[row][b]).sum();
            if dot.abs() > 1e-4 {
                return None;
            }
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let (r11, r12, r13) = (r[0][0], r[0][1], r[0][2]);
    let (r21, r22, r23) = (r[1][0], r[1][1], r[1][2]);
    let (r31, r32, r33) = (r[2][0], r[2][1], r[2][2]);
    let trace = r11 + r22 + r33 + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
            a = -a;
        }
    }
    let _ = a;
    Some(([b, c, d], qfac))
}

/// The voxel → RAS affine a NIfTI header describes, with nibabel's precedence:
/// the sform when `sform_code > 0`, else the qform when `qform_code > 0`, else
/// the Analyze-style fallback (LAS, centred on the grid) that nibabel uses.
pub(crate) fn affine_from_header(header: &nifti::NiftiHeader, dims: [usize; 3]) -> Affine {
    let mut m = identity();
    if header.sform_code > 0 {
        for (row, srow) in [header.srow_x, header.srow_y, header.srow_z]
            .iter()
            .enumerate()
        {
            for col in 0..4 {
                m[row][col] = f64::from(srow[col]);
            }
        }
        return m;
    }
    let pixdim = [1, 2, 3].map(|a| f64::from(header.pixdim[a]));
    if header.qform_code > 0 {
        let (b, c, d) = (
            f64::from(header.quatern_b),
            f64::from(header.quatern_c),
            f64::from(header.quatern_d),
        );
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let qfac = if header.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [pixdim[0], pixdim[1], pixdim[2] * qfac];
        for row in 0..3 {
            for col in 0..3 {
                m[row][col] = r[row][col] * scale[col];
            }
        }
        m[0][3] = f64::from(header.quatern_x);
        m[1][3] = f64::from(header.quatern_y);
        m[2][3] = f64::from(header.quatern_z);
        return m;
    }
    m[0][0] = -pixdim[0];
    m[1][1] = pixdim[1];
    m[2][2] = pixdim[2];
    m[0][3] = (dims[0] as f64 - 1.0) / 2.0 * pixdim[0];
    m[1][3] = -(dims[1] as f64 - 1.0) / 2.0 * pixdim[1];
    m[2][3] = -(dims[2] as f64 - 1.0) / 2.0 * pixdim[2];
    m
}

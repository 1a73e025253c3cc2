//! Automatic subcortical region of interest, without registration.
//!
//! # Method
//!
//! 1. **Head mask.** Voxels brighter than `min + 0.15 × (p99.5 - min)` (the
//!    percentile over voxels above the minimum), sampled every ~2 mm.
//! 2. **Vertex.** The most superior 1 mm axial band whose head cross-section
//!    exceeds 1000 mm² (ignores noise specks above the head).
//! 3. **Head centre.** Start at the centroid (R, A) of the mask in the 100 mm
//!    below the vertex and 60 mm below the vertex in S; then repeatedly move to
//!    the centroid of the mask voxels within 75 mm (a mean-shift on the mask).
//!    The sphere ignores the neck, the shoulders and the rest of the field of
//!    view, so the result is the centre of the cranium whether or not the image
//!    is skull-stripped, where the head sits in the field of view, and how much
//!    neck is included.
//! 4. **Region.** Relative to the head centre, the 12 structures lie within
//!    R ±42 mm, A −21…+54 mm, S −50…+22 mm on every shared dataset (FreeSurfer
//!    subjects with and without skull, MNE sample at 3 mm, fsaverage, Colin27,
//!    MNI152 templates; see `tests/volume_roi.rs`). The ROI adds a margin: the
//!    coronal slices span A −31…+64 mm (95 mm) and the in-plane field of view is
//!    a 128 mm square centred 14 mm below the head centre. For axial slices
//!    ([`find_roi_oriented`]) the planes span S −60…+32 mm and the same 128 mm square
//!    lies over R and A, centred on the coronal slab's middle (A +16.5 mm).
//!
//! # How it fails
//!
//! * A head cut off at the top (vertex outside the field of view) or a very
//!   small field of view shifts the centre; the mean-shift step partly
//!   compensates.
//! * Heads far from adult size (infants) or strong pitch (> ~20°, chin on the
//!   chest) move the structures relative to the cranium centre beyond the margin.
//! * A foreground threshold that misses the head (extremely low-contrast or
//!   heavily biased images) gives a wrong mask; the ROI then errors if the mask
//!   is empty or may be misplaced.
//! * Large bright objects beside the head (phantoms, coils) pull the centre.

use super::frame::{CoronalFrame, SliceOrientation};
use super::grid::Grid;
use super::stats::percentile;
use super::Volume;
use crate::error::{Error, Result};

/// The subcortical region of interest: the slices to encode (coronal, or of the
/// orientation [`find_roi_oriented`] was asked for, on its view grid) and the in-plane
/// square field of view.
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

/// Settings of [`find_roi`]; distances in mm relative to the head centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiConfig {
    /// Side of the square coronal field of view (default 128 mm).
    pub fov_mm: f64,
    /// Offset of the field-of-view centre from the head centre along S (default −14 mm).
    pub superior_offset_mm: f64,
    /// Offset of the field-of-view centre from the head centre along R (default 0 mm).
    pub right_offset_mm: f64,
    /// First coronal plane, anterior of the head centre (default −31 mm, i.e. posterior).
    pub anterior_from_mm: f64,
    /// Last coronal plane, anterior of the head centre (default +64 mm).
    pub anterior_to_mm: f64,
    /// First axial plane, superior of the head centre, for axial slices (default −60 mm:
    /// the structures reach −50 mm).
    pub superior_from_mm: f64,
    /// Last axial plane, superior of the head centre, for axial slices (default +32 mm:
    /// the structures reach +22 mm).
    pub superior_to_mm: f64,
    /// Sagittal slices, for sagittal models, lie within this distance of the head centre
    /// on either side (default 50 mm: the structures reach about 40 mm).
    pub lateral_half_width_mm: f64,
}

impl Default for RoiConfig {
    fn default() -> Self {
        RoiConfig {
            fov_mm: 128.0,
            superior_offset_mm: -14.0,
            right_offset_mm: 0.0,
            anterior_from_mm: -31.0,
            anterior_to_mm: 64.0,
            superior_from_mm: -60.0,
            superior_to_mm: 32.0,
            lateral_half_width_mm: 50.0,
        }
    }
}

/// Head landmarks found by [`find_roi`] (RAS mm), for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadLandmarks {
    /// Superior limit of the head.
    pub vertex_s: f64,
    /// Centre of the cranium (mean-shift result).
    pub centre_ras: [f64; 3],
}

/// Finds the head landmarks (see the module documentation).
pub fn head_landmarks(volume: &Volume) -> Result<HeadLandmarks> {
    let grid = volume.grid();
    let points = head_points(volume)?;
    let voxel_mm3 = sample_volume_mm3(grid);
    // Vertex: the top 1 mm band with enough head cross-section.
    let top = points
        .iter()
        .map(|p| p[2])
        .fold(f64::NEG_INFINITY, f64::max);
    let bottom = points.iter().map(|p| p[2]).fold(f64::INFINITY, f64::min);
    let n_bands = (top - bottom).floor() as usize + 1;
    let mut band_volume = vec![0.0f64; n_bands];
    for p in &points {
        band_volume[((top - p[2]).floor() as usize).min(n_bands - 1)] += voxel_mm3;
    }
    // A band's volume in mm³ over its 1 mm thickness is its area in mm²;
    // average over 3 bands so coarse voxels (3 mm) do not leave empty bands.
    let vertex_band = (0..n_bands)
        .find(|&b| {
            let window = &band_volume[b.saturating_sub(1)..(b + 2).min(n_bands)];
            window.iter().sum::<f64>() / window.len() as f64 >= 1000.0
        })
        .ok_or_else(|| {
            Error::invalid_argument(
                "no axial level of the head mask reaches 1000 mm²: is this a head image?",
            )
        })?;
    let vertex_s = top - vertex_band as f64;
    let slab: Vec<&[f64; 3]> = points.iter().filter(|p| p[2] > vertex_s - 100.0).collect();
    let mean = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        sum / n.max(1) as f64
    };
    let mut centre = [
        mean(&mut slab.iter().map(|p| p[0])),
        mean(&mut slab.iter().map(|p| p[1])),
        vertex_s - 60.0,
    ];
    for _ in 0..20 {
        let mut sum = [0.0; 3];
        let mut n = 0usize;
        for p in &points {
            let d2: f64 = (0..3).map(|c| (p[c] - centre[c]).powi(2)).sum();
            if d2 < 75.0 * 75.0 {
                for c in 0..3 {
                    sum[c] += p[c];
                }
                n += 1;
            }
        }
        if n == 0 {
            break;
        }
        let next = sum.map(|s| s / n as f64);
        let moved: f64 = (0..3)
            .map(|c| (next[c] - centre[c]).powi(2))
            .sum::<f64>()
            .sqrt();
        centre = next;
        if moved < 0.1 {
            break;
        }
    }
    Ok(HeadLandmarks {
        vertex_s,
        centre_ras: centre,
    })
}

/// Finds the subcortical region of interest of a T1 head or brain image.
pub fn find_roi(volume: &Volume, config: &RoiConfig) -> Result<Roi> {
    find_roi_oriented(volume, config, SliceOrientation::Coronal).map(|(_, roi)| roi)
}

/// Finds the subcortical region of interest for slices of `orientation`: the
/// grid seen in that orientation's view world ([`SliceOrientation::view_grid`]) and the
/// ROI on it (its centre in view coordinates, its slices along the view's coronal
/// axis). The head is found in the scan's own world either way.
pub fn find_roi_oriented(
    volume: &Volume,
    config: &RoiConfig,
    orientation: SliceOrientation,
) -> Result<(Grid, Roi)> {
    let valid = config.fov_mm.is_finite()
        && config.fov_mm > 0.0
        && config.anterior_from_mm < config.anterior_to_mm
        && config.superior_from_mm < config.superior_to_mm
        && config.lateral_half_width_mm.is_finite()
        && config.lateral_half_width_mm > 0.0;
    if !valid {
        return Err(Error::invalid_argument(format!(
            "invalid ROI configuration {config:?}"
        )));
    }
    let landmarks = head_landmarks(volume)?;
    let c = landmarks.centre_ras;
    let view_grid = orientation.view_grid(volume.grid())?;
    let roi = match orientation {
        SliceOrientation::Coronal => roi_from_centre(
            &view_grid,
            [
                c[0] + config.right_offset_mm,
                c[1],
                c[2] + config.superior_offset_mm,
            ],
            c[1] + config.anterior_from_mm,
            c[1] + config.anterior_to_mm,
            config.fov_mm,
        )?,
        SliceOrientation::Axial => {
            // In-plane the field of view is centred on the coronal slab's middle.
            let middle_a = c[1] + (config.anterior_from_mm + config.anterior_to_mm) / 2.0;
            let centre = orientation.to_view([c[0] + config.right_offset_mm, middle_a, c[2]]);
            // The view's A axis is the scan's S axis.
            roi_from_centre(
                &view_grid,
                centre,
                c[2] + config.superior_from_mm,
                c[2] + config.superior_to_mm,
                config.fov_mm,
            )?
        }
        SliceOrientation::Sagittal => {
            // In-plane (A and S) the field of view is centred as the coronal one is along
            // S and on the coronal slab's middle along A.
            let middle_a = c[1] + (config.anterior_from_mm + config.anterior_to_mm) / 2.0;
            let midline_r = c[0] + config.right_offset_mm;
            let centre =
                orientation.to_view([midline_r, middle_a, c[2] + config.superior_offset_mm]);
            // The view's A axis is the scan's -R axis.
            roi_from_centre(
                &view_grid,
                centre,
                -(midline_r + config.lateral_half_width_mm),
                -(midline_r - config.lateral_half_width_mm),
                config.fov_mm,
            )?
        }
    };
    Ok((view_grid, roi))
}

/// A ROI centred at `centre_ras` with the coronal planes between the RAS
/// A-coordinates `a_from` and `a_to` (mm), clipped to the volume.
pub fn roi_from_centre(
    grid: &Grid,
    centre_ras: [f64; 3],
    a_from: f64,
    a_to: f64,
    fov_mm: f64,
) -> Result<Roi> {
    let frame = CoronalFrame::from_grid(grid);
    let n = grid.dims()[frame.coronal_axis];
    let index_at =
        |a: f64| grid.ras_to_voxel_point([centre_ras[0], a, centre_ras[2]])[frame.coronal_axis];
    let (p, q) = (index_at(a_from), index_at(a_to));
    let (low, high) = (p.min(q).floor(), p.max(q).ceil());
    if high < 0.0 || low > (n - 1) as f64 {
        return Err(Error::invalid_argument(format!(
            "the subcortical region (voxel planes {low}..{high} along the slicing axis) lies outside the volume's {n} planes"
        )));
    }
    Ok(Roi {
        centre_ras,
        fov_mm,
        first_slice: low.max(0.0) as usize,
        last_slice: high.min((n - 1) as f64) as usize,
    })
}

/// Smallest field of view (mm, along the longest axis) that can hold a head.
pub const MIN_HEAD_EXTENT_MM: f64 = 50.0;

/// Sampling step per axis so samples are about 2 mm apart.
fn sample_steps(grid: &Grid) -> [usize; 3] {
    grid.spacing().map(|s| ((2.0 / s).round() as usize).max(1))
}

fn sample_volume_mm3(grid: &Grid) -> f64 {
    let steps = sample_steps(grid);
    let spacing = grid.spacing();
    (0..3)
        .map(|a| spacing[a] * steps[a] as f64)
        .product::<f64>()
}

/// RAS positions of the sampled head-mask voxels.
fn head_points(volume: &Volume) -> Result<Vec<[f64; 3]>> {
    let grid = volume.grid();
    let spacing = grid.spacing();
    let extent = [0, 1, 2].map(|axis| grid.dims()[axis] as f64 * spacing[axis]);
    if extent.iter().all(|&mm| mm < MIN_HEAD_EXTENT_MM) {
        return Err(Error::invalid_argument(format!(
            "the volume spans only {:.3} x {:.3} x {:.3} mm, too small to hold a head (at \
             least {MIN_HEAD_EXTENT_MM} mm along some axis): check the voxel sizes in its \
             header ({:?} mm)",
            extent[0], extent[1], extent[2], spacing
        )));
    }
    let steps = sample_steps(grid);
    let [nx, ny, nz] = grid.dims();
    let mut samples: Vec<f32> = Vec::new();
    for k in (0..nz).step_by(steps[2]) {
        for j in (0..ny).step_by(steps[1]) {
            for i in (0..nx).step_by(steps[0]) {
                samples.push(volume.get(i, j, k));
            }
        }
    }
    let min = samples.iter().copied().fold(f32::INFINITY, f32::min);
    let mut above: Vec<f32> = samples.iter().copied().filter(|&v| v > min).collect();
    if above.is_empty() {
        return Err(Error::invalid_argument(
            "the image is constant: no head to find",
        ));
    }
    let top = percentile(&mut above, 99.5);
    let threshold = min + 0.15 * (top - min);
    let mut points = Vec::new();
    let mut n = 0;
    for k in (0..nz).step_by(steps[2]) {
        for j in (0..ny).step_by(steps[1]) {
            for i in (0..nx).step_by(steps[0]) {
                if samples[n] > threshold {
                    points.push(grid.voxel_to_ras_point([i as f64, j as f64, k as f64]));
                }
                n += 1;
            }
        }
    }
    if points.is_empty() {
        return Err(Error::invalid_argument("the head mask is empty"));
    }
    Ok(points)
}

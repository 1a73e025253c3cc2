//! Intensity normalisation robust to scanner, sequence and skull stripping.
//!
//! Method: the foreground is every voxel brighter than
//! `min + foreground_fraction × (p99.5 - min)` (air and the zero padding of
//! skull-stripped images fall below it); the `lower_percentile` and
//! `upper_percentile` of the foreground intensities are mapped to 0 and 1 and
//! values are clipped to `[0, 1]`. Percentiles of the foreground (rather than of
//! the whole image) do not depend on how much air or padding surrounds the head,
//! and clipping the top 0.5 % removes the bright outliers (vessels, fat, flow
//! artefacts) that would otherwise compress the tissue contrast.
//!
//! With `central_radius_mm` set (the default, 55 mm), the percentiles are taken
//! only over foreground voxels within that distance of the cranium centre found
//! by [`super::roi::head_landmarks`]: that sphere holds brain only, so scalp fat
//! and marrow (far brighter than white matter on T1) do not set the window and
//! skull-stripped and full-head images of one subject normalise alike. If the
//! head centre cannot be found, the whole foreground is used.

use super::stats::percentile;
use super::Volume;
use crate::error::{Error, Result};

/// Settings of [`normalize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalizeConfig {
    /// Foreground percentile mapped to 0 (default 0.5).
    pub lower_percentile: f64,
    /// Foreground percentile mapped to 1 (default 99.5).
    pub upper_percentile: f64,
    /// Foreground threshold as a fraction of the robust intensity range (default 0.05).
    pub foreground_fraction: f64,
    /// Radius (mm) of the central sphere whose voxels set the percentiles;
    /// `None` uses the whole foreground (default `Some(55.0)`).
    pub central_radius_mm: Option<f64>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            lower_percentile: 0.5,
            upper_percentile: 99.5,
            foreground_fraction: 0.05,
            central_radius_mm: Some(55.0),
        }
    }
}

/// The intensity window chosen by [`intensity_window`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntensityWindow {
    /// Intensity mapped to 0.
    pub low: f32,
    /// Intensity mapped to 1.
    pub high: f32,
    /// Threshold above which voxels counted as foreground.
    pub foreground_threshold: f32,
}

/// Computes the foreground percentile window of `volume` (see the module doc).
pub fn intensity_window(volume: &Volume, config: &NormalizeConfig) -> Result<IntensityWindow> {
    let NormalizeConfig {
        lower_percentile,
        upper_percentile,
        foreground_fraction,
        central_radius_mm,
    } = *config;
    let ordered = (0.0..100.0).contains(&lower_percentile)
        && lower_percentile < upper_percentile
        && upper_percentile <= 100.0;
    if !ordered {
        return Err(Error::invalid_argument(format!(
            "percentiles {lower_percentile} and {upper_percentile} must satisfy 0 <= lower < upper <= 100"
        )));
    }
    if !(0.0..1.0).contains(&foreground_fraction) {
        return Err(Error::invalid_argument(format!(
            "foreground fraction {foreground_fraction} must be in [0, 1)"
        )));
    }
    let data = volume.data();
    let min = data.iter().copied().fold(f32::INFINITY, f32::min);
    let mut above_min: Vec<f32> = data.iter().copied().filter(|&v| v > min).collect();
    if above_min.is_empty() {
        return Err(Error::invalid_argument(format!(
            "the image is constant (every voxel is {min}): nothing to normalise"
        )));
    }
    let top = percentile(&mut above_min, 99.5);
    let threshold = min + (foreground_fraction as f32) * (top - min);
    let central = match central_radius_mm {
        Some(radius) if radius.is_finite() && radius > 0.0 => super::roi::head_landmarks(volume)
            .ok()
            .map(|landmarks| central_values(volume, landmarks.centre_ras, radius, threshold)),
        Some(radius) => {
            return Err(Error::invalid_argument(format!(
                "central radius {radius} mm must be positive"
            )))
        }
        None => None,
    };
    let mut foreground: Vec<f32> = match central {
        Some(values) if values.len() >= 1000 => values,
        _ => above_min.into_iter().filter(|&v| v > threshold).collect(),
    };
    if foreground.is_empty() {
        return Err(Error::invalid_argument(
            "no foreground voxels above the intensity threshold".to_string(),
        ));
    }
    let low = percentile(&mut foreground, lower_percentile);
    let high = percentile(&mut foreground, upper_percentile);
    if high <= low {
        return Err(Error::invalid_argument(format!(
            "the foreground intensities have no spread (percentiles {lower_percentile} and \
             {upper_percentile} are both {low})"
        )));
    }
    Ok(IntensityWindow {
        low,
        high,
        foreground_threshold: threshold,
    })
}

/// Foreground values within `radius` mm of `centre_ras`.
fn central_values(volume: &Volume, centre_ras: [f64; 3], radius: f64, threshold: f32) -> Vec<f32> {
    let grid = volume.grid();
    let centre = grid.ras_to_voxel_point(centre_ras);
    let spacing = grid.spacing();
    let [nx, ny, nz] = grid.dims();
    // Bounding box of the sphere in voxels (axis-aligned in voxel space; the
    // distance test below uses the true metric).
    let range = |axis: usize, n: usize| {
        let reach = radius / spacing[axis] * 1.8;
        let low = (centre[axis] - reach).floor().max(0.0) as usize;
        let high = ((centre[axis] + reach).ceil().max(0.0) as usize).min(n);
        low..high
    };
    let mut values = Vec::new();
    for k in range(2, nz) {
        for j in range(1, ny) {
            for i in range(0, nx) {
                let p = grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                let d2: f64 = (0..3).map(|c| (p[c] - centre_ras[c]).powi(2)).sum();
                let value = volume.get(i, j, k);
                if d2 <= radius * radius && value > threshold {
                    values.push(value);
                }
            }
        }
    }
    values
}

/// Returns a copy of `volume` with intensities mapped to `[0, 1]` (see the module doc).
pub fn normalize(volume: &Volume, config: &NormalizeConfig) -> Result<Volume> {
    let window = intensity_window(volume, config)?;
    let scale = 1.0 / (window.high - window.low);
    let data = volume
        .data()
        .iter()
        .map(|&v| ((v - window.low) * scale).clamp(0.0, 1.0))
        .collect();
    Volume::new(volume.grid().clone(), data)
}

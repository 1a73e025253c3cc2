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
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            lower_percentile: 0.5,
            upper_percentile: 99.5,
            foreground_fraction: 0.05,
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
    } = *config;
    if !(0.0..100.0).contains(&lower_percentile)
        || !(lower_percentile < upper_percentile && upper_percentile <= 100.0)
    {
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
    let mut foreground: Vec<f32> = above_min.into_iter().filter(|&v| v > threshold).collect();
    if foreground.is_empty() {
        return Err(Error::invalid_argument(
            "no foreground voxels above the intensity threshold".to_string(),
        ));
    }
    let low = percentile(&mut foreground, lower_percentile);
    let high = percentile(&mut foreground, upper_percentile);
    if !(high > low) {
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

/// The `q`-th percentile (0..=100, nearest rank with linear interpolation
/// between neighbours) of `values`, which are reordered.
pub(crate) fn percentile(values: &mut [f32], q: f64) -> f32 {
    debug_assert!(!values.is_empty());
    let position = q / 100.0 * (values.len() - 1) as f64;
    let lower = position.floor() as usize;
    let fraction = (position - lower as f64) as f32;
    let (_, &mut low_value, rest) = values.select_nth_unstable_by(lower, f32::total_cmp);
    if fraction == 0.0 || rest.is_empty() {
        return low_value;
    }
    let next = rest.iter().copied().fold(f32::INFINITY, f32::min);
    low_value + fraction * (next - low_value)
}

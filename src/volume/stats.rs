//! Order statistics shared by the intensity normalisation and the region of interest.

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

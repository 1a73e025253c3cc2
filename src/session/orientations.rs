//! Averaging the class probabilities of models of several slice orientations (FastSurfer's
//! view aggregation): each orientation's probabilities, resampled onto the main model's
//! slices, are weighted as FastSurfer weighs its networks, and a sagittal model's
//! structures, which it gives without their side, are split between left and right as the
//! orientations that tell them apart split them.

use ndarray::{Array3, Array4, ArrayView4, Axis};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::labels::NUM_CLASSES;
use crate::volume::frame::SliceOrientation;

/// The weight of an orientation's probabilities in the average: coronal and axial 0.4,
/// sagittal 0.2, as FastSurfer weighs its three networks (the sagittal one, which cannot
/// tell left from right, counts half).
pub(super) fn orientation_weight(orientation: SliceOrientation) -> f32 {
    match orientation {
        SliceOrientation::Coronal | SliceOrientation::Axial => 0.4,
        SliceOrientation::Sagittal => 0.2,
    }
}

/// Below this summed probability of a structure's left and right classes (over the
/// orientations that tell them apart) a sagittal model's split is kept as it is.
const SIDE_EVIDENCE: f32 = 1e-4;

/// A running weighted average of class probabilities `[slices, classes, m, m]`.
pub(super) struct OrientationAverage {
    sum: Array4<f32>,
    weight: Array3<f32>,
}

impl OrientationAverage {
    /// Starts from the main model's probabilities (every pixel covered) of `orientation`.
    pub(super) fn new(probabilities: Array4<f32>, orientation: SliceOrientation) -> Self {
        let weight = orientation_weight(orientation);
        let (n, _, m, _) = probabilities.dim();
        OrientationAverage {
            sum: probabilities * weight,
            weight: Array3::from_elem((n, m, m), weight),
        }
    }

    /// Adds another orientation's probabilities, already resampled onto the main
    /// model's slices (NaN where that orientation's slices do not reach: those pixels keep
    /// the others' average). For an orientation that cannot tell left from right, each
    /// structure's left and right probabilities are pooled and split in the proportion of
    /// the average so far (add such orientations last).
    pub(super) fn add(
        &mut self,
        probabilities: ArrayView4<'_, f32>,
        orientation: SliceOrientation,
    ) -> Result<()> {
        if probabilities.dim() != self.sum.dim() {
            return Err(Error::Internal(format!(
                "probabilities of the {} model have shape {:?}, the average {:?}",
                orientation.name(),
                probabilities.dim(),
                self.sum.dim()
            )));
        }
        let weight = orientation_weight(orientation);
        let (n, classes, m, _) = self.sum.dim();
        // Only the 12 structures' classes come in (left, right) pairs.
        let sided = orientation.tells_left_from_right() || classes != NUM_CLASSES;
        for slice in 0..n {
            for y in 0..m {
                for x in 0..m {
                    if probabilities[[slice, 0, y, x]].is_nan() {
                        continue;
                    }
                    self.weight[[slice, y, x]] += weight;
                    if sided {
                        for class in 0..classes {
                            self.sum[[slice, class, y, x]] +=
                                weight * probabilities[[slice, class, y, x]];
                        }
                        continue;
                    }
                    self.sum[[slice, 0, y, x]] += weight * probabilities[[slice, 0, y, x]];
                    // Left and right classes: 1 and 2, 3 and 4, ...
                    for left in (1..classes).step_by(2) {
                        let right = left + 1;
                        let pooled = probabilities[[slice, left, y, x]]
                            + probabilities[[slice, right, y, x]];
                        let evidence_left = self.sum[[slice, left, y, x]];
                        let evidence = evidence_left + self.sum[[slice, right, y, x]];
                        let (p_left, p_right) = if evidence < SIDE_EVIDENCE {
                            (
                                probabilities[[slice, left, y, x]],
                                probabilities[[slice, right, y, x]],
                            )
                        } else {
                            let share = evidence_left / evidence;
                            (pooled * share, pooled * (1.0 - share))
                        };
                        self.sum[[slice, left, y, x]] += weight * p_left;
                        self.sum[[slice, right, y, x]] += weight * p_right;
                    }
                }
            }
        }
        Ok(())
    }

    /// The average as log-probabilities `[classes, m, m]` per slice (they softmax back to
    /// the average).
    pub(super) fn log_probabilities(self) -> Vec<Tensor> {
        let (_, classes, m, _) = self.sum.dim();
        self.sum
            .axis_iter(Axis(0))
            .zip(self.weight.axis_iter(Axis(0)))
            .map(|(sum, weight)| {
                let average = &sum / &weight.insert_axis(Axis(0));
                let values: Vec<f32> = average.iter().copied().collect();
                Tensor::from_slice(&values)
                    .view([classes as i64, m as i64, m as i64])
                    .clamp_min(1e-12)
                    .log()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One slice of 2 x 2 pixels with the given class probabilities at every pixel.
    fn uniform(values: [f32; NUM_CLASSES]) -> Array4<f32> {
        Array4::from_shape_fn((1, NUM_CLASSES, 2, 2), |(_, class, _, _)| values[class])
    }

    fn probabilities_at(average: OrientationAverage, y: usize, x: usize) -> Vec<f32> {
        let log = &average.log_probabilities()[0];
        (0..NUM_CLASSES as i64)
            .map(|class| log.get(class).double_value(&[y as i64, x as i64]).exp() as f32)
            .collect()
    }

    fn one_hot(class: usize, p: f32) -> [f32; NUM_CLASSES] {
        let mut values = [0.0; NUM_CLASSES];
        values[0] = 1.0 - p;
        values[class] = p;
        values
    }

    #[test]
    fn coronal_and_axial_count_equally_and_sagittal_half() {
        let mut average =
            OrientationAverage::new(uniform(one_hot(1, 1.0)), SliceOrientation::Coronal);
        average
            .add(uniform(one_hot(1, 0.0)).view(), SliceOrientation::Axial)
            .unwrap();
        let p = probabilities_at(average, 0, 0);
        assert!((p[1] - 0.5).abs() < 1e-6, "{p:?}");
        let mut average =
            OrientationAverage::new(uniform(one_hot(1, 1.0)), SliceOrientation::Coronal);
        average
            .add(uniform(one_hot(1, 0.0)).view(), SliceOrientation::Sagittal)
            .unwrap();
        let p = probabilities_at(average, 0, 0);
        assert!((p[1] - 2.0 / 3.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn a_sagittal_structure_takes_its_side_from_the_other_orientations() {
        // Coronal: left thalamus 0.6, right thalamus 0.2. Sagittal: the thalamus 0.9, all
        // on its left class (as a sagittal model gives it on a left slice).
        let mut coronal = one_hot(1, 0.6);
        coronal[2] = 0.2;
        coronal[0] = 0.2;
        let mut average = OrientationAverage::new(uniform(coronal), SliceOrientation::Coronal);
        average
            .add(uniform(one_hot(1, 0.9)).view(), SliceOrientation::Sagittal)
            .unwrap();
        let p = probabilities_at(average, 1, 1);
        // 0.9 pooled, split 3:1 -> 0.675 left, 0.225 right; weights 0.4 and 0.2.
        let expect_left = (0.4 * 0.6 + 0.2 * 0.675) / 0.6;
        let expect_right = (0.4 * 0.2 + 0.2 * 0.225) / 0.6;
        assert!((p[1] - expect_left).abs() < 1e-5, "{p:?}");
        assert!((p[2] - expect_right).abs() < 1e-5, "{p:?}");
        let total: f32 = p.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "still a distribution: {total}");
    }

    #[test]
    fn without_side_evidence_the_sagittal_split_stays_and_uncovered_pixels_are_skipped() {
        let mut average =
            OrientationAverage::new(uniform(one_hot(0, 1.0)), SliceOrientation::Coronal);
        let mut sagittal = uniform(one_hot(4, 0.5));
        // Pixel (0, 1) lies outside the sagittal slices.
        for class in 0..NUM_CLASSES {
            sagittal[[0, class, 0, 1]] = f32::NAN;
        }
        average
            .add(sagittal.view(), SliceOrientation::Sagittal)
            .unwrap();
        let log = average.log_probabilities();
        let at = |y: i64, x: i64, class: i64| log[0].get(class).double_value(&[y, x]).exp();
        // Right caudate as the sagittal model gave it: 0.2 * 0.5 / 0.6.
        assert!((at(0, 0, 4) - 0.5 / 3.0).abs() < 1e-5);
        assert!(at(0, 0, 3) < 1e-6);
        // The uncovered pixel keeps the coronal model's background.
        assert!((at(0, 1, 0) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn models_of_other_class_counts_are_averaged_without_pairing() {
        // Two classes (background and one structure): no left-right pairs to split.
        let probabilities = |p: f32| {
            Array4::from_shape_fn(
                (1, 2, 2, 2),
                |(_, class, _, _)| if class == 1 { p } else { 1.0 - p },
            )
        };
        let mut average = OrientationAverage::new(probabilities(0.9), SliceOrientation::Coronal);
        average
            .add(probabilities(0.3).view(), SliceOrientation::Sagittal)
            .unwrap();
        let log = average.log_probabilities();
        let p = log[0].get(1).double_value(&[0, 0]).exp();
        assert!((p - (0.4 * 0.9 + 0.2 * 0.3) / 0.6).abs() < 1e-5, "{p}");
    }

    #[test]
    fn a_shape_mismatch_is_an_error() {
        let mut average =
            OrientationAverage::new(uniform(one_hot(0, 1.0)), SliceOrientation::Coronal);
        let other = Array4::<f32>::zeros((2, NUM_CLASSES, 2, 2));
        assert!(average.add(other.view(), SliceOrientation::Axial).is_err());
    }
}

//! Partial labels: training on label maps in which only some of the 12 structures were
//! drawn (a user who corrected three structures).
//!
//! In such a map a structure that was not drawn is background wherever it lies, so the
//! plain loss would teach the model to erase it. Instead, for every sample the classes
//! its label map does not hold are merged into the background (the "marginal" loss of
//! Shi et al., 2021): the background logit becomes `logsumexp(background, unlabelled
//! classes)` and the unlabelled classes' own logits are pushed to -1e4 (probability 0),
//! so the usual cross-entropy + Dice loss runs on {background or an unlabelled
//! structure, the labelled structures}. The unlabelled logits enter the merged
//! background detached: no gradient reaches them, so their mask tokens and output
//! heads are not trained by that sample, and predicting an unlabelled structure where
//! the map says background costs nothing.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::labels::NUM_CLASSES;

/// Logit given to a class a sample does not label (exp(-1e4) is 0 in fp32).
const ABSENT_LOGIT: f64 = -1e4;

/// Which classes (0..13, background first) each sample of a batch labels.
pub type LabelledClasses = [bool; NUM_CLASSES];

/// Every class labelled (a complete label map).
pub const ALL_LABELLED: LabelledClasses = [true; NUM_CLASSES];

/// The classes present in a class map: background and every structure that has at
/// least one voxel.
pub fn labelled_classes(classes: &[u8]) -> LabelledClasses {
    let mut present = [false; NUM_CLASSES];
    present[0] = true;
    for &c in classes {
        if let Some(slot) = present.get_mut(c as usize) {
            *slot = true;
        }
    }
    present
}

/// Rewrites logits `[B, C, m, m]` so that the loss ignores the classes sample `b` does
/// not label (`labelled[b]`), as described in the module documentation. Samples that
/// label every class are returned unchanged.
pub fn marginal_logits(logits: &Tensor, labelled: &[LabelledClasses]) -> Result<Tensor> {
    let size = logits.size();
    if size.len() != 4 || size[0] as usize != labelled.len() || size[1] as usize != NUM_CLASSES {
        return Err(Error::invalid_argument(format!(
            "partial labels: logits {size:?} do not match {} samples of {NUM_CLASSES} classes",
            labelled.len()
        )));
    }
    if labelled.iter().all(|l| l.iter().all(|&x| x)) {
        return Ok(logits.shallow_clone());
    }
    let device = logits.device();
    let mask: Vec<f32> = labelled
        .iter()
        .flat_map(|l| l.iter().map(|&x| if x { 0.0 } else { 1.0 }))
        .collect();
    // [B, C, 1, 1]: 1 where the class is not labelled.
    let absent = Tensor::from_slice(&mask)
        .view([size[0], size[1], 1, 1])
        .to_device(device);
    let absent_bool = absent.gt(0.5);
    let logits = logits.to_kind(Kind::Float);
    // Background merged with the unlabelled classes (detached), per pixel.
    let hidden = logits
        .detach()
        .masked_fill(&absent_bool.logical_not(), f64::NEG_INFINITY);
    let background = logits.narrow(1, 0, 1);
    let merged = Tensor::cat(&[background.shallow_clone(), hidden], 1).logsumexp([1], true);
    let rest = logits
        .narrow(1, 1, size[1] - 1)
        .masked_fill(&absent_bool.narrow(1, 1, size[1] - 1), ABSENT_LOGIT);
    Ok(Tensor::cat(&[merged, rest], 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn complete_labels_leave_logits_unchanged() {
        let logits = Tensor::randn([2, 13, 4, 4], (Kind::Float, Device::Cpu));
        let out = marginal_logits(&logits, &[ALL_LABELLED; 2]).unwrap();
        assert!(out.equal(&logits));
    }

    #[test]
    fn unlabelled_classes_merge_into_background_without_gradient() {
        let logits =
            Tensor::randn([1, 13, 2, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut labelled = [false; NUM_CLASSES];
        labelled[0] = true;
        labelled[3] = true;
        let out = marginal_logits(&logits, &[labelled]).unwrap();
        let p_in = logits.softmax(1, Kind::Float);
        let p_out = out.softmax(1, Kind::Float);
        // Class 3 keeps its probability; background takes every unlabelled class's.
        let diff3 = (p_in.narrow(1, 3, 1) - p_out.narrow(1, 3, 1)).abs().max();
        assert!(diff3.double_value(&[]) < 1e-6);
        let merged = p_in.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
            - p_in.narrow(1, 3, 1).squeeze_dim(1);
        let diff0 = (merged - p_out.narrow(1, 0, 1).squeeze_dim(1)).abs().max();
        assert!(diff0.double_value(&[]) < 1e-6);
        // No gradient reaches the unlabelled classes.
        let target = Tensor::zeros([1, 2, 2], (Kind::Int64, Device::Cpu));
        super::super::loss::segmentation_loss(&out, &target, &Default::default())
            .unwrap()
            .total
            .backward();
        let grad = logits.grad();
        for c in 0..13 {
            let g = grad
                .narrow(1, c, 1)
                .abs()
                .sum(Kind::Float)
                .double_value(&[]);
            if c == 0 || c == 3 {
                assert!(g > 0.0, "class {c} gets no gradient");
            } else {
                assert_eq!(g, 0.0, "unlabelled class {c} got a gradient");
            }
        }
        assert!(marginal_logits(&logits, &[labelled, labelled]).is_err());
    }

    #[test]
    fn labelled_classes_lists_present_structures() {
        let l = labelled_classes(&[0, 0, 5, 12, 5]);
        assert!(l[0] && l[5] && l[12]);
        assert_eq!(l.iter().filter(|&&x| x).count(), 3);
    }
}

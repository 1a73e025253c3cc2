//! The training loss: weighted cross-entropy + soft Dice (SAMed's definition), on
//! the decoder's low-res logits against nearest-downsampled labels.

use tch::{Kind, Tensor};

use super::config::LossSection;
use crate::error::{Error, Result};

/// The loss and its parts (detached scalars for logging in `ce`/`dice`).
#[derive(Debug)]
pub struct LossValue {
    /// Weighted total (differentiable).
    pub total: Tensor,
    /// Cross-entropy value.
    pub ce: f64,
    /// Soft Dice loss value (mean over classes of 1 - dice).
    pub dice: f64,
}

/// Nearest-neighbour downsampling of class maps `[B, S, S]` (any integer kind) to
/// `[B, m, m]` int64, as SAMed's `zoom(order=0)` of the labels.
pub fn downsample_labels(labels: &Tensor, side: i64) -> Result<Tensor> {
    let size = labels.size();
    if size.len() != 3 {
        return Err(Error::invalid_argument(format!(
            "labels: expected [B, S, S], got {size:?}"
        )));
    }
    Ok(labels
        .to_kind(Kind::Float)
        .unsqueeze(1)
        .f_upsample_nearest2d([side, side], None, None)?
        .squeeze_dim(1)
        .to_kind(Kind::Int64))
}

/// SAMed's soft Dice loss: softmax over all channels (background included), per class
/// over the whole batch `(2 Σ s t + 1e-5) / (Σ s² + Σ t² + 1e-5)`, mean of `1 - dice`.
pub fn dice_loss(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let classes = logits.size()[1];
    let probabilities = logits.f_softmax(1, Kind::Float)?;
    let one_hot = target
        .f_one_hot(classes)?
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float);
    let dims: &[i64] = &[0, 2, 3];
    let intersection = (&probabilities * &one_hot).sum_dim_intlist(dims, false, Kind::Float);
    let predicted = probabilities
        .square()
        .sum_dim_intlist(dims, false, Kind::Float);
    let reference = one_hot.square().sum_dim_intlist(dims, false, Kind::Float);
    let dice = (intersection * 2.0 + 1e-5) / (predicted + reference + 1e-5);
    Ok(dice.neg().f_add_scalar(1.0)?.mean(Kind::Float))
}

/// `ce_weight * CE + dice_weight * Dice` of logits `[B, C, m, m]` against class ids
/// `[B, m, m]` (int64).
pub fn segmentation_loss(
    logits: &Tensor,
    target: &Tensor,
    weights: &LossSection,
) -> Result<LossValue> {
    let (l, t) = (logits.size(), target.size());
    if l.len() != 4 || t.len() != 3 || l[0] != t[0] || l[2] != t[1] || l[3] != t[2] {
        return Err(Error::invalid_argument(format!(
            "loss: logits {l:?} and target {t:?} do not match ([B, C, m, m] vs [B, m, m])"
        )));
    }
    let logits = logits.to_kind(Kind::Float);
    let ce =
        logits.f_cross_entropy_loss::<Tensor>(target, None, tch::Reduction::Mean, -100, 0.0)?;
    let dice = dice_loss(&logits, target)?;
    let total = &ce * weights.ce_weight + &dice * weights.dice_weight;
    Ok(LossValue {
        ce: ce.double_value(&[]),
        dice: dice.double_value(&[]),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_logits_give_near_zero_dice_loss() {
        let target = Tensor::from_slice(&[0i64, 1, 2, 1]).view([1, 2, 2]);
        let logits = target.one_hot(3).permute([0, 3, 1, 2]).to_kind(Kind::Float) * 50.0;
        let loss = dice_loss(&logits, &target).unwrap().double_value(&[]);
        assert!(loss < 1e-4, "{loss}");
        let wrong = target.one_hot(3).permute([0, 3, 1, 2]).to_kind(Kind::Float) * -50.0;
        let bad = dice_loss(&wrong, &target).unwrap().double_value(&[]);
        assert!(bad > 0.99, "{bad}");
    }

    #[test]
    fn loss_mixes_ce_and_dice() {
        let target = Tensor::from_slice(&[0i64, 1, 2, 1]).view([1, 2, 2]);
        let logits = Tensor::zeros([1, 3, 2, 2], (Kind::Float, tch::Device::Cpu));
        let value = segmentation_loss(&logits, &target, &LossSection::default()).unwrap();
        assert!((value.ce - 3f64.ln()).abs() < 1e-6);
        let expected = 0.2 * value.ce + 0.8 * value.dice;
        assert!((value.total.double_value(&[]) - expected).abs() < 1e-6);
        let mismatched = Tensor::zeros([1, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
        assert!(segmentation_loss(&mismatched, &target, &LossSection::default()).is_err());
    }
}

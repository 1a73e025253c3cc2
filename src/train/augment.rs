//! 2D augmentation of training slices on tensors (spatial: affine + elastic through
//! one `grid_sample`; intensity: gamma, contrast, bias field, noise; blur and
//! resolution loss) and SynthSeg-style synthesis of images from label codes.
//!
//! Scalar parameters come from the caller's seeded RNG; per-pixel noise from torch's
//! generator, which the trainer re-seeds every iteration, so runs are reproducible
//! and resumable.

use rand::Rng;
use tch::{Device, Kind, Tensor};

use super::config::{AugmentSection, SynthSection};
use crate::error::Result;
use crate::labels::MIRRORED_CLASSES;

fn symmetric(rng: &mut impl Rng, amplitude: f64) -> f64 {
    if amplitude <= 0.0 {
        0.0
    } else {
        rng.gen_range(-amplitude..=amplitude)
    }
}

/// Smooth random field `[1, 1, S, S]` (bilinear upsampling of a coarse grid of
/// normal values), amplitude about `strength`.
fn smooth_field(side: i64, grid: i64, strength: f64, device: Device) -> Result<Tensor> {
    let coarse = Tensor::f_randn([1, 1, grid, grid], (Kind::Float, device))? * strength;
    Ok(coarse.f_upsample_bilinear2d([side, side], true, None, None)?)
}

/// Gaussian blur of every channel of `[B, C, S, S]` with `sigma` pixels (separable, zero
/// padding).
fn gaussian_blur(image: &Tensor, sigma: f64) -> Result<Tensor> {
    if sigma < 0.1 {
        return Ok(image.shallow_clone());
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let sum: f32 = weights.iter().sum();
    let kernel = Tensor::from_slice(&weights.iter().map(|w| w / sum).collect::<Vec<_>>())
        .to_device(image.device());
    let size = 2 * radius + 1;
    let horizontal = kernel.view([1, 1, 1, size]);
    let vertical = kernel.view([1, 1, size, 1]);
    let shape = image.size();
    let planes = image.reshape([-1, 1, shape[2], shape[3]]);
    let blurred = planes.f_conv2d::<Tensor>(&horizontal, None, [1, 1], [0, radius], [1, 1], 1)?;
    let blurred = blurred.f_conv2d::<Tensor>(&vertical, None, [1, 1], [radius, 0], [1, 1], 1)?;
    Ok(blurred.reshape(shape.as_slice()))
}

/// Synthesises images `[B, C, S, S]` from compact label codes `[B, C, S, S]` (uint8):
/// a random mean and spread per label (shared by a sample's channels, which are
/// neighbouring slices of one synthetic scan), blur, a bias field and noise, then a
/// robust rescaling to [0, 1] like the inference normalisation.
pub fn synthesize(codes: &Tensor, rng: &mut impl Rng, settings: &SynthSection) -> Result<Tensor> {
    let size = codes.size();
    let (batch, channels, side) = (size[0], size[1], size[2]);
    let device = codes.device();
    let mut images = Vec::with_capacity(batch as usize);
    for b in 0..batch {
        let sample = codes.get(b).to_kind(Kind::Int64);
        // 256 possible compact indices; each gets an intensity and a spread.
        let mut means: Vec<f32> = (0..256).map(|_| rng.gen_range(0.0..1.0)).collect();
        // Air is dark at inference after normalisation; keep label 0 darkish.
        means[0] = rng.gen_range(0.0..0.15);
        let spreads: Vec<f32> = (0..256)
            .map(|_| rng.gen_range(0.0..=settings.label_std.max(0.0)) as f32)
            .collect();
        let means = Tensor::from_slice(&means).to_device(device);
        let spreads = Tensor::from_slice(&spreads).to_device(device);
        let flat = sample.flatten(0, -1);
        let shape = [1, channels, side, side];
        let mean_map = means.index_select(0, &flat).view(shape);
        let spread_map = spreads.index_select(0, &flat).view(shape);
        let mut image =
            mean_map + spread_map * Tensor::f_randn_like(&sample.to_kind(Kind::Float).view(shape))?;
        image = gaussian_blur(&image, rng.gen_range(0.0..=settings.blur_sigma.max(0.0)))?;
        let bias = smooth_field(
            side,
            4,
            rng.gen_range(0.0..=settings.bias_field.max(0.0)),
            device,
        )?;
        image *= bias.exp();
        let noise = rng.gen_range(0.0..=settings.noise_std.max(0.0));
        image = &image + image.randn_like() * noise;
        images.push(rescale(&image)?);
    }
    Ok(Tensor::cat(&images, 0))
}

/// Maps the 0.5th / 99.5th percentiles of one image to 0 / 1.
fn rescale(image: &Tensor) -> Result<Tensor> {
    let flat = image.flatten(0, -1);
    let low = flat.f_quantile_scalar(0.005, None::<i64>, false, "linear")?;
    let high = flat.f_quantile_scalar(0.995, None::<i64>, false, "linear")?;
    Ok((image - &low) / (high - low).clamp_min(1e-6))
}

/// Random affine + elastic warp of images `[B, C, S, S]` and class maps `[B, S, S]`
/// (int64): bilinear for images, nearest for labels, one sampling grid per sample.
pub fn spatial(
    images: &Tensor,
    labels: &Tensor,
    rng: &mut impl Rng,
    settings: &AugmentSection,
) -> Result<(Tensor, Tensor)> {
    let size = images.size();
    let (batch, side) = (size[0], size[2]);
    let device = images.device();
    let mut thetas = Vec::with_capacity(batch as usize * 6);
    let mut elastic = Vec::with_capacity(batch as usize);
    let mut any = false;
    for _ in 0..batch {
        let mut theta = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0];
        if rng.gen_bool(settings.affine_probability) {
            any = true;
            let angle = symmetric(rng, settings.rotation_degrees).to_radians();
            let scale = 1.0 + symmetric(rng, settings.scale);
            let (tx, ty) = (
                symmetric(rng, settings.translation) * 2.0,
                symmetric(rng, settings.translation) * 2.0,
            );
            // theta maps output to input coordinates; dividing by scale enlarges.
            let (c, s) = (angle.cos() / scale, angle.sin() / scale);
            theta = [
                c as f32, -s as f32, tx as f32, s as f32, c as f32, ty as f32,
            ];
        }
        thetas.extend_from_slice(&theta);
        let magnitude = if rng.gen_bool(settings.elastic_probability) {
            any = true;
            rng.gen_range(0.0..=settings.elastic_magnitude.max(0.0)) * 2.0
        } else {
            0.0
        };
        elastic.push(magnitude);
    }
    if !any {
        return Ok((images.shallow_clone(), labels.shallow_clone()));
    }
    let theta = Tensor::from_slice(&thetas)
        .view([batch, 2, 3])
        .to_device(device);
    let mut grid = Tensor::f_affine_grid_generator(&theta, [batch, 1, side, side], false)?;
    let magnitudes = Tensor::from_slice(&elastic.iter().map(|&m| m as f32).collect::<Vec<_>>())
        .view([batch, 1, 1, 1])
        .to_device(device);
    let g = settings.elastic_grid;
    let displacement = Tensor::f_randn([batch, 2, g, g], (Kind::Float, device))?
        .f_upsample_bicubic2d([side, side], true, None, None)?
        * magnitudes;
    grid += displacement.permute([0, 2, 3, 1]);
    // grid_sampler_2d modes: interpolation 0 bilinear, 1 nearest; padding 0 zeros.
    let warped = images.f_grid_sampler_2d(&grid, 0, 0, false)?;
    let warped_labels = labels
        .to_kind(Kind::Float)
        .unsqueeze(1)
        .f_grid_sampler_2d(&grid, 1, 0, false)?
        .squeeze_dim(1)
        .round()
        .to_kind(Kind::Int64);
    Ok((warped, warped_labels))
}

/// Random intensity changes, blur and resolution loss of images `[B, C, S, S]`.
pub fn intensity(images: &Tensor, rng: &mut impl Rng, settings: &AugmentSection) -> Result<Tensor> {
    let size = images.size();
    let (batch, side) = (size[0], size[2]);
    let device = images.device();
    let mut out = Vec::with_capacity(batch as usize);
    for b in 0..batch {
        let mut image = images.narrow(0, b, 1);
        let p = settings.intensity_probability;
        if rng.gen_bool(p) {
            let gamma = symmetric(rng, settings.log_gamma).exp();
            image = image.clamp_min(0.0).pow_tensor_scalar(gamma);
        }
        if rng.gen_bool(p) {
            let factor = 1.0 + symmetric(rng, settings.contrast);
            let mean = image.mean(Kind::Float);
            image = (&image - &mean) * factor + mean;
        }
        if rng.gen_bool(p) {
            let strength = rng.gen_range(0.0..=settings.bias_field.max(0.0));
            image *= smooth_field(side, 4, strength, device)?.exp();
        }
        if rng.gen_bool(settings.blur_probability) {
            image = gaussian_blur(&image, rng.gen_range(0.0..=settings.blur_sigma.max(0.0)))?;
            let factor = rng.gen_range(1.0..=settings.max_downsample.max(1.0));
            let low = ((side as f64) / factor).round().max(4.0) as i64;
            if low < side {
                image = image
                    .f_upsample_bilinear2d([low, low], false, None, None)?
                    .f_upsample_bilinear2d([side, side], false, None, None)?;
            }
        }
        if rng.gen_bool(p) {
            let std = rng.gen_range(0.0..=settings.noise_std.max(0.0));
            image = &image + image.randn_like() * std;
        }
        out.push(image);
    }
    Ok(Tensor::cat(&out, 0))
}

/// Left-right flips of the samples marked in `flips`: images `[B, C, S, S]` and class
/// maps `[B, S, S]` (int64) are mirrored and left and right structures trade labels.
pub fn flip_left_right(
    images: &Tensor,
    labels: &Tensor,
    flips: &[bool],
) -> Result<(Tensor, Tensor)> {
    if !flips.iter().any(|&f| f) {
        return Ok((images.shallow_clone(), labels.shallow_clone()));
    }
    let swap = Tensor::from_slice(&MIRRORED_CLASSES).to_device(labels.device());
    let mut flipped_images = Vec::with_capacity(flips.len());
    let mut flipped_labels = Vec::with_capacity(flips.len());
    for (b, &flip) in flips.iter().enumerate() {
        let (image, label) = (images.narrow(0, b as i64, 1), labels.narrow(0, b as i64, 1));
        if flip {
            flipped_images.push(image.f_flip([3])?);
            flipped_labels.push(
                swap.f_index_select(0, &label.f_flip([2])?.flatten(0, -1))?
                    .view_as(&label),
            );
        } else {
            flipped_images.push(image);
            flipped_labels.push(label);
        }
    }
    Ok((
        Tensor::cat(&flipped_images, 0),
        Tensor::cat(&flipped_labels, 0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn synthesis_gives_label_dependent_images_in_unit_range() {
        tch::manual_seed(3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let codes = Tensor::zeros([2, 1, 32, 32], (Kind::Uint8, Device::Cpu));
        let _ = codes.narrow(2, 8, 16).narrow(3, 8, 16).fill_(3);
        let images = synthesize(&codes, &mut rng, &SynthSection::default()).unwrap();
        assert_eq!(images.size(), [2, 1, 32, 32]);
        let inside = images.narrow(2, 12, 8).narrow(3, 12, 8).mean(Kind::Float);
        let outside = images.narrow(2, 0, 4).narrow(3, 0, 4).mean(Kind::Float);
        let difference = (inside - outside).abs().double_value(&[]);
        assert!(
            difference > 0.02,
            "labels barely change the intensity: {difference}"
        );
        let (min, max) = (
            images.min().double_value(&[]),
            images.max().double_value(&[]),
        );
        assert!(min > -0.5 && max < 1.5, "{min} {max}");
    }

    #[test]
    fn synthesis_gives_a_label_the_same_intensity_on_every_context_slice() {
        tch::manual_seed(5);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        // Three neighbouring slices; the labelled square moves between them.
        let codes = Tensor::zeros([1, 3, 32, 32], (Kind::Uint8, Device::Cpu));
        for channel in 0..3 {
            let _ = codes
                .narrow(1, channel, 1)
                .narrow(2, 6 + 2 * channel, 14)
                .narrow(3, 8, 14)
                .fill_(7);
        }
        let settings = SynthSection {
            label_std: 0.0,
            blur_sigma: 0.0,
            noise_std: 0.0,
            bias_field: 0.0,
            ..SynthSection::default()
        };
        let images = synthesize(&codes, &mut rng, &settings).unwrap();
        assert_eq!(images.size(), [1, 3, 32, 32]);
        let means: Vec<f64> = (0..3)
            .map(|channel| {
                let square = images
                    .narrow(1, channel, 1)
                    .narrow(2, 8 + 2 * channel, 10)
                    .narrow(3, 10, 10);
                square.mean(Kind::Float).double_value(&[])
            })
            .collect();
        assert!(
            means.iter().all(|m| (m - means[0]).abs() < 0.05),
            "one label, different intensities per slice: {means:?}"
        );
        let background = images.narrow(2, 26, 4).mean(Kind::Float).double_value(&[]);
        assert!(
            (means[0] - background).abs() > 0.02,
            "{means:?} {background}"
        );
    }

    #[test]
    fn flip_mirrors_flagged_samples_and_swaps_left_and_right() {
        let labels = Tensor::zeros([2, 4, 4], (Kind::Int64, Device::Cpu));
        let _ = labels.narrow(2, 0, 1).fill_(1); // left thalamus in the first column
        let _ = labels.narrow(2, 3, 1).fill_(10); // right hippocampus in the last
        let images = labels
            .to_kind(Kind::Float)
            .unsqueeze(1)
            .repeat([1, 3, 1, 1]);
        let (images_out, labels_out) = flip_left_right(&images, &labels, &[true, false]).unwrap();
        // Flipped: the first column now holds the mirrored right hippocampus (left).
        assert_eq!(labels_out.int64_value(&[0, 0, 0]), 9);
        assert_eq!(labels_out.int64_value(&[0, 2, 3]), 2);
        assert_eq!(labels_out.int64_value(&[0, 1, 1]), 0);
        assert_eq!(images_out.double_value(&[0, 2, 0, 0]), 10.0);
        assert_eq!(images_out.double_value(&[0, 0, 1, 3]), 1.0);
        // Not flagged: unchanged.
        assert_eq!(labels_out.get(1), labels.get(1));
        assert_eq!(images_out.get(1), images.get(1));
    }

    #[test]
    fn spatial_warp_moves_images_and_labels_together() {
        tch::manual_seed(4);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let labels = Tensor::zeros([1, 32, 32], (Kind::Int64, Device::Cpu));
        let _ = labels.narrow(1, 10, 12).narrow(2, 10, 12).fill_(5);
        let images = labels.to_kind(Kind::Float).unsqueeze(1) / 5.0;
        let settings = AugmentSection {
            affine_probability: 1.0,
            elastic_probability: 1.0,
            rotation_degrees: 20.0,
            ..AugmentSection::default()
        };
        let (warped, warped_labels) = spatial(&images, &labels, &mut rng, &settings).unwrap();
        assert_ne!(warped_labels, labels, "the warp changed nothing");
        // Where the warped label is 5 the warped image is bright, and vice versa.
        let bright = warped.squeeze_dim(1).gt(0.5);
        let labelled = warped_labels.eq(5);
        let agreement = bright
            .eq_tensor(&labelled)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        assert!(agreement.double_value(&[]) > 0.97);
    }
}

//! Percentile intensity normalisation.

mod common;

use brainsam::volume::normalize::{intensity_window, normalize, NormalizeConfig};
use brainsam::volume::{Grid, Volume};

#[test]
fn scanner_scale_and_offset_do_not_matter() {
    let grid = Grid::from_lps(
        [20, 20, 20],
        [1.0; 3],
        [0.0; 3],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    // Air (0) around a "head" with a tissue ramp and one bright outlier.
    let mut data = vec![0.0f32; grid.len()];
    for (n, value) in data.iter_mut().enumerate() {
        let (i, j, k) = (n % 20, n / 20 % 20, n / 400);
        if (3..17).contains(&i) && (3..17).contains(&j) && (3..17).contains(&k) {
            *value = 100.0 + (n % 200) as f32;
        }
    }
    data[grid.linear_index(10, 10, 10)] = 1e6;
    let a = normalize(
        &Volume::new(grid.clone(), data.clone()).unwrap(),
        &NormalizeConfig::default(),
    )
    .unwrap();
    let scaled: Vec<f32> = data.iter().map(|v| v * 7.5 + 300.0).collect();
    let b = normalize(
        &Volume::new(grid.clone(), scaled).unwrap(),
        &NormalizeConfig::default(),
    )
    .unwrap();
    for (x, y) in a.data().iter().zip(b.data()) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        assert!((0.0..=1.0).contains(x));
    }
    assert_eq!(a.get(10, 10, 10), 1.0, "outlier clipped");
    assert_eq!(a.get(0, 0, 0), 0.0, "air at 0");
    // The tissue uses the range: the outlier did not compress it.
    let mid = a.data().iter().filter(|&&v| v > 0.4 && v < 0.6).count();
    assert!(mid > 300, "{mid}");
    let constant = Volume::new(grid.clone(), vec![3.0; grid.len()]).unwrap();
    assert!(normalize(&constant, &NormalizeConfig::default()).is_err());
    let bad = NormalizeConfig {
        lower_percentile: 60.0,
        upper_percentile: 40.0,
        ..Default::default()
    };
    assert!(intensity_window(&constant, &bad).is_err());
}

/// Skull-stripped and full-head images of the same subject give similar tissue
/// intensities after normalisation (white matter near the top of the range).
#[test]
fn stripped_and_unstripped_heads_agree() {
    let Some(root) = common::data_dir("stripped_and_unstripped_heads_agree") else {
        return;
    };
    let dir = root.join("freesurfer_training_data/sub-01");
    let config = NormalizeConfig::default();
    let head = Volume::read(dir.join("T1.nii.gz")).unwrap();
    let brain = Volume::read(dir.join("brainmask.nii.gz")).unwrap();
    let started = std::time::Instant::now();
    let head_n = normalize(&head, &config).unwrap();
    println!("normalise 256^3: {:?}", started.elapsed());
    let brain_n = normalize(&brain, &config).unwrap();
    // Compare inside the brain mask: mean absolute difference of normalised values.
    let (mut sum, mut n) = (0.0f64, 0usize);
    for ((&b, &h), &raw) in brain_n.data().iter().zip(head_n.data()).zip(brain.data()) {
        if raw > 0.0 {
            sum += f64::from((b - h).abs());
            n += 1;
        }
    }
    let mean_difference = sum / n as f64;
    println!("mean |stripped - unstripped| inside the brain: {mean_difference:.3}");
    assert!(mean_difference < 0.08, "{mean_difference}");
    // FreeSurfer's T1 puts white matter at 110: it must map well inside (0, 1).
    let window = intensity_window(&brain, &config).unwrap();
    assert!(window.low < 110.0 && window.high > 110.0, "{window:?}");
}

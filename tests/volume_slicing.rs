//! Coronal slicing, resampling and mapping back, on phantoms stored in many
//! orientations and voxel sizes.

use brainsam::volume::grid::Affine;
use brainsam::volume::roi::Roi;
use brainsam::volume::slicing::{SliceGeometry, SlicePoint};
use brainsam::volume::{Grid, LabelVolume, Volume};
use ndarray::{Array4, Axis};

/// Left-anterior-superior marker (label 1) and right-posterior-inferior one (label 2), RAS mm.
const LEFT_MARKER: ([f64; 3], f64) = ([-30.0, 15.0, 25.0], 9.0);
const RIGHT_MARKER: ([f64; 3], f64) = ([20.0, -20.0, -15.0], 7.0);

fn rotation(axis: usize, degrees: f64) -> [[f64; 3]; 3] {
    let (s, c) = degrees.to_radians().sin_cos();
    let (a, b) = match axis {
        0 => (1, 2),
        1 => (2, 0),
        _ => (0, 1),
    };
    let mut r = [[0.0; 3]; 3];
    r[axis][axis] = 1.0;
    r[a][a] = c;
    r[a][b] = -s;
    r[b][a] = s;
    r[b][b] = c;
    r
}

fn matmul(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// A grid centred on the RAS origin covering about 140 mm, whose voxel axes
/// point along the columns of `directions` (RAS unit vectors, one column per axis).
fn centred_grid(directions: [[f64; 3]; 3], spacing: [f64; 3]) -> Grid {
    let dims = spacing.map(|s| (140.0 / s).ceil() as usize);
    let mut affine: Affine = [[0.0; 4]; 4];
    affine[3][3] = 1.0;
    for row in 0..3 {
        for col in 0..3 {
            affine[row][col] = directions[row][col] * spacing[col];
        }
        affine[row][3] = -(0..3)
            .map(|col| affine[row][col] * (dims[col] as f64 - 1.0) / 2.0)
            .sum::<f64>();
    }
    Grid::from_ras_affine(dims, affine).unwrap()
}

/// Directions as columns from axis codes like "LIA".
fn axes(code: &str) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for (col, letter) in code.chars().enumerate() {
        let (row, sign) = match letter {
            'R' => (0, 1.0),
            'L' => (0, -1.0),
            'A' => (1, 1.0),
            'P' => (1, -1.0),
            'S' => (2, 1.0),
            _ => (2, -1.0),
        };
        m[row][col] = sign;
    }
    m
}

fn phantom(grid: &Grid) -> (Volume, LabelVolume) {
    let [nx, ny, nz] = grid.dims();
    let mut image = vec![0.0f32; grid.len()];
    let mut labels = vec![0u8; grid.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let p = grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                let n = grid.linear_index(i, j, k);
                for (label, (centre, radius)) in [(1u8, LEFT_MARKER), (2, RIGHT_MARKER)] {
                    let d2: f64 = (0..3).map(|c| (p[c] - centre[c]).powi(2)).sum();
                    if d2 <= radius * radius {
                        labels[n] = label;
                        image[n] = f32::from(label) * 100.0;
                    }
                }
            }
        }
    }
    (
        Volume::new(grid.clone(), image).unwrap(),
        LabelVolume::new(grid.clone(), labels).unwrap(),
    )
}

struct Case {
    name: &'static str,
    grid: Grid,
}

fn cases() -> Vec<Case> {
    let oblique = matmul(rotation(2, 10.0), matmul(rotation(0, 15.0), axes("RAS")));
    let oblique_lia = matmul(rotation(1, -12.0), axes("LIA"));
    vec![
        Case {
            name: "RAS 1mm",
            grid: centred_grid(axes("RAS"), [1.0; 3]),
        },
        Case {
            name: "LIA 1mm",
            grid: centred_grid(axes("LIA"), [1.0; 3]),
        },
        Case {
            name: "LAS 1mm",
            grid: centred_grid(axes("LAS"), [1.0; 3]),
        },
        Case {
            name: "PSR 1.2mm (sagittal storage)",
            grid: centred_grid(axes("PSR"), [1.2; 3]),
        },
        Case {
            name: "oblique RAS 1mm",
            grid: centred_grid(oblique, [1.0; 3]),
        },
        Case {
            name: "oblique LIA 0.8x1.5x0.8",
            grid: centred_grid(oblique_lia, [0.8, 1.5, 0.8]),
        },
        Case {
            name: "LAS 0.8x0.8x1.5",
            grid: centred_grid(axes("LAS"), [0.8, 0.8, 1.5]),
        },
        Case {
            name: "LIA 3mm",
            grid: centred_grid(axes("LIA"), [3.0; 3]),
        },
    ]
}

/// Centroid (x, y) in pixels and slice index of the voxels of `value` in a stack.
fn stack_centroid(stack: &ndarray::Array3<u8>, value: u8) -> (f64, f64, f64) {
    let (mut sx, mut sy, mut ss, mut n) = (0.0, 0.0, 0.0, 0.0);
    for ((s, y, x), &v) in stack.indexed_iter() {
        if v == value {
            sx += x as f64 + 0.5;
            sy += y as f64 + 0.5;
            ss += s as f64;
            n += 1.0;
        }
    }
    assert!(n > 0.0, "label {value} missing from the stack");
    (sx / n, sy / n, ss / n)
}

#[test]
fn frame_follows_the_storage_order() {
    let frame =
        brainsam::volume::slicing::CoronalFrame::from_grid(&centred_grid(axes("LIA"), [1.0; 3]));
    assert_eq!(
        (frame.coronal_axis, frame.column_axis, frame.row_axis),
        (2, 0, 1)
    );
    // LIA: index increases to the left (= column direction), inferior (= row direction), anterior.
    assert_eq!(
        (frame.column_step, frame.row_step, frame.slice_step),
        (1, 1, 1)
    );
    let frame =
        brainsam::volume::slicing::CoronalFrame::from_grid(&centred_grid(axes("RAS"), [1.0; 3]));
    assert_eq!(
        (frame.coronal_axis, frame.column_axis, frame.row_axis),
        (1, 0, 2)
    );
    assert_eq!(
        (frame.column_step, frame.row_step, frame.slice_step),
        (-1, -1, 1)
    );
}

#[test]
fn left_marker_is_on_the_documented_side_in_every_orientation() {
    for case in cases() {
        let (image, labels) = phantom(&case.grid);
        let geometry = SliceGeometry::whole_volume(&case.grid, 128).unwrap();
        let stack = geometry.extract_labels(&labels).unwrap();
        let (lx, ly, ls) = stack_centroid(&stack, 1);
        let (rx, ry, rs) = stack_centroid(&stack, 2);
        let half = 64.0;
        // Radiological view: patient left on the image's right half, superior at the top.
        assert!(
            lx > half && rx < half,
            "{}: left marker x {lx}, right marker x {rx}",
            case.name
        );
        assert!(
            ly < half && ry > half,
            "{}: superior marker y {ly}, inferior y {ry}",
            case.name
        );
        // Stack goes posterior → anterior.
        assert!(
            ls > rs,
            "{}: anterior marker slice {ls} <= posterior {rs}",
            case.name
        );
        // Physical aspect: the 9 mm-radius sphere is round in pixels whatever the voxel size.
        let pixel = geometry.pixel_mm();
        let marker = geometry
            .voxel_to_slice(case.grid.ras_to_voxel_point(LEFT_MARKER.0))
            .unwrap();
        assert!(
            (lx - marker.x).abs() < 1.0 / pixel + 1.0,
            "{}: x {lx} vs {}",
            case.name,
            marker.x
        );
        assert!(
            (ly - marker.y).abs() < 1.0 / pixel + 1.0,
            "{}: y {ly} vs {}",
            case.name,
            marker.y
        );
        if !case.name.contains("oblique") {
            // 30 mm to the left of the FOV centre (RAS x = 0), 25 mm above it.
            assert!(
                (marker.x - (half + 30.0 / pixel)).abs() < 1e-6,
                "{}: {marker:?}",
                case.name
            );
            assert!(
                (marker.y - (half - 25.0 / pixel)).abs() < 1e-6,
                "{}: {marker:?}",
                case.name
            );
        }
        let intensity = geometry.extract(&image).unwrap();
        let slice = ls.round() as usize;
        let value = intensity[[slice, ly as usize, lx as usize]];
        assert!(
            value > 50.0,
            "{}: intensity {value} at the left marker",
            case.name
        );
    }
}

#[test]
fn labels_and_scores_map_back_to_the_same_voxels() {
    for case in cases() {
        let (_, labels) = phantom(&case.grid);
        let spacing = case.grid.spacing();
        let frame = brainsam::volume::slicing::CoronalFrame::from_grid(&case.grid);
        let finest = spacing[frame.column_axis].min(spacing[frame.row_axis]);
        // Pixels at most 0.45 voxel: both round trips must be exact.
        let fov = 150.0;
        let size = (fov / (0.45 * finest)).ceil() as usize;
        let n_coronal = case.grid.dims()[frame.coronal_axis];
        let roi = Roi {
            centre_ras: [0.0; 3],
            fov_mm: fov,
            first_slice: 0,
            last_slice: n_coronal - 1,
        };
        let geometry = SliceGeometry::from_roi(&case.grid, &roi, size).unwrap();
        let stack = geometry.extract_labels(&labels).unwrap();
        let back = geometry.map_labels_back(&case.grid, stack.view()).unwrap();
        assert!(
            back.data() == labels.data(),
            "{}: nearest round trip differs",
            case.name
        );
        let scores = one_hot(&stack, 3);
        let back = geometry.map_scores_back(&case.grid, scores.view()).unwrap();
        let differing = back
            .data()
            .iter()
            .zip(labels.data())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{}: bilinear round trip differs at {differing} voxels",
            case.name
        );
        // Coarser scores (a quarter of the resolution, like SAM's low-res logits)
        // still land on the marker without a shift.
        let coarse_size = (fov / (1.25 * finest)) as usize;
        let coarse_geometry = SliceGeometry::from_roi(&case.grid, &roi, coarse_size).unwrap();
        let coarse = one_hot(&coarse_geometry.extract_labels(&labels).unwrap(), 3);
        let back = coarse_geometry
            .map_scores_back(&case.grid, coarse.view())
            .unwrap();
        for label in [1u8, 2] {
            let dice = dice(back.data(), labels.data(), label);
            assert!(
                dice > 0.85,
                "{}: coarse Dice {dice} for label {label}",
                case.name
            );
            let shift = centroid_shift(&case.grid, back.data(), labels.data(), label);
            assert!(
                shift < 0.35 * geometry.fov_mm() / coarse_size as f64 + 0.2,
                "{}: centroid shift {shift} mm",
                case.name
            );
        }
    }
}

#[test]
fn voxel_and_pixel_coordinates_are_inverse() {
    for case in cases() {
        let (_, labels) = phantom(&case.grid);
        let geometry = SliceGeometry::whole_volume(&case.grid, 200).unwrap();
        let centre = case.grid.ras_to_voxel_point(LEFT_MARKER.0);
        let mut voxel = centre.map(f64::round);
        let frame = geometry.frame();
        voxel[frame.column_axis] = centre[frame.column_axis];
        voxel[frame.row_axis] = centre[frame.row_axis];
        let point = geometry.voxel_to_slice(voxel).unwrap();
        let back = geometry.slice_to_voxel(point).unwrap();
        for axis in 0..3 {
            assert!(
                (back[axis] - voxel[axis]).abs() < 1e-9,
                "{}: {back:?} vs {voxel:?}",
                case.name
            );
        }
        // The prompt pixel lies on the marker in the extracted label stack.
        let stack = geometry.extract_labels(&labels).unwrap();
        assert_eq!(
            stack[[point.slice, point.y as usize, point.x as usize]],
            1,
            "{}",
            case.name
        );
        assert!(geometry
            .slice_to_voxel(SlicePoint {
                slice: geometry.n_slices(),
                x: 0.0,
                y: 0.0
            })
            .is_err());
    }
}

#[test]
fn shapes_are_checked() {
    let grid = centred_grid(axes("RAS"), [3.0; 3]);
    let geometry = SliceGeometry::whole_volume(&grid, 32).unwrap();
    let wrong = Array4::<f32>::zeros((geometry.n_slices() + 1, 2, 32, 32));
    assert!(geometry.map_scores_back(&grid, wrong.view()).is_err());
    let wrong = Array4::<f32>::zeros((geometry.n_slices(), 2, 32, 16));
    assert!(geometry.map_scores_back(&grid, wrong.view()).is_err());
    let other = centred_grid(axes("RAS"), [2.0; 3]);
    let volume = Volume::new(other.clone(), vec![0.0; other.len()]).unwrap();
    assert!(geometry.extract(&volume).is_err());
    assert!(SliceGeometry::whole_volume(&grid, 0).is_err());
    let roi = Roi {
        centre_ras: [0.0; 3],
        fov_mm: 100.0,
        first_slice: 5,
        last_slice: 1000,
    };
    assert!(SliceGeometry::from_roi(&grid, &roi, 64).is_err());
}

#[test]
fn full_size_volume_is_fast() {
    let grid = centred_grid(axes("LIA"), [140.0 / 256.0 * 1.0; 3]);
    assert_eq!(grid.dims(), [256, 256, 256]);
    let (image, labels) = phantom(&grid);
    let roi = Roi {
        centre_ras: [0.0; 3],
        fov_mm: 128.0,
        first_slice: 60,
        last_slice: 195,
    };
    let geometry = SliceGeometry::from_roi(&grid, &roi, 256).unwrap();
    let started = std::time::Instant::now();
    let stack = geometry.extract(&image).unwrap();
    let extract_time = started.elapsed();
    let mut scores = Array4::<f32>::zeros((geometry.n_slices(), 13, 128, 128));
    let coarse = SliceGeometry::from_roi(&grid, &roi, 128)
        .unwrap()
        .extract_labels(&labels)
        .unwrap();
    for ((s, y, x), &v) in coarse.indexed_iter() {
        scores[[s, v as usize, y, x]] = 1.0;
    }
    let started = std::time::Instant::now();
    let back = geometry.map_scores_back(&grid, scores.view()).unwrap();
    let map_time = started.elapsed();
    println!(
        "extract {:?} ({} slices), map back 13 classes {:?}",
        extract_time,
        stack.len_of(Axis(0)),
        map_time
    );
    assert!(dice(back.data(), labels.data(), 1) > 0.9);
    // Generous bound: the dev profile is opt-level 1 on a shared 2-core machine.
    assert!(extract_time.as_secs_f64() < 3.0, "{extract_time:?}");
    assert!(map_time.as_secs_f64() < 6.0, "{map_time:?}");
    assert!(extract_time.as_secs_f64() < 3.0 && map_time.as_secs_f64() < 6.0);
}

fn one_hot(stack: &ndarray::Array3<u8>, classes: usize) -> Array4<f32> {
    let (n, h, w) = stack.dim();
    let mut scores = Array4::<f32>::zeros((n, classes, h, w));
    for ((s, y, x), &v) in stack.indexed_iter() {
        scores[[s, v as usize, y, x]] = 1.0;
    }
    scores
}

fn dice(a: &[u8], b: &[u8], label: u8) -> f64 {
    let (mut both, mut total) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        both += usize::from(x == label && y == label);
        total += usize::from(x == label) + usize::from(y == label);
    }
    2.0 * both as f64 / total as f64
}

fn centroid_shift(grid: &Grid, a: &[u8], b: &[u8], label: u8) -> f64 {
    let centroid = |data: &[u8]| {
        let [nx, ny, _] = grid.dims();
        let (mut sum, mut n) = ([0.0; 3], 0.0);
        for (index, _) in data.iter().enumerate().filter(|(_, &v)| v == label) {
            let p = grid.voxel_to_ras_point([
                (index % nx) as f64,
                (index / nx % ny) as f64,
                (index / (nx * ny)) as f64,
            ]);
            for c in 0..3 {
                sum[c] += p[c];
            }
            n += 1.0;
        }
        sum.map(|s| s / n)
    };
    let (p, q) = (centroid(a), centroid(b));
    (0..3).map(|c| (p[c] - q[c]).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn axial_slices_run_inferior_to_superior_with_left_on_the_right_and_anterior_below() {
    use brainsam::volume::frame::SliceOrientation;
    for case in cases() {
        let (_, labels) = phantom(&case.grid);
        let view_grid = SliceOrientation::Axial.view_grid(&case.grid).unwrap();
        let geometry = SliceGeometry::whole_volume(&view_grid, 128).unwrap();
        let stack = geometry.extract_labels(&labels).unwrap();
        // The left marker is left, anterior and superior of the right one.
        let (lx, ly, ls) = stack_centroid(&stack, 1);
        let (rx, ry, rs) = stack_centroid(&stack, 2);
        assert!(
            lx > rx,
            "{}: left marker x {lx}, right marker x {rx}",
            case.name
        );
        assert!(
            ly > ry,
            "{}: anterior marker y {ly}, posterior y {ry} (rows run posterior to anterior)",
            case.name
        );
        assert!(
            ls > rs,
            "{}: superior marker slice {ls}, inferior {rs} (slices run upwards)",
            case.name
        );
        // The slices are axial planes of the scan: the voxel axis closest to S.
        let along_s = (0..3)
            .max_by(|&a, &b| {
                let d = case.grid.axis_directions_ras();
                d[a][2].abs().total_cmp(&d[b][2].abs())
            })
            .unwrap();
        assert_eq!(geometry.frame().coronal_axis, along_s, "{}", case.name);
    }
}

#[test]
fn sagittal_slices_run_right_to_left_with_anterior_on_the_left_and_superior_on_top() {
    use brainsam::volume::frame::SliceOrientation;
    for case in cases() {
        let (_, labels) = phantom(&case.grid);
        let view_grid = SliceOrientation::Sagittal.view_grid(&case.grid).unwrap();
        let geometry = SliceGeometry::whole_volume(&view_grid, 128).unwrap();
        let stack = geometry.extract_labels(&labels).unwrap();
        // The left marker is left, anterior and superior of the right one.
        let (lx, ly, ls) = stack_centroid(&stack, 1);
        let (rx, ry, rs) = stack_centroid(&stack, 2);
        assert!(
            lx < rx,
            "{}: anterior marker x {lx}, posterior x {rx} (columns run anterior to posterior)",
            case.name
        );
        assert!(
            ly < ry,
            "{}: superior marker y {ly}, inferior y {ry} (rows run downwards)",
            case.name
        );
        assert!(
            ls > rs,
            "{}: left marker slice {ls}, right {rs} (slices run right to left)",
            case.name
        );
        // The slices are sagittal planes of the scan: the voxel axis closest to R.
        let along_r = (0..3)
            .max_by(|&a, &b| {
                let d = case.grid.axis_directions_ras();
                d[a][0].abs().total_cmp(&d[b][0].abs())
            })
            .unwrap();
        assert_eq!(geometry.frame().coronal_axis, along_r, "{}", case.name);
        // The grid is centred on R = 0: the right marker's slices lie before the centre
        // (the right hemisphere), the left marker's after it.
        let right_slice = rs.round() as usize;
        let left_slice = ls.round() as usize;
        assert_eq!(
            geometry.slice_before_centre(right_slice),
            Some(true),
            "{}",
            case.name
        );
        assert_eq!(
            geometry.slice_before_centre(left_slice),
            Some(false),
            "{}",
            case.name
        );
        assert_eq!(geometry.slice_before_centre(geometry.n_slices()), None);
    }
}

#[test]
fn scores_resampled_from_axial_slices_match_the_coronal_slices() {
    use brainsam::volume::frame::SliceOrientation;
    for case in cases() {
        // A linear ramp is reproduced exactly by the (tri)linear interpolations on both
        // sides, away from the volume's edges.
        let [nx, ny, nz] = case.grid.dims();
        let mut ramp = vec![0.0f32; case.grid.len()];
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    let p = case.grid.voxel_to_ras_point([i as f64, j as f64, k as f64]);
                    ramp[case.grid.linear_index(i, j, k)] = (p[0] + 2.0 * p[1] - 3.0 * p[2]) as f32;
                }
            }
        }
        let volume = Volume::new(case.grid.clone(), ramp).unwrap();
        let coronal = SliceGeometry::whole_volume(&case.grid, 64).unwrap();
        // Axial slices over the second quarter of the head only.
        let axial_grid = SliceOrientation::Axial.view_grid(&case.grid).unwrap();
        let whole_axial = SliceGeometry::whole_volume(&axial_grid, 64).unwrap();
        let axis = whole_axial.frame().coronal_axis;
        let planes = case.grid.dims()[axis];
        let roi = Roi {
            centre_ras: [0.0; 3],
            fov_mm: 140.0,
            first_slice: planes / 4,
            last_slice: planes / 2,
        };
        let axial = SliceGeometry::from_roi(&axial_grid, &roi, 64).unwrap();
        let axial_scores = axial.extract(&volume).unwrap().insert_axis(Axis(1));
        let resampled = coronal
            .resample_scores_from(&axial, axial_scores.view(), 64)
            .unwrap();
        let expected = coronal.extract(&volume).unwrap();
        let spacing = case.grid.spacing();
        let (mut compared, mut outside, mut worst) = (0, 0, 0.0f32);
        for ((slice, _, y, x), &value) in resampled.indexed_iter() {
            let voxel = coronal
                .slice_to_voxel(SlicePoint {
                    slice,
                    x: x as f64 + 0.5,
                    y: y as f64 + 0.5,
                })
                .unwrap();
            // The stack reaches half a plane beyond its first and last planes.
            let beyond = ((planes / 4) as f64 - 0.5 - voxel[axis])
                .max(voxel[axis] - (planes / 2) as f64 - 0.5);
            if beyond > 0.01 {
                assert!(
                    value.is_nan(),
                    "{}: a value outside the axial stack",
                    case.name
                );
                outside += 1;
                continue;
            }
            if beyond > -0.01 {
                continue;
            }
            // Compared well inside the volume: 10 mm from every face.
            let inside = (0..3).all(|a| {
                let margin = 10.0 / spacing[a];
                voxel[a] > margin && voxel[a] < case.grid.dims()[a] as f64 - 1.0 - margin
            });
            if inside {
                assert!(
                    !value.is_nan(),
                    "{}: no axial value inside its stack",
                    case.name
                );
                // Within half a plane of the stack's ends the end plane's value is kept.
                if beyond < -0.5 {
                    worst = worst.max((value - expected[[slice, y, x]]).abs());
                    compared += 1;
                }
            }
        }
        assert!(
            compared > 5_000 && outside > 5_000,
            "{}: compared {compared}, outside {outside}",
            case.name
        );
        // The ramp rises up to 6 per mm; 0.05 is far below one voxel's step.
        assert!(worst < 0.05, "{}: largest difference {worst}", case.name);
    }
}

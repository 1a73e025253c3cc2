//! Interactive benchmark (not a test): a simulated user on the validation subjects
//! (FreeSurfer sub-09 and sub-10, the MNE sample at 3 mm; never trained on), with the
//! default model and the default session options, as in the interactive-segmentation
//! literature:
//!
//! - (a) box: on every coronal plane holding a structure, a box around it from the
//!   ground truth, each side moved by a random -1, 0 or +1 voxel: that plane's Dice;
//! - (b) clicks: from the automatic result, a click at the centre of the largest error
//!   region (positive in missed tissue, negative in false tissue), re-segment, repeat:
//!   Dice after 1, 3 and 5 clicks and NoC@90 (clicks to reach Dice 0.90, 0 when the
//!   automatic result already does, capped at 10), on every plane holding the structure;
//! - (c) 3D: one box (same jitter) on the structure's middle plane, propagated by
//!   `Session::segment_structure_3d`: 3D Dice;
//! - (d) the automatic result (3D, and per plane on the planes of (a) and (b)).
//!
//! A second table splits the planes by the structure's area on them (below 25 mm², 25 to
//! 100 mm², 100 mm² and more): the small end planes of a structure weigh as much as its
//! largest in the per-plane means above. Its box ceiling is the Dice of the ground truth
//! cut to the drawn box: the jitter can move a side inwards, so no answer kept inside the
//! box scores more (on a structure's one- or two-pixel end planes it can miss it all).
//!
//! Latency: one `segment_structure` call (prompt → updated label volume) on the CPU.
//!
//! `BRAINSAM_DATA=... cargo bench --bench interactive`. `BRAINSAM_BENCH_MODEL` names
//! another model file; `BRAINSAM_BENCH_SUBJECTS=sub-09,...` picks subjects;
//! `BRAINSAM_BENCH_PLANE_STEP=N` uses every N-th plane (quicker, for development) and
//! `BRAINSAM_BENCH_PLANE_OFFSET=K` starts from the K-th (another set of planes, to check
//! a choice made on the first);
//! `BRAINSAM_BENCH_TRACE=1` prints one line per plane to stderr (subject, structure, plane,
//! area, automatic, box and shifted-box Dice, then each click as `+`/`-` and the Dice after
//! it), to find the planes where a prompt hurts.

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use brainsam::labels::{LabelScheme, STRUCTURES};
use brainsam::session::simulate::{bounding_box, dice, next_click, Plane};
use brainsam::session::{DeviceChoice, Model, ModelOptions, Session, SessionOptions};
use brainsam::volume::{LabelVolume, Volume};

const SUBJECTS: [(&str, &str, &str); 3] = [
    (
        "sub-09",
        "freesurfer_training_data/sub-09/T1.nii.gz",
        "freesurfer_training_data/sub-09/aseg.nii.gz",
    ),
    (
        "sub-10",
        "freesurfer_training_data/sub-10/T1.nii.gz",
        "freesurfer_training_data/sub-10/aseg.nii.gz",
    ),
    (
        "mne-sample",
        "mne_testing_sample/T1_3mm.nii.gz",
        "mne_testing_sample/aseg_3mm.nii.gz",
    ),
];

const MAX_CLICKS: usize = 10;

/// Upper ends (mm²) of the plane-size bands of the by-size table: how much of the box
/// and click Dice is lost on the small end planes of a structure.
const AREA_BANDS_MM2: [f64; 3] = [25.0, 100.0, f64::INFINITY];

/// One benchmarked plane: the structure's area on it (mm²) and its Dice automatic, with
/// the box and after 3 clicks.
struct PlaneResult {
    area_mm2: f64,
    auto: f64,
    boxed: f64,
    box_ceiling: f64,
    three_clicks: f64,
}

/// Sums per structure (index 0..12) and overall.
#[derive(Default, Clone)]
struct Tally {
    auto_plane: Vec<f64>,
    boxed: Vec<f64>,
    /// The box's ceiling per plane: see [`box_ceiling`].
    box_ceiling: Vec<f64>,
    clicks: [Vec<f64>; 3],
    noc: Vec<f64>,
    auto_3d: Vec<f64>,
    propagated_3d: Vec<f64>,
    /// Planes where a box in the wrong place (shifted by the box's width) was tried:
    /// Dice of the right box minus Dice of the shifted one.
    shifted_gap: Vec<f64>,
}

/// The Dice of the ground truth cut to the drawn box (`[u0, v0, u1, v1]` in plane
/// pixels, corners in either order): the most any answer kept inside the box can score.
/// Below 1 where the jitter moved a side inwards, which on a structure's end planes (a
/// pixel or two wide) can leave it outside the box altogether.
fn box_ceiling(truth: &[u8], width: usize, class: u8, drawn: [f64; 4]) -> f64 {
    let (u0, u1) = (drawn[0].min(drawn[2]), drawn[0].max(drawn[2]));
    let (v0, v1) = (drawn[1].min(drawn[3]), drawn[1].max(drawn[3]));
    let inside: Vec<u8> = truth
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (u, v) = ((i % width) as f64, (i / width) as f64);
            let within = u >= u0 && u <= u1 && v >= v0 && v <= v1;
            if within {
                c
            } else {
                0
            }
        })
        .collect();
    dice(&inside, truth, class)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let Some(data) = std::env::var_os("BRAINSAM_DATA").map(PathBuf::from) else {
        println!("skipped: BRAINSAM_DATA is not set (the benchmark needs the validation subjects)");
        return;
    };
    let checkpoint = std::env::var_os("BRAINSAM_BENCH_MODEL").map(PathBuf::from);
    let step: usize = std::env::var("BRAINSAM_BENCH_PLANE_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let offset: usize = std::env::var("BRAINSAM_BENCH_PLANE_OFFSET")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
        % step;
    let chosen: Option<Vec<String>> = std::env::var("BRAINSAM_BENCH_SUBJECTS")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let model = Model::load(&ModelOptions {
        checkpoint,
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .expect("model");
    println!(
        "model: {}; interactive head: {}; every {} plane(s) (offset {}); {} torch threads",
        model
            .checkpoint()
            .map_or("?".into(), |p| p.display().to_string()),
        model.sam().has_interactive_head(),
        step,
        offset,
        tch::get_num_threads()
    );
    let mut tallies = vec![Tally::default(); 12];
    let mut latencies = Vec::new();
    let mut subject_rows = Vec::new();
    let mut plane_results: Vec<PlaneResult> = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let trace = std::env::var_os("BRAINSAM_BENCH_TRACE").is_some();
    for (name, image, aseg) in SUBJECTS {
        if chosen
            .as_ref()
            .is_some_and(|c| !c.iter().any(|n| n == name))
        {
            continue;
        }
        let volume = Volume::read(data.join(image)).expect("image");
        let reference = LabelScheme::FreeSurfer
            .to_classes(&Volume::read(data.join(aseg)).expect("labels"))
            .expect("classes");
        let mut session = Session::new(model.clone(), SessionOptions::default()).unwrap();
        session.set_volume(volume).unwrap();
        session.segment_all(&mut |_, _| true).unwrap();
        let automatic: LabelVolume = session.labels().unwrap().clone();
        let dims = automatic.grid().dims();
        let axis = session.slicing_axis().unwrap();
        let spacing = automatic.grid().spacing();
        let pixel_area_mm2: f64 = (0..3).filter(|&a| a != axis).map(|a| spacing[a]).product();
        let planes: Vec<usize> = session.geometry().unwrap().slice_voxel_indices().to_vec();
        let mut subject = Tally::default();
        for structure in 1..=12u8 {
            let tally = &mut tallies[structure as usize - 1];
            let holding: Vec<usize> = planes
                .iter()
                .copied()
                .filter(|&p| {
                    Plane::new(dims, axis, p)
                        .values(&reference)
                        .contains(&structure)
                })
                .collect();
            if holding.is_empty() {
                continue;
            }
            // The jittered box as plane coordinates [u0, v0, u1, v1] (as drawn: the
            // session orders the corners).
            let jitter = |rng: &mut ChaCha8Rng, b: [usize; 4], plane: &Plane| {
                let j = |rng: &mut ChaCha8Rng| rng.gen_range(-1i64..=1) as f64;
                let w = plane.width() as f64 - 1.0;
                let h = plane.height() as f64 - 1.0;
                [
                    (b[0] as f64 + j(rng)).clamp(0.0, w),
                    (b[1] as f64 + j(rng)).clamp(0.0, h),
                    (b[2] as f64 + j(rng)).clamp(0.0, w),
                    (b[3] as f64 + j(rng)).clamp(0.0, h),
                ]
            };
            let corners =
                |b: [f64; 4], plane: &Plane| (plane.ijk(b[0], b[1]), plane.ijk(b[2], b[3]));
            for (position, &p) in holding.iter().enumerate() {
                if position % step != offset {
                    continue;
                }
                let plane = Plane::new(dims, axis, p);
                let truth = plane.values(&reference);
                let auto = dice(&plane.values(&automatic), &truth, structure);
                tally.auto_plane.push(auto);
                subject.auto_plane.push(auto);
                // (a) box.
                let b = bounding_box(&truth, plane.width(), structure).expect("holds it");
                let drawn = jitter(&mut rng, b, &plane);
                let (a_corner, b_corner) = corners(drawn, &plane);
                let ceiling = box_ceiling(&truth, plane.width(), structure, drawn);
                tally.box_ceiling.push(ceiling);
                session.add_box(structure, a_corner, b_corner).unwrap();
                let started = Instant::now();
                session.segment_structure(structure, p).unwrap();
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                let boxed = dice(&plane.values(session.labels().unwrap()), &truth, structure);
                tally.boxed.push(boxed);
                subject.boxed.push(boxed);
                // The same box moved sideways by its width: must not score as well.
                let width = (b[2] - b[0] + 1) as f64;
                let shifted = |corner: [f64; 3]| {
                    let mut c = corner;
                    let u = (0..3).find(|&a| a != axis).expect("in-plane axis");
                    c[u] = (c[u] + width).min(dims[u] as f64 - 1.0);
                    c
                };
                session
                    .add_box(structure, shifted(a_corner), shifted(b_corner))
                    .unwrap();
                session.segment_structure(structure, p).unwrap();
                let moved = dice(&plane.values(session.labels().unwrap()), &truth, structure);
                tally.shifted_gap.push(boxed - moved);
                session.clear_prompts(structure, Some(p)).unwrap();
                // (b) clicks.
                let mut noc = if auto >= 0.9 { Some(0) } else { None };
                let mut current = auto;
                let area_mm2 =
                    truth.iter().filter(|&&v| v == structure).count() as f64 * pixel_area_mm2;
                let mut clicks_trace = String::new();
                for click in 1..=MAX_CLICKS {
                    if click > 5 && noc.is_some() {
                        break;
                    }
                    let predicted = plane.values(session.labels().unwrap());
                    if let Some((u, v, positive)) =
                        next_click(&predicted, &truth, plane.width(), plane.height(), structure)
                    {
                        session
                            .add_point(structure, plane.ijk(u as f64, v as f64), positive)
                            .unwrap();
                        let started = Instant::now();
                        session.segment_structure(structure, p).unwrap();
                        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                        current = dice(&plane.values(session.labels().unwrap()), &truth, structure);
                        if trace {
                            let sign = if positive { '+' } else { '-' };
                            clicks_trace.push_str(&format!(" {sign}{current:.3}"));
                        }
                    }
                    if current >= 0.9 && noc.is_none() {
                        noc = Some(click);
                    }
                    let slot = match click {
                        1 => Some(0),
                        3 => Some(1),
                        5 => Some(2),
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        tally.clicks[slot].push(current);
                        subject.clicks[slot].push(current);
                    }
                    if click == 3 {
                        plane_results.push(PlaneResult {
                            area_mm2,
                            auto,
                            boxed,
                            box_ceiling: ceiling,
                            three_clicks: current,
                        });
                    }
                }
                if trace {
                    eprintln!(
                        "trace {name} {structure} plane {p} area {area_mm2:.0} auto {auto:.3} box {boxed:.3} shifted {moved:.3} ceiling {ceiling:.3} clicks{clicks_trace}"
                    );
                }
                let noc = noc.unwrap_or(MAX_CLICKS) as f64;
                tally.noc.push(noc);
                subject.noc.push(noc);
                session.clear_prompts(structure, Some(p)).unwrap();
            }
            // (c) 3D from one box on the middle plane, and (d) automatic 3D.
            let whole = |labels: &LabelVolume| -> Vec<u8> { labels.data().to_vec() };
            let auto_3d = dice(&whole(&automatic), reference.data(), structure);
            tally.auto_3d.push(auto_3d);
            subject.auto_3d.push(auto_3d);
            let middle = holding[holding.len() / 2];
            let plane = Plane::new(dims, axis, middle);
            let truth = plane.values(&reference);
            let b = bounding_box(&truth, plane.width(), structure).expect("holds it");
            let (a_corner, b_corner) = corners(jitter(&mut rng, b, &plane), &plane);
            session
                .segment_structure_3d(structure, a_corner, b_corner)
                .unwrap();
            let propagated = dice(
                session.labels().unwrap().data(),
                reference.data(),
                structure,
            );
            tally.propagated_3d.push(propagated);
            subject.propagated_3d.push(propagated);
            session.clear_prompts(structure, None).unwrap();
            assert_eq!(
                session.labels().unwrap().data(),
                automatic.data(),
                "clearing every prompt restores the automatic result"
            );
        }
        subject_rows.push((name, subject));
        eprintln!("{name} done");
    }
    println!();
    println!(
        "| structure | auto plane Dice | box | 1 click | 3 clicks | 5 clicks | NoC@90 | auto 3D | box + propagation 3D | right − shifted box |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let row = |label: &str, t: &Tally| {
        println!(
            "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} | {:+.3} |",
            mean(&t.auto_plane),
            mean(&t.boxed),
            mean(&t.clicks[0]),
            mean(&t.clicks[1]),
            mean(&t.clicks[2]),
            mean(&t.noc),
            mean(&t.auto_3d),
            mean(&t.propagated_3d),
            mean(&t.shifted_gap),
        )
    };
    let mut all = Tally::default();
    for (index, tally) in tallies.iter().enumerate() {
        row(STRUCTURES[index].long_name, tally);
        all.auto_plane.extend(&tally.auto_plane);
        all.boxed.extend(&tally.boxed);
        all.box_ceiling.extend(&tally.box_ceiling);
        for slot in 0..3 {
            all.clicks[slot].extend(&tally.clicks[slot]);
        }
        all.noc.extend(&tally.noc);
        all.auto_3d.extend(&tally.auto_3d);
        all.propagated_3d.extend(&tally.propagated_3d);
        all.shifted_gap.extend(&tally.shifted_gap);
    }
    row("**all planes / structures**", &all);
    for (name, subject) in &subject_rows {
        row(&format!("subject {name}"), subject);
    }
    let structure_means: Vec<f64> = tallies.iter().map(|t| mean(&t.boxed)).collect();
    let ceiling_means: Vec<f64> = tallies.iter().map(|t| mean(&t.box_ceiling)).collect();
    println!(
        "\nbox Dice, lowest structure mean: {:.3}; planes: {}; ceiling (ground truth cut to \
         the drawn box): {:.3}, lowest structure {:.3}",
        structure_means
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        all.boxed.len(),
        mean(&all.box_ceiling),
        ceiling_means.iter().copied().fold(f64::INFINITY, f64::min),
    );
    println!("\n| structure's area on the plane | planes | auto | box | box ceiling | 3 clicks |");
    println!("|---|---|---|---|---|---|");
    let mut lower = 0.0;
    for upper in AREA_BANDS_MM2 {
        let band: Vec<&PlaneResult> = plane_results
            .iter()
            .filter(|r| r.area_mm2 >= lower && r.area_mm2 < upper)
            .collect();
        let band_mean = |value: fn(&PlaneResult) -> f64| {
            mean(&band.iter().map(|r| value(r)).collect::<Vec<_>>())
        };
        let label = if upper.is_finite() {
            format!("{lower:.0}–{upper:.0} mm²")
        } else {
            format!("≥ {lower:.0} mm²")
        };
        println!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            band.len(),
            band_mean(|r| r.auto),
            band_mean(|r| r.boxed),
            band_mean(|r| r.box_ceiling),
            band_mean(|r| r.three_clicks)
        );
        lower = upper;
    }
    if !latencies.is_empty() {
        let count = latencies.len();
        println!(
            "latency per prompt (segment_structure, prompt → updated label volume), {count} calls: median {:.1} ms, p95 {:.1} ms",
            percentile(&mut latencies, 0.5),
            percentile(&mut latencies, 0.95)
        );
    }
}

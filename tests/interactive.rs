//! Prompts steer the default model (issue 15): on a held-out FreeSurfer subject, a box
//! around a structure on one slice beats a shifted box and an oversized box, keeps a
//! good automatic result and beats no prompt where the automatic result is poor;
//! a negative click removes tissue around it; a simulated user's clicks improve a poor
//! slice, the same whether segmented after each click or once; clearing prompts restores
//! the automatic result on that slice; a box propagated in 3D follows the structure. Needs the real
//! data (BRAINSAM_DATA).

mod common;

use std::sync::Arc;

use brainsam::labels::LabelScheme;
use brainsam::session::simulate::{bounding_box, dice, next_click, Plane};
use brainsam::session::{
    DeviceChoice, Model, ModelOptions, PropagationDirection, PropagationOptions, Session,
    SessionOptions,
};
use brainsam::volume::{LabelVolume, Volume};

/// Left amygdala: the structure of the table.
const AMYGDALA: u8 = 11;

struct Case {
    session: Session,
    reference: LabelVolume,
    automatic: LabelVolume,
    axis: usize,
}

fn case(test: &str) -> Option<Case> {
    let data = common::data_dir(test)?;
    let model: Arc<Model> = Model::load(&ModelOptions {
        checkpoint: Some(common::repo_root().join("models/brainsam-default.safetensors")),
        device: DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    assert!(
        model.sam().has_interactive_head(),
        "the default model ships its interactive head"
    );
    // As in the issue: the automatic result without mirror or shift averaging first.
    let options = SessionOptions {
        mirror_averaging: false,
        shift_averaging: false,
        ..SessionOptions::default()
    };
    let mut session = Session::new(model, options).unwrap();
    let subject = data.join("freesurfer_training_data/sub-10");
    session
        .set_volume(Volume::read(subject.join("T1.nii.gz")).unwrap())
        .unwrap();
    session.segment_all(&mut |_, _| true).unwrap();
    let reference = LabelScheme::FreeSurfer
        .to_classes(&Volume::read(subject.join("aseg.nii.gz")).unwrap())
        .unwrap();
    let automatic = session.labels().unwrap().clone();
    let axis = session.slicing_axis().unwrap();
    Some(Case {
        session,
        reference,
        automatic,
        axis,
    })
}

/// Voxels of `structure` on `plane` in the reference.
fn reference_voxels(case: &Case, plane: &Plane, structure: u8) -> usize {
    plane
        .values(&case.reference)
        .iter()
        .filter(|&&c| c == structure)
        .count()
}

/// The plane holding the most voxels of `structure` in the reference.
fn fullest_plane(case: &Case, structure: u8) -> Plane {
    let dims = case.reference.grid().dims();
    (0..dims[case.axis])
        .map(|p| Plane::new(dims, case.axis, p))
        .max_by_key(|plane| reference_voxels(case, plane, structure))
        .unwrap()
}

/// Dice of the amygdala on `plane` (reference `truth`) after a box around `b` (its
/// bounding box there) grown by `grow` voxels on every side and moved `shift` voxels
/// along the plane's first axis, clamped to the plane.
fn dice_with_box(
    case: &mut Case,
    plane: &Plane,
    truth: &[u8],
    b: [usize; 4],
    grow: f64,
    shift: f64,
) -> f64 {
    let (w, h) = (plane.width() as f64 - 1.0, plane.height() as f64 - 1.0);
    let corner = |u: f64, v: f64| plane.ijk(u.clamp(0.0, w), v.clamp(0.0, h));
    case.session
        .add_box(
            AMYGDALA,
            corner(b[0] as f64 - grow + shift, b[1] as f64 - grow),
            corner(b[2] as f64 + grow + shift, b[3] as f64 + grow),
        )
        .unwrap();
    case.session
        .segment_structure(AMYGDALA, plane.index)
        .unwrap();
    dice(
        &plane.values(case.session.labels().unwrap()),
        truth,
        AMYGDALA,
    )
}

#[test]
fn a_box_steers_the_structure_and_clearing_restores_the_automatic_slice() {
    let Some(mut case) =
        case("a_box_steers_the_structure_and_clearing_restores_the_automatic_slice")
    else {
        return;
    };
    let plane = fullest_plane(&case, AMYGDALA);
    let truth = plane.values(&case.reference);
    let b = bounding_box(&truth, plane.width(), AMYGDALA).unwrap();
    let automatic = dice(&plane.values(&case.automatic), &truth, AMYGDALA);
    let mut try_box =
        |grow: f64, shift: f64| dice_with_box(&mut case, &plane, &truth, b, grow, shift);
    // The three rows: tight box (+1 voxel), shifted 15 voxels, 40 voxels larger.
    let right = try_box(1.0, 0.0);
    let shifted = try_box(1.0, 15.0);
    let oversized = try_box(41.0, 0.0);
    eprintln!(
        "plane {}: automatic {automatic:.3}, right box {right:.3}, shifted {shifted:.3}, \
         oversized {oversized:.3}",
        plane.index
    );
    // With the stage-7 model the automatic result on this slice is already good (0.905;
    // 0.828 with stage 6, 0.812 in the table): the right box must not undo it.
    // Where the automatic result needs correcting, it must beat it (checked below).
    assert!(
        right > automatic - 0.03,
        "right box {right:.3} vs no prompt {automatic:.3}"
    );
    assert!(
        right > shifted + 0.2,
        "right {right:.3} vs shifted {shifted:.3}"
    );
    assert!(
        right > oversized,
        "right {right:.3} vs oversized {oversized:.3}"
    );
    // The slice (among those where the amygdala covers at least 40 voxels) whose
    // automatic result is the worst: the right box improves it.
    let dims = case.reference.grid().dims();
    let (worst, worst_automatic) = (0..dims[case.axis])
        .map(|p| Plane::new(dims, case.axis, p))
        .filter(|p| reference_voxels(&case, p, AMYGDALA) >= 40)
        .map(|p| {
            let truth = p.values(&case.reference);
            let d = dice(&p.values(&case.automatic), &truth, AMYGDALA);
            (p, d)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let worst_truth = worst.values(&case.reference);
    let wb = bounding_box(&worst_truth, worst.width(), AMYGDALA).unwrap();
    let corrected = dice_with_box(&mut case, &worst, &worst_truth, wb, 1.0, 0.0);
    eprintln!(
        "plane {} (worst automatic): automatic {worst_automatic:.3}, right box {corrected:.3}",
        worst.index
    );
    assert!(
        corrected > worst_automatic + 0.05,
        "right box {corrected:.3} vs no prompt {worst_automatic:.3} on plane {}",
        worst.index
    );
    case.session
        .clear_prompts(AMYGDALA, Some(worst.index))
        .unwrap();
    // Other structures' voxels elsewhere on the plane are untouched.
    let labels = plane.values(case.session.labels().unwrap());
    let before = plane.values(&case.automatic);
    for (now, was) in labels.iter().zip(&before) {
        if *now != *was {
            assert!(
                *now == AMYGDALA || *was == AMYGDALA,
                "only voxels taken by or released from the amygdala change"
            );
        }
    }
    // Clearing the prompts restores the automatic result on that slice, byte for byte.
    case.session
        .clear_prompts(AMYGDALA, Some(plane.index))
        .unwrap();
    assert_eq!(
        case.session.labels().unwrap().data(),
        case.automatic.data(),
        "cleared prompts restore the automatic result"
    );
    // Segmenting again without prompts keeps it.
    case.session
        .segment_structure(AMYGDALA, plane.index)
        .unwrap();
    assert_eq!(case.session.labels().unwrap().data(), case.automatic.data());
}

#[test]
fn a_negative_click_removes_tissue_around_it_and_a_propagated_box_follows_the_structure() {
    let Some(mut case) = case(
        "a_negative_click_removes_tissue_around_it_and_a_propagated_box_follows_the_structure",
    ) else {
        return;
    };
    // Left putamen: large enough for a click in its middle to have room around it.
    let structure = 5;
    let plane = fullest_plane(&case, structure);
    let current = plane.values(&case.automatic);
    let b = bounding_box(&current, plane.width(), structure).unwrap();
    let (u, v) = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2);
    assert_eq!(
        current[v * plane.width() + u],
        structure,
        "the click lands in the automatic structure"
    );
    // Structure voxels within `reach` voxels (each way) of the click.
    let near = |values: &[u8], reach: i64| {
        values
            .iter()
            .enumerate()
            .filter(|(i, &c)| {
                let (x, y) = ((i % plane.width()) as i64, (i / plane.width()) as i64);
                c == structure && (x - u as i64).abs() <= reach && (y - v as i64).abs() <= reach
            })
            .count()
    };
    let before = near(&current, 3);
    case.session
        .add_point(structure, plane.ijk(u as f64, v as f64), false)
        .unwrap();
    case.session
        .segment_structure(structure, plane.index)
        .unwrap();
    let after_values = plane.values(case.session.labels().unwrap());
    let after = near(&after_values, 3);
    eprintln!("putamen voxels within 3 voxels of the negative click: {before} -> {after}");
    // The click decides the 2 mm around it: none of the 3 x 3 voxels (1 mm) centred on
    // it stays putamen, so the 7 x 7 around it loses at least those 9.
    assert_eq!(
        near(&after_values, 1),
        0,
        "a negative click removes the tissue it is placed in"
    );
    assert!(
        after + 9 <= before,
        "a negative click removes tissue around it: {before} -> {after}"
    );
    case.session.clear_prompts(structure, None).unwrap();
    assert_eq!(case.session.labels().unwrap().data(), case.automatic.data());

    // A simulated user's clicks on the amygdala's worst automatic plane (of those holding
    // at least 20 voxels of it): each click builds on the result the clicks before it
    // left, and segmenting once after all of them gives the same labels.
    let dims = case.reference.grid().dims();
    let (plane, truth, automatic) = (0..dims[case.axis])
        .map(|p| Plane::new(dims, case.axis, p))
        .filter(|plane| reference_voxels(&case, plane, AMYGDALA) >= 20)
        .map(|plane| {
            let truth = plane.values(&case.reference);
            let automatic = dice(&plane.values(&case.automatic), &truth, AMYGDALA);
            (plane, truth, automatic)
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap();
    let mut clicks = Vec::new();
    let mut after_clicks = automatic;
    for _ in 0..3 {
        let current = plane.values(case.session.labels().unwrap());
        let (u, v, positive) =
            next_click(&current, &truth, plane.width(), plane.height(), AMYGDALA).unwrap();
        let ijk = plane.ijk(u as f64, v as f64);
        case.session.add_point(AMYGDALA, ijk, positive).unwrap();
        case.session
            .segment_structure(AMYGDALA, plane.index)
            .unwrap();
        after_clicks = dice(
            &plane.values(case.session.labels().unwrap()),
            &truth,
            AMYGDALA,
        );
        clicks.push((ijk, positive));
    }
    eprintln!(
        "amygdala plane {}: automatic {automatic:.3}, after 3 clicks {after_clicks:.3}",
        plane.index
    );
    assert!(
        after_clicks >= automatic + 0.05,
        "three clicks improve a poor plane: {automatic:.3} -> {after_clicks:.3}"
    );
    let stepwise = case.session.labels().unwrap().clone();
    case.session
        .clear_prompts(AMYGDALA, Some(plane.index))
        .unwrap();
    for &(ijk, positive) in &clicks {
        case.session.add_point(AMYGDALA, ijk, positive).unwrap();
    }
    case.session
        .segment_structure(AMYGDALA, plane.index)
        .unwrap();
    assert_eq!(
        case.session.labels().unwrap().data(),
        stepwise.data(),
        "three clicks segmented at once give what segmenting after each gave"
    );
    case.session.clear_prompts(AMYGDALA, None).unwrap();
    assert_eq!(case.session.labels().unwrap().data(), case.automatic.data());

    // One box on the amygdala's fullest slice, propagated through its neighbours.
    let plane = fullest_plane(&case, AMYGDALA);
    let truth = plane.values(&case.reference);
    let b = bounding_box(&truth, plane.width(), AMYGDALA).unwrap();
    let (first, last) = {
        let slices = case
            .session
            .segment_structure_3d(
                AMYGDALA,
                plane.ijk(b[0] as f64, b[1] as f64),
                plane.ijk(b[2] as f64, b[3] as f64),
            )
            .unwrap();
        (slices[0], *slices.last().unwrap())
    };
    let holding: Vec<usize> = (0..case.reference.grid().dims()[case.axis])
        .filter(|&p| {
            Plane::new(case.reference.grid().dims(), case.axis, p)
                .values(&case.reference)
                .contains(&AMYGDALA)
        })
        .collect();
    let propagated = dice(
        case.session.labels().unwrap().data(),
        case.reference.data(),
        AMYGDALA,
    );
    let automatic = dice(case.automatic.data(), case.reference.data(), AMYGDALA);
    eprintln!(
        "propagated over slices {first}..={last} (reference {}..={}): 3D Dice {propagated:.3} \
         (automatic {automatic:.3})",
        holding[0],
        holding[holding.len() - 1]
    );
    assert!(
        first < plane.index && last > plane.index,
        "spreads both ways"
    );
    assert!(
        first + 5 >= holding[0] && last <= holding[holding.len() - 1] + 5,
        "stops near the structure's ends"
    );
    assert!(propagated >= 0.6, "3D Dice {propagated:.3}");

    // Propagation from an existing mask, with a direction and a slice limit: from the
    // box's interactive mask it gives exactly what the 3D box gave on those slices.
    let dims = case.reference.grid().dims();
    let on_plane = |labels: &LabelVolume, p: usize| Plane::new(dims, case.axis, p).values(labels);
    let after_3d = case.session.labels().unwrap().clone();
    case.session.clear_prompts(AMYGDALA, None).unwrap();
    let middle = case
        .session
        .add_box(
            AMYGDALA,
            plane.ijk(b[0] as f64, b[1] as f64),
            plane.ijk(b[2] as f64, b[3] as f64),
        )
        .unwrap();
    case.session.segment_structure(AMYGDALA, middle).unwrap();
    let mut reports = Vec::new();
    let forward = case
        .session
        .propagate_structure(
            AMYGDALA,
            middle,
            PropagationOptions {
                direction: PropagationDirection::Forward,
                max_slices: Some(2),
            },
            &mut |done, total| {
                reports.push((done, total));
                true
            },
        )
        .unwrap();
    assert_eq!(forward, vec![middle + 1, middle + 2]);
    assert_eq!(reports, vec![(0, 2), (1, 2), (2, 2)]);
    let labels = case.session.labels().unwrap().clone();
    for p in [middle, middle + 1, middle + 2] {
        assert!(on_plane(&labels, p) == on_plane(&after_3d, p), "plane {p}");
    }
    assert!(
        on_plane(&labels, middle - 1) == on_plane(&case.automatic, middle - 1)
            && on_plane(&labels, middle + 3) == on_plane(&case.automatic, middle + 3),
        "slices beyond the limit and the other way stay automatic"
    );
    // From the label mask (no prompts left): backwards one slice, then a cancel after
    // the first slice keeps that slice's result.
    case.session.clear_prompts(AMYGDALA, None).unwrap();
    let backward = case
        .session
        .propagate_structure(
            AMYGDALA,
            middle,
            PropagationOptions {
                direction: PropagationDirection::Backward,
                max_slices: Some(1),
            },
            &mut |_, _| true,
        )
        .unwrap();
    assert_eq!(backward, vec![middle - 1]);
    let labels = case.session.labels().unwrap().clone();
    assert!(on_plane(&labels, middle - 1) != on_plane(&case.automatic, middle - 1));
    assert!(on_plane(&labels, middle + 1) == on_plane(&case.automatic, middle + 1));
    let cancelled = case.session.propagate_structure(
        AMYGDALA,
        middle,
        PropagationOptions::default(),
        &mut |done, _| done < 1,
    );
    assert!(
        matches!(cancelled, Err(brainsam::Error::Cancelled)),
        "{cancelled:?}"
    );
    // Wrong inputs are named.
    let err = case
        .session
        .propagate_structure(
            AMYGDALA,
            middle,
            PropagationOptions {
                direction: PropagationDirection::Both,
                max_slices: Some(0),
            },
            &mut |_, _| true,
        )
        .unwrap_err();
    assert!(err.to_string().contains("max_slices"), "{err}");
    let empty = *case
        .session
        .geometry()
        .unwrap()
        .slice_voxel_indices()
        .iter()
        .find(|&&p| !on_plane(&case.automatic, p).contains(&AMYGDALA))
        .unwrap();
    case.session.clear_prompts(AMYGDALA, None).unwrap();
    let err = case
        .session
        .propagate_structure(
            AMYGDALA,
            empty,
            PropagationOptions::default(),
            &mut |_, _| true,
        )
        .unwrap_err();
    assert!(err.to_string().contains("absent"), "{err}");
    // A model without the interactive head says so.
    let err = {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let sam = brainsam::model::Sam::new(
            &vs.root(),
            &brainsam::model::SamConfig::tiny().with_num_classes(12),
        )
        .unwrap();
        let mut session =
            Session::new(Model::from_parts(sam, vs), SessionOptions::default()).unwrap();
        session
            .segment_structure_3d(AMYGDALA, [0.0; 3], [1.0; 3])
            .unwrap_err()
    };
    assert!(err.to_string().contains("interactive head"), "{err}");
}

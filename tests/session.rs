//! Sessions end to end on a synthetic head, with a small randomly initialised model
//! (the pipeline, geometry, prompts and errors are what is tested here; accuracy is
//! tested with the trained model).

mod common;

use common::synthetic_head;

use std::path::PathBuf;
use std::sync::Arc;

use brainsam::session::{Model, ModelOptions, Session, SessionOptions};
use brainsam::volume::Volume;
use brainsam::Error;

/// The shared tiny random model, loaded.
fn test_model() -> (PathBuf, Arc<Model>) {
    let path = common::test_checkpoint().to_path_buf();
    let model = Model::load(&ModelOptions {
        checkpoint: Some(path.clone()),
        ..ModelOptions::default()
    })
    .unwrap();
    (path, model)
}

/// The model file at `path` (no adapter or configuration given), loaded.
fn load_model(path: &std::path::Path) -> Arc<Model> {
    Model::load(&ModelOptions {
        checkpoint: Some(path.to_path_buf()),
        ..ModelOptions::default()
    })
    .unwrap()
}

/// A randomly initialised model of `config` (seed `seed`) saved as `dir/name`.
fn random_model_file(
    dir: &std::path::Path,
    name: &str,
    config: &brainsam::model::SamConfig,
    seed: i64,
) -> PathBuf {
    let path = dir.join(name);
    brainsam::session::init_model(&path, config, seed).unwrap();
    path
}

fn structure_plane(session: &Session) -> (usize, usize) {
    let geometry = session.geometry().unwrap();
    let planes = geometry.slice_voxel_indices();
    (geometry.frame().coronal_axis, planes[planes.len() / 2])
}

#[test]
fn mirror_and_shift_averaging_encode_more_views_and_change_the_automatic_result() {
    let (_, model) = test_model();
    let volume = synthetic_head();
    let mut results = Vec::new();
    for (mirror_averaging, shift_averaging, views) in [
        (false, false, 1),
        (true, false, 2),
        (false, true, 4),
        (true, true, 8),
    ] {
        let options = SessionOptions {
            mirror_averaging,
            shift_averaging,
            ..SessionOptions::default()
        };
        let mut session = Session::new(Arc::clone(&model), options).unwrap();
        session.set_volume(volume.clone()).unwrap();
        let n = session.geometry().unwrap().n_slices();
        let mut last = (0, 0);
        session
            .segment_all(&mut |done, total| {
                last = (done, total);
                true
            })
            .unwrap();
        assert_eq!(last, (views * n, views * n));
        let automatic = session.labels().unwrap().data().to_vec();
        let (axis, plane) = structure_plane(&session);
        let mut ijk = [40.0, 48.0, 40.0];
        ijk[axis] = plane as f64;
        session.add_point(3, ijk, true).unwrap();
        session.segment_structure(3, plane).unwrap();
        results.push(automatic);
    }
    for (index, result) in results.iter().enumerate().skip(1) {
        assert_ne!(
            &results[0], result,
            "averaged views {index} changed nothing"
        );
    }

    // Cancelling during the extra views is honoured too.
    let mut session = Session::new(Arc::clone(&model), SessionOptions::default()).unwrap();
    session.set_volume(volume).unwrap();
    let n = session.geometry().unwrap().n_slices();
    let error = session
        .segment_all(&mut |done, _| done <= 3 * n)
        .unwrap_err();
    assert!(matches!(error, Error::Cancelled), "{error}");
}

#[test]
fn automatic_segmentation_reports_progress_and_keeps_the_grid() {
    let (_, model) = test_model();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    let volume = synthetic_head();
    session.set_volume(volume.clone()).unwrap();
    let n = session.geometry().unwrap().n_slices();
    assert!(n > 10, "the region of interest spans {n} slices");
    let mut calls = Vec::new();
    let labels = session
        .segment_all(&mut |done, total| {
            calls.push((done, total));
            true
        })
        .unwrap();
    assert_eq!(labels.grid(), volume.grid());
    assert!(labels.data().iter().all(|&l| l <= 12));
    // Mirror and shift averaging (on by default) encode every slice eight times.
    assert_eq!(
        calls.last(),
        Some(&(8 * n, 8 * n)),
        "progress ends at total"
    );
    assert!(
        calls.windows(2).all(|w| w[0].0 < w[1].0),
        "progress increases"
    );
    // Stats agree with the label volume.
    for structure in 1..=12u8 {
        let stats = session.structure_stats(structure).unwrap();
        let count = labels_count(&session, structure);
        assert_eq!(stats.voxels, count);
        assert!((stats.volume_mm3 - count as f64 * 8.0).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&stats.confidence));
    }
}

fn labels_count(session: &Session, structure: u8) -> usize {
    session
        .labels()
        .unwrap()
        .data()
        .iter()
        .filter(|&&l| l == structure)
        .count()
}

#[test]
fn cancellation_stops_and_is_reported() {
    let (_, model) = test_model();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    session.set_volume(synthetic_head()).unwrap();
    let error = session.segment_all(&mut |done, _| done < 4).unwrap_err();
    assert!(matches!(error, Error::Cancelled), "{error}");
    // Encoded slices are cached: a second run completes.
    session.segment_all(&mut |_, _| true).unwrap();
}

#[test]
fn prompts_update_only_their_slice_and_are_validated() {
    let (_, model) = test_model();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    let volume = synthetic_head();
    let dims = volume.grid().dims();
    session.set_volume(volume).unwrap();
    session.segment_all(&mut |_, _| true).unwrap();
    let before = session.labels().unwrap().data().to_vec();
    let (axis, plane) = structure_plane(&session);
    let mut point = [30.0, 40.0, 40.0];
    point[axis] = plane as f64;
    assert_eq!(session.add_point(5, point, true).unwrap(), plane);
    let mut other = point;
    other[(axis + 1) % 3] += 4.0;
    session.add_point(5, other, false).unwrap();
    let mut corner = point;
    corner[(axis + 2) % 3] += 6.0;
    session.add_box(5, point, corner).unwrap();
    session.segment_structure(5, plane).unwrap();
    let after = session.labels().unwrap().data();
    for (index, (a, b)) in before.iter().zip(after).enumerate() {
        let voxel = [
            index % dims[0],
            (index / dims[0]) % dims[1],
            index / (dims[0] * dims[1]),
        ];
        if voxel[axis] != plane {
            assert_eq!(a, b, "voxel {voxel:?} outside the prompted slice changed");
        }
    }
    // Errors name the problem.
    let message = |e: Error| e.to_string();
    assert!(message(session.add_point(0, point, true).unwrap_err()).contains("structure 0"));
    assert!(message(session.add_point(13, point, true).unwrap_err()).contains("structure 13"));
    let outside = [-5.0, 10.0, 10.0];
    assert!(
        message(session.add_point(1, outside, true).unwrap_err()).contains("outside the volume")
    );
    let nan = [f64::NAN, 10.0, 10.0];
    assert!(session.add_point(1, nan, true).is_err());
    let mut far = point;
    far[axis] = 0.0;
    assert!(message(session.add_point(1, far, true).unwrap_err()).contains("region of interest"));
    let mut other_slice = corner;
    other_slice[axis] += 1.0;
    assert!(message(session.add_box(1, point, other_slice).unwrap_err()).contains("different"));
    assert!(session.segment_structure(1, 0).is_err());
    session.clear_prompts(5, Some(plane)).unwrap();
    session.clear_prompts(5, None).unwrap();
}

#[test]
fn calls_in_the_wrong_order_are_invalid_state() {
    let (_, model) = test_model();
    let mut session = Session::new(model, SessionOptions::default()).unwrap();
    assert!(matches!(
        session.segment_all(&mut |_, _| true),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        session.add_point(1, [1.0, 1.0, 1.0], true),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(session.labels(), Err(Error::InvalidState(_))));
}

#[test]
fn sessions_on_two_threads_match_sequential_results() {
    let (_, model) = test_model();
    let volume = synthetic_head();
    let run = |model: Arc<Model>, volume: Volume| {
        let mut session = Session::new(model, SessionOptions::default()).unwrap();
        session.set_volume(volume).unwrap();
        session
            .segment_all(&mut |_, _| true)
            .unwrap()
            .data()
            .to_vec()
    };
    let sequential = run(Arc::clone(&model), volume.clone());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (model, volume) = (Arc::clone(&model), volume.clone());
            std::thread::spawn(move || run(model, volume))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), sequential);
    }
}

#[test]
fn model_loading_errors_name_the_problem() {
    let dir = common::scratch_dir("session_model_errors");
    let load = |checkpoint: PathBuf, adapter: Option<PathBuf>| {
        Model::load(&ModelOptions {
            checkpoint: Some(checkpoint),
            adapter,
            ..ModelOptions::default()
        })
        .unwrap_err()
        .to_string()
    };
    let missing = dir.join("missing.safetensors");
    assert!(load(missing.clone(), None).contains("missing.safetensors"));
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not weights").unwrap();
    assert!(load(text, None).contains("notes.txt"));
    let (path, _) = test_model();
    // An adapter that is not an adapter.
    assert!(load(path.clone(), Some(path.clone())).contains("tiny.safetensors"));
}

/// A sagittal model sees a slice the same in either hemisphere: the side of its classes
/// comes from where the slice lies. The same voxel data under an affine mirrored in R (the
/// head mirrored) gives the same slices in reverse order, so every structure voxel must
/// keep its structure and change its side.
#[test]
fn a_sagittal_model_takes_the_side_of_its_structures_from_the_slice_position() {
    use brainsam::labels::MIRRORED_CLASSES;
    use brainsam::volume::frame::SliceOrientation;
    let (_, coronal) = test_model();
    let dir = common::scratch_dir("session-sagittal");
    // Without through-plane context: the mirrored head's stack runs the other way, so its
    // context slices would come in the other order.
    let config = coronal
        .config()
        .clone()
        .with_slice_orientation(SliceOrientation::Sagittal)
        .with_slice_context_mm(0.0);
    let model = load_model(&random_model_file(&dir, "sagittal.safetensors", &config, 5));
    // Without the 3D clean-up, whose connected components the two heads would join
    // differently through the plane that lies on the midline.
    let options = SessionOptions {
        cleanup: brainsam::cleanup::CleanupOptions {
            largest_component: false,
            fill_holes: false,
        },
        ..SessionOptions::default()
    };
    let segment = |volume: Volume| {
        let grid = volume.grid().clone();
        let mut session = Session::new(Arc::clone(&model), options.clone()).unwrap();
        session.set_volume(volume).unwrap();
        let geometry = session.geometry().unwrap().clone();
        let n = geometry.n_slices();
        let mut last = (0, 0);
        let labels = session
            .segment_all(&mut |done, total| {
                last = (done, total);
                true
            })
            .unwrap()
            .data()
            .to_vec();
        // The slices as they are only: mirroring a sagittal slice is no left-right flip.
        assert_eq!(last, (n, n));
        // Whether each voxel's plane lies right of the midline (None: not a slice).
        let axis = geometry.frame().coronal_axis;
        let [ni, nj, nk] = grid.dims();
        let mut right_side = vec![None; labels.len()];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let plane = [i, j, k][axis];
                    let slice = geometry
                        .slice_voxel_indices()
                        .iter()
                        .position(|&p| p == plane);
                    right_side[grid.linear_index(i, j, k)] =
                        slice.and_then(|s| geometry.slice_before_centre(s));
                }
            }
        }
        (labels, right_side)
    };
    let (as_stored, stored_right) = segment(common::synthetic_head_with_x_sign(1.0));
    let (mirrored, mirrored_right) = segment(common::synthetic_head_with_x_sign(-1.0));
    // A plane through the midline itself counts as left in both heads: not compared.
    let compared: Vec<usize> = (0..as_stored.len())
        .filter(|&v| as_stored[v] != 0 || mirrored[v] != 0)
        .filter(|&v| stored_right[v] != mirrored_right[v])
        .collect();
    assert!(
        compared.len() > 1000,
        "the random model marks only {} structure voxels",
        compared.len()
    );
    let sides_swapped = compared
        .iter()
        .filter(|&&v| MIRRORED_CLASSES[as_stored[v] as usize] == i64::from(mirrored[v]))
        .count();
    // Allowing 1 in 10,000 for floating-point near-ties between two classes (the two
    // heads' resampling weights agree only to rounding).
    assert!(
        sides_swapped * 10_000 >= compared.len() * 9_999,
        "only {sides_swapped} of {} structure voxels changed side with the head",
        compared.len()
    );
}

#[test]
fn a_model_file_with_views_of_other_orientations_averages_them_in_unless_told_not_to() {
    use brainsam::model::load::{combine_view_models, split_view_models};
    use brainsam::volume::frame::SliceOrientation;
    let (coronal_path, coronal) = test_model();
    let dir = common::scratch_dir("session-views");
    let oriented = |orientation: SliceOrientation| {
        coronal.config().clone().with_slice_orientation(orientation)
    };
    let axial_path = random_model_file(
        &dir,
        "axial.safetensors",
        &oriented(SliceOrientation::Axial),
        7,
    );
    let combined_path = dir.join("combined.safetensors");
    combine_view_models(
        &coronal_path,
        std::slice::from_ref(&axial_path),
        &combined_path,
    )
    .unwrap();
    let combined = load_model(&combined_path);
    assert_eq!(combined.other_views().len(), 1);
    assert_eq!(
        combined.other_views()[0].config().slice_orientation,
        SliceOrientation::Axial
    );
    assert_eq!(
        combined.config(),
        coronal.config(),
        "the main model is the coronal one"
    );
    // A configuration given by the caller is for the main model only: no views then.
    let configured = Model::load(&ModelOptions {
        checkpoint: Some(combined_path.clone()),
        config: Some(coronal.config().clone()),
        ..ModelOptions::default()
    })
    .unwrap();
    assert!(configured.other_views().is_empty());

    let volume = synthetic_head();
    let single_view = SessionOptions {
        mirror_averaging: false,
        shift_averaging: false,
        ..SessionOptions::default()
    };
    let segment = |model: &Arc<Model>, view_averaging: bool| {
        let mut session = Session::new(
            Arc::clone(model),
            SessionOptions {
                view_averaging,
                ..single_view.clone()
            },
        )
        .unwrap();
        session.set_volume(volume.clone()).unwrap();
        let mut last = (0, 0);
        let labels = session
            .segment_all(&mut |done, total| {
                last = (done, total);
                true
            })
            .unwrap()
            .data()
            .to_vec();
        (labels, last, session.geometry().unwrap().n_slices())
    };
    let (plain, _, n_coronal) = segment(&coronal, true);
    let (without_views, _, _) = segment(&combined, false);
    let (with_views, progress, _) = segment(&combined, true);
    let axial_model = load_model(&axial_path);
    let (_, _, n_axial) = segment(&axial_model, true);
    assert_ne!(n_axial, n_coronal, "axial and coronal stacks differ here");
    assert_eq!(
        without_views, plain,
        "without view averaging the coronal model alone"
    );
    assert_ne!(
        with_views, plain,
        "the axial model's probabilities changed nothing"
    );
    // Progress counts the slices of both stacks.
    assert_eq!(progress, (n_coronal + n_axial, n_coronal + n_axial));

    // A third, sagittal view (last in the average: its structures take their sides from
    // the others) changes the result again and adds its slices to the progress.
    let sagittal_path = random_model_file(
        &dir,
        "sagittal.safetensors",
        &oriented(SliceOrientation::Sagittal),
        9,
    );
    // Added to the file that holds the axial view already.
    let three_path = dir.join("three.safetensors");
    combine_view_models(
        &combined_path,
        std::slice::from_ref(&sagittal_path),
        &three_path,
    )
    .unwrap();
    let error = combine_view_models(
        &three_path,
        std::slice::from_ref(&dir.join("axial.safetensors")),
        &dir.join("axial-twice.safetensors"),
    )
    .unwrap_err();
    assert!(error.to_string().contains("orientation (axial)"), "{error}");
    let three = load_model(&three_path);
    assert_eq!(three.other_views().len(), 2);
    let (with_three, progress, _) = segment(&three, true);
    let sagittal_model = load_model(&sagittal_path);
    let (_, _, n_sagittal) = segment(&sagittal_model, true);
    assert_ne!(with_three, with_views, "the sagittal model changed nothing");
    let all = n_coronal + n_axial + n_sagittal;
    assert_eq!(progress, (all, all));

    // A file cannot name an orientation twice, nor hold view tensors it does not name.
    let error = combine_view_models(
        &coronal_path,
        std::slice::from_ref(&coronal_path),
        &dir.join("twice.safetensors"),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("orientation (coronal)"),
        "{error}"
    );
    let (tensors, mut metadata) = brainsam::weights::read_safetensors(&combined_path).unwrap();
    metadata.retain(|key, _| !key.starts_with("brainsam_view_config."));
    assert!(split_view_models(
        tensors
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect(),
        &metadata
    )
    .is_err());
    // A file without a BrainSAM configuration is not taken as a view.
    let bare = dir.join("bare.safetensors");
    brainsam::weights::save_safetensors(&bare, &tensors[..1], &Default::default()).unwrap();
    let error = combine_view_models(
        &coronal_path,
        std::slice::from_ref(&bare),
        &dir.join("bare-combined.safetensors"),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("not a BrainSAM model file"),
        "{error}"
    );
    let unnamed = dir.join("unnamed.safetensors");
    brainsam::weights::save_safetensors(&unnamed, &tensors, &metadata).unwrap();
    let error = Model::load(&ModelOptions {
        checkpoint: Some(unnamed),
        ..ModelOptions::default()
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("belongs to no view model"),
        "{error}"
    );
}

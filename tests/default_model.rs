//! The bundled default model keeps the accuracy its model card reports
//! (models/README.md) on the held-out validation subjects, through the full pipeline
//! with the default session options, and the project's accuracy goal. Needs the real
//! data (BRAINSAM_DATA).

mod common;

use brainsam::labels::LabelScheme;
use brainsam::metrics::evaluate;
use brainsam::session::{Model, ModelOptions, Session, SessionOptions};
use brainsam::volume::Volume;

/// (subject, image, FreeSurfer labels, lowest mean Dice accepted): the card's per-subject
/// values less a small margin for numeric differences between machines.
const CASES: [(&str, &str, &str, f64); 3] = [
    (
        "sub-09",
        "freesurfer_training_data/sub-09/T1.nii.gz",
        "freesurfer_training_data/sub-09/aseg.nii.gz",
        SUB_09_LOWEST,
    ),
    (
        "sub-10",
        "freesurfer_training_data/sub-10/T1.nii.gz",
        "freesurfer_training_data/sub-10/aseg.nii.gz",
        SUB_10_LOWEST,
    ),
    (
        "mne-sample",
        "mne_testing_sample/T1_3mm.nii.gz",
        "mne_testing_sample/aseg_3mm.nii.gz",
        MNE_LOWEST,
    ),
];

/// The card's per-subject means (0.884, 0.863, 0.812) less 0.007.
const SUB_09_LOWEST: f64 = 0.877;
const SUB_10_LOWEST: f64 = 0.856;
const MNE_LOWEST: f64 = 0.805;

/// The project's goal (issue 8): mean Dice over the validation subjects, and the lowest
/// Dice any structure may have on any of them.
const GOAL_MEAN_DICE: f64 = 0.80;
const GOAL_WORST_STRUCTURE: f64 = 0.65;

#[test]
fn bundled_model_meets_its_model_card_on_held_out_subjects() {
    let Some(data) = common::data_dir("bundled_model_meets_its_model_card_on_held_out_subjects")
    else {
        return;
    };
    let model = Model::load(&ModelOptions {
        checkpoint: Some(common::repo_root().join("models/brainsam-default.safetensors")),
        device: brainsam::session::DeviceChoice::Cpu,
        ..ModelOptions::default()
    })
    .unwrap();
    let mut means = Vec::new();
    for (subject, image, labels, lowest_mean) in CASES {
        let mut session = Session::new(model.clone(), SessionOptions::default()).unwrap();
        session
            .set_volume(Volume::read(data.join(image)).unwrap())
            .unwrap();
        let predicted = session.segment_all(&mut |_, _| true).unwrap().clone();
        let reference = LabelScheme::FreeSurfer
            .to_classes(&Volume::read(data.join(labels)).unwrap())
            .unwrap();
        let evaluation = evaluate(&predicted, &reference).unwrap();
        let mean = evaluation.mean_dice.unwrap();
        let worst = evaluation
            .structures
            .iter()
            .map(|s| s.dice.unwrap_or(0.0))
            .fold(1.0, f64::min);
        println!("{subject}: mean Dice {mean:.4}, worst structure {worst:.4}");
        assert!(mean >= lowest_mean, "{subject}: mean Dice {mean:.4}");
        assert!(
            worst >= GOAL_WORST_STRUCTURE,
            "{subject}: a structure at Dice {worst:.4}"
        );
        means.push(mean);
    }
    let overall = means.iter().sum::<f64>() / means.len() as f64;
    println!("mean Dice over the validation subjects {overall:.4}");
    assert!(
        overall >= GOAL_MEAN_DICE,
        "mean Dice over the validation subjects {overall:.4} is below the goal"
    );
}
